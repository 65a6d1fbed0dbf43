/* The host bridge: created once, shared by every task of the subnet. */
#include "netns/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <netlink/errno.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>


static int bridge_create(struct net *net, struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_bridge_alloc();
	uint8_t mac[6];
	/* A fixed MAC: otherwise the bridge takes the lowest MAC of its ports
	 * and changes it as tasks come and go, which breaks the host's ARP
	 * entries in the tasks. */
	net_mac_from_ip(net->gateway, mac);
	_cleanup_(nl_addr_putp) struct nl_addr *lladdr = nl_addr_build(AF_LLC, mac, sizeof(mac));
	if (!link || !lladdr)
		return berth_errf(err, ENOMEM, "bridge %s: out of memory", net->bridge);
	rtnl_link_set_name(link, net->bridge);
	rtnl_link_set_addr(link, lladdr);
	rtnl_link_set_flags(link, IFF_UP);
	int r = rtnl_link_add(net->nl, link, NLM_F_CREATE | NLM_F_EXCL);
	/* Another process created it first: fine, it is checked below. */
	if (r < 0 && r != -NLE_EXIST)
		return net_nl_err(err, r, "bridge %s: create", net->bridge);
	return 0;
}

int net_bridge_get(struct net *net, struct rtnl_link **ret, struct berth_err *err)
{
	int r = rtnl_link_get_kernel(net->nl, 0, net->bridge, ret);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return -ENOENT;
	if (r < 0)
		return net_nl_err(err, r, "bridge %s: look up", net->bridge);
	return 0;
}

static int bridge_up(struct net *net, struct rtnl_link *link, struct berth_err *err)
{
	if (rtnl_link_get_flags(link) & IFF_UP)
		return 0;
	_cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return berth_errf(err, ENOMEM, "bridge %s: out of memory", net->bridge);
	rtnl_link_set_flags(change, IFF_UP);
	int r = rtnl_link_change(net->nl, link, change, 0);
	if (r < 0)
		return net_nl_err(err, r, "bridge %s: set up", net->bridge);
	return 0;
}

/* IP/PREFIX (host byte order) on the bridge, with BCAST unless 0. */
static int bridge_add_addr(struct net *net, int ifindex, uint32_t ip, unsigned prefix,
			   uint32_t bcast)
{
	uint32_t local_be = htonl(ip), bcast_be = htonl(bcast);
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *local = nl_addr_build(AF_INET, &local_be, 4);
	_cleanup_(nl_addr_putp) struct nl_addr *brd = bcast ? nl_addr_build(AF_INET, &bcast_be, 4)
							    : NULL;
	if (!a || !local || (bcast && !brd))
		return -NLE_NOMEM;
	nl_addr_set_prefixlen(local, (int)prefix);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	if (brd)
		rtnl_addr_set_broadcast(a, brd);
	int r = rtnl_addr_add(net->nl, a, 0);
	return r == -NLE_EXIST ? 0 : r;
}

/* The gateway, and the task endpoint's address when it is another one
 * (a /32: the host answers it, and routes nothing else by it). */
static int bridge_address(struct net *net, int ifindex, struct berth_err *err)
{
	int r = bridge_add_addr(net, ifindex, net->gateway, net->prefix,
				net->network | ~(~0u << (32 - net->prefix)));
	if (r < 0) {
		char cidr[NET_CIDR_STRLEN];
		net_cidr_str(net, cidr);
		return net_nl_err(err, r, "bridge %s: add gateway address of %s", net->bridge, cidr);
	}
	if (!net->endpoint || net->endpoint == net->gateway)
		return 0;
	if ((r = bridge_add_addr(net, ifindex, net->endpoint, 32, 0)) < 0) {
		struct in_addr a = { .s_addr = htonl(net->endpoint) };
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		return net_nl_err(err, r, "bridge %s: add task endpoint address %s", net->bridge, ip);
	}
	return 0;
}

int net_bridge_check(struct net *net, struct rtnl_link *link, struct berth_err *err)
{
	const char *type = rtnl_link_get_type(link);
	if (!type || strcmp(type, "bridge") != 0)
		return berth_errf(err, EEXIST, "bridge %s: a %s interface of that name exists",
				  net->bridge, type ? type : "non-bridge");
	return 0;
}

/* The bridge carries IPv4 only: with IPv6 on, a router advertisement
 * from a task would configure the host's addresses and routes. */
static int bridge_no_ipv6(struct net *net, struct berth_err *err)
{
	char path[64 + IFNAMSIZ];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", net->bridge);
	int r = net_sysctl_on(path);
	return r < 0 ? berth_errnof(err, -r, "bridge %s: write %s", net->bridge, path) : 0;
}

int net_bridge_ensure(struct net *net, struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	int r = net_bridge_get(net, &link, err);
	if (r == -ENOENT) {
		r = bridge_create(net, err);
		if (r == 0)
			r = net_bridge_get(net, &link, err);
		if (r == -ENOENT)
			r = berth_errf(err, ENOENT, "bridge %s: vanished after creation", net->bridge);
	}
	if (r < 0)
		return r;
	if ((r = net_bridge_check(net, link, err)) < 0 || (r = bridge_no_ipv6(net, err)) < 0 ||
	    (r = bridge_up(net, link, err)) < 0)
		return r;
	return bridge_address(net, rtnl_link_get_ifindex(link), err);
}
