/* The device allow-list of a task group (cgroup.h, "Devices").
 *
 * v1: the devices controller.  "a" written to devices.deny drops every
 * exception the group inherited; each rule then goes to devices.allow.
 * Child groups copy their parent's list when they are made, so a task's
 * containers get it too (and can never widen it).
 * v2: there is no devices controller; the kernel asks the programs of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the group and to its ancestors
 * (BPF_F_ALLOW_MULTI: all of them must say yes).  The program is built
 * here as a handful of instructions per rule, the way runc and crun do,
 * with no BPF library: it only reads its context and compares numbers. */
#include "cgroups/cgroup_internal.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

#define WILDCARD (-1)

/* runc's default (libcontainer/specconv AllowedDevices), plus /dev/console
 * as runc and Docker long allowed it.  mknod of any node is allowed: the
 * node is then as unopenable as one shipped in an image. */
static const struct cg_dev_rule {
	char type;           /* 'c' or 'b' */
	int32_t major, minor; /* WILDCARD: any */
	const char *access;  /* subset of "rwm" */
} rules[] = {
	{ 'c', WILDCARD, WILDCARD, "m" },  /* mknod of any char device */
	{ 'b', WILDCARD, WILDCARD, "m" },  /* mknod of any block device */
	{ 'c', 1, 3, "rwm" },              /* /dev/null */
	{ 'c', 1, 5, "rwm" },              /* /dev/zero */
	{ 'c', 1, 7, "rwm" },              /* /dev/full */
	{ 'c', 1, 8, "rwm" },              /* /dev/random */
	{ 'c', 1, 9, "rwm" },              /* /dev/urandom */
	{ 'c', 5, 0, "rwm" },              /* /dev/tty */
	{ 'c', 5, 1, "rwm" },              /* /dev/console */
	{ 'c', 5, 2, "rwm" },              /* /dev/ptmx */
	{ 'c', 136, WILDCARD, "rwm" },     /* /dev/pts/N */
	{ 'c', 10, 200, "rwm" },           /* /dev/net/tun (useless without NET_ADMIN) */
};

/* ---- v1 ----------------------------------------------------------------- */

static void rule_text(const struct cg_dev_rule *r, char *buf, size_t size)
{
	char maj[16] = "*", min[16] = "*";
	if (r->major != WILDCARD)
		snprintf(maj, sizeof(maj), "%d", r->major);
	if (r->minor != WILDCARD)
		snprintf(min, sizeof(min), "%d", r->minor);
	snprintf(buf, size, "%c %s:%s %s", r->type, maj, min, r->access);
}

int cg_devices_v1_apply(int fd, const char *path, struct berth_err *err)
{
	/* Only possible while the group has no children: right after mkdir. */
	int r = cg_write_at(fd, path, "devices.deny", "a", err);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(rules); i++) {
		char line[48];
		rule_text(&rules[i], line, sizeof(line));
		r = cg_write_at(fd, path, "devices.allow", line, err);
	}
	return r;
}

/* ---- v2 ----------------------------------------------------------------- */

/* One rule is at most 8 instructions; 6 load the context, 2 end. */
#define PROG_MAX (6 + 8 * ARRAY_SIZE(rules) + 2)

struct prog {
	struct bpf_insn insn[PROG_MAX];
	unsigned n;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	p->insn[p->n++] = (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src,
					     .off = off, .imm = imm };
}

/* r2 = device type, r3 = access bits, r4 = major, r5 = minor
 * (struct bpf_cgroup_dev_ctx: access_type = access << 16 | type). */
static void emit_load_ctx(struct prog *p)
{
	emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0);
	emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
	emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, 0, 0);
	emit(p, BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
	emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, 4, 0);
	emit(p, BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 8, 0);
}

static void emit_return(struct prog *p, int32_t verdict)
{
	emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, verdict);
	emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static int32_t access_bits(const char *access)
{
	int32_t bits = 0;
	for (const char *c = access; *c; c++)
		bits |= *c == 'r' ? BPF_DEVCG_ACC_READ : *c == 'w' ? BPF_DEVCG_ACC_WRITE
								 : BPF_DEVCG_ACC_MKNOD;
	return bits;
}

/* "if the request matches the rule, return 1": every test that fails
 * jumps past the rule's return, to the next rule. */
static void emit_rule(struct prog *p, const struct cg_dev_rule *r)
{
	unsigned jumps[4], nj = 0;
	int32_t acc = access_bits(r->access);
	jumps[nj++] = p->n;
	emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 0,
	     r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
	if (acc != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
		/* Any requested bit outside the rule's: no match. */
		emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
		emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, ~acc);
		jumps[nj++] = p->n;
		emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, 0, 0);
	}
	if (r->major != WILDCARD) {
		jumps[nj++] = p->n;
		emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0, r->major);
	}
	if (r->minor != WILDCARD) {
		jumps[nj++] = p->n;
		emit(p, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, r->minor);
	}
	emit_return(p, 1);
	for (unsigned i = 0; i < nj; i++)
		p->insn[jumps[i]].off = (int16_t)(p->n - jumps[i] - 1);
}

static void build_prog(struct prog *p)
{
	p->n = 0;
	emit_load_ctx(p);
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		emit_rule(p, &rules[i]);
	emit_return(p, 0);
}

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(SYS_bpf, cmd, a, sizeof(*a));
}

/* Loads the program; on a verifier refusal the error carries the
 * verifier's last line. */
static int load_prog(const struct prog *p, const char *path, int *ret, struct berth_err *err)
{
	char log[1024] = "";
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)p->insn;
	a.insn_cnt = p->n;
	/* No kernel helper is called, so the license only labels it. */
	a.license = (uint64_t)(uintptr_t)"Berth";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0 && errno == ENOSPC) {
		/* The log did not fit; the load itself may be fine. */
		a.log_buf = 0;
		a.log_size = 0;
		a.log_level = 0;
		fd = sys_bpf(BPF_PROG_LOAD, &a);
	}
	if (fd < 0) {
		size_t len = strlen(log);
		while (len && log[len - 1] == '\n')
			log[--len] = '\0';
		const char *last = strrchr(log, '\n');
		return berth_errnof(err, errno, "cgroup %s: load the device program%s%s", path,
				    len ? ": " : "", len ? (last ? last + 1 : log) : "");
	}
	*ret = (int)fd;  /* the kernel makes bpf fds close-on-exec */
	return 0;
}

int cg_devices_v2_apply(int fd, const char *path, struct berth_err *err)
{
	struct prog p;
	build_prog(&p);
	_cleanup_close_ int prog_fd = -1;
	int r = load_prog(&p, path, &prog_fd, err);
	if (r < 0)
		return r;
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)fd;
	a.attach_bpf_fd = (uint32_t)prog_fd;
	a.attach_type = BPF_CGROUP_DEVICE;
	/* Children (the containers) run it too, and whatever a process in
	 * the group could ever attach below runs in addition, never instead. */
	a.attach_flags = BPF_F_ALLOW_MULTI;
	if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
		return berth_errnof(err, errno, "cgroup %s: attach the device program", path);
	/* The attachment holds the program until the group is removed. */
	return 0;
}
