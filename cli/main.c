/* berth: command dispatch and the options shared by every command. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "common/cleanup.h"

/* BERTH_VERSION and BERTH_COMMIT (the git commit, when built from a
 * checkout) come from the Makefile, for this file only. */
#ifndef BERTH_VERSION
#error "BERTH_VERSION is the Makefile's VERSION"
#endif
#ifdef BERTH_COMMIT
#define VERSION_TEXT "berth " BERTH_VERSION " (git " BERTH_COMMIT ")"
#else
#define VERSION_TEXT "berth " BERTH_VERSION
#define BERTH_COMMIT NULL
#endif

struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary;
};

static int cmd_help(struct cli *c, int argc, char **argv);
static int cmd_version(struct cli *c, int argc, char **argv);

static const struct command commands[] = {
	{ "run", cmd_run, "register an ad-hoc task definition and run it" },
	{ "ps", cmd_ps, "list tasks (-a: stopped ones too)" },
	{ "logs", cmd_logs, "print (-f: follow) a container's output" },
	{ "stop", cmd_stop, "stop a task" },
	{ "exec", cmd_exec, "run a command in a running task's container (-it: a terminal)" },
	{ "inspect", cmd_inspect, "print a task as JSON" },
	{ "register", cmd_register, "register a task definition from a JSON file" },
	{ "task-definitions", cmd_task_definitions, "list task definitions" },
	{ "service", cmd_service, "services: create, update, ls, inspect, rm, events" },
	{ "volume", cmd_volume, "named volumes: ls, rm" },
	{ "lb", cmd_lb, "load balancers: ls, targets (managed with the ELBv2 API)" },
	{ "pull", cmd_pull, "pull an image from a registry into the local store" },
	{ "images", cmd_images, "list the images in the local store" },
	{ "rmi", cmd_rmi, "remove an image and garbage-collect what nothing uses" },
	{ "inspect-image", cmd_inspect_image, "print an image's config as JSON" },
	{ "daemon", cmd_daemon, "run the control plane: the ECS API on a socket" },
	{ "help", cmd_help, "print this text, or a command's usage and options" },
	{ "version", cmd_version, "print berth's version" },
	{ "task-image", cmd_task_image, "(for berthd) pull a task's image, print it as JSON" },
	{ "host-network", cmd_host_network, "(for berthd) ensure the task bridge, NAT and network policy" },
};

static const char top_usage[] =
	"berth [--root DIR] [--registry-auth FILE] [--insecure-registry HOST:PORT]\n"
	"             " IMG_LIMIT_OPTS "\n"
	"             [--output table|json] [--socket PATH] [--cluster C] [--log-root DIR]\n"
	"             COMMAND [ARGS]\n"
	"       berth --help | --version";

/* The full usage (head: with the usage line). */
static void usage(FILE *f, bool head)
{
	if (head)
		fprintf(f, "usage: %s\n", top_usage);
	fprintf(f, "\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\noptions (before or after COMMAND):\n"
		   "  --root DIR                 the image store (default %s)\n"
		   "  --registry-auth FILE       registry credentials, Docker's config.json format\n"
		   "  --insecure-registry H:P    plain HTTP to that registry (repeatable; a loopback\n"
		   "                             registry is used only when named here)\n"
		   "  --pull-timeout DURATION    a whole pull's deadline (default 2h)\n"
		   "  --layer-timeout DURATION   one layer download's deadline (default 1h)\n"
		   "  --max-layer-size SIZE      a layer's largest compressed size (default 10GiB)\n"
		   "  --max-layer-ratio N        unpacked bytes per compressed byte (default 100)\n"
		   "  --output table|json        JSON on stdout instead of a table\n"
		   "  --socket PATH              the daemon's API socket (default %s)\n"
		   "  --cluster C                the task and service commands' cluster (default %s)\n"
		   "  --log-root DIR             the daemon's task logs (default %s)\n"
		   "  -h, --help                 this text\n"
		   "  --version                  berth's version\n"
		   "\n`berth help COMMAND` or `berth COMMAND --help`: a command's arguments and\n"
		   "options.  Exit status: 0 done, 1 failed, 2 usage error; a foreground `run`\n"
		   "exits with the task's exit code (125: berth or the task's start failed).\n",
		BERTH_DEFAULT_ROOT, BERTH_DEFAULT_SOCKET, BERTH_DEFAULT_CLUSTER,
		BERTH_DEFAULT_LOG_ROOT);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

/* "unknown command" and the usage on stderr: a usage error. */
static int unknown_command(const char *what, const char *name)
{
	fprintf(stderr, "berth: %sunknown command \"%s\"\n", what, name);
	usage(stderr, true);
	return 2;
}

/* berth help [COMMAND [SUBCOMMAND]]: the full usage, or what
 * `COMMAND [SUBCOMMAND] --help` prints. */
static int cmd_help(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd cmd = {
		.usage = "berth help [COMMAND [SUBCOMMAND]]",
		.help = "Prints berth's usage and commands, or COMMAND's usage and options (as\n"
			"`berth COMMAND [SUBCOMMAND] --help`).\n",
		.stop_at_positional = true,
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 2, &first);
	if (rc >= 0)
		return rc;
	if (first == argc) {
		usage(stdout, true);
		return 0;
	}
	const struct command *k = find_command(argv[first]);
	if (!k)
		return unknown_command("help: ", argv[first]);
	/* Only service, volume and lb have SUBCOMMANDs: another word could be
	 * an argument the command acts on (`run IMAGE --help` runs IMAGE with
	 * --help). */
	if (first + 1 < argc && k->run != cmd_service && k->run != cmd_volume &&
	    k->run != cmd_lb) {
		fprintf(stderr, "berth: help: %s has no subcommands\nusage: %s\n", k->name, cmd.usage);
		return 2;
	}
	char help_opt[] = "--help";
	char *args[4] = { argv[first] };
	int n = 1;
	if (first + 1 < argc)
		args[n++] = argv[first + 1];
	args[n++] = help_opt;
	args[n] = NULL;
	return k->run(c, n, args);
}

static int print_version(const struct cli *c)
{
	if (!c->json)
		return puts(VERSION_TEXT) == EOF;
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	const char *commit = BERTH_COMMIT;
	if (!o || !cJSON_AddStringToObject(o, "version", BERTH_VERSION) ||
	    (commit && !cJSON_AddStringToObject(o, "commit", commit)))
		return 1;
	return ecs_print_json(o);
}

static int cmd_version(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd cmd = {
		.usage = "berth version [--output table|json]",
		.help = "Prints `berth VERSION`, with `(git COMMIT)` when built from a git checkout\n"
			"(json: {\"version\", \"commit\"}).  Also `berth --version`.\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 0, &first);
	return rc >= 0 ? rc : print_version(c);
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
	OPT_PULL_LIMIT,
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
	{ "pull-timeout", required_argument, NULL, OPT_PULL_LIMIT },
	{ "layer-timeout", required_argument, NULL, OPT_PULL_LIMIT },
	{ "max-layer-size", required_argument, NULL, OPT_PULL_LIMIT },
	{ "max-layer-ratio", required_argument, NULL, OPT_PULL_LIMIT },
	{ "help", no_argument, NULL, OPT_HELP },
};

#define CMD_OPTS_MAX 16

/* A pull limit: 0, or -1 after printing why not. */
static int set_limit(struct cli *c, const char *name, const char *arg)
{
	struct berth_err err = { 0 };
	if (img_limits_set(&c->pull_limits, name, arg, &err) == 0)
		return 0;
	fprintf(stderr, "berth: %s\n", err.msg);
	return -1;
}

/* One shared option (NAME: its long name): 0, or -1 after printing why
 * not. */
static int set_shared(struct cli *c, int ch, const char *name, const char *arg)
{
	switch (ch) {
	case OPT_PULL_LIMIT:
		return set_limit(c, name, arg);
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

void cli_help(const struct cli_cmd *cmd)
{
	printf("usage: %s\n", cmd->usage);
	if (cmd->help)
		printf("\n%s\nThe options every command takes: `berth --help`.\n", cmd->help);
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
	char *argv0 = argv[0], name[] = "berth";
	argv[0] = name;
	int ch, idx = 0, r = 0;
	while (r >= 0 && (ch = getopt_long(argc, argv, shortopts, opts, &idx)) != -1) {
		if (ch == OPT_HELP) {
			cli_help(cmd);
			r = -2;
			break;
		}
		r = ch == '?' ? -1 : set_shared(c, ch, opts[idx].name, optarg);
		if (r > 0)
			r = cmd->set ? cmd->set(cmd->ctx, ch, optarg) : -1;
		if (r < 0)
			fprintf(stderr, "usage: %s\n", cmd->usage);
	}
	argv[0] = argv0;
	c->registry.insecure = c->insecure;
	return r < 0 ? r : optind;
}

/* A command's flag (ctx: its bool), for the one option it takes. */
static int set_flag(void *ctx, int ch, const char *arg)
{
	(void)ch;
	(void)arg;
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

int cli_list_args(struct cli *c, int argc, char **argv, const char *usage, const char *help,
		  bool *all, struct ecs **ret)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, { 0 } };
	const struct cli_cmd cmd = { .usage = usage, .help = help, .opts = opts, .shortopts = "a",
				     .set = set_flag, .ctx = all };
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
	static const struct option opts[] = { { "version", no_argument, NULL, 'V' }, { 0 } };
	bool version = false;
	const struct cli_cmd top = { .usage = top_usage, .opts = opts, .stop_at_positional = true,
				     .set = set_flag, .ctx = &version };
	int first = cli_parse(&c, argc, argv, &top);
	if (first == -2) {
		usage(stdout, false);
		return 0;
	}
	if (first < 0)
		return 2;
	if (version && first == argc)
		return print_version(&c);
	if (version || first == argc) {
		usage(stderr, true);
		return 2;
	}
	const struct command *k = find_command(argv[first]);
	return k ? k->run(&c, argc - first, argv + first) : unknown_command("", argv[first]);
}
