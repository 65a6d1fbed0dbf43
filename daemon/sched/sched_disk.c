/* daemon/sched/sched_disk: disk — ephemeral storage by accounting, and the host's
 * reserve.
 *
 * Every --disk-check-interval the writable layers of each task a shim runs
 * (<taskDir>/containers: the overlay upper and work dirs) and its task
 * volumes (<taskDir>/volumes) are measured in
 * allocated blocks; a task above its ephemeral storage (the definition's
 * ephemeralStorage.sizeInGiB, else --default-ephemeral-storage) is stopped
 * with stopCode TerminationNotice and a stoppedReason that says so.  The
 * walk never follows a link and stops at SCHED_DISK_WALK_MAX entries or
 * SCHED_DISK_DEPTH_MAX levels: a task past either is over its storage too
 * (inodes and directories are disk).  Between two checks a task can write
 * as fast as the disk takes it: the host reserve (sched_disk_room) is the
 * headroom for that. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "common/json.h"
#include "daemon/sched/sched_internal.h"

#define SCHED_DISK_WALK_MAX 1000000
#define SCHED_DISK_DEPTH_MAX 128
#define MIB (1024 * 1024)

struct walk {
	uint64_t bytes, entries;
	bool too_big; /* the walk stopped at a bound */
};

/* Adds the blocks of everything under DFD (which it closes) to W. */
static void walk_dir(int dfd, int depth, struct walk *w)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *e;
	while (!w->too_big && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (++w->entries > SCHED_DISK_WALK_MAX) {
			w->too_big = true;
			break;
		}
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		w->bytes += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= SCHED_DISK_DEPTH_MAX) {
			w->too_big = true;
			break;
		}
		int sub = openat(dirfd(d), e->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			walk_dir(sub, depth + 1, w);
	}
	closedir(d);
}

/* The task's ephemeral storage in MiB: its definition's, else the default. */
static int64_t task_limit(struct sched *s, const char *id)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	struct berth_err err = { 0 };
	int64_t dflt = policy_ephemeral_storage(&s->cfg.policy);
	if (store_task_get(s->store, id, &t, &err) < 0 ||
	    store_task_definition_get(s->store, t->task_definition_arn, &td, &err) < 0)
		return dflt;
	_cleanup_(cJSON_Deletep) cJSON *body = cJSON_Parse(td->body_json);
	const cJSON *es = cJSON_GetObjectItemCaseSensitive(body, "ephemeralStorage");
	const cJSON *gib = cJSON_GetObjectItemCaseSensitive(es, "sizeInGiB");
	return cJSON_IsNumber(gib) && gib->valuedouble > 0 ? (int64_t)gib->valuedouble * 1024 : dflt;
}

/* Stops task ID for its storage, as StopTask does, with REASON. */
static void stop_over(struct sched *s, const char *id, const char *reason)
{
	struct berth_err err = { 0 };
	struct sched_stop_req q = { .task = id, .stop_code = SCHED_STOP_TERMINATION,
				    .reason = reason, .now_ms = berth_real_ms() };
	int r = sched_stop_task(s, &q, NULL, &err);
	if (r < 0 && r != -ENOENT)
		sched_say(s, "task %s: stopping it for its storage: %s", id, err.msg);
}

static void check_task(struct sched *s, struct sched_task *t)
{
	char dir[4096], path[4200];
	sched_task_dir(s, t->id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/containers", dir);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return;
	struct walk w = { 0 };
	walk_dir(dfd, 0, &w);
	/* Task volumes (<taskDir>/volumes) are the task's disk too, as on
	 * Fargate; named volumes and host paths are the operator's. */
	snprintf(path, sizeof(path), "%s/volumes", dir);
	int vfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	const char *what = vfd >= 0 ? "writable layers and task volumes" : "writable layers";
	if (vfd >= 0)
		walk_dir(vfd, 0, &w);
	if (!t->disk_limit_mib)
		t->disk_limit_mib = task_limit(s, t->id);
	if (!w.too_big && w.bytes <= (uint64_t)t->disk_limit_mib * MIB)
		return;
	char reason[256];
	if (w.too_big)
		snprintf(reason, sizeof(reason),
			 "Task stopped: its containers' %s "
			 "hold more than %d entries or %d directory levels, over what its "
			 "ephemeral "
			 "storage (%" PRId64 " MiB) is measured for",
			 what, SCHED_DISK_WALK_MAX, SCHED_DISK_DEPTH_MAX, t->disk_limit_mib);
	else
		snprintf(reason, sizeof(reason),
			 "Task stopped: its containers' %s "
			 "hold %" PRIu64 " MiB, over its ephemeral storage of %" PRId64 " MiB",
			 what, w.bytes / MIB, t->disk_limit_mib);
	stop_over(s, t->id, reason);
}

static void on_disk_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched *s = arg;
	/* stop_over() never forgets a task: the list stays as it is. */
	for (struct sched_task *t = s->tasks; t; t = t->next)
		if (!t->launching && t->bev && !t->final_seen && !t->stop_reason)
			check_task(s, t);
}

int sched_disk_start(struct sched *s, struct berth_err *err)
{
	int64_t ms = policy_disk_check_ms(&s->cfg.policy);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	s->disk_ev = event_new(s->base, -1, EV_PERSIST, on_disk_tick, s);
	if (!s->disk_ev || event_add(s->disk_ev, &tv) < 0)
		return berth_errf(err, ENOMEM, "cannot arm the disk check timer");
	return 0;
}

int sched_disk_room(const struct sched *s, struct berth_err *err)
{
	int64_t reserve = policy_disk_reserve(&s->cfg.policy);
	struct statvfs v;
	if (!reserve)
		return 0;
	if (statvfs(s->cfg.root, &v) < 0)
		return berth_errf(err, errno, "%s: %s", s->cfg.root, strerror(errno));
	uint64_t free_mib = (uint64_t)v.f_bavail * v.f_frsize / MIB;
	if (free_mib >= (uint64_t)reserve)
		return 0;
	return berth_errf(err, ENOSPC,
			  "the host's disk under %s has %" PRIu64 " MiB free, below "
			  "the %" PRId64 " MiB the daemon keeps for its store and database "
			  "(--disk-reserve)",
			  s->cfg.root, free_mib, reserve);
}
