#include "runtime/user.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

/* The files come from an image: bound what we read.  NGROUPS_MAX as
 * the kernel's setgroups() limit. */
#define ID_FILE_MAX (16u << 20)
#define GROUPS_MAX 65536
#define ID_MAX 2147483647UL  /* Docker: ids are 0 … 2^31-1 */

/* Reads root/path (inside the rootfs) whole; a missing file is empty. */
static int read_in_root(int rootfd, const char *path, char **ret, struct berth_err *err)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd;
	while ((fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how))) < 0 && errno == EAGAIN)
		;
	if (fd < 0 && errno == ENOENT) {
		*ret = strdup("");
		return *ret ? 0 : berth_errnof(err, ENOMEM, "/%s", path);
	}
	if (fd < 0)
		return berth_errnof(err, errno, "open /%s", path);
	_cleanup_close_ int f = (int)fd;
	struct stat st;
	if (fstat(f, &st) < 0)
		return berth_errnof(err, errno, "stat /%s", path);
	if (!S_ISREG(st.st_mode) || st.st_size > ID_FILE_MAX)
		return berth_errf(err, EINVAL, "/%s: not a regular file of at most 16 MiB", path);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return berth_errnof(err, ENOMEM, "/%s", path);
	size_t len = 0;
	for (ssize_t n; len < (size_t)st.st_size; len += (size_t)n)
		if ((n = read(f, buf + len, (size_t)st.st_size - len)) <= 0) {
			if (n == 0)
				break;
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			return berth_errnof(err, errno, "read /%s", path);
		}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

static bool parse_id(const char *s, size_t len, unsigned long *ret)
{
	if (len == 0 || len > 10)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > ID_MAX)
		return false;
	*ret = v;
	return true;
}

/* Splits one line of a colon file into at most n fields (pointers into
 * line, which is modified).  Returns the number of fields. */
static size_t split_fields(char *line, char **f, size_t n)
{
	size_t i = 0;
	f[i++] = line;
	for (char *p = line; *p && i < n; p++)
		if (*p == ':') {
			*p = '\0';
			f[i++] = p + 1;
		}
	return i;
}

/* Calls fn for every well-formed entry of a colon file with its fields,
 * stopping when fn returns non-zero (which is returned). */
static int each_entry(char *text, size_t want, int (*fn)(char **f, void *arg), void *arg)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[7];
		if (line[0] == '#' || split_fields(line, f, ARRAY_SIZE(f)) < want)
			continue;
		int r = fn(f, arg);
		if (r)
			return r;
	}
	return 0;
}

struct lookup {
	const char *key;   /* name, or NULL to match by id */
	unsigned long id;
	unsigned long found_id, found_gid;
	char name[256];
};

/* passwd: name:x:uid:gid:…  group: name:x:gid:members */
static int match_passwd(char **f, void *arg)
{
	struct lookup *l = arg;
	unsigned long uid, gid;
	if (!parse_id(f[2], strlen(f[2]), &uid) || !parse_id(f[3], strlen(f[3]), &gid))
		return 0;
	if (l->key ? strcmp(f[0], l->key) : uid != l->id)
		return 0;
	l->found_id = uid;
	l->found_gid = gid;
	snprintf(l->name, sizeof(l->name), "%s", f[0]);
	return 1;
}

static int match_group(char **f, void *arg)
{
	struct lookup *l = arg;
	unsigned long gid;
	if (!parse_id(f[2], strlen(f[2]), &gid) || (l->key ? strcmp(f[0], l->key) : gid != l->id))
		return 0;
	l->found_id = gid;
	return 1;
}

struct members {
	const char *user;
	gid_t *groups;
	size_t n;
};

static int collect_member(char **f, void *arg)
{
	struct members *m = arg;
	unsigned long gid;
	if (!parse_id(f[2], strlen(f[2]), &gid))
		return 0;
	char *save = NULL;
	for (char *u = strtok_r(f[3], ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		if (strcmp(u, m->user))
			continue;
		for (size_t i = 0; i < m->n; i++)
			if (m->groups[i] == (gid_t)gid)
				return 0;
		if (m->n >= GROUPS_MAX)
			return -E2BIG;
		gid_t *g = realloc(m->groups, (m->n + 1) * sizeof(gid_t));
		if (!g)
			return -ENOMEM;
		m->groups = g;
		m->groups[m->n++] = (gid_t)gid;
		return 0;
	}
	return 0;
}

static int find_user(const char *passwd, const char *spec, size_t len, struct lookup *l,
		     bool *ret_found, struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(passwd), *key = strndup(spec, len);
	if (!copy || !key)
		return berth_errnof(err, ENOMEM, "user");
	bool numeric = parse_id(spec, len, &l->id);
	l->key = numeric ? NULL : key;
	*ret_found = each_entry(copy, 4, match_passwd, l) == 1;
	l->key = NULL;
	if (!*ret_found && !numeric)
		return berth_errf(err, ENOENT, "unable to find user %s: no matching entries in passwd file",
				  key);
	if (!*ret_found) {
		/* Docker: an unknown numeric uid runs with gid 0. */
		l->found_id = l->id;
		l->found_gid = 0;
	}
	return 0;
}

static int find_group(const char *group, const char *spec, unsigned long *ret,
		      struct berth_err *err)
{
	_cleanup_free_ char *copy = strdup(group);
	if (!copy)
		return berth_errnof(err, ENOMEM, "group");
	struct lookup l = { .key = spec };
	bool numeric = parse_id(spec, strlen(spec), &l.id);
	if (numeric)
		l.key = NULL;
	if (each_entry(copy, 3, match_group, &l) == 1)
		*ret = l.found_id;
	else if (numeric)
		*ret = l.id;
	else
		return berth_errf(err, ENOENT, "unable to find group %s: no matching entries in group file",
				  spec);
	return 0;
}

static int supplementary(const char *group, const char *name, gid_t gid, struct rt_user *u,
			 struct berth_err *err)
{
	struct members m = { .user = name, .groups = malloc(sizeof(gid_t)), .n = 1 };
	if (!m.groups)
		return berth_errnof(err, ENOMEM, "groups");
	m.groups[0] = gid;
	_cleanup_free_ char *copy = name[0] ? strdup(group) : NULL;
	int r = (name[0] && !copy) ? -ENOMEM : 0;
	if (r == 0 && copy)
		r = each_entry(copy, 4, collect_member, &m);
	if (r < 0) {
		free(m.groups);
		return berth_errnof(err, -r, "supplementary groups of %s", name);
	}
	u->groups = m.groups;
	u->n_groups = m.n;
	return 0;
}

static int resolve(const char *passwd, const char *group, const char *user, struct rt_user *ret,
		   struct berth_err *err)
{
	const char *colon = strchr(user, ':');
	size_t ulen = colon ? (size_t)(colon - user) : strlen(user);
	if (ulen == 0 || (colon && !colon[1]))
		return berth_errf(err, EINVAL, "user \"%s\": empty user or group", user);
	struct lookup l = { 0 };
	bool found;
	int r = find_user(passwd, user, ulen, &l, &found, err);
	if (r < 0)
		return r;
	struct rt_user u = { .uid = (uid_t)l.found_id, .gid = (gid_t)l.found_gid };
	if (colon) {
		unsigned long gid = 0;
		r = find_group(group, colon + 1, &gid, err);
		if (r < 0)
			return r;
		u.gid = (gid_t)gid;
		r = supplementary(group, "", u.gid, &u, err);
	} else {
		r = supplementary(group, found ? l.name : "", u.gid, &u, err);
	}
	if (r < 0)
		return r;
	*ret = u;
	return 0;
}

int rt_resolve_user(int rootfs_dirfd, const char *user, struct rt_user *ret,
		    struct berth_err *err)
{
	_cleanup_free_ char *passwd = NULL, *group = NULL;
	int r = read_in_root(rootfs_dirfd, "etc/passwd", &passwd, err);
	if (r >= 0)
		r = read_in_root(rootfs_dirfd, "etc/group", &group, err);
	if (r >= 0)
		r = resolve(passwd, group, user && user[0] ? user : "0", ret, err);
	if (r < 0)
		return berth_err_wrap(err, "user \"%s\"", user ? user : "");
	return 0;
}

void rt_user_release(struct rt_user *u)
{
	free(u->groups);
	u->groups = NULL;
	u->n_groups = 0;
}
