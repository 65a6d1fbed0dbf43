/* A small ECS client for the berth command: one AWS JSON 1.1 call at a time
 * (POST / with X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>) to the
 * daemon's unix socket, over one libcurl handle that keeps its connection
 * between calls. */
#ifndef BERTH_CLI_ECS_H
#define BERTH_CLI_ECS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"

#define ECS_TASK_ID_LEN 32

struct ecs;

/* A client for the daemon listening on the unix socket at path (copied).
 * Nothing is connected yet; the first call connects. */
int ecs_open(const char *socket_path, struct ecs **ret, struct berth_err *err);

void ecs_close(struct ecs *e);
DEFINE_CLEANUP_FUNC(struct ecs, ecs_close)

/* Calls op (an ECS operation, or a whole X-Amz-Target of another service
 * on the endpoint, such as Berth's own "BerthV20261208.ListVolumes") with
 * req as the body (NULL: {}), and returns the parsed answer
 * in *ret (the caller frees it with cJSON_Delete).  Fails with:
 *  - "cannot reach the berth daemon at PATH: <cause>" when nothing answers;
 *  - "<Op>: <__type>: <message>" for an ECS error body (-EPROTO; the type
 *    stays readable through ecs_error_type until the next call);
 *  - "<Op>: HTTP <status>: …" for an answer that is not ECS JSON. */
int ecs_call(struct ecs *e, const char *op, const cJSON *req, cJSON **ret,
	     struct berth_err *err);

/* POSTs FORM (a form-encoded body: the ELBv2 API's Query protocol) for
 * ACTION; the answer as it came, *ret_body (NUL-terminated, the caller
 * frees it), and the HTTP status.  Fails only when nothing answers. */
int ecs_post_form(struct ecs *e, const char *action, const char *form, char **ret_body,
		  long *ret_status, struct berth_err *err);

/* The __type of the last call's ECS error, "" when it had none. */
const char *ecs_error_type(const struct ecs *e);

/* The task id in arg (a 32-hex id or a task ARN, ".../task/<cluster>/<id>"
 * or ".../task/<id>"), copied into id; -EINVAL naming arg otherwise. */
int ecs_task_id(const char *arg, char id[ECS_TASK_ID_LEN + 1], struct berth_err *err);

/* A Describe operation: its name, the array member of its request and its
 * answer, the ARN member of an item, and how many names one call takes. */
struct ecs_describe {
	const char *op, *member, *key;
	int batch;
};
extern const struct ecs_describe ecs_op_tasks;     /* DescribeTasks by 100 */
extern const struct ecs_describe ecs_op_services;  /* DescribeServices by 10 */

/* Whether the last call failed for want of cluster "default" (which the
 * daemon creates on the first RunTask) when that is cluster. */
bool ecs_no_default_cluster(const struct ecs *e, const char *cluster);

/* Describes the names or ARNs in the string array refs in cluster, batch
 * by batch, and appends the items to out, each once (by their ARN); the
 * ones the daemon reports in failures (MISSING) are left out. */
int ecs_describe_all(struct ecs *e, const struct ecs_describe *d, const char *cluster,
		     const cJSON *refs, cJSON *out, struct berth_err *err);

/* d of one name or ARN in cluster.  *ret is the item (the caller frees it),
 * or NULL when the daemon reports it MISSING (or has no cluster "default"
 * yet, when that is the cluster asked for). */
int ecs_describe_one(struct ecs *e, const struct ecs_describe *d, const char *cluster,
		     const char *ref, cJSON **ret, struct berth_err *err);

/* ecs_describe_one() of a task (id or ARN). */
int ecs_describe_task(struct ecs *e, const char *cluster, const char *task, cJSON **ret,
		      struct berth_err *err);

/* StopTask of task (id or ARN) in cluster with reason; the answer goes to
 * *ret when ret is not NULL (the caller frees it). */
int ecs_stop_task(struct ecs *e, const char *cluster, const char *task, const char *reason,
		  cJSON **ret, struct berth_err *err);

/* Calls the list operation op page after page (maxResults 100), with req
 * as the base of every request (the nextToken member is set on it), and
 * appends the strings of each answer's member array to out. */
int ecs_list_all(struct ecs *e, const char *op, cJSON *req, const char *member, cJSON *out,
		 struct berth_err *err);

/* Sorts the items of arr with cmp, which compares two `const cJSON *const *`. */
int ecs_sort_array(cJSON *arr, int (*cmp)(const void *, const void *));

/* The string member name of obj, or NULL when absent or not a string. */
const char *ecs_str(const cJSON *obj, const char *name);

/* "family:revision" of a task definition ARN (the part after
 * "task-definition/"), or the ARN itself when it has no such part. */
const char *ecs_td_name(const char *arn);

/* Prints v pretty on stdout; 1 when it could not be formatted, else 0. */
int ecs_print_json(const cJSON *v);

#endif
