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
	char *run_dir;
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
	char blocked[512];      /* "a.b.c.d, e.f.g.h/n", validated; "" none */
	uint32_t endpoint;      /* host byte order; 0: no task endpoint */
	uint16_t endpoint_port;
	struct nl_sock *nl;     /* NETLINK_ROUTE in the host namespace */
};

/* A task id or IPAM owner: [A-Za-z0-9_.-]{1,64}, not starting with '.'. */
bool net_id_ok(const char *id);

/* "10.89.0.0/16" for messages. */
#define NET_CIDR_STRLEN (INET_ADDRSTRLEN + 4)
void net_cidr_str(const struct net *net, char out[NET_CIDR_STRLEN]);

/* Locally administered MAC for a host-order IPv4 address: 02:be:a.b.c.d. */
void net_mac_from_ip(uint32_t ip, uint8_t mac[6]);

/* Writes "1" to a sysctl file (of the calling thread's network
 * namespace for /proc/sys/net): 0, or -errno; a missing file (a kernel
 * without IPv6) is fine. */
int net_sysctl_on(const char *path);

/* Maps a negative libnl error (NLE_*) to a negative errno and fills err
 * with "<what>: <libnl message>". */
int net_nl_err(struct berth_err *err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The bridge's link (-ENOENT when missing); the caller puts it. */
int net_bridge_get(struct net *net, struct rtnl_link **ret, struct berth_err *err);
/* -EEXIST when link is not a bridge (some other interface of that name). */
int net_bridge_check(struct net *net, struct rtnl_link *link, struct berth_err *err);

/* Makes the tables `bridge <table>` and `ip <table>` hold exactly the
 * policy's rules (rules.c); the per-task sets are created if missing,
 * never flushed. */
int net_rules_apply(struct net *net, struct berth_err *err);
/* Deletes both tables; missing ones are fine. */
int net_rules_remove(struct net *net, struct berth_err *err);

/* Runs an nft script as one transaction; with ret_out, its output (JSON
 * when json) is returned malloc'd. */
int net_nft_run(struct net *net, const char *script, bool json, char **ret_out, const char *what,
		struct berth_err *err);

#endif
