/* daemon/server/exec_gate: the socket `berth exec` asks on
 * (docs/task-environment.md "berth exec").
 *
 * Beside every unix API socket PATH the daemon listens on PATH.exec, a
 * SOCK_SEQPACKET socket with the API socket's rights (0600: root only).
 * A client sends one message: a JSON object
 *   {"task": ID-or-ARN, "container": NAME (optional), "command": [ARGV…],
 *    "tty": BOOL, "rows": N, "cols": N}
 * and, without "tty", three descriptors (the pipe ends the process gets as
 * stdin, stdout and stderr).  The daemon checks it (sched_exec()) and
 * hands the connection itself, with the pipes, to the task's shim, which
 * answers from then on; a refusal is one message {"ok":false,"error":…}
 * from the daemon, then the connection closes.  A client has
 * EXEC_GATE_TIMEOUT_S to send its request. */
#ifndef BERTH_DAEMON_SERVER_EXEC_GATE_H
#define BERTH_DAEMON_SERVER_EXEC_GATE_H

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/sched/sched.h"

#define EXEC_GATE_SUFFIX ".exec"
#define EXEC_GATE_TIMEOUT_S 10
#define EXEC_GATE_REQUEST_MAX (256 * 1024)

struct event_base;
struct exec_gate;

int exec_gate_new(struct event_base *base, struct sched *sched, struct exec_gate **ret,
		  struct berth_err *err);
/* Listens on API_PATH.exec (a stale socket there is replaced: the caller
 * has just bound API_PATH, so no other daemon serves it). */
int exec_gate_listen(struct exec_gate *g, const char *api_path, struct berth_err *err);
/* Closes the listeners (removing their sockets) and pending clients. */
void exec_gate_free(struct exec_gate *g);
DEFINE_CLEANUP_FUNC(struct exec_gate, exec_gate_free)

#endif
