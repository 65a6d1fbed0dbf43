/* berth-netpolicy (add|remove) --bridge B --subnet S --nft-table T
 * --run-root R --ipam-dir D --task ID [--ip A] [--group G]...: a task's
 * network policy elements (netns/policy.c), for berth-shim, which does
 * not link libnftables.  A binary of its own rather than a `berth`
 * command: it maps only libnftables, libnl and cJSON, so it starts in a
 * fifth of the CPU time `berth` (libcurl, libarchive, …) needs, twice per
 * task.  Prints nothing; a failure is one "berth-netpolicy: …" line on
 * stderr and exit status 1 (2 for a usage error). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "netns/args.h"

static const char usage[] = "usage: berth-netpolicy (add|remove) --bridge B --subnet S "
			    "--nft-table T --run-root R --ipam-dir D --task ID [--ip A] "
			    "[--group G]...\n";

int main(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : "";
	bool add = strcmp(verb, "add") == 0;
	struct net_args a;
	if ((!add && strcmp(verb, "remove") != 0) || net_args_parse(argc - 1, argv + 1, &a) < 0 ||
	    !a.task || (add && !a.ip)) {
		fputs(usage, stderr);
		return 2;
	}
	struct in_addr addr = { .s_addr = htonl(INADDR_ANY) };
	struct berth_err err = { 0 };
	int r = 0;
	_cleanup_(net_closep) struct net *net = NULL;
	if (a.ip && inet_pton(AF_INET, a.ip, &addr) != 1)
		r = berth_errf(&err, EINVAL, "task %s: address \"%s\" is not IPv4", a.task, a.ip);
	if (r >= 0)
		r = net_open(&a.cfg, &net, &err);
	if (r >= 0)
		r = add ? net_policy_task_add(net, a.task, addr, a.groups, a.n_groups, &err)
			: net_policy_task_remove(net, a.task, addr, &err);
	if (r < 0) {
		fprintf(stderr, "berth-netpolicy: %s\n", err.msg);
		return 1;
	}
	return 0;
}
