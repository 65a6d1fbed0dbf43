/* Shared by the files of daemon/elb only: one call's request tree, its answer, its
 * error, the member readers and the resource helpers. */
#ifndef BERTH_DAEMON_ELB_INTERNAL_H
#define BERTH_DAEMON_ELB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "daemon/elb/elb.h"
#include "daemon/store/store_elb.h"

#define ELB_XMLNS "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
#define ELB_VERSION "2015-12-01"
#define ELB_NAME_MAX 32
/* Where an instance target's traffic goes: this host, where bridge-mode
 * tasks publish their ports. */
#define ELB_INSTANCE_ADDR "127.0.0.1"

struct event;

struct elb {
	struct event_base *base;
	struct store *store;
	struct elb_config cfg;
	char *dns_name;
	struct event *drain_timer;
};

/* One request.  IN is the form as a tree (query.c): objects, arrays for
 * `.member.N` lists, strings at the leaves.  Readers take leaves out of it
 * (into SPENT, which keeps them alive), so whatever is left at the end is
 * a member nobody read: a ValidationError. */
struct elb_op;

struct elb_call {
	struct elb *e;
	const struct elb_op *op;
	cJSON *in;
	cJSON *spent;
	cJSON *out; /* the <OpResult>'s members */
	int64_t now_ms;
	bool changed; /* the data plane must be told */
	int status;
	char code[64];
	char message[512];
};

/* Records ELB error CODE (HTTP status from the model) and returns -1. */
int elb_fail(struct elb_call *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A store error: -ENOENT → NOTFOUND_CODE, -EEXIST → DUP_CODE (NULL: a 500). */
int elb_fail_store(struct elb_call *c, int r, const struct berth_err *err,
		   const char *notfound_code, const char *dup_code);

/* ---- request readers (elb_read.c) ---- */

/* The form as a tree; -1 with MSG set for a malformed form. */
int elb_query_parse(const char *body, size_t len, cJSON **ret, char *msg, size_t msglen);
/* Leaf NAME of OBJ taken as a string, or NULL when absent. */
const char *elb_take_str(struct elb_call *c, cJSON *obj, const char *name);
/* Required string: absent → ValidationError "…must not be null". */
int elb_need_str(struct elb_call *c, cJSON *obj, const char *name, const char **ret);
/* Integer in [lo, hi]; absent leaves *ret.  1 when present, 0 absent, -1 bad. */
int elb_take_int(struct elb_call *c, cJSON *obj, const char *name, int lo, int hi, int *ret);
/* "true"/"false"; same returns as elb_take_int. */
int elb_take_bool(struct elb_call *c, cJSON *obj, const char *name, bool *ret);
/* A `.member.N` list (an empty one is sent as `Name=`); NULL when absent. */
cJSON *elb_take_list(struct elb_call *c, cJSON *obj, const char *name, int max);
/* A nested structure; NULL when absent. */
cJSON *elb_take_obj(struct elb_call *c, cJSON *obj, const char *name);
/* 0 when every member was read, else a ValidationError naming one. */
int elb_check_all_read(struct elb_call *c);

/* ---- answers (elb_xml.c) ---- */

char *elb_answer_xml(const char *op, const cJSON *result, const char *request_id);
/* ISO 8601 with milliseconds, UTC, in a static-size buffer. */
void elb_time(int64_t ms, char out[32]);

/* ---- resources (elb.c) ---- */

enum elb_kind { ELB_LB, ELB_TG, ELB_LISTENER, ELB_RULE };
/* A new ARN for a resource of KIND; PARENT's ARN for listeners (the load
 * balancer) and rules (the listener). */
int elb_new_arn(struct elb_call *c, enum elb_kind kind, const char *name, const char *parent,
		char **ret);
/* The resource ARN names, its JSON parsed: -1 (NOTFOUND_CODE) when there
 * is none of KIND. */
int elb_load(struct elb_call *c, enum elb_kind kind, const char *arn,
	     struct store_elb_res **ret_res, cJSON **ret_doc);
int elb_save(struct elb_call *c, const char *arn, const cJSON *doc);
const char *elb_kind_word(enum elb_kind kind);
const char *elb_notfound_code(enum elb_kind kind);
/* "tg-<id>" / "l-<id>": the data plane's name for a group or listener. */
void elb_plane_name(const char *arn, char out[40]);
/* The last path component of ARN (its 16-hex id). */
const char *elb_arn_id(const char *arn);

/* A load balancer's or target group's name: 1..32 letters, digits and
 * hyphens, no hyphen first or last. */
int elb_check_name(struct elb_call *c, const char *what, const char *name);
/* Paging: Marker (an offset this API handed out) and PageSize (1..400)
 * taken from the request; *ret_from, *ret_size. */
int elb_take_page(struct elb_call *c, int *ret_from, int *ret_size);
/* Appends ITEMS[from, from + size) to the answer as LIST, and NextMarker
 * when more remain.  Takes ITEMS. */
int elb_put_page(struct elb_call *c, const char *list, cJSON *items, int from, int size);
/* Every ARN (or name) in ARNS (or NAMES) is one of RS: else KIND's
 * NotFound error. */
int elb_check_found(struct elb_call *c, enum elb_kind kind, const struct store_elb_res *rs,
		    size_t n, const cJSON *arns, const cJSON *names);
/* Whether R is among ARNS or NAMES (neither given: yes). */
bool elb_wanted(const struct store_elb_res *r, const cJSON *arns, const cJSON *names);
/* Whether the array of strings ARR holds S. */
bool elb_array_has(const cJSON *arr, const char *s);
/* The load balancers whose listeners or rules forward to TG_ARN, appended
 * to OUT (each once). */
int elb_tg_users(struct elb_call *c, const char *tg_arn, cJSON *out);
/* A target group attribute as a number (its stored JSON DOC). */
int elb_tg_attribute(const cJSON *doc, const char *key);
/* The action list NAME of OBJ (exactly one action), in the answer's form;
 * NULL after an error.  PROTO: the listener's protocol. */
cJSON *elb_read_actions(struct elb_call *c, cJSON *obj, const char *name, const char *proto);
/* Whether stored ACTIONS forward to TG_ARN. */
bool elb_actions_use(const cJSON *actions, const char *tg_arn);
/* The ARN of a listener's default rule (its stored JSON DOC). */
const char *elb_default_rule_arn(const cJSON *listener_doc);
/* Sorts rules (objects with a numeric "Priority" string) by priority. */
void elb_sort_rules(cJSON *items);
/* A Describe* answer: KIND's resources (PARENT's only, unless NULL), the
 * ones in ARNS or NAMES when given (an unknown one: KIND's NotFound), each
 * as OUT makes it and KEEP (NULL: all) keeps it, as the page FROM, SIZE of
 * the answer's LIST. */
struct elb_describe {
	enum elb_kind kind;
	const char *parent;
	const cJSON *arns, *names;
	cJSON *(*out)(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc);
	bool (*keep)(struct elb_call *c, const cJSON *item, const void *arg);
	const void *arg;
	const char *list;
	int from, size;
};
int elb_describe(struct elb_call *c, const struct elb_describe *q);
/* A new resource: the row and its JSON. */
int elb_insert(struct elb_call *c, enum elb_kind kind, const char *arn, const char *name,
	       const char *parent, const cJSON *doc);

/* Tags given on creation (`Tags`): read and checked as AddTags does with
 * the other members, stored once the resource is (which frees them). */
struct elb_tags {
	struct store_tag *v; /* strings borrowed from the request */
	size_t n;
};
int elb_take_tags(struct elb_call *c, struct elb_tags *ret);
static inline void elb_tags_done(struct elb_tags *t)
{
	free(t->v);
}
int elb_tags_create(struct elb_call *c, struct elb_tags *tags, const char *arn);

/* ---- the data plane (elb_plane.c) ---- */

/* Hands the whole stored state to the data plane (no-op without one). */
int elb_plane_apply(struct elb *e, struct berth_err *err);
/* A target's health from the data plane; -ENODEV without one. */
struct lb_target_health;
int elb_plane_health(struct elb *e, const char *tg_arn, const char *addr, int port,
		     struct lb_target_health *ret, struct berth_err *err);
/* Arms the drain timer for the earliest draining target (or disarms it). */
void elb_drain_arm(struct elb *e);

/* ---- the operations ---- */

typedef int elb_op_fn(struct elb_call *c);
elb_op_fn elb_op_create_load_balancer, elb_op_describe_load_balancers, elb_op_delete_load_balancer;
elb_op_fn elb_op_create_target_group, elb_op_describe_target_groups, elb_op_modify_target_group,
	elb_op_delete_target_group, elb_op_modify_target_group_attributes,
	elb_op_describe_target_group_attributes;
elb_op_fn elb_op_create_listener, elb_op_describe_listeners, elb_op_modify_listener,
	elb_op_delete_listener;
elb_op_fn elb_op_create_rule, elb_op_describe_rules, elb_op_delete_rule;
elb_op_fn elb_op_register_targets, elb_op_deregister_targets, elb_op_describe_target_health;
elb_op_fn elb_op_add_tags, elb_op_describe_tags, elb_op_remove_tags;

#endif
