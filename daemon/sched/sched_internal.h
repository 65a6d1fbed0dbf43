/* daemon/sched/sched_internal: what sched.c (launch, stop, adopt, prune) and
 * sched_watch.c (following a shim, writing its STATUS to the store) share.
 * Not for use outside daemon/sched*.c. */
#ifndef BERTH_DAEMON_SCHED_INTERNAL_H
#define BERTH_DAEMON_SCHED_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "daemon/sched/instance.h"
#include "daemon/sched/sched.h"
#include "daemon/sched/units.h"

struct bufferevent;
struct event;
struct img_store;

/* The pull helper a launch thread waits for (sched_helpers.c), so that
 * StopTask and shutdown can kill it from the loop. */
struct sched_helper {
	pthread_mutex_t lock;        /* guards both below */
	int pidfd;                   /* the running helper, or -1 */
	bool killed;                 /* kill requested: a later helper dies at once */
};
void sched_helper_init(struct sched_helper *h);
void sched_helper_destroy(struct sched_helper *h);
/* SIGKILLs the helper running now and any started later. */
void sched_helper_kill(struct sched_helper *h);

/* The tags of one RunTask's task definition as resolved for that call:
 * its tasks share one resolution (ECS re-resolves a tag on each RunTask,
 * not for each task of it), so a RunTask of count 10 asks the registry
 * once.  The first launch thread to pull container I holds the lock
 * meanwhile and records the digest; the others run that digest from the
 * store.  Shared by the call's tasks (refs); sched_resolved_put() frees. */
struct sched_resolved {
	pthread_mutex_t lock;
	atomic_int refs;
	char *digests[TASKDEF_CONTAINERS_MAX];
};
struct sched_resolved *sched_resolved_new(void);
void sched_resolved_put(struct sched_resolved *r);

/* One task the scheduler is working on: a launch in flight, a shim being
 * followed, or both in turn. */
struct sched_task {
	struct sched *s;
	char id[STORE_TASK_ID_LEN + 1];

	/* launch: the worker reads td_json/ov_json and fills the results;
	 * the loop reads those only after done_ev fired (the pipe write is
	 * the hand-over). */
	bool launching;
	pthread_t thread;
	int done_pipe[2];
	struct event *done_ev;
	atomic_bool cancel;          /* StopTask while pulling: do not start */
	struct sched_helper helper;  /* the `berth task-image` running, if any */
	char *td_json, *ov_json;
	char *groups;                /* security groups, ',' between; NULL: none */
	/* The containers' secrets, resolved on the loop (tasksecrets.h), or
	 * NULL; secrets_rc < 0 (t->err says why) when one could not be read:
	 * the launch then stops before pulling. */
	cJSON *secrets;
	int secrets_rc;
	char *publish;               /* the plan's network.publish (JSON), or NULL */
	int64_t pull_started_ms, pull_stopped_ms;
	int rc;                      /* 0: a shim runs */
	bool pull_failed;            /* else a set-up failure */
	size_t failed_container;
	struct berth_err err;
	char **digests;              /* per container, what each image resolved to */
	size_t n_digests;
	char **pins;                 /* per container, the digest to run, or NULL */
	size_t n_pins;
	struct sched_resolved *resolved;  /* its RunTask's tags, or NULL */
	int shim_pid;

	/* follow */
	struct bufferevent *bev;
	bool final_seen;
	char *stop_reason;           /* StopTask before the shim could be told */
	int64_t disk_limit_mib;      /* its ephemeral storage; 0 = not looked up yet */

	/* gone: the shim died; its clean-up waits for the dying process to
	 * let go of its socket (retried on a timer). */
	struct event *retry_ev;
	/* DEACTIVATING: fires when its load balancers' drain ends (sched_drain.c). */
	struct event *drain_ev;
	int retries;

	struct sched_task *next;
};

/* The loop thread's nice while the scheduler runs (root only; see
 * loop_boost() in sched.c). */
#define SCHED_LOOP_NICE (-10)

struct sched {
	struct event_base *base;
	struct store *store;
	struct sched_config cfg;
	char shim_bin[4096];         /* cfg.shim_bin points here */
	char cli_bin[4096];          /* cfg.cli_bin points here */
	struct event *prune_ev;
	struct sched_task *tasks;
	struct event *disk_ev;       /* the ephemeral storage check (sched_disk.c) */
	struct img_store *images;    /* read only: pinned images (sched_pull()) */
	/* The pull worker, `berth task-image --worker` (sched_helpers.c). */
	pthread_mutex_t worker_lock; /* guards worker_sock: launch threads dup it */
	int worker_sock;             /* -1: none; each pull then execs its helper */
	int worker_pidfd;
	pid_t worker_pid;
	struct event *worker_ev;     /* its pidfd: it exited */
	struct event *worker_retry_ev;  /* starts the next one */
	/* The network policy worker, `berth-netpolicy --worker` (sched_helpers.c). */
	int netpol_pidfd;            /* -1: none; each shim then execs berth-netpolicy */
	pid_t netpol_pid;
	struct event *netpol_ev;     /* its pidfd: it exited */
	struct event *netpol_retry_ev;
	struct event *flush_ev;      /* applies the deferred writes (sched_batch.c) */
	bool boosted;                /* the loop thread runs at SCHED_LOOP_NICE ... */
	int nice;                    /* ... and this was its nice before */
	struct sched_write *writes, **writes_tail;
	struct shim_req *reqs;       /* requests whose answer is awaited (sched_watch.c) */
	char instance_id[INSTANCE_ID_LEN + 1];  /* the host's container instance */
	int64_t started_ms;          /* when it registered: the daemon's start */
	uint32_t port_cursor;        /* the next dynamic host port searched (ports.h) */
};

void sched_say(struct sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* T was just recorded STOPPED: tells the layer above (cfg.hooks). */
void sched_hook_stopped(struct sched *s, const struct store_task *t);

/* A store write of the task engine's, deferred to the next turn of the
 * loop and applied there with the others in one transaction
 * (sched_batch.c).  APPLY(S, ID, ARG) does the write (reading the record
 * then, not now); FREE_ARG (or NULL) frees ARG after.  Out of memory, it
 * is applied at once, after what is queued. */
struct sched_write;
typedef void (*sched_write_fn)(struct sched *s, const char *id, void *arg);
void sched_write_later(struct sched *s, const char *id, sched_write_fn apply, void *arg,
		       void (*free_arg)(void *arg));
/* Applies what is queued now: before a write that cannot wait, so that
 * the writes keep their order. */
void sched_flush(struct sched *s);
/* sched_flush() when a write of task ID is queued: inside an API
 * request's unit, so that a request that fails rolls back no other
 * task's record with its own. */
void sched_flush_for(struct sched *s, const char *id);
/* Applies what is queued and frees the timer (shutdown). */
void sched_batch_free(struct sched *s);

/* <root>/tasks/<id>, <run_root>/shims/<id>.sock, <log_root>/<id>: into buf. */
void sched_task_dir(const struct sched *s, const char *id, char *buf, size_t n);
void sched_sock_path(const struct sched *s, const char *id, char *buf, size_t n);

/* A blocking connection to task ID's shim (send and receive time out),
 * or -errno. */
int sched_shim_connect(struct sched *s, const char *id, struct berth_err *err);

/* A new entry for task ID on S's list, or NULL (out of memory). */
struct sched_task *sched_task_new(struct sched *s, const char *id);

/* Removes T from the list and frees it (its launch must be over). */
void sched_task_forget(struct sched_task *t);

/* Connects to T's shim and follows it.  -ECONNREFUSED / -ENOENT when no
 * shim answers. */
int sched_follow(struct sched_task *t, struct berth_err *err);

/* Writes the shim STATUS object to the store (FINAL: it was the last one:
 * the task-stopped event or the exit record). */
void sched_apply_status(struct sched *s, const char *id, const cJSON *status, bool final);

/* The shim is gone without a final STATUS: the exit record if there is
 * one, else SCHED_AGENT_GONE and a clean-up of what it left. */
void sched_shim_gone(struct sched *s, const char *id);

/* The task stops without ever having had a shim (pull failure, set-up
 * failure, StopTask while pulling). */
void sched_stop_unstarted(struct sched *s, const char *id, const char *code,
			  const char *reason, const char *container_reason, size_t ctr_index);

/* Tells T's shim to stop with T->stop_reason. */
int sched_shim_request_stop(struct sched_task *t);

/* Stops following T's shim (which keeps running). */
void sched_watch_close(struct sched_task *t);

/* *dst = strdup(v) (NULL stays NULL), the old value freed; false when
 * it already was V. */
bool sched_set_str(char **dst, const char *v);

/* A task's image (sched_helpers.c): pinned by digest and already stored,
 * read from the store in process; else pulled by `berth task-image`. */
struct sched_pulled {
	char *digest;                /* what the reference resolved to */
	char *config;                /* the image config JSON */
	char **layers;               /* unpacked layer dirs, bottom first */
	size_t n_layers;
};
void sched_pulled_done(struct sched_pulled *p);
int sched_pull(struct sched *s, struct sched_helper *h, const char *ref, struct sched_pulled *p,
	       struct berth_err *err);
/* The pull worker: sched_worker_init() right after allocation (the
 * destructor relies on it), sched_worker_start() on the loop thread (it
 * dies with that thread); the loop restarts it when it exits.  Without a
 * worker every pull execs `berth task-image` as before. */
void sched_worker_init(struct sched *s);
void sched_worker_start(struct sched *s);
void sched_worker_stop(struct sched *s);
/* The network policy worker, likewise (sched_worker_init() readies it):
 * it listens on <run_root>/netpolicy/sock, which the shims try before
 * they exec berth-netpolicy (docs/networking.md "The policy worker"). */
void sched_netpol_start(struct sched *s);
void sched_netpol_stop(struct sched *s);
/* `berth-shim PLAN`; *ret_pid is the running shim's. */
int sched_spawn_shim(struct sched *s, const char *plan, int *ret_pid, struct berth_err *err);
/* `berth host-network …`: the bridge and NAT as CFG says. */
int sched_host_network(const struct sched_config *c, struct berth_err *err);

/* Arms the periodic ephemeral storage check (sched_disk.c). */
int sched_disk_start(struct sched *s, struct berth_err *err);

/* Sends one request line to the shim's socket; its answer is read later
 * on the loop, and a refusal or silence is logged.  DONE (may be NULL)
 * is called once on the loop with the answer or NULL, as for
 * sched_task_stats(); not when this returns an error. */
int sched_shim_request(struct sched *s, const char *id, const char *line, sched_answer_fn done,
		       void *arg, struct berth_err *err);
/* Stops awaiting the answers (shutdown). */
void sched_requests_free(struct sched *s);

/* The steps of sched_run_task() and sched_stop_task() (sched.h), which
 * own creating and stopping a task; nothing outside daemon/sched calls
 * them. */
/* Starts task T, just inserted PROVISIONING, from the task definition body
 * TD_JSON and T's overrides; both already passed taskplan_check().  A
 * container recorded with an imageDigest runs exactly that image (a
 * service deployment's pinned digest): it is pulled by digest. */
int sched_launch(struct sched *s, const struct store_task *t, const char *td_json,
		 struct sched_resolved *resolved, struct berth_err *err);

/* Fills T (zeroed by the caller) as a PROVISIONING task with a new id,
 * its ARN, containers and ENI attachment, ready for store_task_insert();
 * BINDINGS (or NULL): its containers' networkBindings (ports.h).
 * Strings not allocated here point into Q; free with
 * sched_task_record_clear(). */
int sched_task_record(const struct sched *s, const struct sched_task_req *q, struct store_task *t,
		      const struct cJSON *bindings, struct berth_err *err);
void sched_task_record_clear(struct store_task *t);

/* The second half of sched_stop_task(), for a task whose desiredStatus is
 * already STOPPED in the store: tells its shim (REASON), or makes sure a
 * task still pulling never starts. */
void sched_stop(struct sched *s, const char *id, const char *reason);

/* The task's entry while this daemon launches or follows it, or NULL. */
struct sched_task *sched_task_find(struct sched *s, const char *id);

/* sched_drain.c.  ST (as stored: RUNNING, just desired STOPPED) drains
 * from its load balancers first when the deregister hook says so: true
 * then (DEACTIVATING recorded, the stop comes at the deadline); false:
 * tell it to stop now. */
bool sched_drain(struct sched *s, const struct store_task *st);
/* ST is DEACTIVATING or desired STOPPED (a daemon restarted mid-drain,
 * or between recording a stop and telling the shim; or a status came):
 * unless this daemon told it to stop already or is draining it, its drain
 * timer armed again from the hook's deadline, or the task told to stop. */
void sched_drain_resume(struct sched *s, const struct store_task *st);

#endif
