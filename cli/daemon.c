/* berth daemon: runs berthd, the control plane (daemon/main.c); and berth
 * host-network, the helper berthd runs for the host's bridge and NAT. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "netns/net.h"

#define ARGS_MAX 256

int cmd_daemon(struct cli *c, int argc, char **argv)
{
	char path[4096];
	const char *args[ARGS_MAX];
	size_t n = 0;
	struct berth_err err = { 0 };
	if (berth_exe_sibling("berthd", path, sizeof(path), &err) < 0)
		return cli_fail(&err);
	args[n++] = path;
	/* `berth --root X daemon` works as `berth daemon --root X` does; so do
	 * the top-level --registry-auth and --insecure-registry. */
	if (c->root_set)
		args[n++] = "--root", args[n++] = c->root;
	if (c->registry.auth_file)
		args[n++] = "--registry-auth", args[n++] = c->registry.auth_file;
	for (size_t i = 0; i < c->registry.n_insecure && n + 2 < ARGS_MAX; i++)
		args[n++] = "--insecure-registry", args[n++] = c->registry.insecure[i];
	for (int i = 1; i < argc && n + 1 < ARGS_MAX; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(path, (char *const *)args);
	fprintf(stderr, "berth: daemon: cannot run %s: %s\n", path, strerror(errno));
	return 1;
}

/* The options berth host-network and berth task-network share: enough
 * of a struct net_config to open the network (net_open). */
enum { NET_OPT_BLOCK = 0x100, NET_OPT_TASK, NET_OPT_IP, NET_OPT_GROUP };
static const struct option net_opts[] = {
	{ "bridge", required_argument, NULL, 'b' },
	{ "subnet", required_argument, NULL, 's' },
	{ "nft-table", required_argument, NULL, 't' },
	{ "run-root", required_argument, NULL, 'r' },
	{ "ipam-dir", required_argument, NULL, 'i' },
	{ "nat", no_argument, NULL, 'n' },
	{ "no-nat", no_argument, NULL, 'N' },
	{ "block", required_argument, NULL, NET_OPT_BLOCK },
	{ "task", required_argument, NULL, NET_OPT_TASK },
	{ "ip", required_argument, NULL, NET_OPT_IP },
	{ "group", required_argument, NULL, NET_OPT_GROUP },
	{ 0 },
};

struct net_args {
	struct net_config cfg;
	const char *task, *ip;
	const char *groups[NET_GROUPS_MAX + 1];
	size_t n_groups;
};

/* 0, or 2 after a usage line naming USAGE. */
static int parse_net_args(int argc, char **argv, struct net_args *a, const char *usage)
{
	*a = (struct net_args){ 0 };
	net_config_init(&a->cfg);
	optind = 0;
	for (int ch; (ch = getopt_long(argc, argv, "", net_opts, NULL)) != -1;) {
		switch (ch) {
		case 'b': a->cfg.bridge = optarg; break;
		case 's': a->cfg.subnet = optarg; break;
		case 't': a->cfg.nft_table = optarg; break;
		case 'r': a->cfg.run_dir = optarg; break;
		case 'i': a->cfg.ipam_dir = optarg; break;
		case 'n': a->cfg.nat = true; break;
		case 'N': a->cfg.nat = false; break;
		case NET_OPT_BLOCK: a->cfg.blocked = optarg; break;
		case NET_OPT_TASK: a->task = optarg; break;
		case NET_OPT_IP: a->ip = optarg; break;
		case NET_OPT_GROUP:
			if (a->n_groups <= NET_GROUPS_MAX) {
				a->groups[a->n_groups++] = optarg;
				break;
			}
			/* fall through */
		default:
			fprintf(stderr, "usage: %s\n", usage);
			return 2;
		}
	}
	return 0;
}

/* berth host-network --bridge B --subnet S --nft-table T --run-root R
 * --ipam-dir D (--nat | --no-nat) [--block ADDRS]: what berthd sets up
 * once at start.  It runs in its own process so that berthd never maps
 * libnftables. */
int cmd_host_network(struct cli *c, int argc, char **argv)
{
	(void)c;
	struct net_args a;
	if (parse_net_args(argc, argv, &a, "berth host-network --bridge B --subnet S --nft-table T "
			   "--run-root R --ipam-dir D (--nat|--no-nat) [--block ADDRS]") != 0)
		return 2;
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *net = NULL;
	if (net_open(&a.cfg, &net, &err) < 0 || net_bridge_ensure(net, &err) < 0 ||
	    net_rules_ensure(net, &err) < 0)
		return cli_fail(&err);
	return 0;
}

/* berth task-network (add|remove) --bridge B --subnet S --nft-table T
 * --run-root R --ipam-dir D --task ID [--ip A] [--group G]...: a task's
 * network policy elements, for berth-shim, which does not link
 * libnftables (docs/networking.md). */
int cmd_task_network(struct cli *c, int argc, char **argv)
{
	(void)c;
	static const char usage[] = "berth task-network (add|remove) --bridge B --subnet S "
		"--nft-table T --run-root R --ipam-dir D --task ID [--ip A] [--group G]...";
	const char *verb = argc > 1 ? argv[1] : "";
	bool add = strcmp(verb, "add") == 0;
	struct net_args a;
	if ((!add && strcmp(verb, "remove") != 0) ||
	    parse_net_args(argc - 1, argv + 1, &a, usage) != 0 || !a.task || (add && !a.ip)) {
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	struct in_addr addr = { .s_addr = htonl(INADDR_ANY) };
	struct berth_err err = { 0 };
	if (a.ip && inet_pton(AF_INET, a.ip, &addr) != 1) {
		berth_errf(&err, EINVAL, "task %s: address \"%s\" is not IPv4", a.task, a.ip);
		return cli_fail(&err);
	}
	_cleanup_(net_closep) struct net *net = NULL;
	int r = net_open(&a.cfg, &net, &err);
	if (r >= 0)
		r = add ? net_policy_task_add(net, a.task, addr, a.groups, a.n_groups, &err)
			: net_policy_task_remove(net, a.task, addr, &err);
	return r < 0 ? cli_fail(&err) : 0;
}
