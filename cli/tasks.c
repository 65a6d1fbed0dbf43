/* berth ps | inspect | stop: tasks through the daemon. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/table.h"

/* ---- ps -------------------------------------------------------------------- */

static int list_tasks(struct ecs *e, const char *cluster, const char *desired, cJSON *arns,
		      struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cluster", cluster) ||
	    !cJSON_AddStringToObject(req, "desiredStatus", desired))
		return berth_errf(err, ENOMEM, "ListTasks: out of memory");
	return ecs_list_all(e, "ListTasks", req, "taskArns", arns, err);
}

static double created_at(const cJSON *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "createdAt");
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int newest_first(const void *a, const void *b)
{
	double x = created_at(*(cJSON *const *)a), y = created_at(*(cJSON *const *)b);
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The task's address: a container's network interface, else the ENI
 * attachment's privateIPv4Address detail. */
static const char *task_ip(const cJSON *t)
{
	const cJSON *c, *ni, *a, *d;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "containers"))
		cJSON_ArrayForEach(ni, cJSON_GetObjectItemCaseSensitive(c, "networkInterfaces"))
			if (ecs_str(ni, "privateIpv4Address"))
				return ecs_str(ni, "privateIpv4Address");
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(t, "attachments"))
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(a, "details")) {
			const char *name = ecs_str(d, "name");
			if (name && !strcmp(name, "privateIPv4Address") && ecs_str(d, "value"))
				return ecs_str(d, "value");
		}
	return "-";
}

static void format_age(double since, char buf[24])
{
	long s = since > 0 ? (long)((double)time(NULL) - since) : -1;
	if (s < 0)
		snprintf(buf, 24, "-");
	else if (s < 60)
		snprintf(buf, 24, "%lds", s);
	else if (s < 3600)
		snprintf(buf, 24, "%ldm", s / 60);
	else if (s < 86400)
		snprintf(buf, 24, "%ldh", s / 3600);
	else
		snprintf(buf, 24, "%ldd", s / 86400);
}

static const struct table_col ps_cols[] = {
	{ "TASK ID", 32 }, { "DEFINITION", 30 }, { "STATUS", 14 }, { "HEALTH", 9 }, { "IP", 15 },
	{ "AGE", 0 },
};

static int print_ps_table(const cJSON *tasks)
{
	_cleanup_(table_done) struct table tab = TABLE_INIT(ps_cols);
	const cJSON *t;
	cJSON_ArrayForEach(t, tasks) {
		const char *arn = ecs_str(t, "taskArn"), *slash = arn ? strrchr(arn, '/') : NULL;
		char age[24];
		format_age(created_at(t), age);
		const char *row[] = { slash ? slash + 1 : arn,
				      ecs_td_name(ecs_str(t, "taskDefinitionArn")),
				      ecs_str(t, "lastStatus"), ecs_str(t, "healthStatus"),
				      task_ip(t), age };
		if (table_add(&tab, row) < 0) {
			fprintf(stderr, "berth: ps: out of memory\n");
			return 1;
		}
	}
	table_print(&tab, stdout);
	return 0;
}

/* The tasks of cluster whose desired status is RUNNING (all: STOPPED too),
 * described, newest first. */
static int ps_tasks(struct ecs *e, const char *cluster, bool all, cJSON *out,
		    struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *arns = cJSON_CreateArray();
	if (!arns)
		return berth_errf(err, ENOMEM, "ListTasks: out of memory");
	int r = list_tasks(e, cluster, "RUNNING", arns, err);
	if (r == 0 && all)
		r = list_tasks(e, cluster, "STOPPED", arns, err);
	/* No default cluster yet: nothing has run, nothing to list. */
	if (r < 0 && ecs_no_default_cluster(e, cluster))
		return 0;
	if (r == 0)
		r = ecs_describe_all(e, &ecs_op_tasks, cluster, arns, out, err);
	if (r == 0 && ecs_sort_array(out, newest_first) < 0)
		r = berth_errf(err, ENOMEM, "ps: out of memory");
	return r;
}

int cmd_ps(struct cli *c, int argc, char **argv)
{
	bool all = false;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = cli_list_args(c, argc, argv, "berth ps [-a] [--cluster C] [--output table|json]",
			       "Lists the cluster's running tasks, newest first: TASK ID, DEFINITION,\n"
			       "STATUS, HEALTH, IP, AGE (json: the tasks as DescribeTasks gives them).\n\n"
			       "  -a, --all          stopped tasks too\n",
			       &all, &e);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *tasks = cJSON_CreateArray();
	if (!tasks)
		berth_errf(&err, ENOMEM, "ps: out of memory");
	if (!tasks || ps_tasks(e, c->cluster, all, tasks, &err) < 0)
		return cli_fail(&err);
	if (c->json)
		return ecs_print_json(tasks);
	return print_ps_table(tasks);
}

/* ---- inspect, stop ---------------------------------------------------------- */

int cmd_inspect(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth inspect [--cluster C] TASK",
		.help = "Prints task TASK (its 32-hex id or its ARN) as JSON, as DescribeTasks\n"
			"gives it.\n",
	};
	char id[ECS_TASK_ID_LEN + 1];
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = cli_task_args(c, argc, argv, &cmd, id, &e);
	if (rc >= 0)
		return rc;
	const char *task = argv[argc - 1];
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *t = NULL;
	if (ecs_describe_task(e, c->cluster, task, &t, &err) < 0)
		return cli_fail(&err);
	if (!t) {
		fprintf(stderr, "berth: task %s not found\n", task);
		return 1;
	}
	return ecs_print_json(t);
}

struct stop_opts {
	const char *reason;
};

static int set_stop_opt(void *ctx, int ch, const char *arg)
{
	if (ch != 'R')
		return -1;
	((struct stop_opts *)ctx)->reason = arg;
	return 0;
}

int cmd_stop(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { "reason", required_argument, NULL, 'R' }, { 0 } };
	struct stop_opts so = { .reason = "Task stopped by user" };
	const struct cli_cmd cmd = {
		.usage = "berth stop [--reason R] [--cluster C] [--output table|json] TASK",
		.help = "Asks the daemon to stop task TASK (its id or ARN) and prints its id (json:\n"
			"StopTask's answer); it does not wait for the task to stop.\n\n"
			"  --reason R         the stoppedReason (default \"Task stopped by user\")\n",
		.opts = opts, .set = set_stop_opt, .ctx = &so,
	};
	char id[ECS_TASK_ID_LEN + 1];
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = cli_task_args(c, argc, argv, &cmd, id, &e);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *resp = NULL;
	if (ecs_stop_task(e, c->cluster, argv[argc - 1], so.reason, &resp, &err) < 0)
		return cli_fail(&err);
	if (c->json)
		return ecs_print_json(resp);
	printf("%s\n", id);
	return 0;
}
