/* daemon/sched/sched: launching tasks (pull → plan → shim), stopping, adopting
 * what an earlier daemon left, pruning.  Following a shim: sched_watch.c;
 * the helper processes (pull, shim start, host network): sched_helpers.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/time.h"
#include "common/json.h"
#include "daemon/sched/ports.h"
#include "daemon/sched/sched_internal.h"
#include "daemon/sched/units.h"
#include "daemon/sched/taskplan.h"
#include "daemon/sched/tasksecrets.h"
#include "daemon/sched/volumes.h"
#include "images/store.h"

#define PRUNE_PERIOD_MAX_MS 60000
#define PRUNE_PERIOD_MIN_MS 100

void sched_say(struct sched *s, const char *fmt, ...)
{
	if (!s->cfg.log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("berth daemon: ", s->cfg.log);
	vfprintf(s->cfg.log, fmt, ap);
	fputc('\n', s->cfg.log);
	va_end(ap);
	fflush(s->cfg.log);
}

void sched_hook_stopped(struct sched *s, const struct store_task *t)
{
	if (s->cfg.hooks.task_stopped)
		s->cfg.hooks.task_stopped(s->cfg.hooks.arg, t);
}

void sched_task_dir(const struct sched *s, const char *id, char *buf, size_t n)
{
	snprintf(buf, n, "%s/tasks/%s", s->cfg.root, id);
}

void sched_sock_path(const struct sched *s, const char *id, char *buf, size_t n)
{
	snprintf(buf, n, "%s/shims/%s.sock", s->cfg.run_root, id);
}

struct sched_task *sched_task_new(struct sched *s, const char *id)
{
	struct sched_task *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->s = s;
	snprintf(t->id, sizeof(t->id), "%s", id);
	t->done_pipe[0] = t->done_pipe[1] = -1;
	sched_helper_init(&t->helper);
	t->next = s->tasks;
	s->tasks = t;
	return t;
}

struct sched_task *sched_task_find(struct sched *s, const char *id)
{
	for (struct sched_task *t = s->tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

static void launch_done_free(struct sched_task *t)
{
	if (t->done_ev)
		event_free(t->done_ev);
	t->done_ev = NULL;
	for (int i = 0; i < 2; i++)
		if (t->done_pipe[i] >= 0)
			close(t->done_pipe[i]);
	t->done_pipe[0] = t->done_pipe[1] = -1;
	for (size_t i = 0; i < t->n_digests; i++)
		free(t->digests[i]);
	free(t->digests);
	t->digests = NULL;
	t->n_digests = 0;
	for (size_t i = 0; i < t->n_pins; i++)
		free(t->pins[i]);
	free(t->pins);
	t->pins = NULL;
	t->n_pins = 0;
	free(TAKE_PTR(t->td_json));
	free(TAKE_PTR(t->ov_json));
	tasksecrets_free(TAKE_PTR(t->secrets));
	free(TAKE_PTR(t->groups));
	free(TAKE_PTR(t->publish));
	sched_resolved_put(TAKE_PTR(t->resolved));
}

struct sched_resolved *sched_resolved_new(void)
{
	struct sched_resolved *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->refs, 1);
	return r;
}

void sched_resolved_put(struct sched_resolved *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	for (size_t i = 0; i < TASKDEF_CONTAINERS_MAX; i++)
		free(r->digests[i]);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void sched_task_forget(struct sched_task *t)
{
	struct sched_task **pp = &t->s->tasks;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	launch_done_free(t);
	if (t->retry_ev)
		event_free(t->retry_ev);
	if (t->drain_ev)
		event_free(t->drain_ev);
	free(t->stop_reason);
	sched_helper_destroy(&t->helper);
	free(t);
}

const struct berth_policy *sched_policy(const struct sched *s)
{
	static const struct berth_policy dflt = { 0 };
	return s ? &s->cfg.policy : &dflt;
}

const char *sched_instance_id(const struct sched *s)
{
	return s->instance_id;
}

int64_t sched_instance_registered_at(const struct sched *s)
{
	return s->started_ms;
}

/* ---- the launch worker (no store, no loop: only its own sched_task) ---- */

/* The plan without the secrets' values (*ret_public, NULL when the task
 * has none) and with them (*ret). */
static int plan_text(struct sched_task *t, const cJSON *td, const cJSON *ov,
		     const struct taskplan_image *ti, struct taskplan_env *env, char **ret,
		     char **ret_public)
{
	struct berth_err *err = &t->err;
	_cleanup_(cJSON_Deletep) cJSON *plan = NULL;
	*ret = *ret_public = NULL;
	if (t->secrets) {
		int r = taskplan_build(td, ov, ti, env, &plan, err);
		if (r < 0)
			return r;
		*ret_public = cJSON_PrintUnformatted(plan);
		cJSON_Delete(TAKE_PTR(plan));
		if (!*ret_public)
			return berth_errf(err, ENOMEM, "out of memory");
	}
	env->secrets = t->secrets;
	int r = taskplan_build(td, ov, ti, env, &plan, err);
	tasksecrets_free(TAKE_PTR(t->secrets));  /* the plan holds them now */
	if (r < 0)
		return r;
	/* The values are in PLAN's strings: wiped before it is freed. */
	*ret = cJSON_PrintUnformatted(plan);
	tasksecrets_free(TAKE_PTR(plan));
	return *ret ? 0 : berth_errf(err, ENOMEM, "out of memory");
}

/* The plan with the secrets' values is a file of its own that only the
 * shim reads, once, at start: it is removed as soon as the shim answers
 * (started or not), and a restarted daemon removes one its death left
 * behind.  plan.json, which the daemon reads again (clean-up after a
 * shim died), never holds them. */
#define START_PLAN "start-plan.json"

static void forget_start_plan(struct sched *s, const char *id)
{
	char dir[4096], path[4200];
	sched_task_dir(s, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" START_PLAN, dir);
	if (unlink(path) < 0 && errno != ENOENT)
		sched_say(s, "task %s: cannot remove %s: %s", id, path, strerror(errno));
}

/* The plan files; PATH is the one the shim is to read.  *ret_start_plan:
 * START_PLAN may exist now. */
static int write_plan(struct sched *s, struct sched_task *t, const cJSON *td, const cJSON *ov,
		      struct sched_pulled *imgs, size_t n, char *path, size_t path_n,
		      bool *ret_start_plan)
{
	struct berth_err *err = &t->err;
	struct taskplan_image ti[TASKDEF_CONTAINERS_MAX];
	for (size_t i = 0; i < n; i++)
		ti[i] = (struct taskplan_image){ imgs[i].config, (const char *const *)imgs[i].layers,
						 imgs[i].n_layers };
	char task_dir[4096], log_dir[4096], ipam[4096], volumes[4096];
	sched_task_dir(s, t->id, task_dir, sizeof(task_dir));
	snprintf(volumes, sizeof(volumes), "%s/" VOLUMES_DIR, s->cfg.root);
	snprintf(log_dir, sizeof(log_dir), "%s/%s", s->cfg.log_root, t->id);
	snprintf(ipam, sizeof(ipam), "%s/ipam", s->cfg.root);
	struct taskplan_env env = {
		.task_id = t->id, .task_dir = task_dir, .run_dir = s->cfg.run_root,
		.log_dir = log_dir, .cgroup_name = s->cfg.cgroup_name, .bridge = s->cfg.bridge,
		.subnet = s->cfg.subnet, .ipam_dir = ipam, .nft_table = s->cfg.nft_table,
		.security_groups = t->groups,
		.default_cpu = policy_task_cpu(&s->cfg.policy),
		.default_memory = policy_task_memory(&s->cfg.policy),
		.log_max_size = policy_log_max_size(&s->cfg.policy),
		.log_max_files = policy_log_max_files(&s->cfg.policy),
		.volumes_dir = volumes, .host_paths = s->cfg.policy.host_paths,
		.n_host_paths = s->cfg.policy.n_host_paths,
		.meta = s->cfg.meta,
	};
	_cleanup_(cJSON_Deletep) cJSON *publish = t->publish ? cJSON_Parse(t->publish) : NULL;
	if (t->publish && !publish)
		return berth_errf(err, ENOMEM, "out of memory");
	env.publish = publish;
	_cleanup_(tasksecrets_free_textp) char *text = NULL;
	_cleanup_free_ char *public = NULL;
	int r = plan_text(t, td, ov, ti, &env, &text, &public);
	if (r < 0)
		return r;
	const char *disk = public ? public : text;
	_cleanup_close_ int dfd = -1;
	if ((r = berth_open_dir_p(task_dir, 0700, &dfd, err)) < 0 ||
	    (r = berth_write_atomic_at(dfd, "plan.json", disk, strlen(disk), 0600, err)) < 0)
		return r;
	*ret_start_plan = public != NULL;
	if (public && (r = berth_write_atomic_at(dfd, START_PLAN, text, strlen(text), 0600, err)) < 0)
		return r;
	snprintf(path, path_n, "%s/%s", task_dir, public ? START_PLAN : "plan.json");
	return 0;
}

/* Container I's IMAGE into *P: the digest recorded for it (a service's
 * pin), else the one its RunTask resolved the tag to for a task before
 * this one, else what the registry says now (recorded for the next). */
static int pull_one(struct sched_task *t, size_t i, const char *image, struct sched_pulled *p)
{
	struct sched_resolved *res = t->resolved;
	const char *pin = i < t->n_pins ? t->pins[i] : NULL;
	bool share = !pin && res && image && !strchr(image, '@');
	if (share)
		pthread_mutex_lock(&res->lock);
	if (share && res->digests[i])
		pin = res->digests[i];
	_cleanup_free_ char *pinned = NULL;
	if (pin && image && !strchr(image, '@') && asprintf(&pinned, "%s@%s", image, pin) < 0)
		pinned = NULL;
	int r = sched_pull(t->s, &t->helper, pinned ? pinned : image, p, &t->err);
	if (share && r == 0 && !res->digests[i])
		res->digests[i] = strdup(p->digest);
	if (share)
		pthread_mutex_unlock(&res->lock);
	return r;
}

static void *launch_thread(void *arg)
{
	struct sched_task *t = arg;
	struct sched *s = t->s;
	/* Back to the daemon's own nice, for this thread and all it starts:
	 * the pull helper, the shim and the task's containers. */
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice);
	_cleanup_(cJSON_Deletep) cJSON *td = cJSON_Parse(t->td_json);
	_cleanup_(cJSON_Deletep) cJSON *ov = t->ov_json ? cJSON_Parse(t->ov_json) : NULL;
	const cJSON *cds = cJSON_GetObjectItemCaseSensitive(td, "containerDefinitions");
	size_t n = (size_t)cJSON_GetArraySize(cds);
	struct sched_pulled imgs[TASKDEF_CONTAINERS_MAX] = { 0 };
	t->digests = calloc(n ? n : 1, sizeof(*t->digests));
	t->rc = t->digests && n <= TASKDEF_CONTAINERS_MAX ? 0
			: berth_errf(&t->err, ENOMEM, "out of memory");
	if (t->rc == 0 && t->secrets_rc < 0)
		t->rc = t->secrets_rc;  /* before any pull, as ECS reads them first */
	const cJSON *cd;
	size_t i = 0;
	cJSON_ArrayForEach(cd, cds) {
		if (t->rc < 0 || atomic_load(&t->cancel))
			break;
		const char *image = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cd, "image"));
		t->rc = pull_one(t, i, image, &imgs[i]);
		t->pull_failed = t->rc < 0;
		t->failed_container = i;
		if (t->rc == 0)
			t->digests[i] = strdup(imgs[i].digest);
		t->n_digests = ++i;
	}
	t->pull_stopped_ms = berth_real_ms();
	char plan[4200];
	if (t->rc == 0 && atomic_load(&t->cancel))
		t->rc = -ECANCELED;
	bool start_plan = false;
	if (t->rc == 0)
		t->rc = write_plan(s, t, td, ov, imgs, n, plan, sizeof(plan), &start_plan);
	/* Once the plan is written the shim starts: a StopTask from now on
	 * stops the shim, and a daemon restart finds the plan and the shim. */
	if (t->rc == 0)
		t->rc = sched_spawn_shim(s, plan, &t->shim_pid, &t->err);
	if (start_plan)
		forget_start_plan(s, t->id);
	tasksecrets_free(TAKE_PTR(t->secrets));
	for (i = 0; i < n && i < TASKDEF_CONTAINERS_MAX; i++)
		sched_pulled_done(&imgs[i]);
	char one = 1;
	if (write(t->done_pipe[1], &one, 1) != 1)
		abort();  /* a pipe we own with room: cannot fail */
	return NULL;
}

/* ---- the launch, on the loop -------------------------------------------- */

bool sched_set_str(char **dst, const char *v)
{
	if ((!*dst && !v) || (*dst && v && strcmp(*dst, v) == 0))
		return false;
	free(*dst);
	*dst = v ? strdup(v) : NULL;
	return true;
}

/* sched_set_str(), -ENOMEM when the copy of V failed. */
static int set_copy(char **dst, const char *v)
{
	sched_set_str(dst, v);
	return v && !*dst ? -ENOMEM : 0;
}

struct unstarted {
	const char *code, *reason, *container_reason;
	size_t ctr_index;
	int64_t now;
};

static int unstarted_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	const struct unstarted *u = arg;
	t->desired_status = t->last_status = STORE_TASK_STOPPED;
	if ((!t->stop_code && set_copy(&t->stop_code, u->code) < 0) ||
	    (!t->stopped_reason && set_copy(&t->stopped_reason, u->reason) < 0))
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	if (!t->stopping_at)
		t->stopping_at = u->now;
	t->execution_stopped_at = t->stopped_at = u->now;
	for (size_t i = 0; i < t->n_containers; i++) {
		t->containers[i].last_status = STORE_TASK_STOPPED;
		if (u->container_reason && i == u->ctr_index &&
		    set_copy(&t->containers[i].reason, u->container_reason) < 0)
			return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	}
	return 0;
}

void sched_stop_unstarted(struct sched *s, const char *id, const char *code, const char *reason,
			  const char *container_reason, size_t ctr_index)
{
	struct berth_err err = { 0 };
	struct unstarted u = { code, reason, container_reason, ctr_index, berth_real_ms() };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	sched_flush_for(s, id);  /* the task's writes queued before this one go first */
	if (store_task_modify(s->store, id, unstarted_fn, &u, &t, &err) < 0)
		sched_say(s, "task %s: %s", id, err.msg);
	else
		sched_hook_stopped(s, t);
}

/* What a launch leaves to record (its sched_task is freed or reused
 * before the deferred write). */
struct launch_record {
	int rc;
	int shim_pid;
	int64_t pull_stopped_ms;
	char **digests;
	size_t n_digests;
};

static void launch_record_free(void *arg)
{
	struct launch_record *lr = arg;
	for (size_t i = 0; i < lr->n_digests; i++)
		free(lr->digests[i]);
	free(lr->digests);
	free(lr);
}

static int launch_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	const struct launch_record *lr = arg;
	t->pull_stopped_at = lr->pull_stopped_ms;
	for (size_t i = 0; i < t->n_containers && i < lr->n_digests; i++)
		if (lr->digests[i] && set_copy(&t->containers[i].image_digest, lr->digests[i]) < 0)
			return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	if (lr->rc == 0) {
		t->shim_pid = lr->shim_pid;
		if (t->last_status < STORE_TASK_ACTIVATING)
			t->last_status = STORE_TASK_ACTIVATING;
	}
	return 0;
}

static void record_launch_apply(struct sched *s, const char *id, void *arg)
{
	struct berth_err err = { 0 };
	if (store_task_modify(s->store, id, launch_fn, arg, NULL, &err) < 0)
		sched_say(s, "task %s: %s", id, err.msg);
}

/* ACTIVATING, the shim's pid, the digests: a deferred write (the digests
 * handed over from LT). */
static void record_launch(struct sched *s, struct sched_task *lt)
{
	struct launch_record *lr = calloc(1, sizeof(*lr));
	if (!lr) {
		sched_say(s, "task %s: out of memory recording its launch", lt->id);
		return;  /* the shim's STATUS says ACTIVATING and its pid soon */
	}
	*lr = (struct launch_record){ lt->rc, lt->shim_pid, lt->pull_stopped_ms,
				      TAKE_PTR(lt->digests), lt->n_digests };
	lt->n_digests = 0;
	sched_write_later(s, lt->id, record_launch_apply, lr, launch_record_free);
}

static void on_launch_done(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct sched_task *t = arg;
	struct sched *s = t->s;
	/* Only the thread's byte ends the launch.  epoll can report an fd
	 * number whose earlier file is still held open by a child between
	 * clone and exec: the wake-up is then not ours (and the thread may
	 * not even have started: its record waits for the commit). */
	char b;
	if (read(fd, &b, 1) != 1) {
		if (event_add(t->done_ev, NULL) < 0)
			sched_say(s, "task %s: cannot watch its launch", t->id);
		return;
	}
	/* The thread's byte is its last use of T, but the thread itself may
	 * not have ended: on a busy host it can wait 100 ms for a CPU to
	 * return on, and a join would hold the loop (and every API answer)
	 * that long.  Not yet ended, it is detached and frees itself. */
	if (pthread_tryjoin_np(t->thread, NULL) != 0)
		pthread_detach(t->thread);
	t->launching = false;
	record_launch(s, t);
	char reason[BERTH_ERR_MAX + 64];
	if (t->rc == 0) {
		struct berth_err err = { 0 };
		if (sched_follow(t, &err) < 0) {
			sched_say(s, "task %s: %s", t->id, err.msg);
			sched_shim_gone(s, t->id);
			sched_task_forget(t);
			return;
		}
		launch_done_free(t);
		if (t->stop_reason && sched_shim_request_stop(t) < 0)
			sched_say(s, "task %s: could not tell its shim to stop", t->id);
		return;
	}
	if (atomic_load(&t->cancel)) {
		sched_stop_unstarted(s, t->id, "UserInitiated", t->stop_reason, NULL, 0);
	} else if (t->pull_failed) {
		snprintf(reason, sizeof(reason), "CannotPullContainerError: %s", t->err.msg);
		sched_stop_unstarted(s, t->id, "TaskFailedToStart", reason, reason,
				     t->failed_container);
	} else {
		snprintf(reason, sizeof(reason), "ResourceInitializationError: %s", t->err.msg);
		sched_stop_unstarted(s, t->id, "TaskFailedToStart", reason, NULL, 0);
	}
	sched_task_forget(t);
}

/* Only forward: the launch may have been recorded before this. */
static int pending_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	(void)err;
	if (t->last_status >= STORE_TASK_PENDING)
		return STORE_TASK_UNCHANGED;
	t->last_status = STORE_TASK_PENDING;
	t->pull_started_at = *(const int64_t *)arg;
	return 0;
}

static void mark_pending_apply(struct sched *s, const char *id, void *arg)
{
	struct berth_err err = { 0 };
	if (store_task_modify(s->store, id, pending_fn, arg, NULL, &err) < 0)
		sched_say(s, "task %s: %s", id, err.msg);
}

/* PENDING since NOW: a deferred write. */
static void mark_pending(struct sched *s, const char *id, int64_t now)
{
	int64_t *at = malloc(sizeof(*at));
	if (!at) {
		sched_say(s, "task %s: out of memory recording it PENDING", id);
		return;  /* it goes ACTIVATING when its launch is recorded */
	}
	*at = now;
	sched_write_later(s, id, mark_pending_apply, at, free);
}

/* The host ports placement gave the task, as the launch thread's own
 * copy of the plan's network.publish (NULL when it publishes none). */
static int copy_publish(struct sched_task *lt, const struct store_task *t)
{
	const char *nets[TASKDEF_CONTAINERS_MAX];
	size_t n = t->n_containers < TASKDEF_CONTAINERS_MAX ? t->n_containers
							    : TASKDEF_CONTAINERS_MAX;
	for (size_t i = 0; i < n; i++)
		nets[i] = t->containers[i].network_json;
	_cleanup_(cJSON_Deletep) cJSON *list = ports_publish_list(nets, n);
	if (!list)
		return -ENOMEM;
	if (cJSON_GetArraySize(list) == 0)
		return 0;
	return (lt->publish = cJSON_PrintUnformatted(list)) ? 0 : -ENOMEM;
}

/* The recorded imageDigests, as the launch thread's own copy. */
static int copy_pins(struct sched_task *lt, const struct store_task *t)
{
	lt->pins = calloc(t->n_containers + 1, sizeof(*lt->pins));
	if (!lt->pins)
		return -ENOMEM;
	lt->n_pins = t->n_containers;
	for (size_t i = 0; i < t->n_containers; i++)
		if (t->containers[i].image_digest &&
		    !(lt->pins[i] = strdup(t->containers[i].image_digest)))
			return -ENOMEM;
	return 0;
}

/* On the loop, where the store is: the thread only carries the values
 * (or the reason they could not be read) into the plan. */
static void resolve_secrets(struct sched *s, struct sched_task *t)
{
	/* Most definitions have none: no second parse on the loop for them. */
	if (!strstr(t->td_json, "\"secrets\""))
		return;
	_cleanup_(cJSON_Deletep) cJSON *td = cJSON_Parse(t->td_json);
	t->secrets_rc = td ? tasksecrets_resolve(s->store, s->cfg.secrets_key, s->cfg.region,
						 s->cfg.account_id, berth_real_ms(), td,
						 &t->secrets, &t->err)
			   : berth_errf(&t->err, ENOMEM, "out of memory");
}

/* store_commit_fn: the task's record is durable (a shim never runs a task
 * a restarted daemon would not know): its launch thread starts.  A record
 * that was rolled back or could not be committed is not launched. */
static void launch_start(void *arg, int r, const struct berth_err *cerr)
{
	struct sched_task *t = arg;
	struct sched *s = t->s;
	if (r < 0) {
		sched_say(s, "task %s: not launched: %s", t->id, cerr ? cerr->msg : "store error");
		t->launching = false;
		sched_task_forget(t);
		return;
	}
	resolve_secrets(s, t);
	t->pull_started_ms = berth_real_ms();
	mark_pending(s, t->id, t->pull_started_ms);
	int rc = pthread_create(&t->thread, NULL, launch_thread, t);
	if (rc == 0)
		return;
	char reason[BERTH_ERR_MAX + 64];
	snprintf(reason, sizeof(reason), "ResourceInitializationError: cannot start its launch "
		 "thread: %s", strerror(rc));
	t->launching = false;
	sched_stop_unstarted(s, t->id, "TaskFailedToStart", reason, NULL, 0);
	sched_task_forget(t);
}

int sched_launch(struct sched *s, const struct store_task *st, const char *td_json,
		 struct sched_resolved *resolved, struct berth_err *err)
{
	const char *id = st->id;
	struct sched_task *t = sched_task_new(s, id);
	if (!t)
		return berth_errf(err, ENOMEM, "out of memory");
	if ((t->resolved = resolved))
		atomic_fetch_add(&resolved->refs, 1);
	t->td_json = strdup(td_json);
	t->ov_json = st->overrides_json ? strdup(st->overrides_json) : NULL;
	t->groups = sched_task_groups(st->attachments_json);
	int r = 0;
	if (!t->td_json || (st->overrides_json && !t->ov_json) || copy_pins(t, st) < 0 ||
	    copy_publish(t, st) < 0)
		r = berth_errf(err, ENOMEM, "out of memory");
	else if (pipe2(t->done_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		r = berth_errnof(err, errno, "task %s: pipe", id);
	else if (!(t->done_ev = event_new(s->base, t->done_pipe[0], EV_READ, on_launch_done, t)) ||
		 event_add(t->done_ev, NULL) < 0)
		r = berth_errf(err, ENOMEM, "task %s: cannot watch its launch", id);
	if (r < 0) {
		sched_task_forget(t);
		return r;
	}
	/* Before: the thread may be started (or T forgotten) at once. */
	t->launching = true;
	r = store_after_commit(s->store, launch_start, t, err);
	if (r < 0) {
		t->launching = false;
		sched_task_forget(t);
	}
	return r;
}

/* ---- stop ---------------------------------------------------------------- */

/* The launch never starts a shim, and its pull helper dies now: a pull
 * can take minutes (StopTask answers at once; shutdown joins the thread). */
static void launch_cancel(struct sched_task *t)
{
	atomic_store(&t->cancel, true);
	sched_helper_kill(&t->helper);
}

int sched_shim_request_stop(struct sched_task *t)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "op", "stop") ||
	    !cJSON_AddStringToObject(req, "reason", t->stop_reason))
		return -ENOMEM;
	_cleanup_free_ char *line = cJSON_PrintUnformatted(req);
	struct berth_err err = { 0 };
	int r = line ? sched_shim_request(t->s, t->id, line, NULL, NULL, &err) : -ENOMEM;
	if (r < 0)
		sched_say(t->s, "task %s: stop: %s", t->id, err.msg);
	return r;
}

void sched_stop(struct sched *s, const char *id, const char *reason)
{
	struct sched_task *t = sched_task_find(s, id);
	if (!t)
		return;  /* not ours (any more): the store already says STOPPED */
	if (!t->stop_reason && !(t->stop_reason = strdup(reason)))
		sched_say(s, "task %s: out of memory: its shim is not told to stop", id);
	if (t->launching)
		launch_cancel(t);
	else if (t->stop_reason)
		sched_shim_request_stop(t);
}

static int stop_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	const struct sched_stop_req *q = arg;
	if (q->cluster && strcmp(t->cluster, q->cluster) != 0)
		return berth_errf(err, ENOENT, "task %s: not found in cluster %s", q->task, q->cluster);
	if (t->desired_status == STORE_TASK_STOPPED)
		return STORE_TASK_UNCHANGED;
	t->desired_status = STORE_TASK_STOPPED;
	if (set_copy(&t->stop_code, q->stop_code) < 0 || set_copy(&t->stopped_reason, q->reason) < 0)
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	if (!t->stopping_at)
		t->stopping_at = q->now_ms;
	return 0;
}

int sched_stop_task(struct sched *s, const struct sched_stop_req *q, struct store_task **ret,
		    struct berth_err *err)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	int r = store_task_modify(s->store, q->task, stop_fn, (void *)q, &t, err);
	if (r < 0)
		return r;
	if (r == 0 && !sched_drain(s, t))
		sched_stop(s, t->id, q->reason);
	if (ret)
		*ret = TAKE_PTR(t);
	return r == STORE_TASK_UNCHANGED ? 1 : 0;
}

/* ---- adoption ------------------------------------------------------------ */

static bool plan_exists(struct sched *s, const char *id)
{
	char dir[4096], path[4200];
	sched_task_dir(s, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/plan.json", dir);
	return access(path, F_OK) == 0;
}

/* A task whose shim does not answer: recorded from what it left, or
 * launched if it never got a shim. */
static void adopt_unfollowed(struct sched *s, const struct store_task *st)
{
	struct berth_err err = { 0 };
	if (plan_exists(s, st->id)) {
		sched_shim_gone(s, st->id);
		return;
	}
	/* The daemon died before the task had a shim: it never ran. */
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	if (store_task_definition_get(s->store, st->task_definition_arn, &td, &err) < 0 ||
	    sched_launch(s, st, td->body_json, NULL, &err) < 0) {
		char reason[BERTH_ERR_MAX + 64];
		snprintf(reason, sizeof(reason), "ResourceInitializationError: %s", err.msg);
		sched_stop_unstarted(s, st->id, "TaskFailedToStart", reason, NULL, 0);
	}
}

/* Task ARN: its shim followed again (true), else handled as above.  The
 * record is read only then: with 1,000 tasks running, reading each one
 * was most of a restart. */
static bool adopt(struct sched *s, const char *arn)
{
	struct berth_err err = { 0 };
	const char *id = strrchr(arn, '/');
	id = id ? id + 1 : arn;
	forget_start_plan(s, id);  /* if this daemon's predecessor died starting it */
	struct sched_task *t = sched_task_new(s, id);
	if (!t) {
		sched_say(s, "task %s: out of memory", id);
		return false;
	}
	if (sched_follow(t, &err) == 0)
		return true;
	sched_task_forget(t);
	_cleanup_(store_task_freep) struct store_task *st = NULL;
	if (store_task_get(s->store, arn, &st, &err) < 0)
		sched_say(s, "task %s: %s", id, err.msg);
	else
		adopt_unfollowed(s, st);
	return false;
}

static int adopt_all(struct sched *s, struct berth_err *err)
{
	struct store_task_filter f = { .not_stopped = true };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	size_t followed = 0;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		int r = store_task_list(s->store, &f, &page, &l, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < l.n; i++)
			followed += adopt(s, l.items[i]);
		free(token);
		token = TAKE_PTR(l.next_token);
		store_list_clear(&l);
	} while (token);
	if (followed)
		sched_say(s, "re-adopted %zu running shims", followed);
	return 0;
}

/* ---- prune --------------------------------------------------------------- */

static bool is_task_id(const char *s)
{
	return strlen(s) == STORE_TASK_ID_LEN && strspn(s, "0123456789abcdef") == STORE_TASK_ID_LEN;
}

/* Log dirs untouched for the log retention whose task is gone or STOPPED. */
static void prune_logs(struct sched *s, int64_t now)
{
	_cleanup_closedir_ DIR *d = opendir(s->cfg.log_root);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat sb;
		if (!is_task_id(de->d_name) || fstatat(dirfd(d), de->d_name, &sb, 0) < 0 ||
		    (int64_t)sb.st_mtime * 1000 > now - s->cfg.log_retention_ms)
			continue;
		struct berth_err err = { 0 };
		_cleanup_(store_task_freep) struct store_task *t = NULL;
		int r = store_task_get(s->store, de->d_name, &t, &err);
		if ((r == -ENOENT || (r == 0 && t->last_status == STORE_TASK_STOPPED)) &&
		    berth_rm_rf_at(dirfd(d), de->d_name, &err) < 0)
			sched_say(s, "logs of task %s: %s", de->d_name, err.msg);
	}
}

static void on_prune(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched *s = arg;
	struct berth_err err = { 0 };
	struct store_list ids = { 0 };
	int64_t now = berth_real_ms();
	if (store_task_prune(s->store, now - s->cfg.task_retention_ms, &ids, &err) < 0)
		sched_say(s, "prune: %s", err.msg);
	for (size_t i = 0; i < ids.n; i++) {
		char dir[4096];
		sched_task_dir(s, ids.items[i], dir, sizeof(dir));
		if (berth_rm_rf_at(AT_FDCWD, dir, &err) < 0)
			sched_say(s, "prune: task %s: %s", ids.items[i], err.msg);
	}
	store_list_clear(&ids);
	prune_logs(s, now);
}

static int64_t prune_period(const struct sched_config *c)
{
	int64_t p = (c->task_retention_ms < c->log_retention_ms ? c->task_retention_ms
								 : c->log_retention_ms) / 2;
	return p < PRUNE_PERIOD_MIN_MS ? PRUNE_PERIOD_MIN_MS
	       : p > PRUNE_PERIOD_MAX_MS ? PRUNE_PERIOD_MAX_MS : p;
}

/* ---- life cycle ---------------------------------------------------------- */

/* The loop answers the API and records what shims say while hundreds of
 * shims and helpers set tasks up on the same few CPUs: at the same
 * priority it waited ~80 % of the time for a CPU (schedstat's run delay
 * with 200 tasks starting on 2 cores), and the API answered in seconds.
 * The loop thread alone gets a higher weight; it uses little CPU, so the
 * rest lose little.  Root only: elsewhere nothing changes. */
static void loop_boost(struct sched *s)
{
	errno = 0;
	int n = getpriority(PRIO_PROCESS, (id_t)gettid());
	if ((n == -1 && errno) || n <= SCHED_LOOP_NICE)
		return;
	s->nice = n;
	s->boosted = setpriority(PRIO_PROCESS, (id_t)gettid(), SCHED_LOOP_NICE) == 0;
	/* The store's fsync thread too: the answers and the launches wait
	 * for it, and at nice 0 it would wait for a CPU behind the shims as
	 * the loop did. */
	pid_t sync_tid = store_group_sync_tid(s->store);
	if (s->boosted && sync_tid)
		setpriority(PRIO_PROCESS, (id_t)sync_tid, SCHED_LOOP_NICE);
}

int sched_new(struct event_base *base, struct store *store, const struct sched_config *cfg,
	      struct sched **ret, struct berth_err *err)
{
	_cleanup_(sched_freep) struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return berth_errf(err, ENOMEM, "out of memory");
	sched_worker_init(s);
	s->base = base;
	s->store = store;
	s->writes_tail = &s->writes;
	s->cfg = *cfg;
	snprintf(s->shim_bin, sizeof(s->shim_bin), "%s", cfg->shim_bin);
	s->cfg.shim_bin = s->shim_bin;
	snprintf(s->cli_bin, sizeof(s->cli_bin), "%s", cfg->cli_bin);
	s->cfg.cli_bin = s->cli_bin;
	instance_id(cfg->root, s->instance_id);
	s->started_ms = berth_real_ms();
	int r = policy_host_resources(&s->cfg.policy, err);
	if (r == 0)
		r = sched_host_network(cfg, err);
	if (r == 0)
		r = img_store_open(cfg->root, &s->images, err);
	if (r < 0)
		return r;
	sched_worker_start(s);
	sched_netpol_start(s);
	struct timeval tv = { prune_period(cfg) / 1000, (prune_period(cfg) % 1000) * 1000 };
	s->prune_ev = event_new(base, -1, EV_PERSIST, on_prune, s);
	if (!s->prune_ev || event_add(s->prune_ev, &tv) < 0)
		return berth_errf(err, ENOMEM, "cannot arm the prune timer");
	if ((r = sched_disk_start(s, err)) < 0 || (r = adopt_all(s, err)) < 0)
		return r;
	loop_boost(s);
	*ret = TAKE_PTR(s);
	return 0;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	/* The launches waiting for their records' commit start (or are
	 * dropped) now: each launching task then has its thread to join. */
	struct berth_err err = { 0 };
	if (store_group_commit(s->store, &err) < 0)
		sched_say(s, "%s", err.msg);
	while (s->tasks) {
		struct sched_task *t = s->tasks;
		if (t->launching) {
			launch_cancel(t);
			pthread_join(t->thread, NULL);
		}
		sched_watch_close(t);
		sched_task_forget(t);
	}
	/* The layer above is gone by now (it is freed first): the last
	 * writes are made without telling it; it reads them at its next start. */
	s->cfg.hooks = (struct sched_hooks){ 0 };
	sched_batch_free(s);
	sched_requests_free(s);
	if (s->prune_ev)
		event_free(s->prune_ev);
	if (s->disk_ev)
		event_free(s->disk_ev);
	sched_worker_stop(s);
	sched_netpol_stop(s);
	img_store_free(s->images);
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice);
	free(s);
}
