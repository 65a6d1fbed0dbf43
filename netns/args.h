/* The command-line options of the two network helpers, `berth
 * host-network` (cli/daemon.c, run by berthd at start) and
 * `berth-netpolicy` (netns/policy_main.c, run by berth-shim per task):
 * enough of a struct net_config to open the network, plus a task's. */
#ifndef BERTH_NET_ARGS_H
#define BERTH_NET_ARGS_H

#include <stddef.h>

#include "netns/net.h"

struct net_args {
	struct net_config cfg;   /* defaults, then --bridge --subnet --nft-table
				  * --run-root --ipam-dir --nat/--no-nat --block */
	const char *task, *ip;   /* --task --ip */
	const char *groups[NET_GROUPS_MAX];  /* --group, repeatable */
	size_t n_groups;
	struct net_publish publish[NET_PUBLISH_MAX];  /* --publish tcp:H:C, repeatable */
	size_t n_publish;
};

/* Parses argv[1..] (getopt_long, from the start): 0, or -EINVAL for an
 * unknown option, a missing argument, more than NET_GROUPS_MAX groups or
 * NET_PUBLISH_MAX published ports, or a --publish net_publish_parse() refuses.
 * The strings point into argv. */
int net_args_parse(int argc, char **argv, struct net_args *ret);

#endif
