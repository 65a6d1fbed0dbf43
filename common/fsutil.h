/* Small filesystem helpers shared by every layer.  All fds are O_CLOEXEC;
 * paths are relative to a directory fd and final components are never
 * followed when they could be symlinks. */
#ifndef BERTH_FSUTIL_H
#define BERTH_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

/* mkdir -p; existing directories are fine. */
int berth_mkdir_p(const char *path, mode_t mode, struct berth_err *err);

/* mkdir -p path (mode for what it creates), then opens it O_DIRECTORY
 * into *ret (the caller closes it). */
int berth_open_dir_p(const char *path, mode_t mode, int *ret, struct berth_err *err);

/* pwrite() until all of buf is written at off; 0 or -errno. */
int berth_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* Crash-safe replace of dirfd/name: write a temp file, fsync, rename over
 * name, fsync the directory.  Readers see the old or the new content. */
int berth_write_atomic_at(int dirfd, const char *name, const void *buf, size_t len,
			  mode_t mode, struct berth_err *err);

/* Creates or truncates dirfd/name (never following a symlink there) and
 * writes buf, with no fsync: for files that need not survive a crash
 * (a task's resolv.conf dies with the task). */
int berth_write_file_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			struct berth_err *err);

/* Reads dirfd/name whole into a NUL-terminated heap buffer the caller frees.
 * Fails with -EFBIG when the file is larger than max bytes. */
int berth_read_file_at(int dirfd, const char *name, size_t max, char **ret,
		       size_t *ret_len, struct berth_err *err);

/* fsync a directory so a rename or unlink inside it is durable. */
int berth_fsync_dir_at(int dirfd, const char *name, struct berth_err *err);

/* DIR/NAME into buf, DIR being the directory of this executable
 * (/proc/self/exe): how berth, berthd and berth-shim find each other. */
int berth_exe_sibling(const char *name, char *buf, size_t n, struct berth_err *err);

/* "/a/b": absolute, other than "/", no empty, "." or ".." component, no
 * trailing '/', shorter than PATH_MAX. */
bool berth_path_clean(const char *s);

/* rm -rf dirfd/name without following symlinks; a missing name is fine. */
int berth_rm_rf_at(int dirfd, const char *name, struct berth_err *err);

#endif
