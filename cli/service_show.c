/* berth service ls | inspect | events: what the daemon tells of services. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/logs.h"
#include "cli/services.h"
#include "cli/table.h"

#define EVENTS_POLL_MS 1000 /* how often `events -f` asks DescribeServices */

/* ---- ls ---------------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
	const char *x = ecs_str(*(const cJSON *const *)a, "serviceName");
	const char *y = ecs_str(*(const cJSON *const *)b, "serviceName");
	return strcmp(x ? x : "", y ? y : "");
}

/* Every ACTIVE service of cluster, described, by name. */
static int list_services(struct ecs *e, const char *cluster, cJSON *out, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *arns = cJSON_CreateArray();
	if (!req || !arns || !cJSON_AddStringToObject(req, "cluster", cluster))
		return berth_errf(err, ENOMEM, "ListServices: out of memory");
	int r = ecs_list_all(e, "ListServices", req, "serviceArns", arns, err);
	/* No default cluster yet: no service either. */
	if (r < 0 && ecs_no_default_cluster(e, cluster))
		return 0;
	if (r == 0)
		r = ecs_describe_all(e, &ecs_op_services, cluster, arns, out, err);
	if (r == 0 && ecs_sort_array(out, by_name) < 0)
		r = berth_errf(err, ENOMEM, "service ls: out of memory");
	return r;
}

/* The rolloutState of the PRIMARY deployment of service s. */
static const char *rollout_state(const cJSON *s)
{
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(s, "deployments")) {
		const char *status = ecs_str(d, "status");
		if (status && !strcmp(status, "PRIMARY"))
			return ecs_str(d, "rolloutState");
	}
	return NULL;
}

static void count_str(const cJSON *s, const char *name, char buf[24])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, name);
	if (cJSON_IsNumber(v))
		snprintf(buf, 24, "%.0f", v->valuedouble);
	else
		snprintf(buf, 24, "-");
}

static const struct table_col ls_cols[] = {
	{ "NAME", 0 },    { "STATUS", 0 },          { "DESIRED", 0 }, { "RUNNING", 0 },
	{ "PENDING", 0 }, { "TASK DEFINITION", 0 }, { "ROLLOUT", 0 },
};

static int print_ls_table(const cJSON *services)
{
	_cleanup_(table_done) struct table tab = TABLE_INIT(ls_cols);
	const cJSON *s;
	cJSON_ArrayForEach(s, services) {
		char desired[24], running[24], pending[24];
		count_str(s, "desiredCount", desired);
		count_str(s, "runningCount", running);
		count_str(s, "pendingCount", pending);
		const char *row[] = { ecs_str(s, "serviceName"), ecs_str(s, "status"), desired,
				      running, pending, ecs_td_name(ecs_str(s, "taskDefinition")),
				      rollout_state(s) };
		if (table_add(&tab, row) < 0) {
			fprintf(stderr, "berth: service ls: out of memory\n");
			return 1;
		}
	}
	table_print(&tab, stdout);
	return 0;
}

int service_ls(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth service ls [--cluster C] [--output table|json]",
		.help = "Lists the cluster's services by name: NAME, STATUS, DESIRED, RUNNING,\n"
			"PENDING, TASK DEFINITION, ROLLOUT (json: as DescribeServices gives them).\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 0, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	_cleanup_(cJSON_Deletep) cJSON *services = cJSON_CreateArray();
	if (!services)
		berth_errf(&err, ENOMEM, "service ls: out of memory");
	if (!services || ecs_open(c->socket, &e, &err) < 0 ||
	    list_services(e, c->cluster, services, &err) < 0)
		return cli_fail(&err);
	return c->json ? ecs_print_json(services) : print_ls_table(services);
}

/* ---- inspect ------------------------------------------------------------------ */

/* The service name in cluster, described into *ret; 1 after printing why
 * there is none. */
static int describe_service(struct ecs *e, const char *cluster, const char *name, cJSON **ret)
{
	struct berth_err err = { 0 };
	if (ecs_describe_one(e, &ecs_op_services, cluster, name, ret, &err) < 0)
		return service_fail(e, cluster, name, &err);
	return *ret ? 0 : service_not_found(name);
}

/* service_args(), then the service described into *ret.  -1 to go on,
 * else the exit code. */
static int describe_args(struct cli *c, int argc, char **argv, const struct cli_cmd *cmd,
			 const char **name, struct ecs **e, cJSON **ret)
{
	int rc = service_args(c, argc, argv, cmd, name, e);
	if (rc >= 0)
		return rc; /* --help, or a usage error */
	rc = describe_service(*e, c->cluster, *name, ret);
	return rc ? rc : -1;
}

int service_inspect(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth service inspect [--cluster C] NAME",
		.help = "Prints service NAME (its name or ARN) as JSON, as DescribeServices gives it.\n",
	};
	const char *name;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	_cleanup_(cJSON_Deletep) cJSON *s = NULL;
	int rc = describe_args(c, argc, argv, &cmd, &name, &e, &s);
	return rc >= 0 ? rc : ecs_print_json(s);
}

/* ---- events ------------------------------------------------------------------- */

struct events_opts {
	long last;    /* -n: only the last N; -1: all */
	bool follow;  /* -f */
};

static int set_events_opt(void *ctx, int ch, const char *arg)
{
	struct events_opts *o = ctx;
	if (ch == 'f') {
		o->follow = true;
		return 0;
	}
	return ch == 'n' ? service_count("tail", arg, &o->last) : -1;
}

/* An event's createdAt (epoch seconds) as RFC 3339 in UTC, milliseconds. */
static void format_time(const cJSON *ev, char buf[40])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "createdAt");
	double at = cJSON_IsNumber(v) ? v->valuedouble : 0;
	time_t s = (time_t)at;
	int ms = (int)((at - (double)s) * 1000.0 + 0.5);
	if (ms > 999)
		ms = 999;
	struct tm tm;
	char day[20]; /* 4-digit years */
	gmtime_r(&s, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 40, "%s.%03dZ", day, ms);
}

static void print_event(const cJSON *ev, bool json)
{
	if (json) {
		_cleanup_free_ char *text = cJSON_PrintUnformatted(ev);
		if (text)
			puts(text);
		return;
	}
	char at[40];
	const char *msg = ecs_str(ev, "message");
	format_time(ev, at);
	printf("%s  %s\n", at, msg ? msg : "");
}

static bool has_event(const cJSON *events, const char *id)
{
	const cJSON *ev;
	cJSON_ArrayForEach(ev, events) {
		const char *x = ecs_str(ev, "id");
		if (x && !strcmp(x, id))
			return true;
	}
	return false;
}

/* How many of the events (newest first) the last `last` are (-1: all). */
static int window(const cJSON *events, long last)
{
	int n = cJSON_GetArraySize(events);
	return last >= 0 && last < n ? (int)last : n;
}

/* Prints the events of s (newest first, as the daemon keeps them) oldest
 * first, one a line: those not in seen (NULL: all), at most the last
 * `last` (-1: all). */
static void print_new_events(const cJSON *s, const cJSON *seen, long last, bool json)
{
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(s, "events");
	for (int i = window(events, last) - 1; i >= 0; i--) {
		const cJSON *ev = cJSON_GetArrayItem(events, i);
		const char *id = ecs_str(ev, "id");
		if (!seen || !id || !has_event(seen, id))
			print_event(ev, json);
	}
	fflush(stdout);
}

/* Waits up to ms for SIGINT or SIGTERM (blocked): the signal, or 0. */
static int wait_signal(long ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	int signo = sigtimedwait(&set, NULL, &ts);
	return signo > 0 ? signo : 0;
}

/* Prints the new events of service name every EVENTS_POLL_MS until it is
 * INACTIVE or gone (0) or a signal comes (128 + the signal).  *s is the
 * last description, whose events have been printed. */
static int follow_events(struct ecs *e, const char *cluster, const char *name, cJSON **s,
			 bool json)
{
	for (;;) {
		const char *status = ecs_str(*s, "status");
		if (status && !strcmp(status, "INACTIVE"))
			return 0;
		int signo = wait_signal(EVENTS_POLL_MS);
		if (signo)
			return 128 + signo;
		struct berth_err err = { 0 };
		cJSON *next = NULL;
		if (ecs_describe_one(e, &ecs_op_services, cluster, name, &next, &err) < 0)
			return service_fail(e, cluster, name, &err);
		if (!next)
			return 0;
		print_new_events(next, cJSON_GetObjectItemCaseSensitive(*s, "events"), -1, json);
		cJSON_Delete(*s);
		*s = next;
	}
}

/* The last `last` events of s, oldest first (json without -f). */
static int print_events_json(const cJSON *s, long last)
{
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(s, "events");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	for (int i = window(events, last) - 1; out && i >= 0; i--)
		if (!cJSON_AddItemToArray(out, cJSON_Duplicate(cJSON_GetArrayItem(events, i), true)))
			cJSON_Delete(TAKE_PTR(out));
	if (!out) {
		fprintf(stderr, "berth: service events: out of memory\n");
		return 1;
	}
	return ecs_print_json(out);
}

int service_events(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tail", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ 0 },
	};
	struct events_opts o = { .last = -1 };
	const struct cli_cmd cmd = {
		.usage = "berth service events [-n N] [-f] [--cluster C] [--output table|json] NAME",
		.help = "Prints service NAME's events, oldest first: TIME  MESSAGE (json: the events).\n\n"
			"  -n, --tail N       only the last N\n"
			"  -f, --follow       then print new ones as they come, until the service is\n"
			"                     INACTIVE or Ctrl-C\n",
		.opts = opts, .shortopts = "n:f", .set = set_events_opt, .ctx = &o,
	};
	const char *name;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	_cleanup_(cJSON_Deletep) cJSON *s = NULL;
	int rc = describe_args(c, argc, argv, &cmd, &name, &e, &s);
	if (rc >= 0)
		return rc;
	/* Held before the first line, so that a Ctrl-C ends the loop cleanly. */
	if (o.follow)
		log_hold_signals();
	if (c->json && !o.follow)
		return print_events_json(s, o.last);
	print_new_events(s, NULL, o.last, c->json);
	return o.follow ? follow_events(e, c->cluster, name, &s, c->json) : 0;
}
