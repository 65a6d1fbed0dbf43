/* daemon/sched/tasksecrets: container `secrets` (docs/task-environment.md
 * "Secrets") — each {name, valueFrom} becomes an environment variable
 * whose value the daemon reads from its own SSM parameters and Secrets
 * Manager secrets when it builds the task's plan.
 *
 * valueFrom, as ECS reads it:
 *   arn:aws:ssm:<region>:<account>:parameter/<name>      an SSM parameter
 *   arn:aws:secretsmanager:<region>:<account>:secret:<name>[-<suffix>]
 *       [:<json-key>:<version-stage>:<version-id>]        a secret (its
 *       AWSCURRENT value, or the stage / version named; with a json-key,
 *       that key of the value read as a JSON object)
 *   <name>                                                a parameter of that
 *       name, else (Berth only) a secret of that name
 *
 * Resolved values exist only in memory and in the plan the shim starts
 * from (start-plan.json: 0600, in the 0700 task directory), removed once
 * the shim has read it (sched.c); plan.json never holds them. */
#ifndef BERTH_DAEMON_TASKSECRETS_H
#define BERTH_DAEMON_TASKSECRETS_H

#include <cjson/cJSON.h>

#include "common/err.h"
#include "daemon/store/store_secrets.h"

enum tasksecret_kind { TASKSECRET_SSM, TASKSECRET_SM, TASKSECRET_NAME };

/* A parsed valueFrom; the strings are malloc'd (NULL: not given). */
struct tasksecret_ref {
	enum tasksecret_kind kind;
	char *id;           /* SSM: the ARN's "/path" after "parameter"; SM: the
			     * secret's ARN without the key fields; NAME: it */
	char *json_key, *stage, *version_id;
	char *region, *account;  /* of an ARN */
};
void tasksecret_ref_done(struct tasksecret_ref *r);

/* -EINVAL naming what is wrong with VALUE_FROM: an ARN of another
 * service, an SSM ARN that is not a parameter's, a secret ARN with more
 * than the three key fields, an empty one. */
int tasksecret_parse(const char *value_from, struct tasksecret_ref *ret, struct berth_err *err);

/* The secrets of every container of TD (a stored definition): *ret is an
 * array with one entry per container definition, in order, each an array
 * of {"name", "value"} (empty when the container has none), or NULL when
 * no container has secrets.  A secret that cannot be read is -ENOENT
 * with ECS's words after "ResourceInitializationError: " ("unable to pull
 * secrets or registry auth: execution resource retrieval failed: …").
 * Free *ret with tasksecrets_free(), which wipes the values. */
int tasksecrets_resolve(struct store *s, const struct store_key *k, const char *region,
			const char *account, int64_t now_ms, const cJSON *td, cJSON **ret,
			struct berth_err *err);
void tasksecrets_free(cJSON *v);

/* The same wiping for a plan's text, then free(). */
void tasksecrets_free_text(char *text);
static inline void tasksecrets_free_textp(char **text)
{
	tasksecrets_free_text(*text);
}

#endif
