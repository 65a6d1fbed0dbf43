/* The container definition's `user`, resolved against the image's own
 * /etc/passwd and /etc/group, which are parsed here and never through NSS
 * (CVE-2019-14271: glibc NSS would load the image's libnss_*.so).  Both
 * files are opened with openat2(RESOLVE_IN_ROOT), so symlinks in the image
 * resolve inside it.  Semantics follow Docker (runc's GetExecUser):
 *
 *   NULL, ""      root: uid 0 and gid 0 (or root's passwd gid)
 *   "name"        passwd entry → uid, gid
 *   "uid"         passwd entry if any, else gid 0
 *   "u:g"         u as above (name or number); g a group name or number;
 *                 the supplementary groups are then just [g]
 *
 * Without an explicit group the supplementary groups are the primary gid
 * followed by every /etc/group entry that lists the user's name. */
#ifndef BERTH_RT_USER_H
#define BERTH_RT_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

struct rt_user {
	uid_t uid;
	gid_t gid;
	gid_t *groups;  /* supplementary groups, heap; free with rt_user_release */
	size_t n_groups;
};

/* rootfs_dirfd: the container's root as the image will see it (the merged
 * rootfs, or the top layer holding etc/).  Unknown names fail with -ENOENT
 * and "unable to find user app: no matching entries in passwd file". */
int rt_resolve_user(int rootfs_dirfd, const char *user, struct rt_user *ret,
		    struct berth_err *err);
void rt_user_release(struct rt_user *u);

#endif
