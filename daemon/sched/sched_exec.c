/* daemon/sched/sched_exec: `berth exec` (sched.h, sched_exec()).  The
 * daemon decides whether the process may run (what the store says of the
 * task and its container); the task's shim, which alone can enter the
 * container, starts it and talks to the client from then on
 * (runtime/shim_exec.c).  Nothing of the session passes through the
 * daemon's loop after the hand-over. */
#include "daemon/sched/sched_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/fdpass.h"
#include "common/json.h"

/* The container the client means, or why there is none. */
static int pick_container(const struct store_task *t, const char *name,
			  const struct store_container **ret, struct berth_err *err)
{
	if (!name && t->n_containers != 1) {
		char names[512] = "";
		for (size_t i = 0, off = 0; i < t->n_containers && off < sizeof(names); i++)
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
						i ? ", " : "", t->containers[i].name);
		return berth_errf(err, EINVAL, "task %s has %zu containers (%s): name one with "
				  "--container", t->id, t->n_containers, names);
	}
	for (size_t i = 0; i < t->n_containers; i++) {
		const struct store_container *c = &t->containers[i];
		if (name && strcmp(c->name, name))
			continue;
		if (c->last_status != STORE_TASK_RUNNING)
			return berth_errf(err, EINVAL, "container %s of task %s is %s: exec needs a "
					  "RUNNING container", c->name, t->id,
					  store_task_status_name(c->last_status));
		*ret = c;
		return 0;
	}
	return berth_errf(err, ENOENT, "task %s has no container \"%s\"", t->id, name);
}

static int check(struct sched *s, const struct sched_exec_req *q, struct store_task **ret_t,
		 const struct store_container **ret_c, struct berth_err *err)
{
	if (!cJSON_IsArray(q->command) || cJSON_GetArraySize(q->command) < 1)
		return berth_errf(err, EINVAL, "exec in task %s: no command given", q->task);
	for (const cJSON *a = q->command->child; a; a = a->next)
		if (!cJSON_IsString(a))
			return berth_errf(err, EINVAL, "exec in task %s: the command's arguments must "
					  "be strings", q->task);
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	int r = store_task_get(s->store, q->task, &t, err);
	if (r == -ENOENT)
		return berth_errf(err, ENOENT, "task %s: not found", q->task);
	if (r < 0)
		return r;
	if (t->last_status != STORE_TASK_RUNNING || t->desired_status != STORE_TASK_RUNNING)
		return berth_errf(err, EINVAL, "task %s is %s (desired %s): exec needs a RUNNING task",
				  t->id, store_task_status_name(t->last_status),
				  store_task_status_name(t->desired_status));
	if ((r = pick_container(t, q->container, ret_c, err)) < 0)
		return r;
	*ret_t = TAKE_PTR(t);
	return 0;
}

/* {"op":"exec",…} for the shim, one line. */
static char *shim_request(const struct sched_exec_req *q, const char *container)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *cmd = cJSON_Duplicate(q->command, true);
	if (!o || !cmd || !cJSON_AddItemToObject(o, "command", cmd)) {
		cJSON_Delete(cmd);
		return NULL;
	}
	if (!cJSON_AddStringToObject(o, "op", "exec") ||
	    !cJSON_AddStringToObject(o, "container", container) ||
	    !cJSON_AddBoolToObject(o, "tty", q->tty) || !cJSON_AddNumberToObject(o, "rows", q->rows) ||
	    !cJSON_AddNumberToObject(o, "cols", q->cols))
		return NULL;
	char *text = cJSON_PrintUnformatted(o);
	char *line = text ? realloc(text, strlen(text) + 2) : NULL;
	if (!line) {
		free(text);
		return NULL;
	}
	strcat(line, "\n");
	return line;
}

int sched_exec(struct sched *s, const struct sched_exec_req *q, const int *fds, size_t n_fds,
	       struct berth_err *err)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	const struct store_container *c = NULL;
	int r = check(s, q, &t, &c, err);
	if (r < 0)
		return r;
	if (n_fds != (q->tty ? 1u : 4u))
		return berth_errf(err, EPROTO, "exec in task %s: %zu descriptors, expected %d",
				  t->id, n_fds, q->tty ? 1 : 4);
	_cleanup_free_ char *line = shim_request(q, c->name);
	if (!line)
		return berth_errf(err, ENOMEM, "exec in task %s: out of memory", t->id);
	_cleanup_close_ int fd = sched_shim_connect(s, t->id, err);
	if (fd < 0)
		return berth_err_wrap(err, "exec in container %s", c->name);
	/* The shim answers the client itself; its answer on this connection
	 * (ok, or the refusal it also sent the client) is not awaited. */
	if ((r = berth_send_fds(fd, line, strlen(line), fds, n_fds, 0)) < 0)
		return berth_errnof(err, -r, "exec in container %s of task %s: hand over to its shim",
				    c->name, t->id);
	return 0;
}
