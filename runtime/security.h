/* A container's security profile, as Docker's defaults:
 *
 *  - capabilities: Docker's 14 (CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD
 *    NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL
 *    AUDIT_WRITE) with linuxParameters.capabilities add/drop on top, in the
 *    bounding, permitted and effective sets; inheritable and ambient empty
 *    (CVE-2022-24769 and kin);
 *  - no_new_privs;
 *  - seccomp: an allow-list equivalent to Docker's default profile.  Unknown
 *    syscalls fail with ENOSYS (so libc falls back, e.g. clone3 → clone),
 *    known-dangerous ones with EPERM; syscalls Docker gates on a capability
 *    (mount and unshare on SYS_ADMIN, ptrace's kin on SYS_PTRACE, …) are
 *    allowed when the final set has it.  The x86 and x32 ABIs are covered on
 *    x86_64 (arm on aarch64); any other ABI kills the process.  On x86_64
 *    a second, fixed filter refuses i386 socketcall(SYS_SOCKET), whose
 *    family no filter can see (docs/security.md "Seccomp").
 *
 * rt_security_prepare() does everything that allocates (libcap name
 * parsing, libseccomp compilation to BPF) in the parent; the child applies
 * the result with raw syscalls only (runtime/child.h). */
#ifndef BERTH_RT_SECURITY_H
#define BERTH_RT_SECURITY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Docker's default capability set as a CapEff mask. */
#define RT_CAPS_DOCKER_DEFAULT UINT64_C(0x00000000a80425fb)

struct sock_filter;

struct rt_security {
	uint64_t caps;           /* bounding = permitted = effective */
	unsigned last_cap;       /* highest capability this kernel knows */
	struct sock_filter *bpf; /* compiled seccomp program */
	unsigned short bpf_len;  /* instructions */
};

/* Docker's default set, plus add, minus drop.  Names as in ECS/Docker
 * ("SYS_ADMIN", "CAP_SYS_ADMIN", any case); "ALL" in add starts from every
 * capability, "ALL" in drop from none (then add applies). */
int rt_caps_compute(const char *const *add, size_t n_add, const char *const *drop,
		    size_t n_drop, uint64_t *ret, struct berth_err *err);

/* Computes the capability set and compiles the seccomp filter for it.
 * Compiling is most of a container start's CPU time, so with a
 * cache_dirfd (a root-only directory; -1: none) compiled programs are
 * kept there, keyed by the capability set, the ABI, libseccomp's version
 * and the profile, and shared by every task agent.  Release with
 * rt_security_release (also after a failure). */
int rt_security_prepare(const char *const *add, size_t n_add, const char *const *drop,
			size_t n_drop, int cache_dirfd, struct rt_security *ret,
			struct berth_err *err);
void rt_security_release(struct rt_security *s);

/* Child side, as root with every capability: drops the bounding set and
 * switches to uid/gid/groups (raw syscalls: glibc's setuid() family would
 * broadcast to parent threads that do not exist in the child).  A non-root
 * uid leaves the effective set empty, so what follows (the working
 * directory check) runs with the user's own rights, as in runc. */
int rt_security_set_user(const struct rt_security *s, uid_t uid, gid_t gid,
			 const gid_t *groups, size_t n_groups, struct berth_err *err);

/* Child side, after rt_security_set_user(): effective = permitted = the
 * set, inheritable and ambient empty. */
int rt_security_set_caps(const struct rt_security *s, struct berth_err *err);

/* Child side, last step before execve: no_new_privs, then the filters
 * (which no_new_privs lets us load without CAP_SYS_ADMIN). */
int rt_security_lock(const struct rt_security *s, struct berth_err *err);

#endif
