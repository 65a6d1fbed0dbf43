/* netns/: IPAM, bridge, NAT, network policy and task networks against the
 * real kernel.  Needs root.  Everything it creates is named "berth…"
 * (bridge berth-t<pid>, veths vberth…, tables ip and bridge berth_t<pid>,
 * temp dirs /tmp/berth-test-netns-*)
 * and is removed by the teardown functions even when an assertion fails.
 * Traffic goes only to addresses inside the namespaces created here. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <nftables/libnftables.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "netns/net.h"

#define MAX_TASKS 8

struct fixture {
	char dir[64];          /* /tmp/berth-test-netns-XXXXXX */
	char run[128], ipam[128], resolv[128], fallback[128];
	char bridge[IFNAMSIZ], table[32], subnet[32];
	struct net_config cfg;
	struct net *net;
	char ip_forward;       /* restored at the end */
	/* Per test: torn down by task_cleanup even when an assertion fails. */
	char task_ids[MAX_TASKS][NET_TASK_ID_MAX + 1];
	int fds[MAX_TASKS];
	/* A second network with no rules (a stand-in for "outside") and the
	 * one task on it; removed by task_cleanup. */
	struct net *outside;
	char outside_task[NET_TASK_ID_MAX + 1];
};

static struct fixture *fx(void **state)
{
	return *state;
}

static char read_ip_forward(void)
{
	char c = '0';
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '0';
		close(fd);
	}
	return c;
}

static void write_ip_forward(char c)
{
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, &c, 1) != 1)
			c = 0;
		close(fd);
	}
}

/* Is any address of 10.89.<third>.0/24 already on a host interface? */
static bool subnet_in_use(int third)
{
	struct ifaddrs *ifa = NULL;
	bool used = false;
	if (getifaddrs(&ifa) < 0)
		return true;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		uint32_t ip = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		used |= (ip >> 8) == ((0x0a59u << 8) | (uint32_t)third);
	}
	freeifaddrs(ifa);
	return used;
}

/* Names, paths and a free /24 for this run; no network state yet. */
static int fixture_init(struct fixture *f)
{
	*f = (struct fixture){ 0 };
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-netns-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->run, sizeof(f->run), "%s/run", f->dir);
	snprintf(f->ipam, sizeof(f->ipam), "%s/ipam", f->dir);
	snprintf(f->resolv, sizeof(f->resolv), "%s/host-resolv.conf", f->dir);
	snprintf(f->fallback, sizeof(f->fallback), "%s/upstream-resolv.conf", f->dir);
	snprintf(f->bridge, sizeof(f->bridge), "berth-t%d", (int)getpid() % 10000000);
	snprintf(f->table, sizeof(f->table), "berth_t%d", (int)getpid());
	/* A /24 high in 10.89/16, away from what a real berth0 hands out
	 * first, and not one a concurrent run already put on its bridge. */
	int k = (int)getpid() % 50;
	for (int tries = 0; tries < 50 && subnet_in_use(200 + k); tries++)
		k = (k + 1) % 50;
	snprintf(f->subnet, sizeof(f->subnet), "10.89.%d.0/24", 200 + k);
	net_config_init(&f->cfg);
	f->cfg.bridge = f->bridge;
	f->cfg.nft_table = f->table;
	f->cfg.subnet = f->subnet;
	f->cfg.run_dir = f->run;
	f->cfg.ipam_dir = f->ipam;
	f->cfg.host_resolv_conf = f->resolv;
	f->cfg.fallback_resolv_conf = f->fallback;
	for (int i = 0; i < MAX_TASKS; i++)
		f->fds[i] = -1;
	f->ip_forward = read_ip_forward();
	return 0;
}

/* The fixture main() prepared before forking the test process. */
static struct fixture the_fixture;

static int group_setup(void **state)
{
	struct fixture *f = &the_fixture;
	*state = f;
	struct berth_err err = { 0 };
	if (net_open(&f->cfg, &f->net, &err) < 0 || net_bridge_ensure(f->net, &err) < 0 ||
	    net_rules_ensure(f->net, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* main() removes whatever is left after the test process is gone. */
static int group_teardown(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	int r = 0;
	if (f->net && net_bridge_remove(f->net, &err) < 0) {
		fprintf(stderr, "teardown: %s\n", err.msg);
		r = -1;
	}
	net_close(f->net);
	f->net = NULL;
	return r;
}

/* Tasks and fds a test registers here are removed whatever happens. */
static int task_cleanup(void **state)
{
	struct fixture *f = fx(state);
	for (int i = 0; i < MAX_TASKS; i++) {
		if (f->task_ids[i][0]) {
			net_policy_task_remove(f->net, f->task_ids[i], (struct in_addr){ 0 }, NULL);
			net_task_teardown(f->net, f->task_ids[i], (struct in_addr){ 0 }, NULL);
		}
		f->task_ids[i][0] = '\0';
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		f->fds[i] = -1;
	}
	if (f->outside) {
		net_task_teardown(f->outside, f->outside_task, (struct in_addr){ 0 }, NULL);
		net_bridge_remove(f->outside, NULL);
		net_close(f->outside);
		f->outside = NULL;
	}
	return 0;
}

static int keep_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_TASKS && fd >= 0; i++)
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return fd;
		}
	return fd;
}

/* A task id, registered for task_cleanup. */
static const char *task_id(struct fixture *f, const char *name)
{
	int i = 0;
	while (i < MAX_TASKS && f->task_ids[i][0])
		i++;
	assert_true(i < MAX_TASKS);
	snprintf(f->task_ids[i], sizeof(f->task_ids[i]), "berth-test-%d-%s", (int)getpid(), name);
	return f->task_ids[i];
}

/* A task in the security groups given (none: "default"). */
static void setup_task_in(struct fixture *f, const char *name, struct net_task *t,
			  const char *groups)
{
	struct berth_err err = { 0 };
	const char *id = task_id(f, name);
	if (net_task_setup(f->net, id, t, &err) < 0)
		fail_msg("%s", err.msg);
	char copy[128], *save = NULL;
	const char *v[NET_GROUPS_MAX];
	size_t n = 0;
	snprintf(copy, sizeof(copy), "%s", groups);
	for (char *g = strtok_r(copy, ",", &save); g && n < NET_GROUPS_MAX;
	     g = strtok_r(NULL, ",", &save))
		v[n++] = g;
	if (net_policy_task_add(f->net, id, t->addr, v, n, &err) < 0)
		fail_msg("%s", err.msg);
}

static void setup_task(struct fixture *f, const char *name, struct net_task *t)
{
	setup_task_in(f, name, t, "default");
}

/* ---- running code inside a task namespace (a thread that setns()es) ---- */

struct in_ns {
	const char *path;
	void (*fn)(struct in_ns *);
	int sys_errno;
	int fd;                   /* socket_in_ns result */
	bool lo_up, eth0_has_addr, eth0_mac_ok, default_route_ok;
	const struct net_task *task;
};

static void *in_ns_main(void *arg)
{
	struct in_ns *c = arg;
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		c->sys_errno = errno;
	else
		c->fn(c);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void run_in_ns(struct in_ns *c)
{
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, in_ns_main, c), 0);
	pthread_join(th, NULL);
	assert_int_equal(c->sys_errno, 0);
}

static void make_socket(struct in_ns *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* A TCP socket that belongs to the namespace at path. */
static int socket_in_ns(struct fixture *f, const char *path)
{
	struct in_ns c = { .path = path, .fn = make_socket, .fd = -1 };
	run_in_ns(&c);
	assert_true(c.fd >= 0);
	return keep_fd(f, c.fd);
}

static void check_route(struct in_ns *c)
{
	/* thread-self: /proc/self/net would show the main thread's netns. */
	FILE *rt = fopen("/proc/thread-self/net/route", "re");
	char line[256], want[16];
	snprintf(want, sizeof(want), "%08X", c->task->gateway.s_addr);
	while (rt && fgets(line, sizeof(line), rt)) {
		char ifn[32], dst[16], gw[16];
		if (sscanf(line, "%31s %15s %15s", ifn, dst, gw) == 3 && !strcmp(ifn, "eth0") &&
		    !strcmp(dst, "00000000") && !strcmp(gw, want))
			c->default_route_ok = true;
	}
	if (rt)
		fclose(rt);
}

static void inspect(struct in_ns *c)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!strcmp(i->ifa_name, "lo"))
			c->lo_up = i->ifa_flags & IFF_UP;
		if (strcmp(i->ifa_name, "eth0") || !i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			c->eth0_has_addr |= ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
					    c->task->addr.s_addr;
		if (i->ifa_addr->sa_family == AF_PACKET)
			c->eth0_mac_ok = !memcmp(((struct sockaddr_ll *)i->ifa_addr)->sll_addr,
						 c->task->mac, 6);
	}
	freeifaddrs(ifa);
	check_route(c);
}

/* Connects cfd to addr:port where lfd listens, and moves one byte across. */
static void exchange(int cfd, int lfd, struct in_addr addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = addr };
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(lfd, 1), 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	_cleanup_close_ int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	assert_int_equal(write(cfd, "b", 1), 1);
	char c = 0;
	assert_int_equal(read(afd, &c, 1), 1);
	assert_int_equal(c, 'b');
}

/* Whether path is a mount point (field 5 of /proc/self/mountinfo). */
static bool mounted(const char *path)
{
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	assert_non_null(mi);
	char line[8192], mnt[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), mi))
		found = sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && !strcmp(mnt, path);
	fclose(mi);
	return found;
}

static char *read_at(int dfd, const char *name)
{
	char *buf = NULL;
	struct berth_err err = { 0 };
	if (berth_read_file_at(dfd, name, 1 << 16, &buf, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	return buf;
}

/* ---- IPAM ---- */

static struct net *open_ipam(struct fixture *f, const char *subnet, const char *dir)
{
	struct net_config cfg = f->cfg;
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, dir);
	cfg.subnet = subnet;
	cfg.ipam_dir = path;
	struct net *n = NULL;
	struct berth_err err = { 0 };
	if (net_open(&cfg, &n, &err) < 0)
		fail_msg("%s", err.msg);
	return n;
}

static void test_ipam_alloc_release_persist(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *n = open_ipam(f, "10.89.250.8/29", "ipam-small");
	struct in_addr got[5];
	/* /29: .8 network, .9 gateway, .15 broadcast leave .10-.14. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(net_ipam_alloc(n, i < 4 ? "a" : "b", &got[i], &err), 0);
		uint32_t ip = ntohl(got[i].s_addr);
		assert_true(ip >= 0x0a59fa0a && ip <= 0x0a59fa0e);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(got[i].s_addr, got[j].s_addr);
	}
	struct in_addr x;
	assert_int_equal(net_ipam_alloc(n, "c", &x, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "no free address"));
	/* Another owner's address is not released. */
	assert_int_equal(net_ipam_release(n, got[4], "a", &err), 0);
	assert_int_equal(net_ipam_alloc(n, "c", &x, &err), -ENOSPC);
	assert_int_equal(net_ipam_release(n, got[4], "b", &err), 0);
	assert_int_equal(net_ipam_release(n, got[4], "b", &err), 0);
	/* State lives on disk: a fresh struct net (a restarted process) sees it. */
	net_close(TAKE_PTR(n));
	n = open_ipam(f, "10.89.250.8/29", "ipam-small");
	assert_int_equal(net_ipam_alloc(n, "c", &x, &err), 0);
	assert_int_equal(x.s_addr, got[4].s_addr);
	assert_int_equal(net_ipam_alloc(n, "c", &x, &err), -ENOSPC);
	/* INADDR_ANY releases everything of "a". */
	assert_int_equal(net_ipam_release(n, (struct in_addr){ 0 }, "a", &err), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(net_ipam_alloc(n, "d", &x, &err), 0);
	assert_int_equal(net_ipam_alloc(n, "d", &x, &err), -ENOSPC);
	assert_int_equal(net_ipam_alloc(n, "bad/owner", &x, &err), -EINVAL);
	x.s_addr = htonl(0x0a000001);
	assert_int_equal(net_ipam_release(n, x, "d", &err), -EINVAL);
}

static void alloc_child(struct fixture *f, int k, int wfd)
{
	struct net *n = open_ipam(f, f->subnet, "ipam-race");
	struct berth_err err = { 0 };
	for (int i = 0; i < 50; i++) {
		char owner[32];
		struct in_addr a;
		snprintf(owner, sizeof(owner), "child%d-%d", k, i);
		if (net_ipam_alloc(n, owner, &a, &err) < 0 || write(wfd, &a, sizeof(a)) != sizeof(a))
			_exit(1);
	}
	net_close(n);
	_exit(0);
}

static void test_ipam_concurrent_processes(void **state)
{
	struct fixture *f = fx(state);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pids[2];
	for (int k = 0; k < 2; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			close(p[0]);
			alloc_child(f, k, p[1]);
		}
	}
	close(p[1]);
	uint32_t seen[100];
	size_t n = 0;
	struct in_addr a;
	while (n < 100 && read(p[0], &a, sizeof(a)) == sizeof(a))
		seen[n++] = a.s_addr;
	close(p[0]);
	for (int k = 0; k < 2; k++) {
		int st;
		assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(n, 100);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_int_not_equal(seen[i], seen[j]);
}

/* ---- tasks ---- */

static void test_task_inside(void **state)
{
	struct fixture *f = fx(state);
	struct net_task t;
	struct stat before, st;
	assert_int_equal(stat("/proc/thread-self/ns/net", &before), 0);
	setup_task(f, "inside", &t);
	/* The calling thread never left its namespace. */
	assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
	assert_int_equal(st.st_ino, before.st_ino);
	assert_int_equal(stat(t.netns_path, &st), 0);
	assert_true(mounted(t.netns_path));
	assert_int_equal(t.mac[0], 0x02);
	assert_memory_equal(t.mac + 2, &t.addr.s_addr, 4);
	assert_true(if_nametoindex(t.host_ifname) > 0);
	assert_non_null(strstr(t.host_ifname, "berth"));
	struct in_ns c = { .path = t.netns_path, .fn = inspect, .task = &t };
	run_in_ns(&c);
	assert_true(c.lo_up);
	assert_true(c.eth0_has_addr);
	assert_true(c.eth0_mac_ok);
	assert_true(c.default_route_ok);
}

/* What a none-mode namespace holds: the names of its interfaces. */
static void list_links(struct in_ns *c)
{
	struct if_nameindex *ifs = if_nameindex();
	for (struct if_nameindex *i = ifs; i && i->if_index; i++)
		if (strcmp(i->if_name, "lo") != 0)
			c->eth0_has_addr = true;   /* any interface but lo */
	if_freenameindex(ifs);
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) == 0)
		for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
			if (!strcmp(i->ifa_name, "lo"))
				c->lo_up = i->ifa_flags & IFF_UP;
	freeifaddrs(ifa);
}

static void test_task_isolated(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	struct net_task t;
	const char *id = task_id(f, "isolated");
	assert_int_equal(net_task_isolated(f->net, id, &t, &err), 0);
	assert_int_equal(t.addr.s_addr, htonl(INADDR_ANY));
	assert_true(mounted(t.netns_path));
	assert_int_equal(if_nametoindex(t.host_ifname), 0);
	struct in_ns c = { .path = t.netns_path, .fn = list_links, .task = &t };
	run_in_ns(&c);
	assert_true(c.lo_up);
	assert_false(c.eth0_has_addr);
	assert_int_equal(net_task_isolated(f->net, id, &t, &err), -EEXIST);
	assert_int_equal(net_task_teardown(f->net, id, t.addr, &err), 0);
	assert_int_equal(access(t.netns_path, F_OK), -1);
}

static void test_host_reaches_task(void **state)
{
	struct fixture *f = fx(state);
	struct net_task t;
	setup_task(f, "reach", &t);
	int lfd = socket_in_ns(f, t.netns_path);
	int cfd = keep_fd(f, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	exchange(cfd, lfd, t.addr);
}

static void test_two_tasks_reach_each_other(void **state)
{
	struct fixture *f = fx(state);
	struct net_task a, b;
	setup_task(f, "a", &a);
	setup_task(f, "b", &b);
	assert_int_not_equal(a.addr.s_addr, b.addr.s_addr);
	assert_string_not_equal(a.host_ifname, b.host_ifname);
	int lfd = socket_in_ns(f, b.netns_path);
	int cfd = socket_in_ns(f, a.netns_path);
	exchange(cfd, lfd, b.addr);
}

static void test_teardown_leaves_nothing(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	const char *id = task_id(f, "gone");
	struct net_task t;
	assert_int_equal(net_task_setup(f->net, id, &t, &err), 0);
	assert_int_equal(net_task_teardown(f->net, id, t.addr, &err), 0);
	assert_int_equal(if_nametoindex(t.host_ifname), 0);
	assert_false(mounted(t.netns_path));
	struct stat st;
	assert_int_equal(stat(t.netns_path, &st), -1);
	char ipam_file[512], ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &t.addr, ip, sizeof(ip));
	snprintf(ipam_file, sizeof(ipam_file), "%s/%.*s-24/%s", f->ipam,
		 (int)(strchr(f->subnet, '/') - f->subnet), f->subnet, ip);
	assert_int_equal(stat(ipam_file, &st), -1);
	/* Idempotent, also with the address unknown. */
	assert_int_equal(net_task_teardown(f->net, id, t.addr, &err), 0);
	assert_int_equal(net_task_setup(f->net, id, &t, &err), 0);
	assert_int_equal(net_task_teardown(f->net, id, (struct in_addr){ 0 }, &err), 0);
	assert_int_equal(if_nametoindex(t.host_ifname), 0);
	assert_false(mounted(t.netns_path));
}

static void test_setup_failure_touches_nothing_else(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	struct net_task t, dup;
	setup_task(f, "dup", &t);
	/* The same id again: EEXIST, and the first task keeps its network. */
	assert_int_equal(net_task_setup(f->net, t.id, &dup, &err), -EEXIST);
	assert_non_null(strstr(err.msg, t.id));
	assert_true(mounted(t.netns_path));
	assert_true(if_nametoindex(t.host_ifname) > 0);
	int lfd = socket_in_ns(f, t.netns_path);
	int cfd = keep_fd(f, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	exchange(cfd, lfd, t.addr);
	assert_int_equal(net_task_setup(f->net, "../escape", &dup, &err), -EINVAL);
	assert_int_equal(net_task_setup(f->net, ".hidden", &dup, &err), -EINVAL);
}

/* A failure after the netns exists (here: no bridge) undoes all of it. */
static void test_setup_failure_rolls_back(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	struct net_config cfg = f->cfg;
	char bridge[IFNAMSIZ];
	snprintf(bridge, sizeof(bridge), "berth-n%d", (int)getpid() % 10000000);
	cfg.bridge = bridge;
	_cleanup_(net_closep) struct net *n = NULL;
	assert_int_equal(net_open(&cfg, &n, &err), 0);
	const char *id = task_id(f, "nobridge");
	struct net_task t;
	assert_int_equal(net_task_setup(n, id, &t, &err), -ENODEV);
	assert_non_null(strstr(err.msg, bridge));
	char path[512];
	snprintf(path, sizeof(path), "%s/netns/%s", f->run, id);
	assert_false(mounted(path));
	assert_int_equal(access(path, F_OK), -1);
	/* Its address went back: releasing by owner finds nothing to do, and
	 * the IPAM directory holds no file naming the task. */
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/%.*s-24", f->ipam, (int)(strchr(f->subnet, '/') - f->subnet),
		 f->subnet);
	_cleanup_closedir_ DIR *d = opendir(dir);
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *owner = read_at(dirfd(d), de->d_name);
		assert_null(strstr(owner, id));
	}
	/* In two steps, a failed build keeps the address reserved (the
	 * caller still has work to undo with it) until the teardown. */
	assert_int_equal(net_task_reserve(n, id, &t, &err), 0);
	assert_int_equal(net_task_build(n, &t, &err), -ENODEV);
	char ip[INET_ADDRSTRLEN], file[600];
	inet_ntop(AF_INET, &t.addr, ip, sizeof(ip));
	snprintf(file, sizeof(file), "%s/%s", dir, ip);
	assert_int_equal(access(file, F_OK), 0);
	assert_int_equal(net_task_teardown(n, id, t.addr, &err), 0);
	assert_int_equal(access(file, F_OK), -1);
}

/* ---- files ---- */

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, true);
	assert_int_equal(fclose(f), 0);
}

static void test_task_files(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/files", f->dir);
	assert_int_equal(berth_mkdir_p(dir, 0700, &err), 0);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct net_task t = { .addr.s_addr = htonl(0x0a59fa05), .id = "files" };
	put(f->resolv, "search example.internal\nnameserver 10.0.0.2\nnameserver 127.0.0.53\n"
		       "nameserver fe80::1%eth0\noptions edns0\n");
	assert_int_equal(net_task_write_files(f->net, &t, "web-1.example.internal", dfd, &err), 0);
	_cleanup_free_ char *hosts = read_at(dfd, "hosts");
	assert_non_null(strstr(hosts, "127.0.0.1\tlocalhost\n"));
	assert_non_null(strstr(hosts, "10.89.250.5\tweb-1.example.internal\n"));
	_cleanup_free_ char *r1 = read_at(dfd, "resolv.conf");
	assert_non_null(strstr(r1, "\nnameserver 10.0.0.2\n"));
	assert_non_null(strstr(r1, "search example.internal\n"));
	assert_non_null(strstr(r1, "options edns0\n"));
	assert_non_null(strstr(r1, "# berth: dropped \"nameserver 127.0.0.53\": host loopback"));
	assert_null(strstr(r1, "\nnameserver 127."));
	assert_null(strstr(r1, "\nnameserver fe80"));
	/* Only a stub on the host: the upstream list is used instead. */
	put(f->resolv, "nameserver 127.0.0.53\noptions edns0 trust-ad\n");
	put(f->fallback, "nameserver 192.0.2.53\n");
	assert_int_equal(net_task_write_files(f->net, &t, "web", dfd, &err), 0);
	_cleanup_free_ char *r2 = read_at(dfd, "resolv.conf");
	assert_non_null(strstr(r2, "\nnameserver 192.0.2.53\n"));
	assert_null(strstr(r2, "\nnameserver 127."));
	/* No upstream list either: no nameserver at all, and a comment says why. */
	unlink(f->fallback);
	assert_int_equal(net_task_write_files(f->net, &t, "web", dfd, &err), 0);
	_cleanup_free_ char *r3 = read_at(dfd, "resolv.conf");
	assert_null(strstr(r3, "\nnameserver"));
	assert_non_null(strstr(r3, "# berth: dropped"));
	assert_int_equal(net_task_write_files(f->net, &t, "bad\nhost", dfd, &err), -EINVAL);
}

/* The text of `nft list table <family> <table>` (NULL when it does not
 * exist); *ok false when nftables could not be asked at all. */
static char *nft_list(const char *family, const char *table, bool *ok)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	*ok = ctx && nft_ctx_buffer_output(ctx) == 0 && nft_ctx_buffer_error(ctx) == 0;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "list table %s %s", family, table);
	char *out = NULL;
	if (*ok && nft_run_cmd_from_buffer(ctx, cmd) == 0)
		out = strdup(nft_ctx_get_output_buffer(ctx));
	if (ctx)
		nft_ctx_free(ctx);
	return out;
}

static char *nft_table_text(const char *family, const char *table)
{
	bool ok;
	char *out = nft_list(family, table, &ok);
	assert_true(ok);
	return out;
}

/* ---- network policy ---- */

/* How long a connection that the policy drops is given before it counts
 * as dropped: a drop never answers, so there is no event to wait for. */
#define DROP_WAIT_MS 1000

/* A listening TCP socket on addr (port chosen by the kernel) in the
 * namespace at path, or the host's with path NULL; its port in *port. */
static int listener(struct fixture *f, const char *path, struct in_addr addr, uint16_t *port)
{
	int fd = path ? socket_in_ns(f, path)
		      : keep_fd(f, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = addr };
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(fd, 8), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Connects from the task namespace at path (from address src unless it is
 * 0) to dst:port: 0 once connected, -ETIMEDOUT when nothing answered
 * within DROP_WAIT_MS, else -errno (ECONNREFUSED: it got through). */
static int try_connect(struct fixture *f, const char *path, in_addr_t src, struct in_addr dst,
		       uint16_t port)
{
	int fd = socket_in_ns(f, path);
	if (src) {
		struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = src };
		assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	}
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = dst, .sin_port = htons(port) };
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 0;
	assert_int_equal(errno, EINPROGRESS);
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, DROP_WAIT_MS) == 0)
		return -ETIMEDOUT;
	int e = 0;
	socklen_t len = sizeof(e);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len), 0);
	return -e;
}

/* Runs a command line (an `ip` or `nft` change in a test namespace). */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	if (st != 0)
		fail_msg("`%s` exited %d", cmd, st);
}

/* A listener on 0.0.0.0 on the host answers the host but no task, through
 * the gateway address; a port put into the allowed set gets through. */
static void test_policy_host_unreachable(void **state)
{
	struct fixture *f = fx(state);
	struct net_task t;
	setup_task(f, "hostport", &t);
	uint16_t port;
	listener(f, NULL, (struct in_addr){ .s_addr = htonl(INADDR_ANY) }, &port);
	assert_int_equal(try_connect(f, t.netns_path, 0, t.gateway, port), -ETIMEDOUT);
	sh("nft add element ip %s host_ports '{ tcp . %u }'", f->table, port);
	int r = try_connect(f, t.netns_path, 0, t.gateway, port);
	sh("nft delete element ip %s host_ports '{ tcp . %u }'", f->table, port);
	assert_int_equal(r, 0);
	/* The host still reaches the task. */
	uint16_t tport;
	int lfd = listener(f, t.netns_path, t.addr, &tport);
	(void)lfd;
	int cfd = keep_fd(f, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = t.addr,
				  .sin_port = htons(tport) };
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

/* Whether the namespace at path has a MAC for addr in its ARP table. */
static bool neighbour_known(const char *path, struct in_addr addr)
{
	char cmd[512], line[256], ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	snprintf(cmd, sizeof(cmd), "nsenter --net=%s ip -4 neigh show %s", path, ip);
	FILE *p = popen(cmd, "re");
	assert_non_null(p);
	bool known = false;
	while (fgets(line, sizeof(line), p))
		known |= strstr(line, "lladdr") != NULL;
	assert_int_equal(pclose(p), 0);
	return known;
}

/* ECS security groups: tasks talk when they share a group. */
static void test_policy_security_groups(void **state)
{
	struct fixture *f = fx(state);
	struct net_task a, b, c, d;
	setup_task_in(f, "sg-a", &a, "sg-one");
	setup_task_in(f, "sg-b", &b, "sg-one");
	setup_task_in(f, "sg-c", &c, "sg-two");
	setup_task_in(f, "sg-d", &d, "sg-two,sg-one");
	uint16_t pa, pb, pc;
	listener(f, a.netns_path, a.addr, &pa);
	listener(f, b.netns_path, b.addr, &pb);
	listener(f, c.netns_path, c.addr, &pc);
	assert_int_equal(try_connect(f, a.netns_path, 0, b.addr, pb), 0);
	assert_int_equal(try_connect(f, a.netns_path, 0, c.addr, pc), -ETIMEDOUT);
	assert_int_equal(try_connect(f, c.netns_path, 0, a.addr, pa), -ETIMEDOUT);
	/* Not even ARP crosses groups: a never learnt c's MAC, but b's. */
	assert_false(neighbour_known(a.netns_path, c.addr));
	assert_true(neighbour_known(a.netns_path, b.addr));
	assert_int_equal(try_connect(f, d.netns_path, 0, a.addr, pa), 0);
	assert_int_equal(try_connect(f, d.netns_path, 0, c.addr, pc), 0);
	/* New groups replace the old ones. */
	struct berth_err err = { 0 };
	const char *two[] = { "sg-two" };
	assert_int_equal(net_policy_task_add(f->net, f->task_ids[0], a.addr, two, 1, &err), 0);
	/* a's kernel gave up on c's MAC a moment ago; ask again at once. */
	sh("nsenter --net=%s ip neigh flush dev eth0", a.netns_path);
	assert_int_equal(try_connect(f, a.netns_path, 0, c.addr, pc), 0);
	assert_int_equal(try_connect(f, a.netns_path, 0, b.addr, pb), -ETIMEDOUT);
}

/* An address whose elements were never removed (a failed removal) goes
 * to a new task with none of the old groups. */
static void test_policy_stale_elements_replaced(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	char net_ip[INET_ADDRSTRLEN];
	snprintf(net_ip, sizeof(net_ip), "%.*s", (int)strcspn(f->subnet, "/"), f->subnet);
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, net_ip, &a), 1);
	a.s_addr = htonl(ntohl(a.s_addr) + 200);
	const char *old[] = { "sg-old-1", "sg-old-2" }, *now[] = { "sg-new" };
	const char *gone = task_id(f, "stale-old"), *id = task_id(f, "stale-new");
	assert_int_equal(net_policy_task_add(f->net, gone, a, old, 2, &err), 0);
	assert_int_equal(net_policy_task_add(f->net, id, a, now, 1, &err), 0);
	_cleanup_free_ char *rules = nft_table_text("bridge", f->table);
	char want[64];
	for (size_t i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "0x%08x", net_group_id(old[i]));
		assert_null(strstr(rules, want));
	}
	snprintf(want, sizeof(want), "0x%08x", net_group_id(now[0]));
	assert_non_null(strstr(rules, want));
	assert_int_equal(net_policy_task_remove(f->net, id, (struct in_addr){ 0 }, &err), 0);
	_cleanup_free_ char *after = nft_table_text("bridge", f->table);
	assert_null(strstr(after, want));
	assert_null(strstr(after, inet_ntoa(a)));
}

/* Tasks stopping together lose their elements in one removal (the
 * policy worker's batch): every task's, and only theirs. */
static void test_policy_batch_remove(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	char net_ip[INET_ADDRSTRLEN], ips[4][INET_ADDRSTRLEN];
	snprintf(net_ip, sizeof(net_ip), "%.*s", (int)strcspn(f->subnet, "/"), f->subnet);
	struct in_addr base, addrs[4];
	assert_int_equal(inet_pton(AF_INET, net_ip, &base), 1);
	const char *ids[4], *g[] = { "sg-batch" };
	const struct net_publish pub[] = { { IPPROTO_TCP, 40011, 80 } };
	for (int i = 0; i < 4; i++) {
		char name[24];
		snprintf(name, sizeof(name), "batch-%d", i);
		ids[i] = task_id(f, name);
		addrs[i].s_addr = htonl(ntohl(base.s_addr) + 220 + (uint32_t)i);
		snprintf(ips[i], sizeof(ips[i]), "%s", inet_ntoa(addrs[i]));
		assert_int_equal(net_policy_task_add_ports(f->net, ids[i], addrs[i], g, 1,
							   pub, i == 0, &err), 0);
	}
	/* Three of them, one without its address (found from its veth). */
	struct in_addr gone[3] = { addrs[0], { 0 }, addrs[2] };
	assert_int_equal(net_policy_tasks_remove(f->net, ids, gone, 3, &err), 0);
	_cleanup_free_ char *bridge = nft_table_text("bridge", f->table);
	_cleanup_free_ char *ip = nft_table_text("ip", f->table);
	for (int i = 0; i < 3; i++)
		assert_null(strstr(bridge, ips[i]));
	assert_null(strstr(ip, "40011"));
	assert_non_null(strstr(bridge, ips[3]));
	/* A removal of nothing is fine, in a batch as alone. */
	assert_int_equal(net_policy_tasks_remove(f->net, ids, gone, 3, &err), 0);
	assert_int_equal(net_policy_tasks_remove(f->net, &ids[3], &addrs[3], 1, &err), 0);
	_cleanup_free_ char *after = nft_table_text("bridge", f->table);
	assert_null(strstr(after, ips[3]));
}

/* Published ports: added with the task's elements, a host port left
 * behind by another address taken over (the daemon found it free), all of
 * the task's deleted by its removal; a bad or repeated port changes
 * nothing. */
static void test_policy_published_ports(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	char net_ip[INET_ADDRSTRLEN];
	snprintf(net_ip, sizeof(net_ip), "%.*s", (int)strcspn(f->subnet, "/"), f->subnet);
	struct in_addr old, now;
	assert_int_equal(inet_pton(AF_INET, net_ip, &old), 1);
	now.s_addr = htonl(ntohl(old.s_addr) + 211);
	old.s_addr = htonl(ntohl(old.s_addr) + 210);
	const char *g[] = { "sg" };
	const struct net_publish first[] = { { IPPROTO_TCP, 40001, 80 }, { IPPROTO_UDP, 40001, 53 } };
	const struct net_publish second[] = { { IPPROTO_TCP, 40001, 8080 } };
	const char *gone = task_id(f, "pub-old"), *id = task_id(f, "pub-new");
	assert_int_equal(net_policy_task_add_ports(f->net, gone, old, g, 1, first, 2, &err), 0);
	_cleanup_free_ char *one = nft_table_text("ip", f->table);
	char want[96];
	snprintf(want, sizeof(want), "tcp . 40001 : %s . 80", inet_ntoa(old));
	assert_non_null(strstr(one, want));
	snprintf(want, sizeof(want), "udp . 40001 : %s . 53", inet_ntoa(old));
	assert_non_null(strstr(one, want));
	/* The old task's removal failed; its TCP port goes to a new task. */
	assert_int_equal(net_policy_task_add_ports(f->net, id, now, g, 1, second, 1, &err), 0);
	_cleanup_free_ char *two = nft_table_text("ip", f->table);
	snprintf(want, sizeof(want), "tcp . 40001 : %s . 8080", inet_ntoa(now));
	assert_non_null(strstr(two, want));
	snprintf(want, sizeof(want), "%s . 80", inet_ntoa(old));
	assert_null(strstr(two, want));
	const struct net_publish twice[] = { { IPPROTO_TCP, 40002, 1 }, { IPPROTO_TCP, 40002, 2 } };
	assert_int_equal(net_policy_task_add_ports(f->net, id, now, g, 1, twice, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host port tcp 40002 published twice"));
	const struct net_publish zero[] = { { IPPROTO_TCP, 0, 80 } };
	assert_int_equal(net_policy_task_add_ports(f->net, id, now, g, 1, zero, 1, &err), -EINVAL);
	assert_int_equal(net_policy_task_remove(f->net, id, (struct in_addr){ 0 }, &err), 0);
	assert_int_equal(net_policy_task_remove(f->net, gone, (struct in_addr){ 0 }, &err), 0);
	_cleanup_free_ char *after = nft_table_text("ip", f->table);
	assert_null(strstr(after, "40001"));
}

/* A task sends only from its own address and MAC. */
static void test_policy_spoofing_dropped(void **state)
{
	struct fixture *f = fx(state);
	struct net_task a, b;
	setup_task(f, "spoof-a", &a);
	setup_task(f, "spoof-b", &b);
	uint16_t pb;
	listener(f, b.netns_path, b.addr, &pb);
	assert_int_equal(try_connect(f, a.netns_path, 0, b.addr, pb), 0);
	/* An address of the subnet no task has (the broadcast's neighbour). */
	struct in_addr spoof = { .s_addr = (b.addr.s_addr & htonl(~0xffu)) | htonl(0xfe) };
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &spoof, ip, sizeof(ip));
	sh("nsenter --net=%s ip addr add %s/32 dev eth0", a.netns_path, ip);
	int r = try_connect(f, a.netns_path, spoof.s_addr, b.addr, pb);
	sh("nsenter --net=%s ip addr del %s/32 dev eth0", a.netns_path, ip);
	assert_int_equal(r, -ETIMEDOUT);
	/* Its own address from another MAC (ARP included) is dropped too. */
	sh("nsenter --net=%s ip link set eth0 address 02:be:00:00:00:01", a.netns_path);
	r = try_connect(f, a.netns_path, 0, b.addr, pb);
	sh("nsenter --net=%s ip link set eth0 address %02x:%02x:%02x:%02x:%02x:%02x", a.netns_path,
	   a.mac[0], a.mac[1], a.mac[2], a.mac[3], a.mac[4], a.mac[5]);
	assert_int_equal(r, -ETIMEDOUT);
}

/* The blocked addresses: 169.254.169.254 by default (checked in the
 * rules, nothing is sent there), and a configured one (here a task of
 * the test subnet) is dropped even between tasks of one group. */
static void test_policy_blocked_address(void **state)
{
	struct fixture *f = fx(state);
	_cleanup_free_ char *rules = nft_table_text("bridge", f->table);
	assert_non_null(rules);
	assert_non_null(strstr(rules, "elements = { 169.254.169.254 }"));
	assert_non_null(strstr(rules, "ip daddr @blocked drop"));
	struct net_task a, v;
	setup_task(f, "blk-a", &a);
	setup_task(f, "blk-v", &v);
	uint16_t pv;
	listener(f, v.netns_path, v.addr, &pv);
	assert_int_equal(try_connect(f, a.netns_path, 0, v.addr, pv), 0);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &v.addr, ip, sizeof(ip));
	struct net_config cfg = f->cfg;
	cfg.blocked = ip;
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *n = NULL;
	assert_int_equal(net_open(&cfg, &n, &err), 0);
	assert_int_equal(net_rules_ensure(n, &err), 0);
	int r = try_connect(f, a.netns_path, 0, v.addr, pv);
	assert_int_equal(net_rules_ensure(f->net, &err), 0);
	assert_int_equal(r, -ETIMEDOUT);
	/* Bad lists are refused before anything changes. */
	cfg.blocked = "169.254.169.254, 10.1.2.3/8";
	struct net *bad = NULL;
	assert_int_equal(net_open(&cfg, &bad, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "10.1.2.3/8"));
	cfg.blocked = "1.2.3.4; flush ruleset";
	assert_int_equal(net_open(&cfg, &bad, &err), -EINVAL);
}

static void read_sysctl(struct in_ns *c)
{
	int fd = open("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", O_RDONLY | O_CLOEXEC);
	char v = 0;
	c->fd = fd >= 0 && read(fd, &v, 1) == 1 ? v : -1;
	if (fd >= 0)
		close(fd);
}

/* Egress goes out through NAT as before: a task reaches a host of
 * another network (a namespace on a second, rule-less bridge standing in
 * for the outside), which sees the host's address on its side. */
static void test_policy_egress_masqueraded(void **state)
{
	struct fixture *f = fx(state);
	char bridge[IFNAMSIZ], table[32], subnet[32], ipam[160];
	int k = (int)getpid() % 50;
	for (int tries = 0; tries < 50 && subnet_in_use(150 + k); tries++)
		k = (k + 1) % 50;
	snprintf(bridge, sizeof(bridge), "berth-o%d", (int)getpid() % 10000000);
	snprintf(table, sizeof(table), "berth_o%d", (int)getpid());
	snprintf(subnet, sizeof(subnet), "10.89.%d.0/24", 150 + k);
	snprintf(ipam, sizeof(ipam), "%s/ipam-outside", f->dir);
	struct net_config cfg = f->cfg;
	cfg.bridge = bridge;
	cfg.nft_table = table;
	cfg.subnet = subnet;
	cfg.ipam_dir = ipam;
	struct berth_err err = { 0 };
	assert_int_equal(net_open(&cfg, &f->outside, &err), 0);
	assert_int_equal(net_bridge_ensure(f->outside, &err), 0);
	snprintf(f->outside_task, sizeof(f->outside_task), "berth-test-%d-outside", (int)getpid());
	struct net_task out, t;
	assert_int_equal(net_task_setup(f->outside, f->outside_task, &out, &err), 0);
	setup_task(f, "egress", &t);
	uint16_t port;
	int lfd = listener(f, out.netns_path, out.addr, &port);
	assert_int_equal(try_connect(f, t.netns_path, 0, out.addr, port), 0);
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	_cleanup_close_ int afd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	assert_int_equal(peer.sin_addr.s_addr, out.gateway.s_addr);
}

/* No IPv6 on the bridge nor on a task's eth0. */
static void test_policy_no_ipv6(void **state)
{
	struct fixture *f = fx(state);
	struct net_task t;
	setup_task(f, "v6", &t);
	struct in_ns c = { .path = t.netns_path, .fn = read_sysctl };
	run_in_ns(&c);
	assert_int_equal(c.fd, '1');
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", f->bridge);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char v = 0;
	assert_true(fd >= 0 && read(fd, &v, 1) == 1);
	assert_int_equal(v, '1');
}

/* ---- bridge, NAT, config ---- */

static void test_nat_on_off(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	char rule[96];
	snprintf(rule, sizeof(rule), "ip saddr %s ip daddr != %s masquerade", f->subnet, f->subnet);
	_cleanup_free_ char *on = nft_table_text("ip", f->table);
	assert_non_null(on);
	assert_non_null(strstr(on, rule));
	assert_int_equal(read_ip_forward(), '1');
	/* Applying again keeps exactly one rule. */
	assert_int_equal(net_rules_ensure(f->net, &err), 0);
	_cleanup_free_ char *again = nft_table_text("ip", f->table);
	assert_non_null(again);
	assert_ptr_equal(strstr(strstr(again, rule) + 1, rule), NULL);
	/* NAT off: no egress masquerade (the one for the host's own 127.0.0.1
	 * clients of published ports stays), ip_forward as it was before the
	 * tests (off again if Berth turned it on), the policy stays. */
	struct net_config cfg = f->cfg;
	cfg.nat = false;
	_cleanup_(net_closep) struct net *off = NULL;
	assert_int_equal(net_open(&cfg, &off, &err), 0);
	assert_int_equal(net_rules_ensure(off, &err), 0);
	_cleanup_free_ char *gone = nft_table_text("ip", f->table);
	assert_non_null(gone);
	assert_null(strstr(gone, rule));
	assert_non_null(strstr(gone, "ip saddr 127.0.0.0/8 masquerade"));
	assert_non_null(strstr(gone, "drop"));
	assert_int_equal(read_ip_forward(), f->ip_forward);
	assert_int_equal(net_rules_ensure(f->net, &err), 0);
	_cleanup_free_ char *back = nft_table_text("ip", f->table);
	assert_non_null(back);
	assert_non_null(strstr(back, rule));
	assert_int_equal(read_ip_forward(), '1');
}

static void test_bad_config(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	struct net *n = NULL;
	static const struct { const char *subnet, *table, *bridge, *msg; } cases[] = {
		{ "10.89.0.1/16", "berth", "berth0", "host bits" },
		{ "10.89.0.0/31", "berth", "berth0", "prefix" },
		{ "10.89.0.0", "berth", "berth0", "a.b.c.d/prefix" },
		{ "10.89.0.0/16", "berth; flush ruleset", "berth0", "table name" },
		{ "10.89.0.0/16", "berth", "berth-name-too-long", "bridge name" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct net_config cfg = f->cfg;
		cfg.subnet = cases[i].subnet;
		cfg.nft_table = cases[i].table;
		cfg.bridge = cases[i].bridge;
		assert_int_equal(net_open(&cfg, &n, &err), -EINVAL);
		assert_non_null(strstr(err.msg, cases[i].msg));
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Not a pass/fail threshold (the machine is shared): prints the medians. */
static void test_setup_teardown_time(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	double up[20], down[20], both[20];
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "perf%d", i);
		const char *id = task_id(f, name);
		struct net_task t;
		double t0 = now_ms();
		if (net_task_setup(f->net, id, &t, &err) < 0)
			fail_msg("%s", err.msg);
		double t1 = now_ms();
		assert_int_equal(net_task_teardown(f->net, id, t.addr, &err), 0);
		double t2 = now_ms();
		f->task_ids[0][0] = '\0'; /* torn down: the slot is free again */
		up[i] = t1 - t0;
		down[i] = t2 - t1;
		both[i] = t2 - t0;
	}
	qsort(up, 20, sizeof(double), cmp_double);
	qsort(down, 20, sizeof(double), cmp_double);
	qsort(both, 20, sizeof(double), cmp_double);
	printf("net task setup %.2f ms, teardown %.2f ms, both %.2f ms (median of 20)\n",
	       (up[9] + up[10]) / 2, (down[9] + down[10]) / 2, (both[9] + both[10]) / 2);
}

static void test_bridge_remove(void **state)
{
	struct fixture *f = fx(state);
	struct berth_err err = { 0 };
	assert_true(if_nametoindex(f->bridge) > 0);
	assert_int_equal(net_bridge_remove(f->net, &err), 0);
	assert_int_equal(if_nametoindex(f->bridge), 0);
	_cleanup_free_ char *gone = nft_table_text("ip", f->table);
	assert_null(gone);
	_cleanup_free_ char *gone2 = nft_table_text("bridge", f->table);
	assert_null(gone2);
	assert_int_equal(read_ip_forward(), f->ip_forward);
	assert_int_equal(net_bridge_remove(f->net, &err), 0);
}

#define T(fn) cmocka_unit_test_teardown(fn, task_cleanup)

static int run_all(void)
{
	const struct CMUnitTest tests[] = {
		T(test_bad_config),
		T(test_ipam_alloc_release_persist),
		T(test_ipam_concurrent_processes),
		T(test_task_inside),
		T(test_task_isolated),
		T(test_host_reaches_task),
		T(test_two_tasks_reach_each_other),
		T(test_teardown_leaves_nothing),
		T(test_setup_failure_touches_nothing_else),
		T(test_setup_failure_rolls_back),
		T(test_task_files),
		T(test_nat_on_off),
		T(test_policy_host_unreachable),
		T(test_policy_security_groups),
		T(test_policy_stale_elements_replaced),
		T(test_policy_published_ports),
		T(test_policy_batch_remove),
		T(test_policy_spoofing_dropped),
		T(test_policy_blocked_address),
		T(test_policy_egress_masqueraded),
		T(test_policy_no_ipv6),
		T(test_setup_teardown_time),
		T(test_bridge_remove),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* Names of the host's "vberth" interfaces on no bridge, one per line, into
 * buf: once our bridge is gone a veth of ours left behind is on none,
 * while the tasks of tests running meanwhile keep theirs on their own. */
static void vberth_links(char *buf, size_t size)
{
	struct if_nameindex *ifs = if_nameindex();
	size_t len = 0;
	buf[0] = '\0';
	for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
		char master[IFNAMSIZ + 32];
		snprintf(master, sizeof(master), "/sys/class/net/%s/master", i->if_name);
		if (!strncmp(i->if_name, "vberth", 6) && access(master, F_OK) != 0 &&
		    len + IFNAMSIZ + 1 < size)
			len += (size_t)snprintf(buf + len, size - len, "%s\n", i->if_name);
	}
	if_freenameindex(ifs);
}

/* Tears down every task whose netns file is still there (a test process
 * that crashed), then the bridge, the table and the temp dir. */
static int remove_leftovers(struct fixture *f)
{
	struct berth_err err = { 0 };
	struct net *n = NULL;
	int rc = 0;
	if (net_open(&f->cfg, &n, &err) < 0) {
		fprintf(stderr, "test_netns: cleanup: %s\n", err.msg);
		return -1;
	}
	char dir[192];
	snprintf(dir, sizeof(dir), "%s/netns", f->run);
	_cleanup_closedir_ DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		fprintf(stderr, "test_netns: cleanup: task %s was left behind\n", de->d_name);
		rc = -1;
		if (net_task_teardown(n, de->d_name, (struct in_addr){ 0 }, &err) < 0)
			fprintf(stderr, "test_netns: cleanup: %s\n", err.msg);
	}
	if (net_bridge_remove(n, &err) < 0) {
		fprintf(stderr, "test_netns: cleanup: %s\n", err.msg);
		rc = -1;
	}
	net_close(n);
	write_ip_forward(f->ip_forward);
	if (berth_rm_rf_at(AT_FDCWD, f->dir, &err) < 0) {
		fprintf(stderr, "test_netns: cleanup: %s\n", err.msg);
		rc = -1;
	}
	return rc;
}

/* Nothing named after this run may remain. */
static int check_nothing_left(const struct fixture *f, const char *vberth_before)
{
	char vberth_after[4096];
	vberth_links(vberth_after, sizeof(vberth_after));
	bool nft_ok;
	_cleanup_free_ char *table = nft_list("ip", f->table, &nft_ok);
	_cleanup_free_ char *btable = nft_list("bridge", f->table, &nft_ok);
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	bool mount_left = false;
	while (mi && fgets(line, sizeof(line), mi))
		mount_left |= strstr(line, f->dir) != NULL;
	if (mi)
		fclose(mi);
	const char *what = if_nametoindex(f->bridge) ? "bridge" :
			   table || btable || !nft_ok ? "nftables table" :
			   mount_left ? "netns mount" : access(f->dir, F_OK) == 0 ? "temp dir" :
			   strcmp(vberth_before, vberth_after) ? "veth" : NULL;
	if (what)
		fprintf(stderr, "test_netns: a %s was left behind\n", what);
	return what ? -1 : 0;
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_netns: needs root, skipped\n");
		return 77;
	}
	struct fixture *f = &the_fixture;
	if (fixture_init(f) < 0) {
		perror("test_netns: mkdtemp");
		return 1;
	}
	char vberth_before[4096];
	vberth_links(vberth_before, sizeof(vberth_before));
	/* The tests run in a child so that whatever happens to it (a failed
	 * assertion in a helper, a sanitizer abort) this process cleans up. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		exit(run_all() ? 1 : 0); /* exit: stdio flush and LSan's check */
	int status = 1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	if (remove_leftovers(f) < 0 || check_nothing_left(f, vberth_before) < 0)
		rc = 1;
	return rc;
}
