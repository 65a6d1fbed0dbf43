/* Host-level networking that no task agent needs: the nftables rules
 * (rules.c), ip_forward, and removing the bridge.  Kept apart from
 * bridge.c so that berth-shim, which only ensures the bridge, does not
 * link libnftables (about 1.2 MiB of resident memory per agent). */
#include "netns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/route/link.h>

#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

/* The marker that says Berth turned ip_forward on for this table, so that
 * removing the NAT turns it off again: run_dir/ip_forward.<table>. */
static void forward_marker(const struct net *net, char out[4096])
{
	snprintf(out, 4096, "%s/ip_forward.%s", net->run_dir, net->nft_table);
}

/* Masquerade alone does nothing unless the host routes between
 * interfaces.  Off → on is recorded first, so a crash in between leaves at
 * worst a marker for a setting that is still off. */
static int ip_forward_on(struct net *net, struct berth_err *err)
{
	_cleanup_close_ int fd = open(IP_FORWARD, O_RDWR | O_CLOEXEC);
	char c = 0, marker[4096];
	if (fd < 0 || pread(fd, &c, 1, 0) < 0)
		return berth_errnof(err, errno, "read %s", IP_FORWARD);
	if (c == '1')
		return 0;
	forward_marker(net, marker);
	int m = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (m < 0)
		return berth_errnof(err, errno, "%s: create", marker);
	close(m);
	if (pwrite(fd, "1\n", 2, 0) != 2)
		return berth_errnof(err, errno, "write %s", IP_FORWARD);
	return 0;
}

/* Turns ip_forward off again if Berth turned it on for this table. */
static int ip_forward_restore(struct net *net, struct berth_err *err)
{
	char marker[4096];
	forward_marker(net, marker);
	if (access(marker, F_OK) < 0)
		return 0;
	_cleanup_close_ int fd = open(IP_FORWARD, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, "0\n", 2, 0) != 2)
		return berth_errnof(err, errno, "write %s", IP_FORWARD);
	if (unlink(marker) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "%s: remove", marker);
	return 0;
}

/* The host's own connections to 127.0.0.1:<published port> are DNATed
 * to a task and leave through the bridge with their loopback source:
 * without route_localnet on the bridge, the kernel drops them as
 * martians.  The rules (rules.c) are in place before it is turned on,
 * and drop whatever a task sends to 127.0.0.0/8, which route_localnet
 * would otherwise route to the host's loopback services. */
static int route_localnet_on(struct net *net, struct berth_err *err)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/route_localnet", net->bridge);
	int r = net_sysctl_on(path);
	return r < 0 ? berth_errnof(err, -r, "write %s", path) : 0;
}

int net_rules_ensure(struct net *net, struct berth_err *err)
{
	int r = net->nat ? ip_forward_on(net, err) : ip_forward_restore(net, err);
	if (r == 0)
		r = net_rules_apply(net, err);
	return r < 0 ? r : route_localnet_on(net, err);
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
	if ((r = net_rules_remove(net, err)) < 0)
		return r;
	return ip_forward_restore(net, err);
}
