/* daemon/sched/policy: the operator's policy for what tasks may ask for. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/sched/policy.h"
#include "daemon/sched/volumes.h"

/* ECS's KernelCapabilities values (without ALL), in its order. */
static const char *const capabilities[] = {
	"AUDIT_CONTROL",   "AUDIT_WRITE",      "BLOCK_SUSPEND",	 "CHOWN",
	"DAC_OVERRIDE",	   "DAC_READ_SEARCH",  "FOWNER",	 "FSETID",
	"IPC_LOCK",	   "IPC_OWNER",	       "KILL",		 "LEASE",
	"LINUX_IMMUTABLE", "MAC_ADMIN",	       "MAC_OVERRIDE",	 "MKNOD",
	"NET_ADMIN",	   "NET_BIND_SERVICE", "NET_BROADCAST",	 "NET_RAW",
	"SETFCAP",	   "SETGID",	       "SETPCAP",	 "SETUID",
	"SYS_ADMIN",	   "SYS_BOOT",	       "SYS_CHROOT",	 "SYS_MODULE",
	"SYS_NICE",	   "SYS_PACCT",	       "SYS_PTRACE",	 "SYS_RAWIO",
	"SYS_RESOURCE",	   "SYS_TIME",	       "SYS_TTY_CONFIG", "SYSLOG",
	"WAKE_ALARM",
};

/* ECS's ulimit names. */
static const char *const ulimits[] = {
	"core",	  "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue", "nice",
	"nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack",
};

/* What every task may ask for without the operator. */
#define ALWAYS_CAP "SYS_PTRACE"
#define ALWAYS_ULIMIT "nofile"

static int index_of(const char *const *words, size_t n, const char *name, bool nocase)
{
	for (size_t i = 0; i < n; i++)
		if (nocase ? !strcasecmp(words[i], name) : !strcmp(words[i], name))
			return (int)i;
	return -1;
}

bool policy_capability_known(const char *name)
{
	return !strcmp(name, "ALL") ||
	       index_of(capabilities, ARRAY_SIZE(capabilities), name, false) >= 0;
}

bool policy_ulimit_known(const char *name)
{
	return index_of(ulimits, ARRAY_SIZE(ulimits), name, false) >= 0;
}

/* Each comma-separated name of LIST through WORDS (case-insensitively)
 * into *bits; ALL (when ALL is not NULL) into *all.  Nothing changes
 * unless every name is known. */
static int allow(const char *opt, const char *list, const char *const *words, size_t n,
		 uint64_t *ret_bits, bool *ret_all, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(list);
	if (!copy)
		return berth_errf(err, ENOMEM, "out of memory");
	uint64_t bits = *ret_bits;
	bool all = ret_all && *ret_all;
	char *save = NULL;
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		while (*w == ' ')
			w++;
		int i = index_of(words, n, w, true);
		if (i >= 0)
			bits |= UINT64_C(1) << i;
		else if (ret_all && !strcasecmp(w, "ALL"))
			all = true;
		else
			return berth_errf(err, EINVAL,
					  "--%s %s: '%s' is not one of ECS's names "
					  "(%s … %s%s)",
					  opt, list, w, words[0], words[n - 1],
					  ret_all ? ", or ALL" : "");
	}
	*ret_bits = bits;
	if (ret_all)
		*ret_all = all;
	return 0;
}

int policy_allow_capabilities(struct berth_policy *p, const char *list, struct berth_err *err)
{
	return allow("allow-capabilities", list, capabilities, ARRAY_SIZE(capabilities), &p->caps,
		     &p->caps_all, err);
}

int policy_allow_ulimits(struct berth_policy *p, const char *list, struct berth_err *err)
{
	uint64_t bits = p->ulimits;
	int r = allow("allow-ulimits", list, ulimits, ARRAY_SIZE(ulimits), &bits, NULL, err);
	p->ulimits = (uint32_t)bits;
	return r;
}

int64_t policy_task_memory(const struct berth_policy *p)
{
	return p->default_task_memory ? p->default_task_memory : POLICY_DEFAULT_TASK_MEMORY;
}

int64_t policy_task_cpu(const struct berth_policy *p)
{
	return p->default_task_cpu ? p->default_task_cpu : POLICY_DEFAULT_TASK_CPU;
}

uint64_t policy_log_max_size(const struct berth_policy *p)
{
	return p->log_max_size ? p->log_max_size : POLICY_DEFAULT_LOG_MAX_SIZE;
}

unsigned policy_log_max_files(const struct berth_policy *p)
{
	return p->log_max_files ? p->log_max_files : POLICY_DEFAULT_LOG_MAX_FILES;
}

int64_t policy_ephemeral_storage(const struct berth_policy *p)
{
	return p->ephemeral_storage ? p->ephemeral_storage : POLICY_DEFAULT_EPHEMERAL_STORAGE;
}

int64_t policy_disk_check_ms(const struct berth_policy *p)
{
	return p->disk_check_ms ? p->disk_check_ms : POLICY_DEFAULT_DISK_CHECK_MS;
}

int64_t policy_disk_reserve(const struct berth_policy *p)
{
	return p->disk_reserve < 0 ? 0
	       : p->disk_reserve   ? p->disk_reserve
				   : POLICY_DEFAULT_DISK_RESERVE;
}

/* MemTotal of /proc/meminfo in MiB. */
static int mem_total(int64_t *ret, struct berth_err *err)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return berth_errf(err, errno, "/proc/meminfo: %s", strerror(errno));
	char line[256];
	long long kib;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kib) == 1) {
			*ret = kib / 1024;
			return 0;
		}
	return berth_errf(err, EINVAL, "/proc/meminfo: no MemTotal line");
}

int policy_host_resources(struct berth_policy *p, struct berth_err *err)
{
	if (!p->instance_cpu) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		p->instance_cpu = (n > 0 ? n : 1) * 1024;
	}
	if (p->instance_memory)
		return 0;
	int64_t total, reserve = p->reserved_memory < 0 ? 0
				 : p->reserved_memory	? p->reserved_memory
							: POLICY_DEFAULT_RESERVED_MEMORY;
	int r = mem_total(&total, err);
	if (r < 0)
		return r;
	if (total - reserve <= 0)
		return berth_errf(err, EINVAL,
				  "--reserved-memory %" PRId64 ": the host has only "
				  "%" PRId64 " MiB of memory",
				  reserve, total);
	p->instance_memory = total - reserve;
	return 0;
}

/* ---- the check at RunTask / CreateService / UpdateService ---- */

/* The allowed names of WORDS per BITS plus ALWAYS, comma-separated, into buf. */
static void allowed_list(const char *always, const char *const *words, size_t n, uint64_t bits,
			 char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "%s", always);
	for (size_t i = 0; i < n && off < len; i++)
		if ((bits >> i & 1) && strcmp(words[i], always) != 0)
			off += (size_t)snprintf(buf + off, len - off, ", %s", words[i]);
}

static bool cap_allowed(const struct berth_policy *p, const char *name)
{
	if (p->caps_all || !strcmp(name, ALWAYS_CAP))
		return true;
	int i = index_of(capabilities, ARRAY_SIZE(capabilities), name, false);
	return i >= 0 && (p->caps >> i & 1);
}

static int check_caps(const struct berth_policy *p, const cJSON *cd, const char *where,
		      struct berth_err *err)
{
	const cJSON *lp = cJSON_GetObjectItemCaseSensitive(cd, "linuxParameters");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(lp, "capabilities"), *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(caps, "add")) {
		const char *name = cJSON_GetStringValue(it);
		if (!name || cap_allowed(p, name))
			continue;
		char list[512];
		allowed_list(ALWAYS_CAP, capabilities, ARRAY_SIZE(capabilities), p->caps, list,
			     sizeof(list));
		return berth_errf(err, EPERM,
				  "%slinuxParameters.capabilities.add: %s is not "
				  "allowed on this host: a task may add only %s (the operator "
				  "allows more with berth daemon --allow-capabilities)",
				  where, name, list);
	}
	return 0;
}

static int check_ulimits(const struct berth_policy *p, const cJSON *cd, const char *where,
			 struct berth_err *err)
{
	const cJSON *it;
	int k = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(cd, "ulimits")) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it,
											 "name"));
		double soft = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it,
										    "softLimit"));
		double hard = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it,
										    "hardLimit"));
		int i = name ? index_of(ulimits, ARRAY_SIZE(ulimits), name, false) : -1;
		bool always = name && !strcmp(name, ALWAYS_ULIMIT);
		if (!always && (i < 0 || !(p->ulimits >> i & 1))) {
			char list[256];
			allowed_list(ALWAYS_ULIMIT, ulimits, ARRAY_SIZE(ulimits), p->ulimits, list,
				     sizeof(list));
			return berth_errf(err, EPERM,
					  "%sulimits[%d]: %s is not allowed on this "
					  "host: a task may set only %s (the operator allows more "
					  "with berth daemon --allow-ulimits)",
					  where, k, name ? name : "?", list);
		}
		if (always && hard > POLICY_NOFILE_MAX)
			return berth_errf(err, EPERM,
					  "%sulimits[%d]: nofile hardLimit %.0f is above "
					  "%d",
					  where, k, hard, POLICY_NOFILE_MAX);
		if (soft > hard || soft < 0)
			return berth_errf(err, EPERM,
					  "%sulimits[%d]: %s softLimit %.0f must be "
					  "0 to the hardLimit %.0f",
					  where, k, name, soft, hard);
		k++;
	}
	return 0;
}

/* networkMode host gives the task the host's network stack: every host
 * service, the cloud metadata address, no policy, no security groups. */
static int check_network(const struct berth_policy *p, const cJSON *td, struct berth_err *err)
{
	const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(td, "networkMode"));
	if (nm && strcmp(nm, "host") == 0 && !p->allow_host_network)
		return berth_errf(err, EPERM, "networkMode host: the task would share the host's "
				  "network stack; this daemon allows it only when started with "
				  "--allow-host-network");
	return 0;
}

int policy_check(const struct berth_policy *p, const cJSON *td, struct berth_err *err)
{
	const cJSON *cd;
	int i = 0;
	if (check_network(p, td, err) < 0)
		return -EPERM;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(td, "containerDefinitions")) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cd,
											 "name"));
		char where[320];
		snprintf(where, sizeof(where), "containerDefinitions[%d] (%s): ", i++,
			 name ? name : "?");
		int r = check_caps(p, cd, where, err);
		if (r == 0)
			r = check_ulimits(p, cd, where, err);
		if (r < 0)
			return r;
	}
	return volumes_check_host(p, td, err);
}
