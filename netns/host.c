/* Host-level networking that no task agent needs: egress NAT and
 * removing the bridge.  Kept apart from bridge.c so that berth-shim, which
 * only ensures the bridge, does not link libnftables (about 1.2 MiB of
 * resident memory per agent). */
#include "netns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/route/link.h>

#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

/* Masquerade alone does nothing unless the host routes between interfaces. */
static int ip_forward_on(struct berth_err *err)
{
	_cleanup_close_ int fd = open(IP_FORWARD, O_RDWR | O_CLOEXEC);
	char c = 0;
	if (fd < 0 || pread(fd, &c, 1, 0) < 0)
		return berth_errnof(err, errno, "read %s", IP_FORWARD);
	if (c == '1')
		return 0;
	if (pwrite(fd, "1\n", 2, 0) != 2)
		return berth_errnof(err, errno, "write %s", IP_FORWARD);
	return 0;
}

int net_nat_ensure(struct net *net, struct berth_err *err)
{
	if (!net->nat)
		return net_nat_remove(net, err);
	int r = ip_forward_on(err);
	return r < 0 ? r : net_nat_apply(net, err);
}

int net_bridge_remove(struct net *net, struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	int r = net_bridge_get(net, &link, err);
	if (r == 0 && (r = net_bridge_check(net, link, err)) == 0) {
		r = rtnl_link_delete(net->nl, link);
		if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV)
			return net_nl_err(err, r, "bridge %s: delete", net->bridge);
	}
	if (r < 0 && r != -ENOENT)
		return r;
	return net_nat_remove(net, err);
}
