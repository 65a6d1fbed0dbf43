#include "netns/args.h"

#include <errno.h>
#include <getopt.h>

enum { OPT_BLOCK = 0x100, OPT_TASK, OPT_IP, OPT_GROUP, OPT_PUBLISH };

static const struct option opts[] = {
	{ "bridge", required_argument, NULL, 'b' },
	{ "subnet", required_argument, NULL, 's' },
	{ "nft-table", required_argument, NULL, 't' },
	{ "run-root", required_argument, NULL, 'r' },
	{ "ipam-dir", required_argument, NULL, 'i' },
	{ "nat", no_argument, NULL, 'n' },
	{ "no-nat", no_argument, NULL, 'N' },
	{ "block", required_argument, NULL, OPT_BLOCK },
	{ "task", required_argument, NULL, OPT_TASK },
	{ "ip", required_argument, NULL, OPT_IP },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "publish", required_argument, NULL, OPT_PUBLISH },
	{ 0 },
};

static int set_opt(struct net_args *a, int ch, const char *arg)
{
	switch (ch) {
	case 'b': a->cfg.bridge = arg; return 0;
	case 's': a->cfg.subnet = arg; return 0;
	case 't': a->cfg.nft_table = arg; return 0;
	case 'r': a->cfg.run_dir = arg; return 0;
	case 'i': a->cfg.ipam_dir = arg; return 0;
	case 'n': a->cfg.nat = true; return 0;
	case 'N': a->cfg.nat = false; return 0;
	case OPT_BLOCK: a->cfg.blocked = arg; return 0;
	case OPT_TASK: a->task = arg; return 0;
	case OPT_IP: a->ip = arg; return 0;
	case OPT_GROUP:
		if (a->n_groups == NET_GROUPS_MAX)
			return -EINVAL;
		a->groups[a->n_groups++] = arg;
		return 0;
	case OPT_PUBLISH:
		if (a->n_publish == NET_PUBLISH_MAX)
			return -EINVAL;
		return net_publish_parse(arg, &a->publish[a->n_publish++]);
	default: return -EINVAL;
	}
}

int net_args_parse(int argc, char **argv, struct net_args *ret)
{
	*ret = (struct net_args){ 0 };
	net_config_init(&ret->cfg);
	optind = 0;
	opterr = 0;
	for (int ch; (ch = getopt_long(argc, argv, "", opts, NULL)) != -1;)
		if (set_opt(ret, ch, optarg) < 0)
			return -EINVAL;
	return optind == argc ? 0 : -EINVAL;
}
