/* awsvpc networking: one bridge per host, one network namespace per task.
 *
 *   bridge      <cfg.bridge> (default berth0) holds the gateway address (the
 *               subnet's first host address); the host reaches every task
 *               through it.  The network policy lives in the nftables
 *               tables `bridge <cfg.nft_table>` and `ip <cfg.nft_table>`
 *               (default berth): docs/networking.md "Network policy".
 *   task netns  <run_dir>/netns/<task-id>, a bind mount of the namespace;
 *               inside: lo up, eth0 (one end of a veth pair, the other end
 *               "vberth<9 hex>" on the bridge), the task address, a default
 *               route via the gateway.  All containers of a task join it.
 *   IPAM        <ipam_dir>/<network>-<prefix>/<address> holds the owning
 *               task id; .lock (flock) serialises allocators across
 *               processes and also holds the allocation cursor.
 *
 * A struct net is not thread-safe: give each thread its own (net_open is
 * cheap) or serialise calls.  Different processes may share the same
 * directories and bridge at once. */
#ifndef BERTH_NET_H
#define BERTH_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/err.h"

struct net_config {
	const char *bridge;           /* "berth0"; at most 15 chars */
	const char *subnet;           /* "10.89.0.0/16"; prefix 8..30 */
	const char *nft_table;        /* "berth"; [A-Za-z0-9_] */
	const char *run_dir;          /* "/run/berth"; netns files in run_dir/netns */
	const char *ipam_dir;         /* "/var/lib/berth/ipam" */
	const char *host_resolv_conf; /* "/etc/resolv.conf", copied into tasks */
	/* Consulted when every nameserver of host_resolv_conf is a loopback
	 * stub (systemd-resolved's 127.0.0.53 lists its upstreams there). */
	const char *fallback_resolv_conf; /* "/run/systemd/resolve/resolv.conf" */
	bool nat;                     /* true: masquerade egress, ip_forward=1 */
	/* Addresses no task may reach, comma-separated IPv4 addresses or
	 * CIDRs: "169.254.169.254" (the cloud instance metadata service);
	 * "" blocks none. */
	const char *blocked;
	/* The endpoint Berth serves its tasks (task metadata, credentials),
	 * "a.b.c.d:port", or NULL for none: the address is put on the bridge
	 * (unless it is the gateway's) and tasks may reach that TCP port of it,
	 * nothing else of the host.  Outside the subnet, or the gateway. */
	const char *task_endpoint;
};

/* Fills cfg with the defaults above (static strings). */
void net_config_init(struct net_config *cfg);

struct net;

/* Validates cfg, creates run_dir/netns and the IPAM directory (0700) if
 * missing and opens a netlink socket in the caller's network namespace.
 * The strings of cfg are copied.  Touches no network state. */
int net_open(const struct net_config *cfg, struct net **ret, struct berth_err *err);
void net_close(struct net *net);
DEFINE_CLEANUP_FUNC(struct net, net_close)

/* Creates the bridge if missing (gateway address, deterministic MAC, up).
 * Idempotent, safe to race with another process doing the same, and
 * cheap (a few netlink messages): every task's agent calls it. */
int net_bridge_ensure(struct net *net, struct berth_err *err);

/* Installs the network policy's rules and makes NAT match cfg.nat: with
 * NAT on, the masquerade rule and net.ipv4.ip_forward=1 (noted in
 * run_dir/ip_forward.<table> when Berth turned it on); with NAT off, no masquerade, and
 * ip_forward off again if Berth turned it on.  Host-level and costly (a
 * libnftables transaction, ~25 ms), so the daemon does it once at start,
 * never per task; tasks' set elements survive it.  Idempotent. */
int net_rules_ensure(struct net *net, struct berth_err *err);

/* Keeps the kernel from handing PORT to outgoing connections when it lies
 * in the ephemeral range (net.ipv4.ip_local_port_range), by adding it to
 * net.ipv4.ip_local_reserved_ports, as ECS-optimised hosts reserve the
 * agent's ports: a listener on such a port (the agent introspection's
 * 51678) otherwise fails whenever a connection happens to hold it.  The
 * reservation stays after Berth exits, as theirs does.  *ret_reserved:
 * whether this call added it. */
int net_reserve_local_port(int port, bool *ret_reserved, struct berth_err *err);

/* Deletes the bridge and the nftables tables (missing ones are fine) and
 * turns ip_forward off if Berth turned it on.  Task veths still attached
 * are detached by the kernel, not deleted. */
int net_bridge_remove(struct net *net, struct berth_err *err);

/* Allocates a free host address of the subnet (never the network, gateway
 * or broadcast address, never one currently allocated, by any process) and
 * records owner (a task id) on disk; see ipam.c for why it is not fsync'ed.
 * -ENOSPC when the subnet is full. */
int net_ipam_alloc(struct net *net, const char *owner, struct in_addr *ret,
		   struct berth_err *err);

/* Releases addr if owner holds it; an address that is free or held by
 * another owner is left alone (0), so a repeated release is harmless.
 * addr INADDR_ANY releases every address owner holds (a scan). */
int net_ipam_release(struct net *net, struct in_addr addr, const char *owner,
		     struct berth_err *err);

#define NET_TASK_ID_MAX 64
#define NET_GROUPS_MAX 5    /* security groups per task, as ECS allows */

struct net_task {
	char id[NET_TASK_ID_MAX + 1];
	char netns_path[4096];        /* bind mount; setns() target for containers */
	char host_ifname[IFNAMSIZ];   /* veth end on the bridge */
	struct in_addr addr;          /* eth0 address */
	struct in_addr gateway;
	unsigned prefix;              /* eth0 address prefix length */
	uint8_t mac[6];               /* eth0 MAC: 02:be + the address bytes */
};

/* Builds the network of task_id ([A-Za-z0-9_.-], 1..64 chars, not starting
 * with '.'): address, netns, veth, routes.  The bridge must exist
 * (net_bridge_ensure).  -EEXIST if the task's netns file exists (a task
 * still running, or one never torn down: tear it down first).  On failure
 * everything this call did is undone and nothing else is touched.  The
 * calling thread's own network namespace never changes.  About 1.5-2 ms. */
int net_task_setup(struct net *net, const char *task_id, struct net_task *ret,
		   struct berth_err *err);

/* net_task_setup in two steps, so that other work can run in between
 * (berth-shim adds the task's policy elements then).  reserve: the address
 * (IPAM) and *ret, nothing else on the host.  build: netns, veth,
 * address, routes; on failure what it made is undone, but the address
 * stays reserved: net_task_teardown releases it. */
int net_task_reserve(struct net *net, const char *task_id, struct net_task *ret,
		     struct berth_err *err);
int net_task_build(struct net *net, const struct net_task *t, struct berth_err *err);

/* networkMode none: the task's namespace with only lo, up; no address,
 * no veth, nothing on the bridge (t->addr is INADDR_ANY).  -EEXIST as
 * net_task_setup; net_task_teardown removes it. */
int net_task_isolated(struct net *net, const char *task_id, struct net_task *ret,
		      struct berth_err *err);

/* Removes the task's veth pair, unmounts and deletes its netns file and
 * releases its address (addr from net_task_setup, or INADDR_ANY to look it
 * up in IPAM).  Idempotent: pieces already gone are fine; the first error
 * is returned after every step has been tried.  The kernel frees the
 * namespace itself once its last process has exited.  Deleting the veth
 * waits for RCU grace periods in the kernel (20-40 ms here); it is done
 * explicitly anyway so that nothing of the task is left on the bridge,
 * even while some process still holds the namespace. */
int net_task_teardown(struct net *net, const char *task_id, struct in_addr addr,
		      struct berth_err *err);

/* The network policy's elements of a task (libnftables: daemon side or
 * berth-netpolicy, never the agent).  add: the task may send only
 * from its veth with its own MAC and address, and talks to the tasks that
 * share one of its groups (at most NET_GROUPS_MAX; none: to no task);
 * whatever elements named the address or the task's veth before are
 * replaced.  remove: every element of the task's veth and of addr
 * (INADDR_ANY: the address its veth was bound to); nothing to remove is
 * fine.  One nftables transaction each, no rule changes. */
int net_policy_task_add(struct net *net, const char *task_id, struct in_addr addr,
			const char *const *groups, size_t n_groups, struct berth_err *err);
int net_policy_task_remove(struct net *net, const char *task_id, struct in_addr addr,
			   struct berth_err *err);
/* net_policy_task_remove() of N tasks (IDS[i], ADDRS[i]) from one listing
 * and in one transaction: a removal lists every element of the table, and
 * each transaction that deletes waits out an RCU grace period in the
 * kernel, so N tasks stopping together cost about what one does.  All or
 * nothing: on a failure (an element listed but gone meanwhile, say) the
 * caller removes them one by one. */
int net_policy_tasks_remove(struct net *net, const char *const *ids, const struct in_addr *addrs,
			    size_t n, struct berth_err *err);

/* A published port of a bridge-mode task: traffic to host_port (TCP or
 * UDP) on any host address, from outside or from the host itself
 * (127.0.0.1 included), is DNATed to the task's address and
 * container_port (docs/networking.md "Published ports"). */
#define NET_PUBLISH_MAX 64  /* per task */
struct net_publish {
	uint8_t proto;            /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t host_port, container_port;  /* 1..65535 */
};

/* "tcp:49153:80" → *ret; -EINVAL when it is not PROTO:HOST:CONTAINER with
 * proto tcp or udp and ports 1..65535. */
int net_publish_parse(const char *s, struct net_publish *ret);

/* net_policy_task_add, and the task's published ports (at most
 * NET_PUBLISH_MAX, no host port twice per protocol) as elements of the
 * map `published` in the same transaction.  A stale element for one of
 * those host ports (a task whose removal failed) is replaced: the daemon,
 * which hands out host ports, has found the port free.
 * net_policy_task_remove deletes the task's published ports too. */
int net_policy_task_add_ports(struct net *net, const char *task_id, struct in_addr addr,
			      const char *const *groups, size_t n_groups,
			      const struct net_publish *pub, size_t n_pub, struct berth_err *err);

/* The 32-bit id of a security group in the rules: a hash of the name. */
uint32_t net_group_id(const char *group);

/* The host end of a task's veth: "vberth" + 9 hex digits of a hash of
 * the task id (its counters are the task's traffic, seen from the host). */
void net_host_ifname(const char *task_id, char out[IFNAMSIZ]);

/* The interface group of the bridge's task ports (the rules match it). */
uint32_t net_port_group(const char *bridge);
/* The group a stopping task's host veth moves to just before it is
 * deleted, with the others stopping meanwhile (net_task_teardown): the
 * bridge table drops every frame from it.  Never the port group, never 0. */
uint32_t net_dying_group(const char *bridge);

/* Writes dirfd/resolv.conf (the host's, minus the loopback and IPv6
 * nameservers a task cannot reach, each noted in a comment) and dirfd/hosts
 * (localhost and the task address as hostname), both 0644, for
 * bind-mounting into every container of the task.  hostname: RFC 1123,
 * at most 253 chars.  A task without an address (task->addr INADDR_ANY:
 * none mode, host mode) gets the host's resolv.conf as it is and its
 * hostname on 127.0.1.1. */
int net_task_write_files(struct net *net, const struct net_task *task, const char *hostname,
			 int dirfd, struct berth_err *err);

#endif
