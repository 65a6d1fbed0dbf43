/* daemon/store/store_elb: the ELBv2 API's state (daemon/elb).
 *
 * A resource is a load balancer, target group, listener or rule: its ARN,
 * kind, name (load balancers and target groups; unique per kind), parent
 * (a listener's load balancer, a rule's listener), creation time and its
 * members as JSON that only daemon/elb reads.  Targets are rows of their
 * own: registered ones, and deregistered ones still draining until
 * drain_until (epoch ms), so a restart resumes the drain.
 *
 * Conventions as store.h: 0 or a negative errno, "store: …" messages,
 * -ENOENT not found, -EEXIST a duplicate name or ARN. */
#ifndef BERTH_DAEMON_STORE_ELB_H
#define BERTH_DAEMON_STORE_ELB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/store/store.h"

struct store_elb_res {
	char *arn;
	char *kind;	  /* "loadbalancer", "targetgroup", "listener", "rule" */
	char *name;	  /* NULL for listeners and rules */
	char *parent_arn; /* NULL for load balancers and target groups */
	int64_t created_at;
	char *doc_json;
};
void store_elb_res_free(struct store_elb_res *r);
DEFINE_CLEANUP_FUNC(struct store_elb_res, store_elb_res_free)
void store_elb_res_array_free(struct store_elb_res *rs, size_t n);

int store_elb_res_insert(struct store *s, const struct store_elb_res *r, struct berth_err *err);
/* Replaces the resource's JSON. */
int store_elb_res_update(struct store *s, const char *arn, const char *doc_json,
			 struct berth_err *err);
int store_elb_res_get(struct store *s, const char *arn, struct store_elb_res **ret,
		      struct berth_err *err);
/* KIND's resources (PARENT's children only, unless NULL), oldest first;
 * *ret is NULL when there are none. */
int store_elb_res_list(struct store *s, const char *kind, const char *parent_arn,
		       struct store_elb_res **ret, size_t *ret_n, struct berth_err *err);
/* Deletes ARN, its children and grandchildren (a load balancer's
 * listeners and their rules), their tags, and a target group's targets. */
int store_elb_res_delete(struct store *s, const char *arn, struct berth_err *err);

struct store_elb_target {
	char *target_group_arn;
	char *id; /* an IPv4 address, or an instance id */
	int port;
	int64_t registered_at;
	int64_t drain_until; /* 0: registered; else deregistered, draining until then */
};
void store_elb_targets_free(struct store_elb_target *ts, size_t n);

/* Registers (again: a draining target is registered anew). */
int store_elb_target_put(struct store *s, const char *tg_arn, const char *id, int port, int64_t now,
			 struct berth_err *err);
/* Starts the drain of a registered target; -ENOENT when it is not. */
int store_elb_target_drain(struct store *s, const char *tg_arn, const char *id, int port,
			   int64_t until, struct berth_err *err);
/* TG_ARN's targets (every group's when NULL), by group, id and port. */
int store_elb_target_list(struct store *s, const char *tg_arn, struct store_elb_target **ret,
			  size_t *ret_n, struct berth_err *err);
/* Forgets targets whose drain ended at or before NOW; *ret_n how many. */
int store_elb_target_purge(struct store *s, int64_t now, size_t *ret_n, struct berth_err *err);

#endif
