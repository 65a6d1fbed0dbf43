/* common/fdpass: descriptors over a unix socket (fdpass.h). */
#include "common/fdpass.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int berth_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n, int flags)
{
	if (!len || n > BERTH_FDPASS_MAX)
		return -EINVAL;
	char cbuf[CMSG_SPACE(BERTH_FDPASS_MAX * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	ssize_t k;
	while ((k = sendmsg(sock, &mh, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (k < 0)
		return -errno;
	return (size_t)k == len ? 0 : -EMSGSIZE;
}

ssize_t berth_recv_fds_upto(int sock, void *buf, size_t len, int *fds, size_t max,
			   size_t *ret_n, int flags)
{
	*ret_n = 0;
	if (max > BERTH_FDPASS_MAX)
		return -EINVAL;
	char cbuf[CMSG_SPACE(BERTH_FDPASS_MAX * sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t k;
	while ((k = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (k < 0)
		return -errno;
	int got[BERTH_FDPASS_MAX];
	size_t ngot = 0;
	bool over = false;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t m = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < m; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (ngot < max) {
				got[ngot++] = fd;
			} else {
				close(fd);
				over = true;
			}
		}
	}
	if (k > 0 && !over && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		memcpy(fds, got, ngot * sizeof(int));
		*ret_n = ngot;
		return k;
	}
	for (size_t i = 0; i < ngot; i++)
		close(got[i]);
	return k == 0 && ngot == 0 && !over ? 0 : -EBADMSG;
}

ssize_t berth_recv_fds(int sock, void *buf, size_t len, int *fds, size_t n, int flags)
{
	int got[BERTH_FDPASS_MAX];
	size_t ngot;
	ssize_t k = berth_recv_fds_upto(sock, buf, len, got, n, &ngot, flags);
	if (k > 0 && ngot != n) {
		for (size_t i = 0; i < ngot; i++)
			close(got[i]);
		return -EBADMSG;
	}
	if (k > 0)
		memcpy(fds, got, n * sizeof(int));
	return k;
}
