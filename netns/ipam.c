/* IPAM: one file per allocated address, named by the address and holding
 * the owner's task id, in a directory per subnet.
 *
 * Allocators take an exclusive flock on .lock, which also stores the last
 * offset handed out, so the next search starts after it: allocation is
 * O(1) until the subnet is nearly full, and a released address is reused
 * only after the rest of the subnet.  The address file is created with
 * O_EXCL, so even a writer that bypassed the lock could not take an
 * address twice.
 *
 * Nothing is fsync'ed, on purpose (it was half of a task's setup time):
 * the files survive any process crash through the page cache, and only a
 * host crash can lose them, which also kills every task, so no live task
 * can hold an address that reads as free.  What a host crash can leave is
 * allocations of dead tasks; releasing them is the daemon's reconcile
 * (net_task_teardown of every task found dead at start). */
#include "netns/internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/fsutil.h"

#define IPAM_LOCK ".lock"
#define CURSOR_LEN 11 /* "%010u\n" */

static int ipam_lock(struct net *net, int *ret, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(net->ipam_dirfd, IPAM_LOCK,
					O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return berth_errnof(err, errno, "IPAM %s: open lock", net->ipam_path);
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return berth_errnof(err, errno, "IPAM %s: lock", net->ipam_path);
	*ret = TAKE_FD(fd);
	return 0;
}

/* Offsets from the network address: 0 network, 1 gateway, size-1 broadcast. */
static uint32_t subnet_size(const struct net *net)
{
	return 1u << (32 - net->prefix);
}

static uint32_t read_cursor(const struct net *net, int lockfd)
{
	char buf[CURSOR_LEN + 1] = { 0 };
	ssize_t n = pread(lockfd, buf, CURSOR_LEN, 0);
	unsigned long off = n == CURSOR_LEN ? strtoul(buf, NULL, 10) : 0;
	/* Invalid or missing: pretend the last one was the highest, so the
	 * search starts at the first host address. */
	if (off < 2 || off > subnet_size(net) - 2)
		off = subnet_size(net) - 2;
	return (uint32_t)off;
}

static void write_cursor(int lockfd, uint32_t off)
{
	char buf[CURSOR_LEN + 1];
	snprintf(buf, sizeof(buf), "%010u\n", off);
	/* A lost cursor only changes which free address comes next. */
	ssize_t n = pwrite(lockfd, buf, CURSOR_LEN, 0);
	(void)n;
}

static void addr_name(uint32_t ip, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = { .s_addr = htonl(ip) };
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

/* 1: claimed, 0: taken already, <0: error. */
static int try_claim(struct net *net, const char *name, const char *owner, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(net->ipam_dirfd, name,
					O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0)
		return berth_errnof(err, errno, "IPAM %s: create %s", net->ipam_path, name);
	char line[NET_TASK_ID_MAX + 2];
	int len = snprintf(line, sizeof(line), "%s\n", owner);
	errno = 0;
	if (write(fd, line, (size_t)len) != len) {
		int e = errno ? errno : EIO;
		unlinkat(net->ipam_dirfd, name, 0);
		return berth_errnof(err, e, "IPAM %s: write %s", net->ipam_path, name);
	}
	return 1;
}

int net_ipam_alloc(struct net *net, const char *owner, struct in_addr *ret, struct berth_err *err)
{
	if (!net_id_ok(owner))
		return berth_errf(err, EINVAL, "IPAM %s: invalid owner \"%s\"", net->ipam_path, owner);
	_cleanup_close_ int lockfd = -1;
	int r = ipam_lock(net, &lockfd, err);
	if (r < 0)
		return r;
	uint32_t hosts = subnet_size(net) - 3, cursor = read_cursor(net, lockfd);
	for (uint32_t i = 1; i <= hosts; i++) {
		uint32_t off = 2 + (cursor - 2 + i) % hosts;
		char name[INET_ADDRSTRLEN];
		addr_name(net->network + off, name);
		r = try_claim(net, name, owner, err);
		if (r < 0)
			return r;
		if (r == 1) {
			write_cursor(lockfd, off);
			ret->s_addr = htonl(net->network + off);
			return 0;
		}
	}
	return berth_errf(err, ENOSPC, "IPAM %s: no free address for %s", net->ipam_path, owner);
}

/* Unlinks name if its content is owner; called with the lock held so the
 * address cannot be released and re-allocated to someone else between the
 * read and the unlink. */
static int release_if_owner(struct net *net, const char *name, const char *owner,
			    struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	struct berth_err e2 = { 0 };
	int r = berth_read_file_at(net->ipam_dirfd, name, NET_TASK_ID_MAX + 2, &buf, NULL, &e2);
	if (r == -ENOENT || r == -EFBIG)
		return 0;
	if (r < 0)
		return berth_errf(err, -r, "IPAM %s: %s", net->ipam_path, e2.msg);
	size_t n = strlen(owner);
	if (strncmp(buf, owner, n) != 0 || strcmp(buf + n, "\n") != 0)
		return 0;
	if (unlinkat(net->ipam_dirfd, name, 0) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "IPAM %s: release %s", net->ipam_path, name);
	return 0;
}

static int release_all(struct net *net, const char *owner, struct berth_err *err)
{
	int fd = openat(net->ipam_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "IPAM %s: open", net->ipam_path);
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return berth_errnof(err, errno, "IPAM %s: open", net->ipam_path);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d)))
		if (de->d_name[0] != '.') {
			int r = release_if_owner(net, de->d_name, owner, err);
			if (r < 0)
				return r;
		}
	if (errno)
		return berth_errnof(err, errno, "IPAM %s: list", net->ipam_path);
	return 0;
}

int net_ipam_release(struct net *net, struct in_addr addr, const char *owner,
		     struct berth_err *err)
{
	if (!net_id_ok(owner))
		return berth_errf(err, EINVAL, "IPAM %s: invalid owner \"%s\"", net->ipam_path, owner);
	uint32_t ip = ntohl(addr.s_addr);
	char name[INET_ADDRSTRLEN];
	addr_name(ip, name);
	if (ip != 0 && (ip - net->network) >= subnet_size(net))
		return berth_errf(err, EINVAL, "IPAM %s: %s is outside the subnet",
				  net->ipam_path, name);
	_cleanup_close_ int lockfd = -1;
	int r = ipam_lock(net, &lockfd, err);
	if (r < 0)
		return r;
	if (ip == 0)
		return release_all(net, owner, err);
	return release_if_owner(net, name, owner, err);
}
