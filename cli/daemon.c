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
#include "netns/args.h"

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

/* berth host-network --bridge B --subnet S --nft-table T --run-root R
 * --ipam-dir D (--nat | --no-nat) [--block ADDRS]: what berthd sets up
 * once at start.  It runs in its own process so that berthd never maps
 * libnftables. */
int cmd_host_network(struct cli *c, int argc, char **argv)
{
	(void)c;
	struct net_args a;
	if (net_args_parse(argc, argv, &a) < 0 || a.task) {
		fprintf(stderr, "usage: berth host-network --bridge B --subnet S --nft-table T "
			"--run-root R --ipam-dir D (--nat|--no-nat) [--block ADDRS]\n");
		return 2;
	}
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *net = NULL;
	if (net_open(&a.cfg, &net, &err) < 0 || net_bridge_ensure(net, &err) < 0 ||
	    net_rules_ensure(net, &err) < 0)
		return cli_fail(&err);
	return 0;
}
