/* berth service: its subcommands (cli/services.c: the dispatch, create,
 * update, rm; cli/service_show.c: ls, inspect, events) and what they share. */
#ifndef BERTH_CLI_SERVICES_H
#define BERTH_CLI_SERVICES_H

#include "cli/cli.h"
#include "cli/ecs.h"

int service_ls(struct cli *c, int argc, char **argv);
int service_inspect(struct cli *c, int argc, char **argv);
int service_events(struct cli *c, int argc, char **argv);

/* cli_parse_args() for a subcommand taking one NAME (a service name or
 * ARN, into *name), then the ECS client at --socket into *ret.  -1 to go
 * on, else the exit code. */
int service_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		 const char **name, struct ecs **ret);

/* Parses the value of --opt as a whole number from 0 to INT_MAX into *ret:
 * 0, or -1 after printing why not. */
int service_count(const char *opt, const char *arg, long *ret);

/* "berth: service NAME not found" on stderr; returns 1. */
int service_not_found(const char *name);

/* Reports a failed call about service name: not found (the daemon's
 * ServiceNotFoundException, or no default cluster yet), else the error
 * with "service NAME: " in front when the daemon answered it.  Returns 1. */
int service_fail(const struct ecs *e, const char *cluster, const char *name,
		 const struct berth_err *err);

#endif
