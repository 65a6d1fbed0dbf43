/* Descriptors passed over a unix socket (SCM_RIGHTS), one message at a
 * time: berthd and its pull worker (daemon/sched/sched_helpers.c,
 * cli/images.c), and `berth exec`'s pipes, terminal and session
 * (cli/exec.c, daemon/sched/sched_exec.c, runtime/shim_exec.c).
 * Received descriptors are O_CLOEXEC. */
#ifndef BERTH_FDPASS_H
#define BERTH_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define BERTH_FDPASS_MAX 4

/* Sends LEN bytes of BUF (LEN > 0) with the N (<= BERTH_FDPASS_MAX)
 * descriptors FDS as one message; FLAGS are sendmsg()'s, MSG_NOSIGNAL
 * always added.  0, or -errno (a short send is -EMSGSIZE). */
int berth_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n, int flags);

/* Receives one message: at most LEN bytes into BUF and exactly N
 * descriptors into FDS.  Returns the byte count, 0 at end of file, or
 * -errno: -EBADMSG for a message that was cut short or did not carry N
 * descriptors (whatever it carried is closed). */
ssize_t berth_recv_fds(int sock, void *buf, size_t len, int *fds, size_t n, int flags);

/* As berth_recv_fds(), but the message may carry from 0 to MAX
 * descriptors: *RET_N says how many are in FDS.  More than MAX is
 * -EBADMSG (all of them closed). */
ssize_t berth_recv_fds_upto(int sock, void *buf, size_t len, int *fds, size_t max,
			   size_t *ret_n, int flags);

#endif
