/* berth service create | update | rm, and the dispatch of `berth service`:
 * services through the daemon (docs/services.md). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/services.h"

/* ---- what the subcommands share --------------------------------------------- */

int service_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
		 const char **name, struct ecs **ret)
{
	int first, rc = cli_parse_args(c, argc, argv, cmd, 1, 1, &first);
	if (rc >= 0)
		return rc;
	*name = argv[first];
	struct berth_err err = { 0 };
	return ecs_open(c->socket, ret, &err) < 0 ? cli_fail(&err) : -1;
}

int service_count(const char *opt, const char *arg, long *ret)
{
	char *end;
	errno = 0;
	long v = isdigit((unsigned char)arg[0]) ? strtol(arg, &end, 10) : -1;
	if (v < 0 || errno || *end || v > INT_MAX) {
		fprintf(stderr, "berth: --%s %s: expected a whole number\n", opt, arg);
		return -1;
	}
	*ret = v;
	return 0;
}

int service_not_found(const char *name)
{
	fprintf(stderr, "berth: service %s not found\n", name);
	return 1;
}

int service_fail(const struct ecs *e, const char *cluster, const char *name,
		 const struct berth_err *err)
{
	if (!strcmp(ecs_error_type(e), "ServiceNotFoundException") ||
	    ecs_no_default_cluster(e, cluster))
		return service_not_found(name);
	/* The daemon's answers, not "cannot reach the daemon". */
	if (err->code == EPROTO || err->code == EBADMSG)
		fprintf(stderr, "berth: service %s: %s\n", name, err->msg);
	else
		cli_fail(err);
	return 1;
}

/* Prints the service of a Create/Update/DeleteService answer: its name,
 * or (json) the whole Service. */
static int print_service(const struct cli *c, const cJSON *resp)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(resp, "service");
	if (c->json)
		return ecs_print_json(s);
	const char *name = ecs_str(s, "serviceName");
	printf("%s\n", name ? name : "-");
	return 0;
}

/* ---- the options of create and update ------------------------------------- */

enum breaker { BREAKER_UNSET, BREAKER_OFF, BREAKER_ON, BREAKER_ROLLBACK };

struct svc_opts {
	const char *td;         /* --task-definition */
	const char *strategy;   /* --scheduling-strategy */
	long desired;           /* --desired-count; -1: not given */
	long min_healthy;       /* --min-healthy */
	long max_percent;       /* --max-percent */
	long grace;             /* --grace-period */
	enum breaker breaker;   /* --circuit-breaker[=rollback], --no-circuit-breaker */
	bool force;             /* update: --force-new-deployment; rm: --force */
};

#define SVC_OPTS_INIT { .desired = -1, .min_healthy = -1, .max_percent = -1, .grace = -1 }

static int set_breaker(struct svc_opts *o, int ch, const char *arg)
{
	enum breaker want = ch == 'B' ? BREAKER_OFF : arg ? BREAKER_ROLLBACK : BREAKER_ON;
	if (arg && strcmp(arg, "rollback")) {
		fprintf(stderr, "berth: --circuit-breaker=%s: expected --circuit-breaker or "
				"--circuit-breaker=rollback\n", arg);
		return -1;
	}
	if (o->breaker != BREAKER_UNSET && (o->breaker == BREAKER_OFF) != (want == BREAKER_OFF)) {
		fprintf(stderr, "berth: --circuit-breaker and --no-circuit-breaker exclude each other\n");
		return -1;
	}
	o->breaker = want;
	return 0;
}

static int set_strategy(struct svc_opts *o, const char *arg)
{
	if (!strcasecmp(arg, "REPLICA") || !strcasecmp(arg, "DAEMON")) {
		o->strategy = !strcasecmp(arg, "DAEMON") ? "DAEMON" : "REPLICA";
		return 0;
	}
	fprintf(stderr, "berth: --scheduling-strategy %s: expected REPLICA or DAEMON\n", arg);
	return -1;
}

static int set_svc_opt(void *ctx, int ch, const char *arg)
{
	struct svc_opts *o = ctx;
	switch (ch) {
	case 't':
		o->td = arg;
		return 0;
	case 'c':
		return service_count("desired-count", arg, &o->desired);
	case 'm':
		return service_count("min-healthy", arg, &o->min_healthy);
	case 'M':
		return service_count("max-percent", arg, &o->max_percent);
	case 'g':
		return service_count("grace-period", arg, &o->grace);
	case 'b':
	case 'B':
		return set_breaker(o, ch, arg);
	case 's':
		return set_strategy(o, arg);
	case 'F':
	case 'f':
		o->force = true;
		return 0;
	}
	return -1;
}

#define SVC_COMMON_OPTS                                                   \
	{ "task-definition", required_argument, NULL, 't' },              \
	{ "desired-count", required_argument, NULL, 'c' },                \
	{ "min-healthy", required_argument, NULL, 'm' },                  \
	{ "max-percent", required_argument, NULL, 'M' },                  \
	{ "circuit-breaker", optional_argument, NULL, 'b' },              \
	{ "grace-period", required_argument, NULL, 'g' }

static bool has_bounds(const struct svc_opts *o)
{
	return o->min_healthy >= 0 || o->max_percent >= 0 || o->breaker != BREAKER_UNSET;
}

/* ---- the requests ------------------------------------------------------------ */

/* Sets member name of obj to item (taken; NULL fails), replacing it. */
static bool put(cJSON *obj, const char *name, cJSON *item)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	if (item && cJSON_AddItemToObject(obj, name, item))
		return true;
	cJSON_Delete(item);
	return false;
}

static bool put_count(cJSON *obj, const char *name, long v)
{
	return v < 0 || put(obj, name, cJSON_CreateNumber((double)v));
}

/* The deploymentConfiguration members o sets: bounds and breaker. */
static cJSON *deployment_config(const struct svc_opts *o)
{
	_cleanup_(cJSON_Deletep) cJSON *dc = cJSON_CreateObject();
	if (!dc || !put_count(dc, "maximumPercent", o->max_percent) ||
	    !put_count(dc, "minimumHealthyPercent", o->min_healthy))
		return NULL;
	if (o->breaker == BREAKER_UNSET)
		return TAKE_PTR(dc);
	cJSON *cb = cJSON_CreateObject();
	if (!put(dc, "deploymentCircuitBreaker", cb) ||
	    !cJSON_AddBoolToObject(cb, "enable", o->breaker != BREAKER_OFF) ||
	    !cJSON_AddBoolToObject(cb, "rollback", o->breaker == BREAKER_ROLLBACK))
		return NULL;
	return TAKE_PTR(dc);
}

/* The members create and update share: cluster, taskDefinition,
 * desiredCount, healthCheckGracePeriodSeconds, and deploymentConfiguration
 * when o sets any of it. */
static cJSON *service_request(const char *cluster, const struct svc_opts *o)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cluster", cluster) ||
	    (o->td && !cJSON_AddStringToObject(req, "taskDefinition", o->td)) ||
	    !put_count(req, "desiredCount", o->desired) ||
	    !put_count(req, "healthCheckGracePeriodSeconds", o->grace) ||
	    (has_bounds(o) && !put(req, "deploymentConfiguration", deployment_config(o))))
		return NULL;
	return TAKE_PTR(req);
}

/* ---- create ----------------------------------------------------------------- */

static cJSON *create_request(const char *cluster, const char *name, const struct svc_opts *o)
{
	_cleanup_(cJSON_Deletep) cJSON *req = service_request(cluster, o);
	cJSON *nc = req ? cJSON_AddObjectToObject(req, "networkConfiguration") : NULL;
	cJSON *vpc = nc ? cJSON_AddObjectToObject(nc, "awsvpcConfiguration") : NULL;
	/* One subnet, the daemon's (its --subnet), as `berth run`. */
	cJSON *subnets = vpc ? cJSON_AddArrayToObject(vpc, "subnets") : NULL;
	if (!subnets || !cJSON_AddItemToArray(subnets, cJSON_CreateString(BERTH_CLI_SUBNET)) ||
	    !cJSON_AddStringToObject(req, "serviceName", name) ||
	    (o->strategy && !cJSON_AddStringToObject(req, "schedulingStrategy", o->strategy)))
		return NULL;
	return TAKE_PTR(req);
}

static const char create_usage[] =
	"berth service create NAME --task-definition FAMILY[:REV] --desired-count N\n"
	"          [--min-healthy PCT] [--max-percent PCT] [--circuit-breaker[=rollback]]\n"
	"          [--scheduling-strategy REPLICA|DAEMON] [--grace-period S] [--cluster C]\n"
	"          [--output table|json]";

/* The options create and update share. */
#define SVC_COMMON_HELP                                                                        \
	"  --task-definition FAMILY[:REV]  what the tasks run (a family: its latest revision)\n" \
	"  --desired-count N               how many tasks\n"                                    \
	"  --min-healthy PCT               deployments keep this % of N running (default 100)\n" \
	"  --max-percent PCT               and run at most this % of N (default 200)\n"          \
	"  --circuit-breaker[=rollback]    fail a deployment whose tasks keep failing (and roll\n" \
	"                                  back to the last one that worked)\n"                 \
	"  --grace-period S                ignore failing health checks for S seconds after a\n" \
	"                                  task starts\n"

static const char create_help[] =
	"Creates service NAME: it keeps N tasks of the task definition running, replaces\n"
	"those that stop, and prints the service name (json: the Service).\n\n"
	SVC_COMMON_HELP
	"  --scheduling-strategy REPLICA|DAEMON  DAEMON: one task, no --desired-count\n";

static int create_args_missing(const struct svc_opts *o)
{
	const char *missing = !o->td ? "--task-definition" : NULL;
	if (!missing && o->desired < 0 && !(o->strategy && !strcmp(o->strategy, "DAEMON")))
		missing = "--desired-count";
	if (!missing)
		return 0;
	fprintf(stderr, "berth: service create: %s is required\nusage: %s\n", missing, create_usage);
	return 2;
}

static int service_create(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		SVC_COMMON_OPTS,
		{ "scheduling-strategy", required_argument, NULL, 's' },
		{ 0 },
	};
	struct svc_opts o = SVC_OPTS_INIT;
	const struct cli_cmd cmd = { .usage = create_usage, .help = create_help, .opts = opts,
				     .set = set_svc_opt, .ctx = &o };
	const char *name;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = service_args(c, argc, argv, &cmd, &name, &e);
	if (rc >= 0 || (rc = create_args_missing(&o)) > 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *req = create_request(c->cluster, name, &o), *resp = NULL;
	if (!req)
		return berth_errf(&err, ENOMEM, "service create: out of memory"), cli_fail(&err);
	/* The daemon creates the default cluster on first use. */
	if (ecs_call(e, "CreateService", req, &resp, &err) < 0)
		return service_fail(e, c->cluster, name, &err);
	return print_service(c, resp);
}

/* ---- update ------------------------------------------------------------------ */

static const char update_usage[] =
	"berth service update NAME [--task-definition FAMILY[:REV]] [--desired-count N]\n"
	"          [--force-new-deployment] [--min-healthy PCT] [--max-percent PCT]\n"
	"          [--circuit-breaker[=rollback] | --no-circuit-breaker] [--grace-period S]\n"
	"          [--cluster C] [--output table|json]";

static const char update_help[] =
	"Changes service NAME (at least one option): a new task definition or\n"
	"--force-new-deployment rolls its tasks over; the deployment options not given\n"
	"keep their values.  Prints the service name (json: the Service).\n\n"
	SVC_COMMON_HELP
	"  --no-circuit-breaker            turn the circuit breaker off\n"
	"  --force-new-deployment          replace every task, even with nothing changed\n";

/* The UpdateService request: the daemon keeps the deploymentConfiguration
 * members the request does not name. */
static cJSON *update_request(const char *cluster, const char *name, const struct svc_opts *o)
{
	_cleanup_(cJSON_Deletep) cJSON *req = service_request(cluster, o);
	if (!req || !cJSON_AddStringToObject(req, "service", name) ||
	    (o->force && !cJSON_AddTrueToObject(req, "forceNewDeployment")))
		return NULL;
	return TAKE_PTR(req);
}

static int service_update(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		SVC_COMMON_OPTS,
		{ "no-circuit-breaker", no_argument, NULL, 'B' },
		{ "force-new-deployment", no_argument, NULL, 'F' },
		{ 0 },
	};
	struct svc_opts o = SVC_OPTS_INIT;
	const struct cli_cmd cmd = { .usage = update_usage, .help = update_help, .opts = opts,
				     .set = set_svc_opt, .ctx = &o };
	const char *name;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = service_args(c, argc, argv, &cmd, &name, &e);
	if (rc >= 0)
		return rc;
	if (!o.td && o.desired < 0 && o.grace < 0 && !o.force && !has_bounds(&o)) {
		fprintf(stderr, "berth: service update: nothing to update\nusage: %s\n", update_usage);
		return 2;
	}
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *req = update_request(c->cluster, name, &o), *resp = NULL;
	if (!req)
		return berth_errf(&err, ENOMEM, "service update: out of memory"), cli_fail(&err);
	if (ecs_call(e, "UpdateService", req, &resp, &err) < 0)
		return service_fail(e, c->cluster, name, &err);
	return print_service(c, resp);
}

/* ---- rm ------------------------------------------------------------------------ */

static int service_rm(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, { 0 } };
	struct svc_opts o = SVC_OPTS_INIT;
	const struct cli_cmd cmd = {
		.usage = "berth service rm [-f|--force] [--cluster C] [--output table|json] NAME",
		.help = "Deletes service NAME: its tasks stop, then it is INACTIVE; rm does not\n"
			"wait.  Prints the service name (json: the Service).\n\n"
			"  -f, --force        delete it while it is scaled above 0, stopping its tasks\n",
		.opts = opts, .shortopts = "f", .set = set_svc_opt, .ctx = &o,
	};
	const char *name;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = service_args(c, argc, argv, &cmd, &name, &e);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *resp = NULL;
	if (!req || !cJSON_AddStringToObject(req, "cluster", c->cluster) ||
	    !cJSON_AddStringToObject(req, "service", name) ||
	    !cJSON_AddBoolToObject(req, "force", o.force))
		return berth_errf(&err, ENOMEM, "service rm: out of memory"), cli_fail(&err);
	if (ecs_call(e, "DeleteService", req, &resp, &err) == 0)
		return print_service(c, resp);
	/* "cannot be stopped while it is scaled above 0": say what would. */
	size_t n = strlen(err.msg);
	if (!o.force && !strcmp(ecs_error_type(e), "InvalidParameterException"))
		snprintf(err.msg + n, sizeof(err.msg) - n, " (--force deletes it all the same, "
			 "stopping its tasks)");
	return service_fail(e, c->cluster, name, &err);
}

/* ---- berth service SUBCOMMAND ----------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary;
} subcommands[] = {
	{ "create", service_create, "create a service: desired count of a task definition" },
	{ "update", service_update, "scale, deploy a revision, change the deployment bounds" },
	{ "ls", service_ls, "list the cluster's services" },
	{ "inspect", service_inspect, "print a service as JSON" },
	{ "rm", service_rm, "delete a service (--force: one still scaled above 0)" },
	{ "events", service_events, "print (-f: follow) a service's events" },
};

#define SERVICE_USAGE "berth service SUBCOMMAND [ARGS]"

/* The subcommands (head: after the usage line). */
static void service_usage(FILE *f, bool head)
{
	if (head)
		fprintf(f, "usage: " SERVICE_USAGE "\n");
	fprintf(f, "\nsubcommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\n`berth service SUBCOMMAND --help` tells each one's options.\n");
}

int cmd_service(struct cli *c, int argc, char **argv)
{
	int first = cli_parse_options(c, argc, argv, true, SERVICE_USAGE);
	if (first == -2) {
		service_usage(stdout, false);
		return 0;
	}
	if (first < 0)
		return 2;
	if (first >= argc) {
		service_usage(stderr, true);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(argv[first], subcommands[i].name))
			return subcommands[i].run(c, argc - first, argv + first);
	if (!strcmp(argv[first], "help")) {
		service_usage(stdout, true);
		return 0;
	}
	fprintf(stderr, "berth: service: unknown subcommand \"%s\"\n", argv[first]);
	service_usage(stderr, true);
	return 2;
}
