/* berth run: registers an ad-hoc task definition for one image and runs it,
 * detached (-d) or in the foreground, following its output and exiting
 * with the essential container's exit code. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/logs.h"

#define RUN_FAMILY_PREFIX "berth-run-"
#define RUN_NAME_MAX 255
#define RUN_FAILED 125 /* berth's own failure, as docker run's */
#define RUN_STOP_REASON "Task stopped by user (berth run interrupted)"

struct run_opts {
	bool detach;
	const char *cpu;
	const char *memory;
	const char *name;
	const char **env;   /* argc slots */
	size_t n_env;
};

static int set_run_opt(void *ctx, int ch, const char *arg)
{
	struct run_opts *o = ctx;
	char *end;
	switch (ch) {
	case 'd':
		o->detach = true;
		return 0;
	case 'c':
		o->cpu = arg;
		return 0;
	case 'm':
		if (strtol(arg, &end, 10) <= 0 || *end) {
			fprintf(stderr, "berth: --memory %s: expected a whole number of MiB\n", arg);
			return -1;
		}
		o->memory = arg;
		return 0;
	case 'n':
		o->name = arg;
		return 0;
	case 'e':
		o->env[o->n_env++] = arg;
		return 0;
	}
	return -1;
}

/* s with every character outside [A-Za-z0-9_-] made '-', at most max long. */
static void sanitize(const char *s, size_t len, char *out, size_t max)
{
	size_t n = len < max ? len : max;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
		out[i] = ok ? ch : '-';
	}
	out[n] = '\0';
}

/* The last path component of an image reference, without tag or digest:
 * "127.0.0.1:5000/library/busybox:1.36@sha256:…" → "busybox". */
static void image_basename(const char *image, char out[RUN_NAME_MAX + 1])
{
	size_t len = strcspn(image, "@");
	const char *base = image;
	for (const char *p = image; p < image + len; p++)
		if (*p == '/')
			base = p + 1;
	size_t blen = strcspn(base, ":@");
	if (!blen) {
		base = "container";
		blen = strlen(base);
	}
	sanitize(base, blen, out, RUN_NAME_MAX);
}

static cJSON *environment(const struct run_opts *o)
{
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < o->n_env; i++) {
		const char *kv = o->env[i], *eq = strchr(kv, '=');
		_cleanup_free_ char *key = eq ? strndup(kv, (size_t)(eq - kv)) : strdup(kv);
		const char *value = eq ? eq + 1 : getenv(kv);
		if (key && !value) /* -e NAME of a variable we do not have: left out, as docker */
			continue;
		cJSON *pair = cJSON_CreateObject();
		if (!pair || !cJSON_AddItemToArray(arr, pair)) {
			cJSON_Delete(pair);
			return NULL;
		}
		if (!key || !cJSON_AddStringToObject(pair, "name", key) ||
		    !cJSON_AddStringToObject(pair, "value", value))
			return NULL;
	}
	return TAKE_PTR(arr);
}

static cJSON *string_array(char **v, int n)
{
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < n; i++)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateString(v[i])))
			return NULL;
	return TAKE_PTR(arr);
}

/* The one container: image, command, environment, memory. */
static cJSON *container_definition(const struct run_opts *o, const char *name, char **argv,
				   int argc)
{
	_cleanup_(cJSON_Deletep) cJSON *c = cJSON_CreateObject();
	cJSON *env = environment(o);
	if (!c || !cJSON_AddItemToObject(c, "environment", env)) {
		cJSON_Delete(env);
		return NULL;
	}
	if (!cJSON_AddStringToObject(c, "name", name) ||
	    !cJSON_AddStringToObject(c, "image", argv[0]) || !cJSON_AddTrueToObject(c, "essential"))
		return NULL;
	if (argc > 1) {
		cJSON *cmd = string_array(argv + 1, argc - 1);
		if (!cJSON_AddItemToObject(c, "command", cmd)) {
			cJSON_Delete(cmd);
			return NULL;
		}
	}
	if (o->memory && !cJSON_AddNumberToObject(c, "memory", (double)strtol(o->memory, NULL, 10)))
		return NULL;
	return TAKE_PTR(c);
}

/* The RegisterTaskDefinition request of `berth run`. */
static cJSON *run_definition(const struct run_opts *o, const char *family, const char *name,
			     char **argv, int argc)
{
	_cleanup_(cJSON_Deletep) cJSON *td = cJSON_CreateObject();
	cJSON *defs = td ? cJSON_AddArrayToObject(td, "containerDefinitions") : NULL;
	cJSON *c = defs ? container_definition(o, name, argv, argc) : NULL;
	if (!c || !cJSON_AddItemToArray(defs, c)) {
		cJSON_Delete(c);
		return NULL;
	}
	if (!cJSON_AddStringToObject(td, "family", family) ||
	    !cJSON_AddStringToObject(td, "networkMode", "awsvpc") ||
	    !cJSON_AddStringToObject(td, "cpu", o->cpu ? o->cpu : "256") ||
	    !cJSON_AddStringToObject(td, "memory", o->memory ? o->memory : "512"))
		return NULL;
	return TAKE_PTR(td);
}

/* The RunTask request.  The default cluster is named by leaving the
 * member out: then the daemon creates it on first use, as ECS does. */
static cJSON *run_request(const char *cluster, const char *td_arn)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	cJSON *nc = req ? cJSON_AddObjectToObject(req, "networkConfiguration") : NULL;
	cJSON *vpc = nc ? cJSON_AddObjectToObject(nc, "awsvpcConfiguration") : NULL;
	/* One subnet, the daemon's (its --subnet): ECS refuses an empty list. */
	cJSON *subnets = vpc ? cJSON_AddArrayToObject(vpc, "subnets") : NULL;
	if (!subnets || !cJSON_AddItemToArray(subnets, cJSON_CreateString(BERTH_CLI_SUBNET)) ||
	    (strcmp(cluster, BERTH_DEFAULT_CLUSTER) &&
	     !cJSON_AddStringToObject(req, "cluster", cluster)) ||
	    !cJSON_AddStringToObject(req, "taskDefinition", td_arn) ||
	    !cJSON_AddNumberToObject(req, "count", 1) ||
	    !cJSON_AddStringToObject(req, "startedBy", "berth-run"))
		return NULL;
	return TAKE_PTR(req);
}

static int run_task(struct ecs *e, const char *cluster, const char *td_arn, cJSON **ret,
		    struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = run_request(cluster, td_arn);
	if (!req)
		return berth_errf(err, ENOMEM, "RunTask: out of memory");
	int r = ecs_call(e, "RunTask", req, ret, err);
	if (r < 0)
		return r;
	const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(*ret, "tasks");
	if (cJSON_GetArraySize(tasks) > 0)
		return 0;
	const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(*ret, "failures"), 0);
	berth_errf(err, EIO, "RunTask %s: %s%s%s", td_arn,
		   ecs_str(f, "reason") ? ecs_str(f, "reason") : "no task was started",
		   ecs_str(f, "detail") ? ": " : "", ecs_str(f, "detail") ? ecs_str(f, "detail") : "");
	cJSON_Delete(TAKE_PTR(*ret));
	return -EIO;
}

/* Registers the definition and starts the task; *ret_resp is RunTask's
 * answer (with one task). */
static int start(struct ecs *e, const struct run_opts *o, const char *cluster, char **argv,
		 int argc, cJSON **ret_resp, struct berth_err *err)
{
	char base[RUN_NAME_MAX + 1], family[RUN_NAME_MAX + 1];
	image_basename(argv[0], base);
	if (o->name)
		sanitize(o->name, strlen(o->name), family, RUN_NAME_MAX);
	else
		snprintf(family, sizeof(family), RUN_FAMILY_PREFIX "%.*s",
			 (int)(RUN_NAME_MAX - strlen(RUN_FAMILY_PREFIX)), base);
	_cleanup_(cJSON_Deletep) cJSON *td = run_definition(o, family, base, argv, argc);
	_cleanup_(cJSON_Deletep) cJSON *resp = NULL;
	if (!td)
		return berth_errf(err, ENOMEM, "run: out of memory");
	int r = ecs_call(e, "RegisterTaskDefinition", td, &resp, err);
	if (r < 0)
		return r;
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(resp, "taskDefinition");
	const char *arn = ecs_str(def, "taskDefinitionArn");
	if (!arn)
		return berth_errf(err, EBADMSG, "RegisterTaskDefinition: no taskDefinitionArn");
	/* From here a Ctrl-C must stop the task, not leave it running. */
	if (!o->detach)
		log_hold_signals();
	return run_task(e, cluster, arn, ret_resp, err);
}

/* ---- the foreground ---------------------------------------------------------- */

struct fg {
	struct task_watch w;
	const char *id;
	bool stopping;
};

static int on_signal(void *ctx, int signo, struct berth_err *err)
{
	struct fg *fg = ctx;
	(void)signo;
	if (fg->stopping)
		return 1; /* a second Ctrl-C: leave it stopping */
	fg->stopping = true;
	fprintf(stderr, "berth: stopping task %s (again to detach)\n", fg->id);
	return ecs_stop_task(fg->w.ecs, fg->w.cluster, fg->w.task, RUN_STOP_REASON, NULL, err);
}

/* The exit code of a stopped task: its essential container's. */
static int exit_code(const cJSON *t, const char *id)
{
	const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "containers"), 0);
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(c, "exitCode");
	const char *stop = ecs_str(t, "stopCode"), *why = ecs_str(t, "stoppedReason");
	if (stop && !strcmp(stop, "TaskFailedToStart")) {
		fprintf(stderr, "berth: task %s failed to start: %s\n", id, why ? why : stop);
		const char *reason = ecs_str(c, "reason");
		if (reason && (!why || strcmp(reason, why)))
			fprintf(stderr, "berth: container %s: %s\n", ecs_str(c, "name"), reason);
		return RUN_FAILED;
	}
	if (cJSON_IsNumber(code))
		return code->valueint & 0xff;
	fprintf(stderr, "berth: task %s stopped without an exit code: %s\n", id,
		why ? why : "no reason given");
	return RUN_FAILED;
}

/* Follows the task's output (quiet: none) until it is STOPPED; fg->w.last
 * is then its last description. */
static int follow_task(struct cli *cl, struct fg *fg, const char *container,
		       struct log_follow *f, struct berth_err *err)
{
	char dir[PATH_MAX];
	*f = (struct log_follow){ .dir = dir, .container = container, .follow = true,
				  .done = task_watch_done, .on_signal = on_signal, .ctx = fg };
	int r = task_log_dir(cl->log_root, fg->id, dir, err);
	if (r == 0)
		r = log_follow(f, err);
	if (r == 0 && !f->signo && !fg->w.last)
		r = berth_errf(err, ENOENT, "task %s is gone from the daemon", fg->id);
	return r;
}

static int foreground(struct cli *cl, struct ecs *e, const cJSON *task, bool quiet)
{
	const char *arn = ecs_str(task, "taskArn");
	const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(task, "containers"), 0);
	char id[ECS_TASK_ID_LEN + 1];
	struct fg fg = { .w = { .ecs = e, .cluster = cl->cluster, .task = arn }, .id = id };
	struct log_follow f;
	struct berth_err err = { 0 };
	int r = ecs_task_id(arn ? arn : "", id, &err);
	if (r == 0)
		r = follow_task(cl, &fg, quiet ? NULL : ecs_str(c, "name"), &f, &err);
	int rc;
	if (r < 0)
		rc = (cli_fail(&err), RUN_FAILED);
	else if (f.signo)
		rc = 128 + f.signo;
	else if ((rc = exit_code(fg.w.last, id)) >= 0 && quiet && ecs_print_json(fg.w.last))
		rc = RUN_FAILED;
	cJSON_Delete(fg.w.last);
	return rc;
}

static const char run_usage[] =
	"berth run [-d] [--cpu U] [--memory MiB] [-e K=V]... [--name N] [--cluster C]\n"
	"          [--output table|json] IMAGE [CMD...]";
static const char run_help[] =
	"Registers a task definition of one container running IMAGE with CMD (none:\n"
	"the image's own) and runs it.  In the foreground berth prints the container's\n"
	"output and exits with its exit code (125: berth or the task's start failed);\n"
	"Ctrl-C stops the task.  Options end at IMAGE.\n"
	"\n"
	"  -d, --detach       print the task id and exit at once\n"
	"  --cpu U            the task's CPU units (default 256)\n"
	"  --memory MiB       the task's and the container's memory (default: task 512)\n"
	"  -e, --env K=V      set a variable in the container (-e K: berth's own K)\n"
	"  --name N           the task definition's family (default berth-run-IMAGE)\n"
	"  --output json      no output while it runs; the stopped task's JSON at the end\n"
	"                     (-d: RunTask's answer)\n";

int cmd_run(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "detach", no_argument, NULL, 'd' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "env", required_argument, NULL, 'e' },
		{ "name", required_argument, NULL, 'n' },
		{ 0 },
	};
	_cleanup_free_ const char **env = calloc((size_t)argc, sizeof(*env));
	struct run_opts o = { .env = env };
	const struct cli_cmd cmd = { .usage = run_usage, .help = run_help, .opts = opts,
				     .shortopts = "de:",
				     .stop_at_positional = true, .set = set_run_opt, .ctx = &o };
	if (!env)
		return RUN_FAILED;
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 1, -1, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	_cleanup_(cJSON_Deletep) cJSON *resp = NULL;
	if (ecs_open(c->socket, &e, &err) < 0 ||
	    start(e, &o, c->cluster, argv + first, argc - first, &resp, &err) < 0)
		return cli_fail(&err), RUN_FAILED;
	const cJSON *task = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "tasks"), 0);
	if (!o.detach)
		return foreground(c, e, task, c->json);
	if (c->json)
		return ecs_print_json(resp);
	const char *arn = ecs_str(task, "taskArn"), *slash = arn ? strrchr(arn, '/') : NULL;
	printf("%s\n", slash ? slash + 1 : arn ? arn : "-");
	return 0;
}
