#include "runtime/security.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hash.h"
#include "runtime/child.h"

#define BIT(c) (UINT64_C(1) << (c))

/* ---- capabilities ------------------------------------------------------- */

/* "sys_admin", "CAP_SYS_ADMIN" → libcap's value. */
static int cap_parse(const char *name, cap_value_t *ret, struct berth_err *err)
{
	char buf[64];
	bool prefixed = !strncasecmp(name, "cap_", 4);
	if (strlen(name) + 5 > sizeof(buf))
		return berth_errf(err, EINVAL, "capability %.40s…: unknown", name);
	snprintf(buf, sizeof(buf), "%s%s", prefixed ? "" : "cap_", name);
	for (char *p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (cap_from_name(buf, ret) < 0 || *ret < 0 || *ret > 63)
		return berth_errf(err, EINVAL, "capability %s: unknown", name);
	return 0;
}

static bool has_all(const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(names[i], "ALL"))
			return true;
	return false;
}

/* ORs (or clears, with set false) every named capability into *mask. */
static int cap_apply(const char *const *names, size_t n, bool set, uint64_t *mask,
		     struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		cap_value_t c;
		if (!strcasecmp(names[i], "ALL"))
			continue;
		int r = cap_parse(names[i], &c, err);
		if (r < 0)
			return r;
		*mask = set ? *mask | BIT(c) : *mask & ~BIT(c);
	}
	return 0;
}

int rt_caps_compute(const char *const *add, size_t n_add, const char *const *drop,
		    size_t n_drop, uint64_t *ret, struct berth_err *err)
{
	int last = (int)cap_max_bits() - 1;
	uint64_t all = last >= 63 ? ~UINT64_C(0) : BIT(last + 1) - 1;
	uint64_t mask = RT_CAPS_DOCKER_DEFAULT;
	/* Docker's TweakCapabilities: drop ALL empties the base set first,
	 * add ALL fills it; the other names then apply on top. */
	if (has_all(drop, n_drop))
		mask = 0;
	if (has_all(add, n_add))
		mask = all;
	int r = cap_apply(drop, n_drop, false, &mask, err);
	if (r >= 0)
		r = cap_apply(add, n_add, true, &mask, err);
	if (r < 0)
		return r;
	*ret = mask & all;
	return 0;
}

/* ---- seccomp ------------------------------------------------------------ */

/* Docker's default allow-list (moby profiles/seccomp/default.json),
 * without the entries handled specially below. */
static const char *const allowed[] = {
	"accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk",
	"cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
	"clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
	"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
	"close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
	"epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
	"execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
	"fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
	"fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
	"fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
	"fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
	"futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
	"futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
	"geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
	"getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
	"getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
	"getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
	"get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
	"io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
	"io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
	"kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
	"lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
	"llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
	"madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
	"mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall",
	"mmap", "mmap2", "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
	"mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
	"mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
	"munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
	"open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe",
	"pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
	"ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
	"process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
	"pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
	"recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
	"removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir",
	"rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
	"rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
	"sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
	"sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
	"sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
	"setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
	"setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
	"setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
	"set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address",
	"setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
	"sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall",
	"socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
	"symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
	"timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
	"timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
	"times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
	"unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
	"wait4", "waitid", "waitpid", "write", "writev",
	/* Docker allows these on kernels >= 4.8, where ptrace can no longer
	 * bypass seccomp; Berth needs newer kernels anyway. */
	"ptrace", "process_vm_readv", "process_vm_writev",
};

/* Denied whatever the capabilities: not namespaced, or kernel attack
 * surface Docker and containerd removed (io_uring since 2023). */
static const char *const denied[] = {
	"add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load", "userfaultfd",
	"swapon", "swapoff", "vm86", "vm86old", "uselib", "ustat", "_sysctl", "move_pages",
	"nfsservctl", "io_uring_setup", "io_uring_enter", "io_uring_register",
};

/* Allowed only when the container keeps one of the capabilities; EPERM
 * otherwise.  A syscall may appear under several capabilities. */
static const struct { int cap; const char *names[24]; } gated[] = {
	{ CAP_SYS_ADMIN, { "bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
			   "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
			   "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
			   "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
			   "pivot_root", "clone3" } },
	{ CAP_SYS_BOOT, { "reboot" } },
	{ CAP_SYS_CHROOT, { "chroot" } },
	{ CAP_SYS_MODULE, { "delete_module", "init_module", "finit_module" } },
	{ CAP_SYS_PACCT, { "acct" } },
	{ CAP_SYS_PTRACE, { "kcmp", "pidfd_getfd", "process_madvise" } },
	{ CAP_SYS_RAWIO, { "iopl", "ioperm" } },
	{ CAP_SYS_TIME, { "settimeofday", "stime", "clock_settime", "clock_settime64" } },
	{ CAP_SYS_TTY_CONFIG, { "vhangup" } },
	{ CAP_SYS_NICE, { "get_mempolicy", "mbind", "set_mempolicy",
			  "set_mempolicy_home_node" } },
	{ CAP_SYSLOG, { "syslog" } },
	{ CAP_BPF, { "bpf" } },
	{ CAP_PERFMON, { "perf_event_open" } },
	{ CAP_DAC_READ_SEARCH, { "open_by_handle_at" } },
};

/* Personalities Docker allows; others reach poorly tested kernel code. */
static const uint64_t personalities[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */
#define CLONE_NS_MASK UINT64_C(0x7E020000)
#define AF_ALG_NR 38
#define AF_VSOCK_NR 40

DEFINE_CLEANUP_FUNC(void, seccomp_release)

static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		const struct scmp_arg_cmp *cmp, struct berth_err *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	/* Unknown to this libseccomp, or the default action anyway (which
	 * libseccomp refuses as a rule): the default applies. */
	if (nr == __NR_SCMP_ERROR || action == SCMP_ACT_ERRNO(ENOSYS))
		return 0;
	int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0)
		return berth_errnof(err, -r, "seccomp: rule for %s", name);
	return 0;
}

static bool gated_allowed(const char *name, uint64_t caps, bool *ret_gated)
{
	bool allow = false;
	*ret_gated = false;
	for (size_t i = 0; i < ARRAY_SIZE(gated); i++)
		for (size_t j = 0; j < ARRAY_SIZE(gated[i].names) && gated[i].names[j]; j++)
			if (!strcmp(gated[i].names[j], name)) {
				*ret_gated = true;
				allow |= (caps & BIT(gated[i].cap)) != 0;
			}
	return allow;
}

static int add_gated(scmp_filter_ctx ctx, uint64_t caps, struct berth_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(gated); i++)
		for (size_t j = 0; j < ARRAY_SIZE(gated[i].names) && gated[i].names[j]; j++) {
			const char *name = gated[i].names[j];
			bool seen = false, is_gated;
			/* Add each name once, at its first table entry. */
			for (size_t k = 0; k < i && !seen; k++)
				for (size_t l = 0; l < ARRAY_SIZE(gated[k].names) && gated[k].names[l]; l++)
					seen |= !strcmp(gated[k].names[l], name);
			if (seen)
				continue;
			/* clone3 without SYS_ADMIN stays ENOSYS so libc falls back
			 * to clone, whose flags the filter can inspect. */
			uint32_t deny = strcmp(name, "clone3") ? SCMP_ACT_ERRNO(EPERM)
							       : SCMP_ACT_ERRNO(ENOSYS);
			uint32_t act = gated_allowed(name, caps, &is_gated) ? SCMP_ACT_ALLOW : deny;
			int r = rule(ctx, act, name, 0, NULL, err);
			if (r < 0)
				return r;
		}
	return 0;
}

static int add_clone(scmp_filter_ctx ctx, uint64_t caps, struct berth_err *err)
{
	if (caps & BIT(CAP_SYS_ADMIN))
		return rule(ctx, SCMP_ACT_ALLOW, "clone", 0, NULL, err);
	struct scmp_arg_cmp none = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_MASK, 0);
	int r = rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &none, err);
	/* Any namespace bit: EPERM, as Docker's errnoRet. */
	for (unsigned bit = 0; r >= 0 && bit < 64; bit++) {
		if (!(CLONE_NS_MASK & BIT(bit)))
			continue;
		struct scmp_arg_cmp one = SCMP_A0(SCMP_CMP_MASKED_EQ, BIT(bit), BIT(bit));
		r = rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &one, err);
	}
	return r;
}

static int add_special(scmp_filter_ctx ctx, uint64_t caps, struct berth_err *err)
{
	int r = add_clone(ctx, caps, err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(personalities); i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, personalities[i]);
		r = rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &c, err);
	}
	/* Every address family but AF_ALG and AF_VSOCK (not namespaced). */
	const struct scmp_arg_cmp ok[] = {
		SCMP_A0(SCMP_CMP_LT, AF_ALG_NR), SCMP_A0(SCMP_CMP_EQ, AF_ALG_NR + 1),
		SCMP_A0(SCMP_CMP_GT, AF_VSOCK_NR),
	}, bad[] = { SCMP_A0(SCMP_CMP_EQ, AF_ALG_NR), SCMP_A0(SCMP_CMP_EQ, AF_VSOCK_NR) };
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(ok); i++)
		r = rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &ok[i], err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(bad); i++)
		r = rule(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &bad[i], err);
	return r;
}

static int add_arches(scmp_filter_ctx ctx, struct berth_err *err)
{
	uint32_t compat[2] = { 0, 0 };
	uint32_t native = seccomp_arch_native();
	if (native == SCMP_ARCH_X86_64) {
		compat[0] = SCMP_ARCH_X86;
		compat[1] = SCMP_ARCH_X32;
	} else if (native == SCMP_ARCH_AARCH64) {
		compat[0] = SCMP_ARCH_ARM;
	}
	for (size_t i = 0; i < ARRAY_SIZE(compat) && compat[i]; i++) {
		int r = seccomp_arch_add(ctx, compat[i]);
		if (r < 0 && r != -EEXIST)
			return berth_errnof(err, -r, "seccomp: add arch %#x", compat[i]);
	}
	return 0;
}

static int build_rules(scmp_filter_ctx ctx, uint64_t caps, struct berth_err *err)
{
	int r = 0;
	/* We set no_new_privs ourselves; libseccomp only exports here. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0)
		return berth_errf(err, EINVAL, "seccomp: filter attributes");
	r = add_arches(ctx, err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(allowed); i++)
		r = rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(denied); i++)
		r = rule(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0, NULL, err);
	if (r >= 0)
		r = add_gated(ctx, caps, err);
	if (r >= 0)
		r = add_special(ctx, caps, err);
	return r;
}

/* libseccomp 2.5 exports only to an fd: compile into a memfd and read the
 * program back, so the child loads it with one syscall. */
static int export_bpf(scmp_filter_ctx ctx, struct rt_security *s, struct berth_err *err)
{
	_cleanup_close_ int fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "seccomp: memfd");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return berth_errnof(err, -r, "seccomp: export");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "seccomp: export");
	size_t n = (size_t)st.st_size / sizeof(struct sock_filter);
	if (n == 0 || n > BPF_MAXINSNS)
		return berth_errf(err, E2BIG, "seccomp: program of %zu instructions", n);
	s->bpf = malloc(n * sizeof(struct sock_filter));
	if (!s->bpf)
		return berth_errnof(err, ENOMEM, "seccomp");
	if (pread(fd, s->bpf, n * sizeof(struct sock_filter), 0) != (ssize_t)(n * sizeof(struct sock_filter)))
		return berth_errnof(err, errno ? errno : EIO, "seccomp: read back");
	s->bpf_len = (unsigned short)n;
	return 0;
}

/* ---- the program cache -------------------------------------------------- */

/* Everything the program depends on besides the capability set: the
 * native ABI, libseccomp's version and the tables above, so a changed
 * profile or library never reuses an old program. */
static uint64_t profile_hash(void)
{
	const struct scmp_version *v = seccomp_version();
	uint32_t arch = seccomp_arch_native();
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, &arch, sizeof(arch));
	if (v)
		h = berth_fnv1a64(h, v, sizeof(*v));
	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
		h = berth_fnv1a64(h, allowed[i], strlen(allowed[i]) + 1);
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
		h = berth_fnv1a64(h, denied[i], strlen(denied[i]) + 1);
	for (size_t i = 0; i < ARRAY_SIZE(gated); i++) {
		h = berth_fnv1a64(h, &gated[i].cap, sizeof(gated[i].cap));
		for (size_t j = 0; j < ARRAY_SIZE(gated[i].names) && gated[i].names[j]; j++)
			h = berth_fnv1a64(h, gated[i].names[j], strlen(gated[i].names[j]) + 1);
	}
	return berth_fnv1a64(h, personalities, sizeof(personalities));
}

static void cache_name(uint64_t caps, char buf[64])
{
	snprintf(buf, 64, "seccomp-%016llx-%016llx.bpf", (unsigned long long)profile_hash(),
		 (unsigned long long)caps);
}

/* A cached program is used only when it is a regular file that only its
 * owner, root or us, can write, of a plausible size; the kernel checks
 * the program itself when the child loads it. */
static bool cache_load(int dirfd, const char *name, struct rt_security *s)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size > (off_t)(BPF_MAXINSNS * sizeof(struct sock_filter)))
		return false;
	s->bpf = malloc((size_t)st.st_size);
	if (s->bpf && pread(fd, s->bpf, (size_t)st.st_size, 0) == st.st_size) {
		s->bpf_len = (unsigned short)((size_t)st.st_size / sizeof(struct sock_filter));
		return true;
	}
	free(s->bpf);
	s->bpf = NULL;
	return false;
}

/* Best effort: a program that cannot be cached is compiled again next
 * time.  Temp file and rename, so a reader never sees half a program. */
static void cache_store(int dirfd, const char *name, const struct rt_security *s)
{
	char tmp[96];
	snprintf(tmp, sizeof(tmp), ".%s.%d", name, (int)getpid());
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	size_t len = s->bpf_len * sizeof(struct sock_filter);
	if (write(fd, s->bpf, len) != (ssize_t)len || renameat(dirfd, tmp, dirfd, name) < 0)
		unlinkat(dirfd, tmp, 0);
}

int rt_security_prepare(const char *const *add, size_t n_add, const char *const *drop,
			size_t n_drop, int cache_dirfd, struct rt_security *ret,
			struct berth_err *err)
{
	*ret = (struct rt_security){ .last_cap = (unsigned)cap_max_bits() - 1 };
	int r = rt_caps_compute(add, n_add, drop, n_drop, &ret->caps, err);
	if (r < 0)
		return r;
	char name[64];
	cache_name(ret->caps, name);
	if (cache_dirfd >= 0 && cache_load(cache_dirfd, name, ret))
		return 0;
	_cleanup_(seccomp_releasep) void *ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
	if (!ctx)
		return berth_errf(err, ENOMEM, "seccomp: init");
	r = build_rules(ctx, ret->caps, err);
	if (r >= 0)
		r = export_bpf(ctx, ret, err);
	if (r >= 0 && cache_dirfd >= 0)
		cache_store(cache_dirfd, name, ret);
	return r;
}

void rt_security_release(struct rt_security *s)
{
	free(s->bpf);
	s->bpf = NULL;
	s->bpf_len = 0;
}

/* ---- child side --------------------------------------------------------- */

static int drop_bounding(const struct rt_security *s, struct berth_err *err)
{
	for (unsigned c = 0; c <= s->last_cap && c < 64; c++) {
		if (s->caps & BIT(c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return rt_cerrnof(err, errno, "drop capability %u from the bounding set", c);
	}
	return 0;
}

static int set_ids(uid_t uid, gid_t gid, const gid_t *groups, size_t n, struct berth_err *err)
{
	gid_t only = gid;
	if (syscall(SYS_setgroups, n ? n : 1, n ? groups : &only) < 0)
		return rt_cerrnof(err, errno, "setgroups");
	if (syscall(SYS_setresgid, gid, gid, gid) < 0)
		return rt_cerrnof(err, errno, "setgid %u", (unsigned)gid);
	if (syscall(SYS_setresuid, uid, uid, uid) < 0)
		return rt_cerrnof(err, errno, "setuid %u", (unsigned)uid);
	return 0;
}

int rt_security_set_user(const struct rt_security *s, uid_t uid, gid_t gid,
			 const gid_t *groups, size_t n_groups, struct berth_err *err)
{
	int r = drop_bounding(s, err);
	if (r < 0)
		return r;
	/* Keep the permitted set across setuid so rt_security_set_caps() can
	 * raise it again; execve still clears it for a non-root user, as in
	 * Docker. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return rt_cerrnof(err, errno, "keepcaps");
	return set_ids(uid, gid, groups, n_groups, err);
}

int rt_security_set_caps(const struct rt_security *s, struct berth_err *err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)s->caps, .permitted = (uint32_t)s->caps },
		{ .effective = (uint32_t)(s->caps >> 32), .permitted = (uint32_t)(s->caps >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return rt_cerrnof(err, errno, "capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return rt_cerrnof(err, errno, "clear ambient capabilities");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return rt_cerrnof(err, errno, "keepcaps");
	return 0;
}

#if defined(__x86_64__)
/* i386's socketcall(2) passes socket()'s family in memory, where no
 * filter can look, and libseccomp maps each "socket" rule onto
 * socketcall(SYS_SOCKET) with the family test dropped: the profile above
 * lets it through, and with it AF_ALG and AF_VSOCK.  This second filter
 * (the kernel applies the stricter answer of the two) refuses that one
 * call with EPERM.  32-bit programs still create sockets through the
 * direct socket syscall (i386 has it since Linux 4.3), whose family the
 * profile checks. */
#define SOCKETCALL_I386 102
#define SOCKETCALL_SOCKET 1  /* linux/net.h SYS_SOCKET */
static const struct sock_filter i386_socketcall[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 4),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCKETCALL_I386, 0, 2),
	/* The low half of args[0] (little-endian). */
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCKETCALL_SOCKET, 1, 0),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
};
#endif

int rt_security_lock(const struct rt_security *s, struct berth_err *err)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return rt_cerrnof(err, errno, "no_new_privs");
	struct sock_fprog prog = { .len = s->bpf_len, .filter = s->bpf };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return rt_cerrnof(err, errno, "seccomp");
#if defined(__x86_64__)
	struct sock_fprog sc = { .len = ARRAY_SIZE(i386_socketcall),
				 .filter = (struct sock_filter *)i386_socketcall };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sc) < 0)
		return rt_cerrnof(err, errno, "seccomp (i386 socketcall)");
#endif
	return 0;
}
