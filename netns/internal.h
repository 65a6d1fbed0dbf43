/* Private to netns/: the struct net layout and helpers shared by its files. */
#ifndef BERTH_NET_INTERNAL_H
#define BERTH_NET_INTERNAL_H

#include <stdint.h>

#include "common/err.h"
#include "netns/net.h"

#include <netlink/addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

DEFINE_CLEANUP_FUNC(struct rtnl_link, rtnl_link_put)
DEFINE_CLEANUP_FUNC(struct rtnl_addr, rtnl_addr_put)
DEFINE_CLEANUP_FUNC(struct rtnl_route, rtnl_route_put)
DEFINE_CLEANUP_FUNC(struct nl_addr, nl_addr_put)
DEFINE_CLEANUP_FUNC(struct nl_sock, nl_socket_free)

struct net {
	char bridge[IFNAMSIZ];
	char nft_table[64];
	char *netns_dir;        /* run_dir/netns */
	char *ipam_path;        /* ipam_dir/<network>-<prefix>, for messages */
	char *resolv_conf;
	char *fallback_resolv_conf;
	int netns_dirfd;
	int ipam_dirfd;
	uint32_t network;       /* host byte order */
	uint32_t gateway;       /* host byte order */
	unsigned prefix;
	bool nat;
	struct nl_sock *nl;     /* NETLINK_ROUTE in the host namespace */
};

/* A task id or IPAM owner: [A-Za-z0-9_.-]{1,64}, not starting with '.'. */
bool net_id_ok(const char *id);

/* "10.89.0.0/16" for messages. */
#define NET_CIDR_STRLEN (INET_ADDRSTRLEN + 4)
void net_cidr_str(const struct net *net, char out[NET_CIDR_STRLEN]);

/* Locally administered MAC for a host-order IPv4 address: 02:be:a.b.c.d. */
void net_mac_from_ip(uint32_t ip, uint8_t mac[6]);

/* Maps a negative libnl error (NLE_*) to a negative errno and fills err
 * with "<what>: <libnl message>". */
int net_nl_err(struct berth_err *err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Makes `ip <table>` hold exactly the masquerade rule for the subnet. */
/* The bridge's link (-ENOENT when missing); the caller puts it. */
int net_bridge_get(struct net *net, struct rtnl_link **ret, struct berth_err *err);
/* -EEXIST when link is not a bridge (some other interface of that name). */
int net_bridge_check(struct net *net, struct rtnl_link *link, struct berth_err *err);

int net_nat_apply(struct net *net, struct berth_err *err);
/* Deletes `ip <table>`; a missing table is fine. */
int net_nat_remove(struct net *net, struct berth_err *err);

#endif
