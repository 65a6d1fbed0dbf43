/* berth daemon: runs berthd, the control plane (daemon/main.c); and berth
 * host-network, the helper berthd runs for the host's bridge and NAT. */
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
	 * the top-level --registry-auth, --insecure-registry and pull limits. */
	if (c->root_set)
		args[n++] = "--root", args[n++] = c->root;
	if (c->registry.auth_file)
		args[n++] = "--registry-auth", args[n++] = c->registry.auth_file;
	for (size_t i = 0; i < c->registry.n_insecure && n + 2 < ARGS_MAX; i++)
		args[n++] = "--insecure-registry", args[n++] = c->registry.insecure[i];
	char bufs[4][32];
	img_limits_argv(&c->pull_limits, (char **)args, &n, bufs);
	for (int i = 1; i < argc && n + 1 < ARGS_MAX; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execv(path, (char *const *)args);
	fprintf(stderr, "berth: daemon: cannot run %s: %s\n", path, strerror(errno));
	return 1;
}

static int set_net_opt(void *ctx, int ch, const char *arg)
{
	struct net_config *cfg = ctx;
	switch (ch) {
	case 'b': cfg->bridge = arg; return 0;
	case 's': cfg->subnet = arg; return 0;
	case 't': cfg->nft_table = arg; return 0;
	case 'r': cfg->run_dir = arg; return 0;
	case 'i': cfg->ipam_dir = arg; return 0;
	case 'n': cfg->nat = true; return 0;
	case 'N': cfg->nat = false; return 0;
	case 'B': cfg->blocked = arg; return 0;
	case 'E': cfg->task_endpoint = arg; return 0;
	}
	return -1;
}

/* berth host-network --bridge B --subnet S --nft-table T --run-root R
 * --ipam-dir D (--nat | --no-nat) [--block ADDRS] [--task-endpoint A:P]: what berthd sets up
 * once at start.  It runs in its own process so that berthd never maps
 * libnftables. */
int cmd_host_network(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bridge", required_argument, NULL, 'b' },
		{ "subnet", required_argument, NULL, 's' },
		{ "nft-table", required_argument, NULL, 't' },
		{ "run-root", required_argument, NULL, 'r' },
		{ "ipam-dir", required_argument, NULL, 'i' },
		{ "nat", no_argument, NULL, 'n' },
		{ "no-nat", no_argument, NULL, 'N' },
		{ "block", required_argument, NULL, 'B' },
		{ "task-endpoint", required_argument, NULL, 'E' },
		{ 0 },
	};
	struct net_config cfg;
	net_config_init(&cfg);
	const struct cli_cmd cmd = {
		.usage = "berth host-network --bridge B --subnet S --nft-table T --run-root R\n"
			 "          --ipam-dir D (--nat|--no-nat) [--block ADDRS] [--task-endpoint A:P]",
		.help = "For berthd, at its start: makes the host's side of the task network as\n"
			"berthd's options say.\n\n"
			"  --bridge B         the tasks' bridge, created if missing\n"
			"  --subnet S         the tasks' subnet (CIDR); the bridge holds its gateway\n"
			"  --nft-table T      the nftables tables of the NAT and network policy rules\n"
			"  --run-root R       berthd's run directory (task netns files)\n"
			"  --ipam-dir D       berthd's address allocations\n"
			"  --nat | --no-nat   masquerade the tasks' outbound traffic (and turn on\n"
			"                     ip_forward), or not\n"
			"  --block ADDRS      addresses tasks may never reach (comma-separated;\n"
			"                     default 169.254.169.254)\n"
			"  --task-endpoint A:P  the task metadata endpoint: address A on the bridge,\n"
			"                     TCP port P of it open to tasks\n",
		.opts = opts, .set = set_net_opt, .ctx = &cfg,
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 0, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *net = NULL;
	if (net_open(&cfg, &net, &err) < 0 || net_bridge_ensure(net, &err) < 0 ||
	    net_rules_ensure(net, &err) < 0)
		return cli_fail(&err);
	return 0;
}
