/* daemon/sched/taskmeta: the task endpoint's ids, from a host key. */
#include "daemon/sched/taskmeta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include "common/cleanup.h"
#include "common/fsutil.h"

/* A new key goes to a temporary name first and is linked in place, so a
 * crash never leaves a short key and two daemons racing on a fresh root
 * agree on one. */
static int key_create(int dfd, const char *root, struct berth_err *err)
{
	unsigned char key[TASKMETA_KEY_LEN];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return berth_errnof(err, errno, "%s/%s: getrandom", root, TASKMETA_KEY_FILE);
	int r = berth_write_atomic_at(dfd, TASKMETA_KEY_FILE ".new", key, sizeof(key), 0600, err);
	if (r < 0)
		return r;
	if (linkat(dfd, TASKMETA_KEY_FILE ".new", dfd, TASKMETA_KEY_FILE, 0) < 0 && errno != EEXIST)
		r = berth_errnof(err, errno, "%s/%s: create", root, TASKMETA_KEY_FILE);
	unlinkat(dfd, TASKMETA_KEY_FILE ".new", 0);
	return r < 0 ? r : berth_fsync_dir_at(dfd, ".", err);
}

int taskmeta_key_load(const char *root, unsigned char key[TASKMETA_KEY_LEN],
		      struct berth_err *err)
{
	_cleanup_close_ int dfd = -1;
	int r = berth_open_dir_p(root, 0700, &dfd, err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = openat(dfd, TASKMETA_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if ((r = key_create(dfd, root, err)) < 0)
			return r;
		fd = openat(dfd, TASKMETA_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "%s/%s", root, TASKMETA_KEY_FILE);
	if (!S_ISREG(st.st_mode) || st.st_size != TASKMETA_KEY_LEN)
		return berth_errf(err, EINVAL, "%s/%s: not a %d-byte key file", root,
				  TASKMETA_KEY_FILE, TASKMETA_KEY_LEN);
	if (st.st_mode & 0077)
		return berth_errf(err, EPERM, "%s/%s: readable by others (mode %04o): chmod 600 it",
				  root, TASKMETA_KEY_FILE, (unsigned)(st.st_mode & 07777));
	if (read(fd, key, TASKMETA_KEY_LEN) != TASKMETA_KEY_LEN)
		return berth_errnof(err, errno ? errno : EIO, "%s/%s: read", root, TASKMETA_KEY_FILE);
	return 0;
}

/* HMAC-SHA256(key, KIND \0 A \0 B) */
static void mac(const struct taskmeta *m, const char *kind, const char *a, const char *b,
		unsigned char out[32])
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "%s%c%s%c%s", kind, 0, a, 0, b);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
	unsigned int olen = 32;
	HMAC(EVP_sha256(), m->key, TASKMETA_KEY_LEN, (const unsigned char *)msg, len, out, &olen);
}

void taskmeta_container_id(const struct taskmeta *m, const char *task_id, const char *cname,
			   char out[TASKMETA_ID_LEN + 1])
{
	unsigned char h[32];
	mac(m, "metadata", task_id, cname, h);
	int n = snprintf(out, TASKMETA_ID_LEN + 1, "%.*s-", STORE_TASK_ID_LEN, task_id);
	for (int i = 0; i < TASKMETA_MAC_HEX / 2 && n > 0; i++)
		n += snprintf(out + n, (size_t)(TASKMETA_ID_LEN + 1 - n), "%02x", h[i]);
}

void taskmeta_credentials_id(const struct taskmeta *m, const char *task_id, const char *role,
			     char out[TASKMETA_UUID_LEN + 1])
{
	unsigned char h[32];
	mac(m, "credentials", task_id, role, h);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x40);   /* version 4 */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	snprintf(out, TASKMETA_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
		 h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
		 h[15]);
}

const char *taskmeta_role_arn(const cJSON *td, const cJSON *overrides)
{
	const char *o = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(overrides,
									       "taskRoleArn"));
	if (o && *o)
		return o;
	const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(td, "taskRoleArn"));
	return d && *d ? d : NULL;
}

bool taskmeta_env(const struct taskmeta *m, const char *task_id, const char *cname,
		  const char *role, bool (*set)(cJSON *env, const char *name, const char *value),
		  cJSON *env)
{
	char id[TASKMETA_ID_LEN + 1], url[sizeof(m->base) + TASKMETA_ID_LEN + 8];
	taskmeta_container_id(m, task_id, cname, id);
	snprintf(url, sizeof(url), "%s/v4/%s", m->base, id);
	if (!set(env, "ECS_CONTAINER_METADATA_URI_V4", url))
		return false;
	snprintf(url, sizeof(url), "%s/v3/%s", m->base, id);
	if (!set(env, "ECS_CONTAINER_METADATA_URI", url))
		return false;
	if (!role)
		return true;
	char uuid[TASKMETA_UUID_LEN + 1], rel[TASKMETA_UUID_LEN + 32];
	taskmeta_credentials_id(m, task_id, role, uuid);
	snprintf(rel, sizeof(rel), "/v2/credentials/%s", uuid);
	return set(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", rel);
}
