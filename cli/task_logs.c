/* berth logs: a task's container output, from the log files the task agent
 * writes (cli/logs.c reads them). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/logs.h"

int task_watch_done(void *ctx, struct berth_err *err)
{
	struct task_watch *w = ctx;
	cJSON *t = NULL;
	int r = ecs_describe_task(w->ecs, w->cluster, w->task, &t, err);
	if (r < 0)
		return r;
	if (!t)
		return 1;
	cJSON_Delete(w->last);
	w->last = t;
	const char *status = ecs_str(t, "lastStatus");
	return status && !strcmp(status, "STOPPED");
}

int task_log_dir(const char *log_root, const char *task_id, char *buf, struct berth_err *err)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", log_root, task_id) >= PATH_MAX)
		return berth_errf(err, ENAMETOOLONG, "--log-root %s: too long", log_root);
	return 0;
}

static bool has_container(const cJSON *t, const char *name)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "containers")) {
		const char *n = ecs_str(c, "name");
		if (n && !strcmp(n, name))
			return true;
	}
	return false;
}

/* The first essential container of t's task definition that t has. */
static const char *first_essential(struct ecs *e, const cJSON *t)
{
	const char *arn = ecs_str(t, "taskDefinitionArn");
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *resp = NULL;
	if (!arn || !req || !cJSON_AddStringToObject(req, "taskDefinition", arn) ||
	    ecs_call(e, "DescribeTaskDefinition", req, &resp, NULL) < 0)
		return NULL;
	const cJSON *td = cJSON_GetObjectItemCaseSensitive(resp, "taskDefinition"), *c, *tc;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(td, "containerDefinitions")) {
		const char *name = ecs_str(c, "name");
		if (!name || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "essential")))
			continue;
		cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(t, "containers"))
			if (ecs_str(tc, "name") && !strcmp(ecs_str(tc, "name"), name))
				return ecs_str(tc, "name");
	}
	return NULL;
}

static void container_names(const cJSON *t, char *buf, size_t n)
{
	const cJSON *c;
	size_t len = 0;
	buf[0] = '\0';
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "containers"))
		if (ecs_str(c, "name") && len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "",
						ecs_str(c, "name"));
}

int task_log_container(struct ecs *e, const cJSON *t, const char *want, const char **ret,
		       struct berth_err *err)
{
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(t, "containers");
	char names[512];
	container_names(t, names, sizeof(names));
	if (want) {
		if (!has_container(t, want))
			return berth_errf(err, ENOENT, "task %s has no container %s (it has: %s)",
					  ecs_str(t, "taskArn"), want, names[0] ? names : "none");
		*ret = want;
		return 0;
	}
	const char *name = cJSON_GetArraySize(cs) == 1 ? ecs_str(cJSON_GetArrayItem(cs, 0), "name")
						       : first_essential(e, t);
	if (!name)
		name = ecs_str(cJSON_GetArrayItem(cs, 0), "name");
	if (!name)
		return berth_errf(err, ENOENT, "task %s has no containers", ecs_str(t, "taskArn"));
	*ret = name;
	return 0;
}

/* For a task the daemon does not know (any more): the only container with
 * a log in dir.  *ret is a heap copy. */
static int container_from_files(const char *dir, const char *task, char **ret,
				struct berth_err *err)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return berth_errf(err, ENOENT, "task %s not found", task);
	_cleanup_free_ char *found = NULL;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n <= 4 || strcmp(de->d_name + n - 4, ".log") || de->d_name[0] == '.')
			continue;
		if (found)
			return berth_errf(err, EINVAL, "task %s: logs of several containers (%s, %.*s, …) "
					  "in %s: choose one with --container", task, found,
					  (int)(n - 4), de->d_name, dir);
		if (!(found = strndup(de->d_name, n - 4)))
			return berth_errf(err, ENOMEM, "logs: out of memory");
	}
	if (!found)
		return berth_errf(err, ENOENT, "task %s not found", task);
	*ret = TAKE_PTR(found);
	return 0;
}

struct logs_opts {
	bool follow;
	const char *container;
};

static int set_logs_opt(void *ctx, int ch, const char *arg)
{
	struct logs_opts *o = ctx;
	if (ch == 'f')
		o->follow = true;
	else if (ch == 'C')
		o->container = arg;
	else
		return -1;
	return 0;
}

/* Which container, and whether the daemon knows the task (w->last). */
static int logs_target(struct task_watch *w, const char *dir, const char *want, char **ret,
		       struct berth_err *err)
{
	int r = ecs_describe_task(w->ecs, w->cluster, w->task, &w->last, err);
	if (r < 0)
		return r;
	if (!w->last) {
		if (!want)
			return container_from_files(dir, w->task, ret, err);
		if (!log_exists(dir, want))
			return berth_errf(err, ENOENT, "task %s not found", w->task);
		*ret = strdup(want);
	} else {
		const char *name;
		if ((r = task_log_container(w->ecs, w->last, want, &name, err)) < 0)
			return r;
		*ret = strdup(name);
	}
	return *ret ? 0 : berth_errf(err, ENOMEM, "logs: out of memory");
}

int cmd_logs(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "container", required_argument, NULL, 'C' },
		{ 0 },
	};
	struct logs_opts lo = { 0 };
	const struct cli_cmd cmd = {
		.usage = "berth logs [-f] [--container C] [--cluster C] [--log-root DIR] TASK",
		.help = "Prints a container's output (stdout and stderr as it wrote them) from the\n"
			"log files under --log-root, oldest first.  TASK: its id or ARN.\n\n"
			"  -f, --follow       keep printing until the task stops\n"
			"  --container C      which container (default: the only one, else the first\n"
			"                     essential one)\n",
		.opts = opts, .shortopts = "f", .set = set_logs_opt, .ctx = &lo,
	};
	char id[ECS_TASK_ID_LEN + 1], dir[PATH_MAX];
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = cli_task_args(c, argc, argv, &cmd, id, &e);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_free_ char *name = NULL;
	struct task_watch w = { .ecs = e, .cluster = c->cluster, .task = argv[argc - 1] };
	if (task_log_dir(c->log_root, id, dir, &err) < 0)
		return cli_fail(&err);
	rc = logs_target(&w, dir, lo.container, &name, &err);
	/* A task the daemon has forgotten is followed until Ctrl-C. */
	struct log_follow f = { .dir = dir, .container = name, .follow = lo.follow,
				.done = w.last ? task_watch_done : NULL, .ctx = &w };
	if (rc == 0)
		rc = log_follow(&f, &err);
	cJSON_Delete(w.last);
	if (rc < 0)
		return cli_fail(&err);
	return f.signo ? 128 + f.signo : 0;
}
