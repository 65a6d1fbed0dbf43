/* daemon/secrets/secrets: SSM Parameter Store and Secrets Manager, served
 * on the daemon's endpoint beside ECS (AWS JSON 1.1; X-Amz-Target prefixes
 * "AmazonSSM." and "secretsmanager.", SigV4 signing names "ssm" and
 * "secretsmanager"; docs/api.md "SSM and Secrets Manager").
 *
 * The operations use the ECS layer's per-request call and member readers
 * (daemon/ecs/ecs.h) and answer in each service's own error shapes: SSM's
 * ValidationException, ParameterNotFound, …, Secrets Manager's
 * InvalidParameterException, ResourceNotFoundException, …  Values live
 * sealed in the store (daemon/store/store_secrets.h) under the host key
 * the dispatcher hands over in c->secrets_key. */
#ifndef BERTH_DAEMON_SECRETS_H
#define BERTH_DAEMON_SECRETS_H

#include "daemon/ecs/ecs.h"

int api_op_ssm_put_parameter(struct api_call *c);
int api_op_ssm_get_parameter(struct api_call *c);
int api_op_ssm_get_parameters(struct api_call *c);
int api_op_ssm_get_parameters_by_path(struct api_call *c);
int api_op_ssm_describe_parameters(struct api_call *c);
int api_op_ssm_delete_parameter(struct api_call *c);

int api_op_sm_create_secret(struct api_call *c);
int api_op_sm_get_secret_value(struct api_call *c);
int api_op_sm_put_secret_value(struct api_call *c);
int api_op_sm_describe_secret(struct api_call *c);
int api_op_sm_list_secrets(struct api_call *c);
int api_op_sm_delete_secret(struct api_call *c);

/* Runs operation FN and reports its failure in the service's own terms:
 * the member readers' InvalidParameterException becomes SERVICE_INVALID,
 * ServerException SERVICE_INTERNAL (the one 5xx).  Without a host key
 * nothing runs. */
int secrets_call(struct api_call *c, int (*fn)(struct api_call *c), const char *service_invalid,
		 const char *service_internal);

/* The first of the members NAMES (NULL-terminated) the request sets —
 * not null, not an empty list or string — or NULL: members Berth does not
 * keep are refused rather than dropped. */
const char *secrets_unkept(const struct api_call *c, const char *const *names);

/* A timestamp member: epoch seconds with the milliseconds, as AWS JSON 1.1. */
bool secrets_add_date(cJSON *o, const char *name, int64_t ms);

#endif
