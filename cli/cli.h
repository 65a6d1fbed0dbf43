/* The berth command: shared state of one invocation and the commands. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "images/limits.h"
#include "images/registry.h"

#define BERTH_DEFAULT_ROOT "/var/lib/berth"
#define BERTH_DEFAULT_SOCKET "/run/berth/berth.sock"
#define BERTH_DEFAULT_LOG_ROOT "/var/log/berth"
#define BERTH_DEFAULT_CLUSTER "default"
/* The subnet id `berth run` and `berth service create` give RunTask and
 * CreateService: a label of the daemon's one subnet (its --subnet). */
#define BERTH_CLI_SUBNET "subnet-berth"

struct cli {
	const char *root;
	bool root_set;          /* --root was given (not the default) */
	struct img_registry_opts registry;
	const char *insecure[16];
	struct img_pull_limits pull_limits; /* --pull-timeout … (images/limits.h) */
	bool json;             /* --output json */
	const char *socket;    /* --socket: the daemon's API socket */
	const char *cluster;   /* --cluster */
	const char *log_root;  /* --log-root: <log-root>/<task-id>/<container>.log */
};

/* A command's own options, parsed together with the shared ones.  Their
 * getopt values must stay below 256 (the shared ones use 256 and up). */
struct cli_cmd {
	const char *usage;
	/* What --help prints after the usage: what the command does and its
	 * own options, lines ending in '\n'; or NULL. */
	const char *help;
	const struct option *opts;  /* {0}-terminated, or NULL */
	const char *shortopts;      /* e.g. "de:", or NULL */
	bool stop_at_positional;    /* `run IMAGE CMD…`: options end at IMAGE */
	/* Takes one of the command's options: 0, or -1 after printing why not. */
	int (*set)(void *ctx, int ch, const char *arg);
	void *ctx;
};

/* Parses the options every command accepts (--root, --registry-auth,
 * --insecure-registry, the pull limits, --output, --socket, --cluster,
 * --log-root) and
 * cmd's own.  Unless cmd->stop_at_positional the options may stand
 * anywhere and positionals are moved to the end.  Returns the index of the
 * first positional argument, -1 after printing a usage error, -2 after
 * printing help. */
int cli_parse(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd);

/* Prints what `COMMAND --help` prints, on stdout: the usage, cmd->help and
 * where the shared options are told. */
void cli_help(const struct cli_cmd *cmd);

/* cli_parse() with the shared options only; top: stop at the first
 * positional (the command name). */
int cli_parse_options(struct cli *c, int argc, char **argv, bool top, const char *usage);

/* cli_parse(), then a check that between min_pos and max_pos positionals
 * remain (max_pos -1: any number).  Returns -1 to go on with *ret_first
 * set, or the exit code: 0 after help, 2 after a usage error. */
int cli_parse_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		   int min_pos, int max_pos, int *ret_first);

struct ecs;

/* cli_parse_args() for a listing (usage and help as struct cli_cmd's):
 * -a/--all sets *all, no positionals; then opens the ECS client at --socket
 * into *ret.  -1 to go on, else the exit code. */
int cli_list_args(struct cli *c, int argc, char **argv, const char *usage, const char *help,
		  bool *all, struct ecs **ret);

/* cli_parse_args() for a command taking one TASK (the last argument):
 * checks it is a task id or ARN (id gets the id) and opens the ECS client
 * at --socket into *ret.  -1 to go on, else the exit code. */
int cli_task_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		  char id[33], struct ecs **ret);

/* Prints "berth: <message>" on stderr and returns 1 (the exit code). */
int cli_fail(const struct berth_err *err);

int cmd_pull(struct cli *c, int argc, char **argv);
int cmd_images(struct cli *c, int argc, char **argv);
int cmd_rmi(struct cli *c, int argc, char **argv);
int cmd_inspect_image(struct cli *c, int argc, char **argv);
int cmd_daemon(struct cli *c, int argc, char **argv);
/* The daemon's helpers (berthd runs them; docs/operations.md). */
int cmd_task_image(struct cli *c, int argc, char **argv);
int cmd_host_network(struct cli *c, int argc, char **argv);

int cmd_register(struct cli *c, int argc, char **argv);
int cmd_task_definitions(struct cli *c, int argc, char **argv);
int cmd_run(struct cli *c, int argc, char **argv);
int cmd_ps(struct cli *c, int argc, char **argv);
int cmd_inspect(struct cli *c, int argc, char **argv);
int cmd_stop(struct cli *c, int argc, char **argv);
int cmd_logs(struct cli *c, int argc, char **argv);
int cmd_lb(struct cli *c, int argc, char **argv);
int cmd_service(struct cli *c, int argc, char **argv);
int cmd_exec(struct cli *c, int argc, char **argv);
int cmd_volume(struct cli *c, int argc, char **argv);

/* Progress display of a pull: bars redrawn in place on a TTY, one plain
 * line per layer state change otherwise. */
struct img_layer_progress;
struct progress;
struct progress *progress_new(int fd);
void progress_update(void *opaque, const struct img_layer_progress *layers, size_t n);
void progress_free(struct progress *pr);

#endif
