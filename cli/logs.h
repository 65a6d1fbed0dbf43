/* Reading a container's CRI log files (runtime/log.h) for `berth logs` and
 * `berth run`: <dir>/<name>.log and its rotated predecessors <name>.log.1
 * (newest) … <name>.log.N (oldest), oldest first; the text of each record
 * goes to stdout or stderr as its stream says, P records joined with the
 * next one.  Following survives rotation: the open file is tracked by inode
 * through its renames, so every record is printed once, in order. */
#ifndef BERTH_CLI_LOGS_H
#define BERTH_CLI_LOGS_H

#include <stdbool.h>

#include "common/err.h"

#define LOG_CHECK_MS 100 /* how often a follower asks done() */

struct log_follow {
	const char *dir;        /* <log-root>/<task-id>; need not exist yet */
	const char *container;  /* one path component; NULL: read nothing, just wait */
	bool follow;            /* wait for more, until done() or a signal */
	/* Asked every LOG_CHECK_MS while following (NULL: never done): 1 when
	 * the writer is finished (the files are then read to their end once
	 * more and log_follow returns 0), 0 to go on, <0 (with *err) to fail. */
	int (*done)(void *ctx, struct berth_err *err);
	/* A SIGINT or SIGTERM while following (NULL: return at once): 1 to
	 * return, 0 to go on, <0 (with *err) to fail. */
	int (*on_signal)(void *ctx, int signo, struct berth_err *err);
	void *ctx;
	int signo;              /* out: the signal log_follow returned for, or 0 */
};

/* Prints the container's log; see struct log_follow.  While following,
 * SIGINT and SIGTERM are blocked and read from a signalfd. */
int log_follow(struct log_follow *f, struct berth_err *err);

/* Blocks SIGINT and SIGTERM, so that one arriving before log_follow()
 * is read by it rather than ending the process. */
void log_hold_signals(void);

/* Whether <dir>/<container>.log or a rotated one exists. */
bool log_exists(const char *dir, const char *container);

/* ---- a task to follow (cli/task_logs.c) ---- */

struct ecs;
struct cJSON;

struct task_watch {
	struct ecs *ecs;
	const char *cluster;
	const char *task;       /* id or ARN */
	struct cJSON *last;     /* the latest DescribeTasks answer's task, or NULL */
};

/* A log_follow done(): describes w->task into w->last; 1 once it is STOPPED
 * (or the daemon no longer knows it). */
int task_watch_done(void *w, struct berth_err *err);

/* "<log-root>/<task-id>" into buf (PATH_MAX bytes). */
int task_log_dir(const char *log_root, const char *task_id, char *buf, struct berth_err *err);

/* The container whose log `logs` shows for task t (a DescribeTasks task):
 * want when t has it, else the only one, else the first essential one of
 * its task definition.  *ret points into t or is want. */
int task_log_container(struct ecs *e, const struct cJSON *t, const char *want,
		       const char **ret, struct berth_err *err);

#endif
