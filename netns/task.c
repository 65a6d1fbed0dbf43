/* A task's network: netns bind mount, veth pair, address, routes.
 *
 * Costs kept off the setup path (a task start is timed by make bench): the
 * veth peer is created directly inside the task namespace (IFLA_NET_NS_FD)
 * instead of being moved there, which would wait in rcu_barrier(); and no
 * thread ever setns()es: the namespace is created by a short-lived thread
 * that also opens the netlink socket used to configure it, since a netlink
 * socket stays bound to the namespace it was created in. */
#include "netns/internal.h"

#include "common/hash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/route/link/veth.h>


#define TASK_IFNAME "eth0"

/* "vberth" + 9 hex digits of a 64-bit FNV-1a hash of the task id = 15
 * chars, IFNAMSIZ - 1; the "berth" in it lets leak checks find strays.  A
 * collision is EEXIST, never a shared veth. */
void net_host_ifname(const char *task_id, char out[IFNAMSIZ])
{
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, task_id, strlen(task_id));
	snprintf(out, IFNAMSIZ, "vberth%09llx", (unsigned long long)(h >> 28));
}

struct ns_thread {
	const char *path;   /* mount target, created beforehand */
	struct nl_sock *nl; /* connected inside the new namespace */
	int sys_errno;      /* unshare/mount failure */
	const char *step;
	int nlerr;          /* nl_connect failure */
};

/* No IPv6 on interfaces created in the namespace from now on (eth0): a
 * task has one IPv4 address, and router advertisements must not configure
 * it.  lo keeps ::1 for programs that listen on it. */
#define NS_NO_IPV6 "/proc/sys/net/ipv6/conf/default/disable_ipv6"

/* unshare(CLONE_NEWNET) affects only the calling thread, so the caller's
 * thread keeps its namespace; /proc/sys/net follows the thread too.
 * /proc/thread-self, not /proc/self: the latter names the main thread. */
static void *ns_thread_main(void *arg)
{
	struct ns_thread *t = arg;
	int r;
	if (unshare(CLONE_NEWNET) < 0) {
		t->sys_errno = errno;
		t->step = "unshare";
	} else if ((r = net_sysctl_on(NS_NO_IPV6)) < 0) {
		t->sys_errno = -r;
		t->step = "disable IPv6 (" NS_NO_IPV6 ")";
	} else if (mount("/proc/thread-self/ns/net", t->path, NULL, MS_BIND, NULL) < 0) {
		t->sys_errno = errno;
		t->step = "bind mount";
	} else {
		t->nlerr = nl_connect(t->nl, NETLINK_ROUTE);
	}
	return NULL;
}

static int netns_remove(struct net *net, const struct net_task *t, struct berth_err *err)
{
	/* EINVAL: not a mount point (setup failed before the bind mount). */
	if (umount2(t->netns_path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
	    errno != ENOENT)
		return berth_errnof(err, errno, "netns %s: unmount", t->netns_path);
	if (unlinkat(net->netns_dirfd, t->id, 0) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "netns %s: remove", t->netns_path);
	return 0;
}

static int netns_spawn(const char *path, struct nl_sock **ret_nl, struct berth_err *err)
{
	_cleanup_(nl_socket_freep) struct nl_sock *nl = nl_socket_alloc();
	if (!nl)
		return berth_errf(err, ENOMEM, "netns %s: out of memory", path);
	struct ns_thread t = { .path = path, .nl = nl };
	pthread_t th;
	int r = pthread_create(&th, NULL, ns_thread_main, &t);
	if (r != 0)
		return berth_errnof(err, r, "netns %s: start thread", path);
	pthread_join(th, NULL);
	if (t.sys_errno)
		return berth_errnof(err, t.sys_errno, "netns %s: %s", path, t.step);
	if (t.nlerr < 0)
		return net_nl_err(err, t.nlerr, "netns %s: netlink socket", path);
	*ret_nl = TAKE_PTR(nl);
	return 0;
}

/* Creates the namespace bind-mounted at netns_dir/<id> and returns a
 * netlink socket inside it.  An existing file is another task's: EEXIST,
 * left alone.  On failure nothing of this call remains. */
static int netns_create(struct net *net, const struct net_task *t, struct nl_sock **ret_nl,
			struct berth_err *err)
{
	int fd = openat(net->netns_dirfd, t->id, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "netns %s: create", t->netns_path);
	close(fd);
	int r = netns_spawn(t->netns_path, ret_nl, err);
	if (r < 0)
		netns_remove(net, t, NULL);
	return r;
}

static int bridge_lookup(struct net *net, int *ret_ifindex, unsigned *ret_mtu,
			 struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *br = NULL;
	int r = rtnl_link_get_kernel(net->nl, 0, net->bridge, &br);
	if (r < 0)
		return net_nl_err(err, r, "bridge %s", net->bridge);
	*ret_ifindex = rtnl_link_get_ifindex(br);
	*ret_mtu = rtnl_link_get_mtu(br);
	return 0;
}

/* One RTM_NEWLINK: host end up on the bridge, eth0 inside the netns.  eth0
 * cannot be brought up in the same message: the kernel configures the peer
 * before the two ends are linked, and veth_open() fails with ENOTCONN. */
static int veth_create(struct net *net, const struct net_task *t, int nsfd, struct berth_err *err)
{
	int br_index = 0;
	unsigned mtu = 0;
	int r = bridge_lookup(net, &br_index, &mtu, err);
	if (r < 0)
		return r;
	_cleanup_(rtnl_link_putp) struct rtnl_link *host = rtnl_link_veth_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *mac = nl_addr_build(AF_LLC, t->mac, sizeof(t->mac));
	if (!host || !mac)
		return berth_errf(err, ENOMEM, "veth %s: out of memory", t->host_ifname);
	/* get_peer takes a reference; dropping host frees the pair. */
	_cleanup_(rtnl_link_putp) struct rtnl_link *peer = rtnl_link_veth_get_peer(host);
	rtnl_link_set_name(host, t->host_ifname);
	/* The rules of rules.c apply to the ports of this group. */
	rtnl_link_set_group(host, net_port_group(net->bridge));
	rtnl_link_set_master(host, br_index);
	rtnl_link_set_mtu(host, mtu);
	rtnl_link_set_flags(host, IFF_UP);
	rtnl_link_set_name(peer, TASK_IFNAME);
	rtnl_link_set_addr(peer, mac);
	rtnl_link_set_mtu(peer, mtu);
	rtnl_link_set_ns_fd(peer, nsfd);
	r = rtnl_link_add(net->nl, host, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		return net_nl_err(err, r, "veth %s: create", t->host_ifname);
	return 0;
}

/* Sets name up; its ifindex goes to *ret_ifindex if not NULL. */
static int link_up(struct nl_sock *nl, const char *name, int *ret_ifindex, struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return berth_errf(err, ENOMEM, "%s: out of memory", name);
	int r = rtnl_link_get_kernel(nl, 0, name, &link);
	if (r < 0)
		return net_nl_err(err, r, "look up %s", name);
	rtnl_link_set_flags(change, IFF_UP);
	if ((r = rtnl_link_change(nl, link, change, 0)) < 0)
		return net_nl_err(err, r, "set %s up", name);
	if (ret_ifindex)
		*ret_ifindex = rtnl_link_get_ifindex(link);
	return 0;
}

static int add_address(struct nl_sock *nl, int ifindex, const struct net_task *t,
		       struct berth_err *err)
{
	uint32_t mask = ~0u << (32 - t->prefix);
	uint32_t ip = t->addr.s_addr, bcast = htonl(ntohl(ip) | ~mask);
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *local = nl_addr_build(AF_INET, &ip, 4);
	_cleanup_(nl_addr_putp) struct nl_addr *brd = nl_addr_build(AF_INET, &bcast, 4);
	if (!a || !local || !brd)
		return berth_errf(err, ENOMEM, "address: out of memory");
	nl_addr_set_prefixlen(local, (int)t->prefix);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	rtnl_addr_set_broadcast(a, brd);
	int r = rtnl_addr_add(nl, a, NLM_F_EXCL);
	if (r < 0)
		return net_nl_err(err, r, "add address %s/%u", inet_ntop(AF_INET, &t->addr,
			(char[INET_ADDRSTRLEN]){ 0 }, INET_ADDRSTRLEN), t->prefix);
	return 0;
}

static int add_default_route(struct nl_sock *nl, int ifindex, struct in_addr gw,
			     struct berth_err *err)
{
	uint32_t any = 0;
	_cleanup_(rtnl_route_putp) struct rtnl_route *route = rtnl_route_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *dst = nl_addr_build(AF_INET, &any, 4);
	_cleanup_(nl_addr_putp) struct nl_addr *via = nl_addr_build(AF_INET, &gw.s_addr, 4);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	if (!route || !dst || !via || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		return berth_errf(err, ENOMEM, "default route: out of memory");
	}
	nl_addr_set_prefixlen(dst, 0);
	rtnl_route_set_family(route, AF_INET);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
	rtnl_route_set_dst(route, dst);
	rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(route, nh); /* the route owns nh now */
	int r = rtnl_route_add(nl, route, NLM_F_EXCL);
	if (r < 0)
		return net_nl_err(err, r, "add default route via %s",
				  inet_ntop(AF_INET, &gw, (char[INET_ADDRSTRLEN]){ 0 }, INET_ADDRSTRLEN));
	return 0;
}

/* Inside the namespace: lo and eth0 up, eth0's address, default route.
 * eth0 is up first so its prefix route, which makes the gateway reachable,
 * exists when the default route is added. */
static int configure_inside(struct nl_sock *nl, const struct net_task *t, struct berth_err *err)
{
	int ifindex = 0;
	int r = link_up(nl, "lo", NULL, err);
	if (r == 0)
		r = link_up(nl, TASK_IFNAME, &ifindex, err);
	if (r == 0)
		r = add_address(nl, ifindex, t, err);
	return r < 0 ? r : add_default_route(nl, ifindex, t->gateway, err);
}

static int task_init(struct net *net, const char *task_id, struct net_task *t,
		     struct berth_err *err)
{
	if (!net_id_ok(task_id))
		return berth_errf(err, EINVAL, "task id \"%s\" is not [A-Za-z0-9_.-]{1,64}", task_id);
	*t = (struct net_task){ .prefix = net->prefix };
	snprintf(t->id, sizeof(t->id), "%s", task_id);
	if ((size_t)snprintf(t->netns_path, sizeof(t->netns_path), "%s/%s", net->netns_dir,
			     task_id) >= sizeof(t->netns_path))
		return berth_errf(err, ENAMETOOLONG, "task %s: netns path too long", task_id);
	net_host_ifname(task_id, t->host_ifname);
	t->gateway.s_addr = htonl(net->gateway);
	return 0;
}

static int veth_delete(struct net *net, const char *ifname, struct berth_err *err)
{
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_alloc();
	if (!link)
		return berth_errf(err, ENOMEM, "veth %s: out of memory", ifname);
	rtnl_link_set_name(link, ifname);
	int r = rtnl_link_delete(net->nl, link);
	if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV)
		return net_nl_err(err, r, "veth %s: delete", ifname);
	return 0;
}

/* A stopping task's veth is deleted in a batch: moved to the bridge's
 * dying group (whose frames the bridge table drops), then every veth of
 * that group is deleted in one request.  Each deletion waits out an RCU
 * grace period under the kernel's rtnl lock (about 25 ms), and with
 * hundreds of tasks stopping they waited one after another; the group's
 * deletion waits once for every veth moved into it meanwhile.  When it
 * returns the task's veth is gone: deleted by it, or by another task's
 * deletion before it (then it finds none: ENODEV). */
static int veth_retire(struct net *net, const char *ifname, struct berth_err *err)
{
	uint32_t dying = net_dying_group(net->bridge);
	_cleanup_(rtnl_link_putp) struct rtnl_link *orig = rtnl_link_alloc();
	_cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
	if (!orig || !change)
		return berth_errf(err, ENOMEM, "veth %s: out of memory", ifname);
	/* By index: a change request naming no interface is a creation. */
	unsigned idx = if_nametoindex(ifname);
	if (!idx)
		return errno == ENODEV || errno == ENXIO ? 0 : veth_delete(net, ifname, err);
	rtnl_link_set_ifindex(orig, (int)idx);
	rtnl_link_set_name(orig, ifname);
	rtnl_link_set_group(change, dying);
	int r = rtnl_link_change(net->nl, orig, change, 0);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return 0;
	if (r < 0)
		return veth_delete(net, ifname, err);
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_u32(msg, IFLA_GROUP, dying) < 0) {
		nlmsg_free(msg);
		return berth_errf(err, ENOMEM, "veth %s: out of memory", ifname);
	}
	r = nl_send_sync(net->nl, msg);  /* frees msg */
	if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV)
		return net_nl_err(err, r, "veth %s: delete with group %u", ifname, dying);
	return 0;
}

/* Undoes only what it did itself: a veth name taken by another task
 * (EEXIST) is not deleted. */
static int task_build(struct net *net, const struct net_task *t, struct berth_err *err)
{
	_cleanup_(nl_socket_freep) struct nl_sock *ns_nl = NULL;
	int r = netns_create(net, t, &ns_nl, err);
	if (r < 0)
		return r;
	_cleanup_close_ int nsfd = openat(net->netns_dirfd, t->id, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		r = berth_errnof(err, errno, "netns %s: open", t->netns_path);
	else if ((r = veth_create(net, t, nsfd, err)) == 0 &&
		 (r = configure_inside(ns_nl, t, err)) < 0)
		veth_delete(net, t->host_ifname, NULL);
	if (r < 0)
		netns_remove(net, t, NULL);
	return r;
}

int net_task_reserve(struct net *net, const char *task_id, struct net_task *ret,
		     struct berth_err *err)
{
	struct net_task t;
	int r = task_init(net, task_id, &t, err);
	if (r < 0)
		return r;
	if ((r = net_ipam_alloc(net, task_id, &t.addr, err)) < 0)
		return berth_err_wrap(err, "task %s", task_id);
	net_mac_from_ip(ntohl(t.addr.s_addr), t.mac);
	*ret = t;
	return 0;
}

int net_task_build(struct net *net, const struct net_task *t, struct berth_err *err)
{
	int r = task_build(net, t, err);
	return r < 0 ? berth_err_wrap(err, "task %s", t->id) : 0;
}

int net_task_setup(struct net *net, const char *task_id, struct net_task *ret,
		   struct berth_err *err)
{
	struct net_task t;
	int r = net_task_reserve(net, task_id, &t, err);
	if (r < 0)
		return r;
	if ((r = net_task_build(net, &t, err)) < 0) {
		net_ipam_release(net, t.addr, task_id, NULL);
		return r;
	}
	*ret = t;
	return 0;
}

int net_task_isolated(struct net *net, const char *task_id, struct net_task *ret,
		      struct berth_err *err)
{
	struct net_task t;
	int r = task_init(net, task_id, &t, err);
	_cleanup_(nl_socket_freep) struct nl_sock *ns_nl = NULL;
	if (r < 0 || (r = netns_create(net, &t, &ns_nl, err)) < 0)
		return r < 0 ? berth_err_wrap(err, "task %s", task_id) : r;
	if ((r = link_up(ns_nl, "lo", NULL, err)) < 0) {
		netns_remove(net, &t, NULL);
		return berth_err_wrap(err, "task %s", task_id);
	}
	*ret = t;
	return 0;
}

int net_task_teardown(struct net *net, const char *task_id, struct in_addr addr,
		      struct berth_err *err)
{
	struct net_task t;
	int r = task_init(net, task_id, &t, err);
	if (r < 0)
		return r;
	/* Every step runs even if an earlier one failed; the first error wins. */
	struct berth_err e2 = { 0 };
	int r1 = veth_retire(net, t.host_ifname, err);
	int r2 = netns_remove(net, &t, r1 < 0 ? &e2 : err);
	int r3 = net_ipam_release(net, addr, task_id, r1 < 0 || r2 < 0 ? &e2 : err);
	r = r1 < 0 ? r1 : r2 < 0 ? r2 : r3;
	return r < 0 ? berth_err_wrap(err, "task %s: teardown", task_id) : 0;
}
