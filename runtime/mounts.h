/* A container's filesystem: overlay rootfs, pivot_root, the kernel
 * filesystems and Docker's masked and read-only paths.
 *
 * Two halves, because the child between clone3() and execve() may not
 * allocate (runtime/child.h):
 *   rt_mounts_prepare()   parent: validates the spec, builds the overlay as a
 *                         detached mount (fsopen/fsmount) and clones every
 *                         host bind source (open_tree), so host-path errors
 *                         are reported with normal code;
 *   rt_mounts_setup()     child side, in the new mount namespace: attaches
 *                         the overlay, pivot_root, then mounts everything
 *                         else fd-relative inside the new root.
 *
 * Requires Linux >= 5.12 (new mount API, mount_setattr).  The overlay uses
 * fsconfig "lowerdir+" (Linux >= 6.8), which takes one layer per call and so
 * has no limit on the number of layers; older kernels fall back to one
 * mount(2) option string, which must fit in a page: when absolute paths do
 * not fit and every layer has the same parent directory, that directory is
 * fchdir'd to and the layers are named relative to it. */
#ifndef BERTH_RT_MOUNTS_H
#define BERTH_RT_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct rt_rootfs {
	/* Read-only layer directories, TOP FIRST (the order of overlayfs'
	 * lowerdir=top:...:bottom): lowerdirs[0] is the image's last layer.
	 * All paths are absolute. */
	const char *const *lowerdirs;
	size_t n_lowerdirs;
	const char *upperdir;  /* per-container, writable, same fs as workdir */
	const char *workdir;   /* empty directory for overlayfs */
	bool readonly;         /* readonlyRootFilesystem: / remounted ro */
};

/* A host file or directory bind-mounted (recursively, nosuid, nodev) at
 * dest inside the container.  Two kinds:
 *   - a task file (source set), e.g. /etc/resolv.conf: read-only; dest's
 *     path inside the rootfs may hold no symlink;
 *   - a volume (source NULL, source_fd an fd of the already-opened host
 *     directory): read-only unless writable; dest is resolved inside the
 *     rootfs (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so an
 *     image's symlink there stays inside the container and a /proc magic
 *     link is refused, and it may not land on /, /proc or /sys.
 * A missing dest (and its parents) is created in the rootfs. */
struct rt_bind {
	const char *source;  /* absolute host path; NULL: source_fd */
	const char *dest;    /* absolute container path */
	int source_fd;       /* a volume's directory (O_PATH is enough) */
	bool writable;       /* a volume mounted read-write */
};

/* What the parent prepared; plain data, inherited by the child. */
struct rt_mounts {
	int overlay_fd;         /* fsmount() fd, or -1 for the legacy path */
	char *legacy_opts;      /* legacy: mount(2) data "lowerdir=…,upperdir=…,workdir=…" */
	int legacy_dirfd;       /* legacy: layers' parent to fchdir to, or -1 */
	const char *legacy_target; /* legacy: mounted over the upperdir (see mounts.c) */
	int *bind_fds;          /* open_tree() clones */
	const char *const *bind_dests;
	bool *bind_volume;      /* dest resolved the volume way (struct rt_bind) */
	size_t n_binds;
	bool readonly;
};

/* Fills *ret (release with rt_mounts_release, also after a failure). */
int rt_mounts_prepare(const struct rt_rootfs *rootfs, const struct rt_bind *binds,
		      size_t n_binds, struct rt_mounts *ret, struct berth_err *err);
void rt_mounts_release(struct rt_mounts *m);

/* The image's files as a read-only (nosuid, nodev, noexec) detached
 * overlay of LOWERDIRS (top first), or the one layer itself; for reading
 * (a volume's copy of what the image has at its mount point).  *ret is
 * the view's root.  -EOPNOTSUPP on kernels without overlayfs's lowerdir+. */
int rt_mounts_image_view(const char *const *lowerdirs, size_t n, int *ret,
			 struct berth_err *err);

/* Child side.  In a fresh mount, pid, ipc (and, for sysfs, net) namespace,
 * as root with all capabilities: makes / rprivate, attaches the overlay,
 * pivot_root(".", ".") and detaches the old root, then mounts /proc, /dev
 * (+ nodes, pts, shm, mqueue), /sys, the masked and read-only paths, the
 * binds and finally remounts / read-only if asked.  On return the cwd is the
 * new "/". */
int rt_mounts_setup(const struct rt_mounts *m, struct berth_err *err);

#endif
