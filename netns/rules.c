/* Host rules through libnftables, in two tables of our own so that no
 * other table is ever read or changed (docs/networking.md "Network
 * policy"):
 *
 *   bridge <t>  every frame a task sends, at the bridge's prerouting hook:
 *               anti-spoofing (the port's own MAC and IPv4 address, ARP
 *               included), IPv4 and ARP only, the blocked addresses, and
 *               the security-group check between tasks.  Per-task state is
 *               set elements (policy.c), never rules.
 *   ip <t>      input: nothing from the bridge reaches the host but replies
 *               and the allowed host ports; forward: nothing is routed into
 *               the subnet but replies and published ports; postrouting:
 *               the egress masquerade (NAT on only).  The published ports
 *               of bridge-mode tasks: DNAT of the map `published` for
 *               traffic to a host address from outside the bridge and from
 *               the host itself, and the 127.0.0.0/8 guard that
 *               route_localnet on the bridge needs (host.c).
 *
 * Each script runs as one nftables transaction: concurrent or repeated
 * applies converge to the same rules, a half-applied state is never
 * visible, and the per-task sets are created if missing but never
 * flushed, so a daemon restart keeps its running tasks' elements. */
#include "netns/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>


int net_nft_run(struct net *net, const char *script, bool json, char **ret_out, const char *what,
		struct berth_err *err)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return berth_errf(err, ENOMEM, "nftables table %s: %s: out of memory",
				  net->nft_table, what);
	if (json)
		nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
	/* Buffered so that library code never writes to stdout/stderr. */
	int r = 0;
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
		r = berth_errf(err, ENOMEM, "nftables table %s: %s: out of memory",
			       net->nft_table, what);
	else if (nft_run_cmd_from_buffer(ctx, script) != 0) {
		const char *msg = nft_ctx_get_error_buffer(ctx);
		size_t len = msg ? strcspn(msg, "\n") : 0;
		r = berth_errf(err, EIO, "nftables table %s: %s: %.*s", net->nft_table, what,
			       (int)len, msg ? msg : "");
	} else if (ret_out && !(*ret_out = strdup(nft_ctx_get_output_buffer(ctx))))
		r = berth_errf(err, ENOMEM, "nftables table %s: %s: out of memory",
			       net->nft_table, what);
	nft_ctx_free(ctx);
	return r;
}

struct script {
	char buf[8192];
	size_t len;
	bool overflow;
};

static void emit(struct script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct script *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->buf + s->len, sizeof(s->buf) - s->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->buf) - s->len)
		s->overflow = true;
	else
		s->len += (size_t)n;
}

static void ip_str(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { .s_addr = htonl(host_order) };
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/* The frames of the bridge's ports (the tasks' veths, all in the port
 * group; other bridges' frames return at once). */
static void bridge_rules(struct net *net, struct script *s)
{
	const char *t = net->nft_table;
	char cidr[NET_CIDR_STRLEN], gw[INET_ADDRSTRLEN], mac[18];
	uint8_t m[6];
	net_cidr_str(net, cidr);
	ip_str(net->gateway, gw);
	net_mac_from_ip(net->gateway, m);
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
	emit(s, "add table bridge %s\n"
		"add set bridge %s ports { type ifname . ether_addr . ipv4_addr; }\n"
		"add set bridge %s members { type ipv4_addr . mark; }\n"
		"add set bridge %s blocked { type ipv4_addr; flags interval; }\n"
		"flush set bridge %s blocked\n", t, t, t, t, t);
	if (net->blocked[0])
		emit(s, "add element bridge %s blocked { %s }\n", t, net->blocked);
	for (int k = 0; k < NET_GROUPS_MAX; k++)
		emit(s, "add map bridge %s sg%d { type ipv4_addr : mark; }\n", t, k);
	emit(s, "add chain bridge %s prerouting { type filter hook prerouting priority -200; "
		"policy accept; }\n"
		"flush chain bridge %s prerouting\n"
		"add chain bridge %s peers\n"
		"flush chain bridge %s peers\n"
		"add chain bridge %s arp_peers\n"
		"flush chain bridge %s arp_peers\n", t, t, t, t, t, t);
	/* A stopping task's veth, waiting to be deleted with the others. */
	emit(s, "add rule bridge %s prerouting meta iifgroup %u drop\n", t,
	     net_dying_group(net->bridge));
	emit(s, "add rule bridge %s prerouting meta iifgroup != %u return\n", t,
	     net_port_group(net->bridge));
	/* ARP is the port's own, and asks for (or answers) the gateway or a
	 * task of a shared group only: no task learns the others' MACs. */
	emit(s, "add rule bridge %s prerouting ether type arp iifname . ether saddr . "
		"arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports "
		"arp daddr ip %s accept\n"
		"add rule bridge %s prerouting ether type arp iifname . ether saddr . "
		"arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports "
		"jump arp_peers\n", t, gw, t);
	const char *pre[] = {
		"ether type != ip drop",
		"iifname . ether saddr . ip saddr != @ports drop",
		"ip daddr @blocked drop",
	};
	for (size_t i = 0; i < ARRAY_SIZE(pre); i++)
		emit(s, "add rule bridge %s prerouting %s\n", t, pre[i]);
	/* Anything but a task of the subnet is the host's business: it must
	 * be sent to the gateway's MAC (no broadcast or multicast reaches the
	 * other tasks), and the ip table decides.  Task addresses, whether
	 * bridged or hairpinned through the gateway, go through the groups. */
	emit(s, "add rule bridge %s prerouting ip daddr != %s ether daddr != %s drop\n"
		"add rule bridge %s prerouting ip daddr %s ether daddr != %s drop\n"
		"add rule bridge %s prerouting ip daddr != %s return\n"
		"add rule bridge %s prerouting ip daddr %s return\n"
		"add rule bridge %s prerouting jump peers\n", t, cidr, mac, t, gw, mac, t, cidr, t, gw,
	     t);
	/* Slot k holds a task's k-th group: sharing any group lets a packet
	 * through.  The mark only carries the group between the two lookups
	 * and is zeroed again. */
	for (int k = 0; k < NET_GROUPS_MAX; k++)
		emit(s, "add rule bridge %s peers meta mark set ip saddr map @sg%d "
			"ip daddr . meta mark @members meta mark set 0 accept\n"
			"add rule bridge %s arp_peers meta mark set arp saddr ip map @sg%d "
			"arp daddr ip . meta mark @members meta mark set 0 accept\n", t, k, t, k);
	emit(s, "add rule bridge %s peers drop\nadd rule bridge %s arp_peers drop\n", t, t);
}

/* Published ports (docs/networking.md "Published ports").  A connection
 * to a host address and a published port, from another interface or
 * from the host itself, goes to the task; one from a task does not (the
 * host is closed to tasks, and the DNAT would skip the security groups).
 * A connection from 127.0.0.1 leaves through the bridge only with
 * route_localnet on it, and is masqueraded to the gateway so that the
 * task's reply comes back; route_localnet also lets packets from a task
 * to 127.0.0.0/8 be routed to the host's loopback services, so those
 * are dropped first, before any other hook sees them. */
static void published_rules(struct net *net, struct script *s)
{
	const char *t = net->nft_table, *b = net->bridge;
	emit(s, "add map ip %s published { type inet_proto . inet_service : "
		"ipv4_addr . inet_service; }\n"
		"add chain ip %s localnet { type filter hook prerouting priority -300; "
		"policy accept; }\n"
		"flush chain ip %s localnet\n"
		"add rule ip %s localnet iifname \"%s\" ip daddr 127.0.0.0/8 counter drop\n"
		"add rule ip %s localnet iifname \"%s\" ip saddr 127.0.0.0/8 counter drop\n",
	     t, t, t, t, b, t, b);
	emit(s, "add chain ip %s publish_in { type nat hook prerouting priority -100; policy accept; }\n"
		"flush chain ip %s publish_in\n"
		"add rule ip %s publish_in iifname != \"%s\" fib daddr type local "
		"dnat ip to meta l4proto . th dport map @published\n"
		"add chain ip %s publish_local { type nat hook output priority -100; "
		"policy accept; }\n"
		"flush chain ip %s publish_local\n"
		"add rule ip %s publish_local fib daddr type local "
		"dnat ip to meta l4proto . th dport map @published\n"
		"add rule ip %s postrouting oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n",
	     t, t, t, b, t, t, t, t, b);
}

static void ip_rules(struct net *net, struct script *s)
{
	const char *t = net->nft_table, *b = net->bridge;
	char cidr[NET_CIDR_STRLEN];
	net_cidr_str(net, cidr);
	emit(s, "add table ip %s\n"
		"add set ip %s host_ports { type inet_proto . inet_service; }\n"
		"add chain ip %s input { type filter hook input priority 0; policy accept; }\n"
		"flush chain ip %s input\n"
		"add rule ip %s input iifname \"%s\" ct state established,related accept\n"
		"add rule ip %s input iifname \"%s\" meta l4proto . th dport @host_ports accept\n",
	     t, t, t, t, t, b, t, b);
	/* The task endpoint: that port of that one address, nothing else. */
	if (net->endpoint) {
		char ep[INET_ADDRSTRLEN];
		ip_str(net->endpoint, ep);
		emit(s, "add rule ip %s input iifname \"%s\" ip daddr %s tcp dport %u accept\n", t, b,
		     ep, net->endpoint_port);
	}
	emit(s, "add rule ip %s input iifname \"%s\" drop\n", t, b);
	/* ip_forward makes the host a router for its whole LAN: nothing but
	 * replies is routed into the subnet. */
	emit(s, "add chain ip %s forward { type filter hook forward priority 0; policy accept; }\n"
		"flush chain ip %s forward\n"
		"add rule ip %s forward oifname \"%s\" iifname != \"%s\" "
		"ct state established,related accept\n"
		"add rule ip %s forward oifname \"%s\" iifname != \"%s\" ct status dnat accept\n"
		"add rule ip %s forward oifname \"%s\" iifname != \"%s\" drop\n", t, t, t, b, b, t, b,
	     b, t, b, b);
	/* Priority 100 is srcnat.  Traffic between tasks and to the host stays
	 * inside the subnet and is never masqueraded. */
	emit(s, "add chain ip %s postrouting { type nat hook postrouting priority 100; "
		"policy accept; }\n"
		"flush chain ip %s postrouting\n", t, t);
	if (net->nat)
		emit(s, "add rule ip %s postrouting ip saddr %s ip daddr != %s masquerade "
			"comment \"berth %s\"\n", t, cidr, cidr, b);
	published_rules(net, s);
}

int net_rules_apply(struct net *net, struct berth_err *err)
{
	_cleanup_free_ struct script *s = calloc(1, sizeof(*s));
	if (!s)
		return berth_errf(err, ENOMEM, "nftables table %s: out of memory", net->nft_table);
	bridge_rules(net, s);
	ip_rules(net, s);
	if (s->overflow)
		return berth_errf(err, E2BIG, "nftables table %s: the rules do not fit in %zu bytes",
				  net->nft_table, sizeof(s->buf));
	return net_nft_run(net, s->buf, false, NULL, "rules", err);
}

int net_rules_remove(struct net *net, struct berth_err *err)
{
	char script[512];
	const char *t = net->nft_table;
	/* "add" first makes the delete succeed when a table is missing; all
	 * of it happens in one transaction. */
	snprintf(script, sizeof(script),
		 "add table ip %s\ndelete table ip %s\nadd table bridge %s\ndelete table bridge %s\n",
		 t, t, t, t);
	return net_nft_run(net, script, false, NULL, "delete", err);
}
