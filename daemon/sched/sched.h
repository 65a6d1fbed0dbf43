/* daemon/sched/sched: the task engine.  The API records what the user asked for;
 * the scheduler makes it happen and writes back what happened.
 *
 *   run      sched_run_task(): RunTask's and a service's tasks are placed
 *            on the host, recorded PROVISIONING and launched.
 *   launch   a task inserted PROVISIONING goes PENDING while a worker
 *            thread pulls its images (in a `berth task-image` process, the
 *            one blocking part: the thread never touches the store or the
 *            loop), merges them into
 *            a plan (daemon/taskplan.h) and starts its berth-shim; back on
 *            the loop the task goes ACTIVATING, and the shim is followed.
 *   follow   one connection per task to the shim's control socket
 *            ({"op":"events"}, docs/runtime.md); every STATUS line is
 *            written to the store: RUNNING, health, containers, the ENI
 *            attachment, and at the end DEPROVISIONING then STOPPED with
 *            the shim's stopCode/stoppedReason.  A connection that ends
 *            without `task-stopped` means the shim died: its exit record
 *            is used if it wrote one, otherwise the task stops with
 *            "Task stopped: the task agent exited unexpectedly" and what it
 *            left on the host is removed (shim_cleanup()).
 *   stop     sched_stop_task() (StopTask, a service, the storage check):
 *            desiredStatus STOPPED with its stopCode and reason; the shim
 *            is told (or a task still pulling is never started).
 *   adopt    at start, every task the store says is not STOPPED: a live
 *            shim is followed again (nothing is started twice); a dead one
 *            is recorded from its exit record; a task that never got a
 *            shim (the daemon died while pulling) is launched.
 *   prune    STOPPED tasks older than the retention are deleted with their
 *            task dirs; log dirs older than the log retention are deleted.
 *
 * Everything but the pull runs on the daemon's one libevent loop. */
#ifndef BERTH_DAEMON_SCHED_H
#define BERTH_DAEMON_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/sched/policy.h"
#include "daemon/store/store.h"
#include "daemon/store/store_secrets.h"
#include "images/limits.h"
#include "images/registry.h"

struct cJSON;
struct event_base;
struct taskmeta;

#define SCHED_DEFAULT_BRIDGE "berth0"
#define SCHED_DEFAULT_SUBNET "10.89.0.0/16"
#define SCHED_DEFAULT_CGROUP "berth"
#define SCHED_DEFAULT_NFT_TABLE "berth"
#define SCHED_DEFAULT_TASK_RETENTION_MS (3600 * 1000LL)
#define SCHED_DEFAULT_LOG_RETENTION_MS (7 * 24 * 3600 * 1000LL)
#define SCHED_AGENT_GONE "Task stopped: the task agent exited unexpectedly"

/* What the task engine reports to the layer above it (the service
 * scheduler, daemon/svc), which it knows only through these: a lower
 * layer never calls up by name.  Each is called on the loop with ARG and
 * the task as just written to the store; either may be NULL. */
struct sched_hooks {
	/* T changed (status, health, containers) and is not STOPPED. */
	void (*task_changed)(void *arg, const struct store_task *t);
	/* T has just been recorded STOPPED. */
	void (*task_stopped)(void *arg, const struct store_task *t);
	/* T, RUNNING, has just been desired STOPPED (or is DEACTIVATING in
	 * the store of a restarted daemon): the layer above takes it out of
	 * its load balancers and answers until when (epoch ms) the task must
	 * keep running while they drain it; the task is DEACTIVATING until
	 * then, and only then told to stop.  0 (or a time past): stop it now. */
	int64_t (*deregister)(void *arg, const struct store_task *t, int64_t now_ms);
	void *arg;
};

struct sched_config {
	const char *root;            /* tasks/<id>, ipam/, the image store */
	const char *run_root;        /* shims/, netns/ */
	const char *log_root;        /* <id>/<container>.log */
	const char *shim_bin;        /* the berth-shim executable */
	const char *cli_bin;         /* the berth executable (image and network helpers) */
	const char *bridge, *subnet, *nft_table;
	bool nat;                    /* masquerade egress of the subnet */
	const char *blocked;         /* addresses no task reaches; NULL: the default */
	/* The task endpoint: "a.b.c.d:port" for the network helper (its
	 * address on the bridge, its port open to tasks) and the key and
	 * URL base of its variables in every plan; NULL: none. */
	const char *task_endpoint;
	const struct taskmeta *meta;
	const char *cgroup_name;
	struct img_registry_opts registry;
	struct img_pull_limits pull_limits; /* handed to the pull helpers */
	int64_t task_retention_ms;   /* STOPPED tasks stay describable this long */
	int64_t log_retention_ms;    /* log dirs of finished tasks are kept this long */
	const char *region, *account_id;
	/* Reads container secrets' values (tasksecrets.h); NULL: a task with
	 * secrets does not start. */
	const struct store_key *secrets_key;
	struct berth_policy policy;  /* what tasks may ask for (daemon/policy.h) */
	FILE *log;                   /* one line per task transition problem; NULL = quiet */
	struct sched_hooks hooks;
};

struct sched;

/* Ensures the bridge (and NAT, when on), opens the image store and adopts
 * every task left by an earlier daemon.  CFG's strings must outlive the
 * scheduler. */
int sched_new(struct event_base *base, struct store *store, const struct sched_config *cfg,
	      struct sched **ret, struct berth_err *err);
/* Stops following shims (they keep running) and joins the pull threads. */
void sched_free(struct sched *s);
DEFINE_CLEANUP_FUNC(struct sched, sched_free)

/* What a new task record is made of (RunTask, a service deployment). */
struct sched_task_req {
	const char *cluster;                       /* name */
	const struct store_task_definition *td;
	const struct cJSON *body;                  /* td's body, parsed */
	const struct cJSON *overrides;             /* or NULL */
	const char *group;                         /* NULL: "family:<family>" */
	const char *started_by, *client_token, *launch_type, *subnet, *service_name;
	/* awsvpcConfiguration.securityGroups (strings, checked by the API), or
	 * NULL/empty: the cluster's default group, "default:<cluster>". */
	const struct cJSON *security_groups;
	const char *const *pins;                   /* per container: a digest or NULL */
	size_t n_pins;
	int64_t now_ms;
	bool enable_execute_command;               /* recorded and reported only */
};

/* ---- the two transitions the layers above ask for ----------------------
 * Every task is created by sched_run_task() (RunTask, a service's launch)
 * and every stop that is asked for goes through sched_stop_task()
 * (StopTask, a service scaling in or replacing a task, the ephemeral
 * storage check). */

#define SCHED_RUN_MAX 10            /* tasks of one sched_run_task(): RunTask's count */

/* What sched_run_task() makes: COUNT tasks from TASK. */
struct sched_run_req {
	struct sched_task_req task;   /* its td, body and overrides passed taskplan_check() */
	size_t count;                 /* 1 .. SCHED_RUN_MAX */
	/* Called with the tasks just inserted (N of them, records as
	 * sched_task_record() made them), inside the same store transaction:
	 * what must be durable with them or not at all (RunTask's
	 * clientToken record, its tags).  An error rolls everything back and
	 * is sched_run_task()'s.  May be NULL. */
	int (*in_txn)(struct store *st, void *arg, const struct store_task *tasks, size_t n,
		      struct berth_err *err);
	void *arg;
};

struct sched_run_result {
	size_t n;                                    /* tasks placed, recorded, launched */
	char ids[SCHED_RUN_MAX][STORE_TASK_ID_LEN + 1];
	/* Why the other count - n tasks did not fit on the host's container
	 * instance: INSTANCE_NO_MEMORY, _CPU or _DISK (daemon/sched/instance.h),
	 * _PORTS (daemon/sched/ports.h), NULL when all did; DETAIL says more
	 * ("" when nothing: the disk's free space for _DISK, the port for
	 * _PORTS). */
	const char *unplaced;
	char detail[BERTH_ERR_MAX];
};

/* Places Q's tasks on the host one by one as ECS does (its registered CPU
 * and memory less what tasks not STOPPED reserve, instance_place(); the
 * host ports of a bridge-mode task, ports_assign(); none while the disk
 * is below the reserve, sched_disk_room()), records those
 * that fit PROVISIONING (sched_task_record()) and inserts them with
 * Q->in_txn's writes in one store transaction, then launches each
 * (sched_launch()).  *RET says which were made and why the rest were not.
 * -ENOSPC when none fits: ERR's message is then exactly RET->unplaced
 * (ECS's reason, "RESOURCE:MEMORY") and nothing is written.  A task that
 * is recorded but cannot be launched is recorded STOPPED (TaskFailedToStart,
 * "ResourceInitializationError: …") and its error returned. */
int sched_run_task(struct sched *s, const struct sched_run_req *q, struct sched_run_result *ret,
		   struct berth_err *err);

/* ECS stopCodes for sched_stop_task(). */
#define SCHED_STOP_USER "UserInitiated"
#define SCHED_STOP_SERVICE "ServiceSchedulerInitiated"
#define SCHED_STOP_TERMINATION "TerminationNotice"

struct sched_stop_req {
	const char *task;             /* id or ARN */
	const char *cluster;          /* the task must be this cluster's (name); NULL: any */
	const char *stop_code;        /* SCHED_STOP_* */
	const char *reason;           /* stoppedReason, and what the shim is told */
	int64_t now_ms;               /* stoppingAt, unless it already has one */
};

/* Records desiredStatus STOPPED with Q's stopCode and stoppedReason (one
 * store transaction), then tells the task's shim, or makes sure a task
 * still pulling never starts (sched_stop()); a RUNNING task the
 * deregister hook gives a drain deadline is DEACTIVATING until then, and
 * told to stop at the deadline (sched_drain.c).  0, or 1 when the task's
 * desiredStatus already was STOPPED (nothing changes: the first stop's
 * code and reason stay); -ENOENT when there is no such task in the
 * cluster.  *RET (RET may be NULL) is the task as stored now, the
 * caller's to free (store_task_free()). */
int sched_stop_task(struct sched *s, const struct sched_stop_req *q, struct store_task **ret,
		    struct berth_err *err);

/* The task's ECS "attachments" member: one ElasticNetworkInterface with
 * id ATTACHMENT_ID in SUBNET_ID (the RunTask awsvpcConfiguration's first
 * subnet, or NULL: "subnet-<bridge>"), status PRECREATED until the shim
 * reports the address, then ATTACHED, DELETED once the task stopped.
 * NETWORK is the shim STATUS "network" object or NULL.  GROUPS, the
 * task's security groups joined by ',', is kept as the detail
 * "securityGroups": the launch reads it for the plan.  A malloc'd JSON
 * text, NULL on OOM. */
char *sched_eni_json(const struct sched *s, const char *task_id, const char *attachment_id,
		     const char *subnet_id, const char *groups, const char *status,
		     const struct cJSON *network);
/* The "securityGroups" detail of a task's attachments JSON (malloc'd), or
 * NULL. */
char *sched_task_groups(const char *attachments_json);

/* The operator's policy, the instance resources filled in from the host;
 * the default policy for a NULL S. */
const struct berth_policy *sched_policy(const struct sched *s);

/* The host's container instance (daemon/instance.h): its id and when it
 * registered (the daemon's start, ms). */
const char *sched_instance_id(const struct sched *s);
int64_t sched_instance_registered_at(const struct sched *s);

/* 0 when the disk under the daemon's root has more free space than the
 * operator's reserve (--disk-reserve); -ENOSPC with a message saying how
 * much is free otherwise.  New tasks (and so their pulls) wait for room. */
int sched_disk_room(const struct sched *s, struct berth_err *err);

/* `berth exec` (docs/task-environment.md "berth exec"): what the
 * client asked for, checked against the store (the task exists and is
 * RUNNING, the container exists and is RUNNING; no container named is
 * the task's only one), then handed to the task's shim with FDS: fds[0]
 * is the client's connection, which the shim answers from then on, and
 * without TTY fds[1..3] are the pipes the process gets as stdin, stdout
 * and stderr.  The caller keeps and closes its FDS either way.  A
 * refusal names the task and container: -ENOENT (unknown task or
 * container), -EINVAL (not RUNNING, no command, several containers and
 * none named). */
struct sched_exec_req {
	const char *task;           /* id or ARN */
	const char *container;      /* or NULL */
	const struct cJSON *command;  /* array of strings */
	bool tty;
	int rows, cols;             /* the client's window; 0 if none */
};
int sched_exec(struct sched *s, const struct sched_exec_req *q, const int *fds, size_t n_fds,
	       struct berth_err *err);
/* The answer to a request to a task's shim: its JSON object when it
 * said "ok", NULL when it refused, went silent (docs/runtime.md), or the
 * scheduler is being freed.  Valid only during the call. */
typedef void (*sched_answer_fn)(void *arg, const struct cJSON *answer);

/* Asks task ID's shim for its cgroup counters (the control socket's
 * "stats": {"stats": {"task": {…}, "containers": {NAME: {…}}}}) without
 * waiting: DONE(ARG, answer) is called on the loop exactly once, unless
 * this returns an error (no shim socket to connect to). */
int sched_task_stats(struct sched *s, const char *id, sched_answer_fn done, void *arg,
		     struct berth_err *err);

#endif
