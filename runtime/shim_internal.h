/* State shared by the berth-shim sources (shim.c: set-up and the loop,
 * shim_task.c: container lifecycle, shim_ctl.c: control socket and JSON).
 * Not a public API. */
#ifndef BERTH_RT_SHIM_INTERNAL_H
#define BERTH_RT_SHIM_INTERNAL_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "cgroups/cgroup.h"
#include "netns/net.h"
#include "runtime/container.h"
#include "runtime/health.h"
#include "runtime/user.h"
#include "runtime/log.h"
#include "runtime/shim.h"

#define shim_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct shim;

/* One fd in the epoll set; epoll_event.data.ptr points here.  fd -1 means
 * "gone": a handler called for an event of the same batch does nothing. */
struct shim_src {
	int fd;
	void (*fn)(struct shim *s, struct shim_src *src, uint32_t events);
};

enum task_status { TASK_PENDING, TASK_RUNNING, TASK_STOPPING, TASK_STOPPED };
enum ctr_status { CTR_PENDING, CTR_RUNNING, CTR_STOPPED };

struct ctr {
	const struct plan_container *pc;
	enum ctr_status status;
	bool started;           /* exec'd at some point */
	bool exited;            /* exit_code is valid */
	bool term_sent;
	int exit_code;
	char *reason;
	double started_at, finished_at;
	unsigned start_seq;     /* 1, 2, … in start order; 0: never started */
	int64_t run_start_ms;   /* monotonic, at the latest (re)start */
	unsigned restart_count; /* restarts in place (restartPolicy) */
	uint64_t oom_kills;     /* the group's OOM count at the last exit */
	/* startTimeout: its timer, and whether it ran out before the
	 * container reached what a dependent waits for. */
	struct shim_src start_src;
	bool start_timed_out;
	enum rt_health_status health;
	char *dir;              /* <taskDir>/containers/<name> */
	struct cg_group *cg;
	int join_fds[5];        /* v1: its `tasks` files, for self-joins */
	size_t n_join_fds;
	struct rt_log *log;
	struct rt_proc proc;    /* pidfd -1 when not running */
	char **env;             /* as started; health probes get the same */
	struct rt_user user;
	struct shim_src pid_src, out_src, err_src, oom_src, kill_src;
	/* Health checks (shim_health.c): the next-probe timer, the running
	 * probe's pidfd and its timeout timer. */
	struct rt_health hs;
	struct rt_proc probe;
	bool probe_timed_out;
	struct shim_src due_src, probe_src, probe_kill_src;
};

/* A `berth exec` process (shim_exec.c): its pidfd and the client's
 * connection, which gets its exit code. */
struct shim_exec {
	struct shim_exec *next;
	struct ctr *ctr;
	struct rt_proc proc;
	struct shim_src pid_src, conn_src;
	bool dead;              /* ended; freed between batches of events */
};

#define CLIENT_IN_MAX (1u << 20)   /* longest request line */
#define CLIENT_OUT_MAX (8u << 20)  /* a reader this far behind is dropped */

struct client {
	struct client *next;
	struct shim_src src;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	uint32_t mask;          /* epoll events registered */
	bool events;            /* subscribed with {"op":"events"} */
	bool close_after_flush;
	bool dead;              /* freed after the current batch of events */
	int fds[4];             /* received with its requests (SCM_RIGHTS) */
	size_t n_fds;
};

/* A berth-netpolicy command in flight (shim_policy.c): asked of the
 * daemon's policy worker, or run. */
struct policy_job {
	int sock;               /* the worker's connection, -1: none */
	pid_t pid;              /* 0: none */
	int errfd;              /* its stderr */
	char what[32];          /* "berth-netpolicy add", for messages */
	/* To run the command after all if the worker does not answer. */
	const struct plan *plan;
	const char *verb;       /* static string */
	struct in_addr addr;
};

struct shim {
	struct plan *plan;
	shim_diag_fn diag;
	void *diag_data;
	int epfd;
	int taskdirfd, logdirfd, nullfd;
	int cachedirfd;         /* <runDir>/seccomp: compiled filters, shared */
	struct shim_src sig_src, listen_src, linger_src;
	char sock_path[108];
	bool sock_bound;
	sigset_t old_mask;
	struct cg_driver *cgd;
	struct cg_group *task_cg;
	struct net *net;
	bool net_up;            /* an address is reserved: teardown owes cleanup */
	struct net_task nt;
	struct policy_job policy;
	char hostname[256];
	struct ctr *ctrs;
	int *vol_fds;           /* per plan volume (shim_volumes.c); NULL: none */
	enum task_status status;
	const char *stop_code;  /* static string */
	char *stopped_reason;
	double created_at, started_at, stopping_at, stopped_at;
	unsigned start_seq;
	struct client *clients;
	struct shim_exec *execs;
	bool recorded;          /* exit.json written, task-stopped sent */
};

#define STOP_ESSENTIAL "EssentialContainerExited"
#define STOP_FAILED_START "TaskFailedToStart"
#define STOP_USER "UserInitiated"
#define REASON_ESSENTIAL "Essential container in task exited"
#define REASON_FAILED_START "Task failed to start"

/* shim.c */
double shim_now(void);
void shim_diagf(struct shim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int shim_watch(struct shim *s, struct shim_src *src, uint32_t events, struct berth_err *err);
void shim_unwatch(struct shim *s, struct shim_src *src);
/* Unwatches and closes src->fd. */
void shim_src_close(struct shim *s, struct shim_src *src);

/* shim_restart.c: whether a container that exited with CODE after
 * running RAN_MS since its latest (re)start is restarted in place, by
 * ECS's rules (the agent's restart tracker): policy enabled, the task not
 * stopping, CODE not ignored, and at least restartAttemptPeriod since
 * that start.  Pure: the clock is the caller's. */
enum shim_restart_verdict {
	SHIM_RESTART_YES,
	SHIM_RESTART_OFF,        /* no policy, or not enabled */
	SHIM_RESTART_STOPPING,   /* the task is stopping */
	SHIM_RESTART_IGNORED,    /* an ignored exit code */
	SHIM_RESTART_TOO_SOON,   /* ran less than restartAttemptPeriod */
};
enum shim_restart_verdict shim_restart_decide(const struct plan_restart *rp, int code,
					      int64_t ran_ms, bool stopping);
/* "exit code 3 is in ignoredExitCodes", … for the diagnostics. */
const char *shim_restart_verdict_text(enum shim_restart_verdict v);

/* shim_start.c: on failure c is CTR_RUNNING if it was started but cannot
 * be watched (the caller kills it), else untouched. */
int shim_start_ctr(struct shim *s, struct ctr *c, struct berth_err *err);

/* shim_volumes.c: open opens every plan volume at set-up; binds fills
 * binds[0..n_mounts) for container c (its user resolved); remove deletes
 * the task volumes (<taskDir>/volumes), also for shim_cleanup(). */
int shim_volumes_open(struct shim *s, struct berth_err *err);
void shim_volumes_close(struct shim *s);
int shim_volumes_binds(struct shim *s, struct ctr *c, struct rt_bind *binds,
		       struct berth_err *err);
int shim_volumes_remove(const struct plan *p, struct berth_err *err);

/* shim_health.c: probes every interval while the container runs; a
 * status change is emitted as health-changed and re-runs shim_task_progress(). */
void shim_health_init_ctr(struct ctr *c);
int shim_health_start(struct shim *s, struct ctr *c, struct berth_err *err);
void shim_health_stop(struct shim *s, struct ctr *c);
void shim_health_free(struct ctr *c);
enum rt_health_status shim_health_task(const struct shim *s);

/* shim_exec.c: `berth exec` (docs/runtime.md "Exec").  spec gets the
 * container's profile (user, env, cwd, limits, capabilities, cgroup), as
 * for its health probes; the caller adds argv and stdio. */
struct rt_exec_spec;
void shim_exec_spec(const struct shim *s, const struct ctr *c, struct rt_exec_spec *spec);
/* {"op":"exec"}: fds[0] is the client's connection, fds[1..3] its pipes
 * (none with "tty"); every fd is consumed.  A refusal is also sent to
 * the client. */
int shim_exec_start(struct shim *s, const cJSON *req, int *fds, size_t n_fds,
		    struct berth_err *err);
/* At teardown: every process killed and reaped, its client told. */
void shim_exec_end_all(struct shim *s);
void shim_exec_sweep(struct shim *s);
void shim_exec_free(struct shim *s);

/* shim_policy.c: `berth-netpolicy VERB` for the plan's task (the agent
 * does not link libnftables, netns/host.c).  addr INADDR_ANY: remove
 * whatever the task's veth was bound to.  start spawns it; wait (a no-op
 * without a job) collects it, its failure is its stderr's first line. */
int shim_policy_start(const struct plan *p, const char *verb, struct in_addr addr,
		      struct policy_job *job, struct berth_err *err);
int shim_policy_wait(struct policy_job *job, struct berth_err *err);
/* Both at once. */
int shim_policy_run(const struct plan *p, const char *verb, struct in_addr addr,
		    struct berth_err *err);

/* shim_task.c */
/* The plan's network settings over net_config_init()'s defaults (cfg
 * borrows the plan's strings). */
void shim_task_net_config(const struct plan *p, struct net_config *cfg);
void shim_task_init_ctr(struct ctr *c);
int shim_task_setup(struct shim *s, struct berth_err *err);
/* Starts what can start, stops what must stop; called after every event
 * that changes a container's state. */
void shim_task_progress(struct shim *s);
/* First call wins: later stop codes and reasons are ignored. */
void shim_task_stop(struct shim *s, const char *code, const char *reason);
/* Undoes shim_task_setup() (idempotent, best effort, failures to diag). */
void shim_task_teardown(struct shim *s);
void shim_task_free(struct shim *s);

/* shim_ctl.c */
/* <runDir>/shims/<taskId>.sock; -ENAMETOOLONG when it does not fit. */
int shim_ctl_sock_addr(const struct plan *p, struct sockaddr_un *ret, struct berth_err *err);
enum ctl_sock {
	CTL_SOCK_NONE,    /* no socket file */
	CTL_SOCK_STALE,   /* a socket nobody listens on: its shim died */
	CTL_SOCK_SERVED,  /* a shim answers (or its backlog is full) */
};
/* Connects to sa once to tell which it is. */
int shim_ctl_sock_probe(const struct sockaddr_un *sa, enum ctl_sock *ret, struct berth_err *err);
int shim_ctl_listen(struct shim *s, struct berth_err *err);
void shim_ctl_close(struct shim *s);
cJSON *shim_ctl_status_json(const struct shim *s);
/* Sends {"event":name,"container":…,"task":STATUS} to every events client;
 * c NULL for task-level events. */
void shim_ctl_emit(struct shim *s, const char *name, const struct ctr *c);
/* After task-stopped: every client is closed once its output is flushed. */
void shim_ctl_finish(struct shim *s);
bool shim_ctl_flushed(const struct shim *s);
/* Frees the clients marked dead (between batches of events). */
void shim_ctl_sweep(struct shim *s);
void shim_ctl_free(struct shim *s);

#endif
