/* The berth command: shared state of one invocation and the commands. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "images/registry.h"

#define BERTH_DEFAULT_ROOT "/var/lib/berth"

struct cli {
	const char *root;
	struct img_registry_opts registry;
	const char *insecure[16];
	bool json; /* --output json */
};

/* Parses the options every command accepts (--root, --registry-auth,
 * --insecure-registry, --output).  Before the command name (top level)
 * parsing stops at the first positional argument; within a command the
 * options may stand anywhere and positionals are moved to the end.
 * Returns the index of the first positional argument, -1 after printing a
 * usage error, -2 after printing help. */
int cli_parse_options(struct cli *c, int argc, char **argv, bool top, const char *usage);

/* Prints "berth: <message>" on stderr and returns 1 (the exit code). */
int cli_fail(const struct berth_err *err);

int cmd_pull(struct cli *c, int argc, char **argv);
int cmd_images(struct cli *c, int argc, char **argv);
int cmd_rmi(struct cli *c, int argc, char **argv);
int cmd_inspect_image(struct cli *c, int argc, char **argv);
int cmd_daemon(struct cli *c, int argc, char **argv);

/* Progress display of a pull: bars redrawn in place on a TTY, one plain
 * line per layer state change otherwise. */
struct img_layer_progress;
struct progress;
struct progress *progress_new(int fd);
void progress_update(void *opaque, const struct img_layer_progress *layers, size_t n);
void progress_free(struct progress *pr);

#endif
