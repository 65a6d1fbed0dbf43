/* berth-shim: `berth exec` sessions (docs/runtime.md "Exec").
 *
 * The daemon hands us, with an {"op":"exec"} request on the control
 * socket, the client's own connection (a SOCK_SEQPACKET socket) and,
 * without a terminal, the three pipe ends the process is to have as
 * stdio.  With a terminal we open a new pty in the container's own devpts
 * (so `tty` inside names it), give the slave to the process as its
 * controlling terminal and send the master to the client.  Nothing of the
 * client's own terminal or of the host ever reaches the process: its fds
 * are those pipes or that pty (runtime/exec.h closes everything else).
 *
 * The process is started exactly as a health probe is (rt_exec_in(), the
 * container's user, env, working directory, ulimits, capabilities,
 * seccomp and cgroup), so it is counted in the container's pids limit and
 * dies with the container's pid namespace.  On the connection the client
 * reads one message per packet: {"ok":true} (with the pty master as
 * SCM_RIGHTS for a terminal) or {"ok":false,"error":"…"}, then
 * {"exitCode":N} when the process has exited (128+signal after a
 * signal).  A client that hangs up takes its process with it (SIGKILL). */
#include "runtime/shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdpass.h"
#include "common/json.h"
#include "runtime/exec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Arguments of one command; the request line is at most 1 MiB anyway. */
#define EXEC_ARGS_MAX 4096
/* /dev/ptmx is character device 5:2, in every devpts instance too. */
#define PTMX_MAJOR 5
#define PTMX_MINOR 2

void shim_exec_spec(const struct shim *s, const struct ctr *c, struct rt_exec_spec *spec)
{
	const struct plan_container *pc = c->pc;
	rt_exec_spec_init(spec);
	spec->target_pidfd = c->proc.pidfd;
	spec->env = (const char *const *)c->env;
	spec->cwd = pc->working_dir && pc->working_dir[0] ? pc->working_dir : NULL;
	spec->uid = c->user.uid;
	spec->gid = c->user.gid;
	spec->groups = c->user.groups;
	spec->n_groups = c->user.n_groups;
	spec->ulimits = pc->ulimits;
	spec->n_ulimits = pc->n_ulimits;
	spec->cap_add = (const char *const *)pc->cap_add.v;
	spec->n_cap_add = pc->cap_add.n;
	spec->cap_drop = (const char *const *)pc->cap_drop.v;
	spec->n_cap_drop = pc->cap_drop.n;
	spec->cgroup_fd = cg_group_dirfd(c->cg);   /* v2; -EOPNOTSUPP on v1 */
	spec->self_join_fds = c->join_fds;         /* v1 */
	spec->n_self_join_fds = c->n_join_fds;
	spec->seccomp_cache_dirfd = s->cachedirfd;
}

/* One message on the client's connection; it may be gone already. */
static void conn_send(int conn, cJSON *o, int fd)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (text && conn >= 0)
		berth_send_fds(conn, text, strlen(text), &fd, fd >= 0 ? 1 : 0, MSG_DONTWAIT);
	free(text);
}

static void conn_send_error(int conn, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", false);
	cJSON_AddStringToObject(o, "error", msg);
	conn_send(conn, o, -1);
}

/* ---- the request -------------------------------------------------------- */

struct exec_req {
	struct ctr *ctr;
	const char *argv[EXEC_ARGS_MAX + 1];
	bool tty;
	unsigned short rows, cols;
};

static const char *task_status_name(enum task_status st)
{
	static const char *const names[] = { "PENDING", "RUNNING", "STOPPING", "STOPPED" };
	return names[st];
}

static int find_ctr(struct shim *s, const cJSON *req, struct ctr **ret, struct berth_err *err)
{
	const char *id = s->plan->task_id;
	const char *name = json_str(req, "container");
	if (!name)
		return berth_errf(err, EINVAL, "task %s: exec: no container named", id);
	for (size_t i = 0; i < s->plan->n_containers; i++) {
		struct ctr *c = &s->ctrs[i];
		if (strcmp(c->pc->name, name))
			continue;
		if (c->status != CTR_RUNNING)
			return berth_errf(err, EINVAL, "container %s of task %s is %s: exec needs "
					  "a RUNNING container", name, id,
					  c->status == CTR_PENDING ? "PENDING" : "STOPPED");
		*ret = c;
		return 0;
	}
	return berth_errf(err, ENOENT, "task %s has no container \"%s\"", id, name);
}

static int window(const cJSON *req, const char *key, unsigned short *ret, struct berth_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65535)
		return berth_errf(err, EINVAL, "exec: %s: expected 0 to 65535", key);
	*ret = (unsigned short)v->valuedouble;
	return 0;
}

static int parse_req(struct shim *s, const cJSON *req, struct exec_req *q, struct berth_err *err)
{
	if (s->status != TASK_RUNNING)
		return berth_errf(err, EINVAL, "task %s is %s: exec needs a RUNNING task",
				  s->plan->task_id, task_status_name(s->status));
	int r = find_ctr(s, req, &q->ctr, err);
	if (r < 0)
		return r;
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "command");
	int n = cJSON_IsArray(cmd) ? cJSON_GetArraySize(cmd) : 0;
	if (n < 1 || n > EXEC_ARGS_MAX)
		return berth_errf(err, EINVAL, "exec: command: expected 1 to %d strings",
				  EXEC_ARGS_MAX);
	int i = 0;
	for (const cJSON *a = cmd->child; a; a = a->next, i++) {
		if (!cJSON_IsString(a) || (i == 0 && !a->valuestring[0]))
			return berth_errf(err, EINVAL, "exec: command[%d]: expected a%s string", i,
					  i == 0 ? " non-empty" : "");
		q->argv[i] = a->valuestring;
	}
	q->argv[i] = NULL;
	const cJSON *tty = cJSON_GetObjectItemCaseSensitive(req, "tty");
	if (tty && !cJSON_IsBool(tty))
		return berth_errf(err, EINVAL, "exec: tty: expected true or false");
	q->tty = cJSON_IsTrue(tty);
	if ((r = window(req, "rows", &q->rows, err)) < 0 ||
	    (r = window(req, "cols", &q->cols, err)) < 0)
		return r;
	return 0;
}

/* ---- the terminal ------------------------------------------------------- */

/* A new pty of the container's devpts: *ret_master for the client,
 * *ret_slave (owned by the process's user, as a login's terminal is) for
 * the process.  The container is our unreaped child while it is RUNNING,
 * so /proc/<pid> is its and nobody else's. */
static int open_pty(const struct exec_req *q, uid_t uid, int *ret_master, int *ret_slave,
		    struct berth_err *err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root", (int)q->ctr->proc.pid);
	_cleanup_close_ int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return berth_errnof(err, errno, "open the container's root");
	/* Resolved as inside the container: a symlink the container planted
	 * cannot send us out of its root. */
	struct open_how how = {
		.flags = O_RDWR | O_NOCTTY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int m = (int)syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof(how));
	struct stat st;
	if (m < 0)
		return berth_errnof(err, errno, "open the container's /dev/pts/ptmx");
	if (fstat(m, &st) < 0)
		return berth_errnof(err, errno, "stat the container's /dev/pts/ptmx");
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != PTMX_MAJOR ||
	    minor(st.st_rdev) != PTMX_MINOR)
		return berth_errf(err, EINVAL, "the container's /dev/pts/ptmx is not a pty "
				  "multiplexer");
	int unlock = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
		return berth_errnof(err, errno, "unlock the pty");
	struct winsize ws = { .ws_row = q->rows, .ws_col = q->cols };
	if (q->rows && q->cols && ioctl(m, TIOCSWINSZ, &ws) < 0)
		return berth_errnof(err, errno, "set the pty's window size");
	_cleanup_close_ int sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0)
		return berth_errnof(err, errno, "open the pty's slave");
	if (fchown(sl, uid, (gid_t)-1) < 0)
		return berth_errnof(err, errno, "give the pty to uid %u", (unsigned)uid);
	*ret_master = TAKE_FD(m);
	*ret_slave = TAKE_FD(sl);
	return 0;
}

/* ---- sessions ----------------------------------------------------------- */

static void session_end(struct shim *s, struct shim_exec *x, int code)
{
	if (x->conn_src.fd >= 0) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "exitCode", code);
		conn_send(x->conn_src.fd, o, -1);
	}
	shim_diagf(s, "container %s: exec'd pid %d exited with %d", x->ctr->pc->name,
		   (int)x->proc.pid, code);
	shim_src_close(s, &x->conn_src);
	shim_src_close(s, &x->pid_src);
	x->proc.pidfd = -1;
	x->dead = true;
}

static void on_exec_exit(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct shim_exec *x = shim_container_of(src, struct shim_exec, pid_src);
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t)src->fd, &si, WEXITED | WNOHANG) < 0)
		si.si_pid = x->proc.pid, si.si_code = CLD_KILLED, si.si_status = SIGKILL;
	if (si.si_pid == 0)
		return;
	session_end(s, x, si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
}

/* The client sends nothing after its request: readable means it hung up. */
static void on_exec_conn(struct shim *s, struct shim_src *src, uint32_t events)
{
	struct shim_exec *x = shim_container_of(src, struct shim_exec, conn_src);
	char buf[256];
	ssize_t n = recv(src->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR) && !(events & EPOLLHUP)))
		return;
	shim_diagf(s, "container %s: exec client of pid %d hung up: SIGKILL", x->ctr->pc->name,
		   (int)x->proc.pid);
	shim_src_close(s, src);
	rt_kill(&x->proc, SIGKILL, NULL);
}

static int session_watch(struct shim *s, struct shim_exec *x, struct berth_err *err)
{
	int r = shim_watch(s, &x->pid_src, EPOLLIN, err);
	if (r >= 0)
		r = shim_watch(s, &x->conn_src, EPOLLIN, err);
	return r;
}

/* Starts the process; on success the session owns the connection. */
static int session_start(struct shim *s, const struct exec_req *q, int *fds, size_t n_fds,
			 struct berth_err *err)
{
	size_t want = q->tty ? 1 : 4;
	if (n_fds != want)
		return berth_errf(err, EPROTO, "exec: %zu descriptors with the request, expected %zu",
				  n_fds, want);
	struct rt_exec_spec spec;
	shim_exec_spec(s, q->ctr, &spec);
	spec.argv = q->argv;
	_cleanup_close_ int master = -1, slave = -1;
	int r = q->tty ? open_pty(q, spec.uid, &master, &slave, err) : 0;
	if (r < 0)
		return berth_err_wrap(err, "container %s: exec", q->ctr->pc->name);
	for (int i = 0; i < 3; i++)
		spec.stdio[i] = q->tty ? slave : fds[1 + i];
	spec.ctty = q->tty;
	struct shim_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return berth_errf(err, ENOMEM, "exec: out of memory");
	*x = (struct shim_exec){
		.ctr = q->ctr, .pid_src = { .fd = -1, .fn = on_exec_exit },
		.conn_src = { .fd = -1, .fn = on_exec_conn },
	};
	if ((r = rt_exec_in(&spec, &x->proc, err)) < 0) {
		free(x);
		return berth_err_wrap(err, "container %s", q->ctr->pc->name);
	}
	x->pid_src.fd = x->proc.pidfd;
	x->conn_src.fd = fds[0];
	fds[0] = -1;
	x->next = s->execs;
	s->execs = x;
	cJSON *ok = cJSON_CreateObject();
	cJSON_AddBoolToObject(ok, "ok", true);
	conn_send(x->conn_src.fd, ok, master);
	shim_diagf(s, "container %s: exec'd pid %d%s", q->ctr->pc->name, (int)x->proc.pid,
		   q->tty ? " on a pty" : "");
	if (session_watch(s, x, err) < 0) {
		rt_kill(&x->proc, SIGKILL, NULL);
		int st = 137;
		rt_wait(&x->proc, &st, NULL);
		session_end(s, x, st);
		return berth_err_wrap(err, "container %s: exec", q->ctr->pc->name);
	}
	return 0;
}

int shim_exec_start(struct shim *s, const cJSON *req, int *fds, size_t n_fds,
		    struct berth_err *err)
{
	struct exec_req *q = calloc(1, sizeof(*q));
	int r = q ? parse_req(s, req, q, err) : berth_errf(err, ENOMEM, "exec: out of memory");
	if (r >= 0)
		r = session_start(s, q, fds, n_fds, err);
	free(q);
	if (r < 0) {
		shim_diagf(s, "task %s: %s", s->plan->task_id, err->msg);
		conn_send_error(n_fds ? fds[0] : -1, err->msg);
	}
	for (size_t i = 0; i < n_fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

void shim_exec_end_all(struct shim *s)
{
	for (struct shim_exec *x = s->execs; x; x = x->next) {
		if (x->dead)
			continue;
		int st = 137;
		rt_kill(&x->proc, SIGKILL, NULL);
		rt_wait(&x->proc, &st, NULL);
		session_end(s, x, st);
	}
}

void shim_exec_sweep(struct shim *s)
{
	for (struct shim_exec **pp = &s->execs; *pp;) {
		struct shim_exec *x = *pp;
		if (x->dead) {
			*pp = x->next;
			free(x);
		} else {
			pp = &x->next;
		}
	}
}

void shim_exec_free(struct shim *s)
{
	while (s->execs) {
		struct shim_exec *x = s->execs;
		s->execs = x->next;
		if (x->pid_src.fd >= 0)
			close(x->pid_src.fd);
		if (x->conn_src.fd >= 0)
			close(x->conn_src.fd);
		free(x);
	}
}
