/* daemon/sched/taskmeta: the names a task uses to reach the task endpoint
 * (docs/task-environment.md "Task metadata and credentials").
 *
 * Each container gets ECS_CONTAINER_METADATA_URI_V4 (and the v3 one) with
 * an id of its own, and a task with a role gets
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI with a UUID.  Both are an HMAC
 * of the task id (and the container name or the role) under a host key
 * (<root>/task-endpoint.key, 32 random bytes, 0600, made at first start),
 * so they are unguessable without the key, the same after a daemon
 * restart, and need no storage: the endpoint recomputes and compares.
 * The metadata id also carries the task id in the clear, as Fargate's
 * "<task id>-<digits>" does, so the endpoint finds the task at once; the
 * credentials UUID does not, and is found through the caller's address. */
#ifndef BERTH_DAEMON_TASKMETA_H
#define BERTH_DAEMON_TASKMETA_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "common/err.h"
#include "daemon/store/store.h"

#define TASKMETA_KEY_LEN 32
#define TASKMETA_MAC_HEX 20                     /* 80 bits of the HMAC */
#define TASKMETA_ID_LEN (STORE_TASK_ID_LEN + 1 + TASKMETA_MAC_HEX)
#define TASKMETA_UUID_LEN 36
#define TASKMETA_KEY_FILE "task-endpoint.key"

struct taskmeta {
	unsigned char key[TASKMETA_KEY_LEN];
	char base[48];          /* "http://169.254.170.2" (":port" unless 80) */
};

/* Reads ROOT/task-endpoint.key, creating it (0600, O_EXCL) when missing;
 * refuses one that is not a 32-byte regular file or that others may read. */
int taskmeta_key_load(const char *root, unsigned char key[TASKMETA_KEY_LEN],
		      struct berth_err *err);

/* "<task id>-<20 hex>" for container CNAME of TASK_ID. */
void taskmeta_container_id(const struct taskmeta *m, const char *task_id, const char *cname,
			   char out[TASKMETA_ID_LEN + 1]);

/* A UUID (8-4-4-4-12 hex, version 4 bits set) for TASK_ID's ROLE. */
void taskmeta_credentials_id(const struct taskmeta *m, const char *task_id, const char *role,
			     char out[TASKMETA_UUID_LEN + 1]);

/* The task role: overrides.taskRoleArn, else the definition's; NULL. */
const char *taskmeta_role_arn(const cJSON *td, const cJSON *overrides);

/* Sets the endpoint's variables in ENV (the plan's "NAME=value" list,
 * through SET, which replaces an earlier NAME): the two metadata URIs of
 * container CNAME, and the credentials URI when ROLE is not NULL. */
bool taskmeta_env(const struct taskmeta *m, const char *task_id, const char *cname,
		  const char *role, bool (*set)(cJSON *env, const char *name, const char *value),
		  cJSON *env);

#endif
