/* berth: command dispatch and the options shared by every command. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "common/cleanup.h"

struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "pull", cmd_pull, "pull an image from a registry into the local store" },
	{ "images", cmd_images, "list the images in the local store" },
	{ "rmi", cmd_rmi, "remove an image and garbage-collect what nothing uses" },
	{ "inspect-image", cmd_inspect_image, "print an image's config as JSON" },
	{ "daemon", cmd_daemon, "run the control plane: the ECS API on a socket" },
	{ "run", cmd_run, "register an ad-hoc task definition and run it" },
	{ "ps", cmd_ps, "list tasks (-a: stopped ones too)" },
	{ "inspect", cmd_inspect, "print a task as JSON" },
	{ "stop", cmd_stop, "stop a task" },
	{ "logs", cmd_logs, "print (-f: follow) a container's output" },
	{ "register", cmd_register, "register a task definition from a JSON file" },
	{ "task-definitions", cmd_task_definitions, "list task definitions" },
	{ "service", cmd_service, "services: create, update, ls, inspect, rm, events" },
	{ "task-image", cmd_task_image, "(for berthd) pull an image for a task, print its config "
					"and layers as JSON" },
	{ "host-network", cmd_host_network, "(for berthd) ensure the task bridge, NAT and "
					    "network policy" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: berth [--root DIR] [--registry-auth FILE] [--insecure-registry HOST:PORT]\n"
		   "             [--output table|json] [--socket PATH] [--cluster C] [--log-root DIR]\n"
		   "             COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nThe store lives under --root (default %s).  The task commands talk to\n"
		   "the daemon at --socket (default %s) about --cluster (default %s);\n"
		   "logs are read from --log-root (default %s).\n",
		BERTH_DEFAULT_ROOT, BERTH_DEFAULT_SOCKET, BERTH_DEFAULT_CLUSTER,
		BERTH_DEFAULT_LOG_ROOT);
}

int cli_fail(const struct berth_err *err)
{
	fprintf(stderr, "berth: %s\n", err->msg[0] ? err->msg : "unknown error");
	return 1;
}

/* getopt values of the shared options: above any command's own. */
enum {
	OPT_ROOT = 256,
	OPT_REGISTRY_AUTH,
	OPT_INSECURE,
	OPT_OUTPUT,
	OPT_SOCKET,
	OPT_CLUSTER,
	OPT_LOG_ROOT,
	OPT_HELP = 'h',
};

static const struct option shared_opts[] = {
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "registry-auth", required_argument, NULL, OPT_REGISTRY_AUTH },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "cluster", required_argument, NULL, OPT_CLUSTER },
	{ "log-root", required_argument, NULL, OPT_LOG_ROOT },
	{ "help", no_argument, NULL, OPT_HELP },
};

#define CMD_OPTS_MAX 16

/* One shared option: 0, or -1 after printing why not. */
static int set_shared(struct cli *c, int ch, const char *arg)
{
	switch (ch) {
	case OPT_ROOT:
		c->root = arg;
		c->root_set = true;
		return 0;
	case OPT_REGISTRY_AUTH:
		c->registry.auth_file = arg;
		return 0;
	case OPT_INSECURE:
		if (c->registry.n_insecure >= ARRAY_SIZE(c->insecure)) {
			fprintf(stderr, "berth: too many --insecure-registry options\n");
			return -1;
		}
		c->insecure[c->registry.n_insecure++] = arg;
		return 0;
	case OPT_OUTPUT:
		if (strcmp(arg, "json") && strcmp(arg, "table")) {
			fprintf(stderr, "berth: --output %s: expected table or json\n", arg);
			return -1;
		}
		c->json = !strcmp(arg, "json");
		return 0;
	case OPT_SOCKET:
		c->socket = arg;
		return 0;
	case OPT_CLUSTER:
		c->cluster = arg;
		return 0;
	case OPT_LOG_ROOT:
		c->log_root = arg;
		return 0;
	}
	return 1; /* not a shared option */
}

/* The shared options followed by the command's, {0}-terminated. */
static int merge_opts(const struct cli_cmd *cmd, struct option *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(shared_opts); i++)
		out[n++] = shared_opts[i];
	for (const struct option *o = cmd->opts; o && o->name; o++) {
		if (n + 1 >= cap)
			return -1;
		out[n++] = *o;
	}
	out[n] = (struct option){ 0 };
	return 0;
}

int cli_parse(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd)
{
	struct option opts[ARRAY_SIZE(shared_opts) + CMD_OPTS_MAX + 1];
	char shortopts[64];
	if (merge_opts(cmd, opts, ARRAY_SIZE(opts)) < 0 ||
	    snprintf(shortopts, sizeof(shortopts), "%sh%s", cmd->stop_at_positional ? "+" : "",
		     cmd->shortopts ? cmd->shortopts : "") >= (int)sizeof(shortopts)) {
		fprintf(stderr, "berth: internal error: too many options\n");
		return -1;
	}
	/* 0, not 1: glibc then re-reads the "+" ordering of shortopts, which
	 * it otherwise keeps from the first call (the top level's). */
	optind = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (ch == OPT_HELP) {
			printf("usage: %s\n", cmd->usage);
			return -2;
		}
		int r = ch == '?' ? -1 : set_shared(c, ch, optarg);
		if (r > 0)
			r = cmd->set ? cmd->set(cmd->ctx, ch, optarg) : -1;
		if (r < 0) {
			fprintf(stderr, "usage: %s\n", cmd->usage);
			return -1;
		}
	}
	c->registry.insecure = c->insecure;
	return optind;
}

static int set_all(void *ctx, int ch, const char *arg)
{
	(void)arg;
	if (ch != 'a')
		return -1;
	*(bool *)ctx = true;
	return 0;
}

int cli_parse_options(struct cli *c, int argc, char **argv, bool top, const char *use)
{
	const struct cli_cmd cmd = { .usage = use, .stop_at_positional = top };
	return cli_parse(c, argc, argv, &cmd);
}

int cli_parse_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		   int min_pos, int max_pos, int *ret_first)
{
	int first = cli_parse(c, argc, argv, cmd);
	if (first == -2)
		return 0;
	if (first < 0)
		return 2;
	int n = argc - first;
	if (n < min_pos || (max_pos >= 0 && n > max_pos)) {
		fprintf(stderr, "usage: %s\n", cmd->usage);
		return 2;
	}
	*ret_first = first;
	return -1;
}

int cli_list_args(struct cli *c, int argc, char **argv, const char *usage, bool *all,
		  struct ecs **ret)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, { 0 } };
	const struct cli_cmd cmd = { .usage = usage, .opts = opts, .shortopts = "a",
				     .set = set_all, .ctx = all };
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 0, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	return ecs_open(c->socket, ret, &err) < 0 ? cli_fail(&err) : -1;
}

int cli_task_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		  char id[ECS_TASK_ID_LEN + 1], struct ecs **ret)
{
	int first, rc = cli_parse_args(c, argc, argv, cmd, 1, 1, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	if (ecs_task_id(argv[first], id, &err) < 0 || ecs_open(c->socket, ret, &err) < 0)
		return cli_fail(&err);
	return -1;
}

int main(int argc, char **argv)
{
	struct cli c = {
		.root = BERTH_DEFAULT_ROOT,
		.socket = BERTH_DEFAULT_SOCKET,
		.cluster = BERTH_DEFAULT_CLUSTER,
		.log_root = BERTH_DEFAULT_LOG_ROOT,
	};
	int first = cli_parse_options(&c, argc, argv, true, "berth [OPTIONS] COMMAND [ARGS]");
	if (first == -2)
		return 0;
	if (first < 0)
		return 2;
	if (first >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[first], commands[i].name))
			return commands[i].run(&c, argc - first, argv + first);
	if (!strcmp(argv[first], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "berth: unknown command \"%s\"\n", argv[first]);
	usage(stderr);
	return 2;
}
