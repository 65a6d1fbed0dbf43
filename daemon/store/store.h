/* daemon/store/store: the daemon's durable state, one SQLite database
 * (<root>/berth.db): clusters, task definitions, tasks with their
 * containers, and tags.
 *
 * Durability: WAL, synchronous=FULL, foreign keys on.  Every mutation is
 * atomic (a transaction, or a savepoint inside the caller's), so a crash
 * (kill -9, power loss) leaves the old or the new state, never a mix.
 * store_txn() groups several mutations into one (RunTask with count > 1, a
 * service deployment and its tasks).
 *
 * Group commit: after store_group_attach(), the writes of one turn of the
 * event loop share one transaction and so one fsync (each is a savepoint
 * in it; one that fails undoes only itself).  The group commits from a
 * zero-delay timer at the end of the turn, or earlier, when it reached
 * STORE_GROUP_UNITS writes or STORE_GROUP_MS of age, at the next
 * store_group_bound().  Whatever must not
 * happen before a write is durable (an answer to a client, starting a
 * task's shim) waits for it through store_after_commit().
 *
 * The schema is versioned (PRAGMA user_version) and upgraded on open by
 * ordered migrations, one transaction each; a database from a newer berth is
 * refused rather than guessed at.
 *
 * The store keeps the typed members the daemon queries or changes as
 * columns; members it only echoes (a task definition as registered, task
 * overrides, ENI attachments) are the exact ECS JSON, stored as text.
 * Columns are authoritative: the API overlays arn/revision/status/
 * registeredAt/deregisteredAt on a task definition's body_json when it
 * encodes one.
 *
 * Times are epoch milliseconds (ECS prints seconds with a millisecond
 * fraction); 0 means "not yet" and is stored as NULL.  Mutations take the
 * time from the caller so that one API request stamps one instant.
 *
 * Ownership: getters return heap objects the caller frees with the matching
 * *_free().  Inputs are only read; their strings stay the caller's.  A
 * struct store is one connection: use it from one thread at a time; other
 * processes may open the same file (WAL readers never block the writer, and
 * writers wait up to the busy timeout rather than failing with SQLITE_BUSY).
 *
 * Errors are "store: <object>: <cause>" with a negative errno:
 * -ENOENT not found, -EEXIST duplicate, -EINVAL bad argument or state,
 * -EBUSY the object is in use (cluster with active tasks; -ENOTEMPTY: with
 * active services), -ESTALE a task
 * update based on an old version, -ENOTSUP a newer schema, -EBADMSG not a
 * database or corrupt. */
#ifndef BERTH_DAEMON_STORE_H
#define BERTH_DAEMON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/cleanup.h"
#include "common/err.h"

#define STORE_PAGE_MAX 100          /* ECS maxResults upper bound */
#define STORE_TAGS_MAX 50           /* per resource */
#define STORE_TAG_KEY_MAX 128       /* characters */
#define STORE_TAG_VALUE_MAX 256
#define STORE_TASK_ID_LEN 32        /* hex digits, like ECS */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store;

/* Opens (creating, mode 0600) and upgrades the database at PATH.  Refuses,
 * without writing to it, a file that is not SQLite, is corrupt, is some
 * other program's database, or has a schema newer than this code knows.
 * One thread at a time uses a store (the daemon's loop): the connection is
 * opened without SQLite's own mutexes. */
int store_open(const char *path, struct store **ret, struct berth_err *err);
void store_close(struct store *s);
DEFINE_CLEANUP_FUNC(struct store, store_close)
/* A second, read-only connection to W's database, with its own statement
 * cache: it sees only what is committed, never the writes of W's open
 * group, so a read served from it needs no commit to wait for.  W must
 * stay open while it is used (W's WAL and shared memory files). */
int store_open_reader(const struct store *w, struct store **ret, struct berth_err *err);

/* The schema version this code writes (PRAGMA user_version after open). */
int store_schema_version(void);

/* Runs fn(s, arg, err) inside one transaction: committed when fn returns 0,
 * rolled back when it fails (its error is returned).  Store calls made by fn
 * nest as savepoints, so a failed inner call undoes only itself and fn may
 * carry on or give up. */
typedef int (*store_txn_fn)(struct store *s, void *arg, struct berth_err *err);
int store_txn(struct store *s, store_txn_fn fn, void *arg, struct berth_err *err);

/* One atomic unit of writes (an API request's): a transaction of its own,
 * or a savepoint inside the open one (the group).  Committed by
 * store_tx_commit() (inside a group: released, durable at the group's
 * commit), undone by store_tx_rollback() or, while still open, by the
 * _cleanup_tx_ attribute. */
struct store_tx {
	struct store *s;
	unsigned level;             /* 1 = the outermost BEGIN */
	size_t hooks;               /* store_after_commit() callbacks queued before it */
	bool open;
};
int store_tx_begin(struct store *s, struct store_tx *tx, struct berth_err *err);
int store_tx_commit(struct store_tx *tx, struct berth_err *err);
void store_tx_rollback(struct store_tx *tx);
static inline void store_tx_rollbackp(struct store_tx *tx)
{
	if (tx->open)
		store_tx_rollback(tx);
}
#define _cleanup_tx_ _cleanup_(store_tx_rollbackp)

/* ---- group commit ---- */

#define STORE_GROUP_UNITS 256       /* top-level writes in one group, at most */
#define STORE_GROUP_MS 25           /* a group older than this commits before the next write */

struct event_base;
/* From now on writes outside a transaction of the caller's join the group
 * of the current turn of BASE's loop (which must outlive the store). */
int store_group_attach(struct store *s, struct event_base *base, struct berth_err *err);
/* From now on the group's fsync is made on a thread of the store's own,
 * not inside the COMMIT on the loop: with hundreds of tasks writing their
 * files, one fsync took up to 200 ms, and the loop answered nothing
 * meanwhile.  The commit's store_after_commit() callbacks still wait for
 * it (on the loop, a turn later); what the reader connection sees may be
 * committed a few milliseconds before it is on disk.  After
 * store_group_attach(); 0, or -errno (the store then syncs as before). */
int store_group_sync_apart(struct store *s, struct berth_err *err);
/* That thread's id (0: none), for the loop's owner to give it the loop
 * thread's priority: API answers wait for it. */
pid_t store_group_sync_tid(const struct store *s);
/* Commits the open group now (shutdown; tests); 0 when none is open.
 * On disk when it returns, with every earlier commit (their callbacks
 * run first).  -EBUSY inside a unit (a savepoint is open).  A failed commit rolls the
 * whole group back: nothing of it is half-written. */
int store_group_commit(struct store *s, struct berth_err *err);

/* Commits the open group when it reached STORE_GROUP_UNITS units or
 * STORE_GROUP_MS (its hooks run now).  For top-level callers only, between
 * units (an API request before it begins, a batch of the scheduler's):
 * the hooks may change what the caller's callers are walking. */
void store_group_bound(struct store *s);

/* FN(ARG, R, ERR) once the writes made so far are durable (R = 0) or never
 * will be (R < 0, ERR says why: the commit failed, or -ECANCELED: the
 * savepoint it was registered in was rolled back).  Called at once, with
 * 0, when no write transaction is open.  Called from the loop, outside any
 * transaction: FN may write (that begins a new group).  -ENOMEM (FN is
 * not called): the caller cannot wait. */
typedef void (*store_commit_fn)(void *arg, int r, const struct berth_err *err);
int store_after_commit(struct store *s, store_commit_fn fn, void *arg, struct berth_err *err);

/* A read snapshot: every read until store_read_end() sees the same state,
 * in one transaction instead of one per read (an API read asks for a
 * cluster, ten tasks and their containers: each transaction takes and
 * drops WAL locks).  For reads only: a write inside could fail with EBUSY
 * when another connection wrote after the snapshot began.  Does nothing
 * inside an open transaction: a read in an open group sees the group's
 * writes (then its answer waits for the group's commit too). */
int store_read_begin(struct store *s, struct berth_err *err);
void store_read_end(struct store *s);

/* Paging.  max_results 0 means STORE_PAGE_MAX; otherwise 1..STORE_PAGE_MAX.
 * next_token is NULL for the first page, else the token of the previous
 * page: an opaque cursor (base64 of the last key returned), so pages neither
 * skip nor repeat rows when others are added or removed meanwhile.  A token
 * from another kind of list, or not from us at all, is -EINVAL. */
struct store_page {
	int max_results;
	const char *next_token;
};

/* A page of names or ARNs.  next_token is NULL on the last page. */
struct store_list {
	size_t n;
	char **items;
	char *next_token;
};
void store_list_clear(struct store_list *l);

/* ---- enums (stored as ECS's words, so the file reads like the API) ---- */

enum store_cluster_status { STORE_CLUSTER_ACTIVE, STORE_CLUSTER_INACTIVE };
enum store_td_status {
	STORE_TD_ACTIVE,
	STORE_TD_INACTIVE,
	STORE_TD_DELETE_IN_PROGRESS,
};
/* A task's lastStatus / desiredStatus, and a container's lastStatus. */
enum store_task_status {
	STORE_TASK_PROVISIONING,
	STORE_TASK_PENDING,
	STORE_TASK_ACTIVATING,
	STORE_TASK_RUNNING,
	STORE_TASK_DEACTIVATING,
	STORE_TASK_STOPPING,
	STORE_TASK_DEPROVISIONING,
	STORE_TASK_STOPPED,
	STORE_TASK_DELETED,
};
enum store_health { STORE_HEALTH_UNKNOWN, STORE_HEALTH_HEALTHY, STORE_HEALTH_UNHEALTHY };

const char *store_cluster_status_name(enum store_cluster_status v);
const char *store_td_status_name(enum store_td_status v);
const char *store_task_status_name(enum store_task_status v);
const char *store_health_name(enum store_health v);
/* 0, or -EINVAL for a word that is not one of the enum's. */
int store_cluster_status_parse(const char *s, enum store_cluster_status *ret);
int store_td_status_parse(const char *s, enum store_td_status *ret);
int store_task_status_parse(const char *s, enum store_task_status *ret);
int store_health_parse(const char *s, enum store_health *ret);

/* ---- clusters ---- */

struct store_cluster {
	char *name;
	char *arn;
	enum store_cluster_status status;
	int64_t created_at;
	char *settings_json;        /* ECS "settings" array, or NULL */
	char *configuration_json;   /* ECS "configuration" object, or NULL */
	/* {"capacityProviders": [...], "defaultCapacityProviderStrategy":
	 * [...]}, or NULL for none */
	char *capacity_json;
	/* Derived from the tasks table on every read, never stored, so they
	 * cannot drift from the tasks they count. */
	int64_t running_tasks_count;   /* lastStatus RUNNING */
	int64_t pending_tasks_count;   /* PROVISIONING, PENDING, ACTIVATING */
	int64_t active_services_count; /* ACTIVE services */
};
void store_cluster_free(struct store_cluster *c);
DEFINE_CLEANUP_FUNC(struct store_cluster, store_cluster_free)

/* Creates cluster in->name (in->arn, in->settings_json,
 * in->configuration_json, stamped now_ms).  Like CreateCluster it is
 * idempotent: an ACTIVE cluster of that name is returned unchanged with
 * *ret_created false; an INACTIVE one is brought back to ACTIVE with the new
 * settings and without its old tags.  ret_created may be NULL. */
int store_cluster_create(struct store *s, const struct store_cluster *in, int64_t now_ms,
			 struct store_cluster **ret, bool *ret_created, struct berth_err *err);
/* Replaces an ACTIVE cluster's settings_json and configuration_json, each
 * only when not NULL; -ENOENT when there is no ACTIVE cluster NAME. */
int store_cluster_update(struct store *s, const char *name, const char *settings_json,
			 const char *configuration_json, struct berth_err *err);
/* Replaces an ACTIVE cluster's capacity_json; -ENOENT when there is no
 * ACTIVE cluster NAME. */
int store_cluster_set_capacity(struct store *s, const char *name, const char *capacity_json,
			       struct berth_err *err);
/* By name or ARN; INACTIVE clusters are found too (DescribeClusters shows
 * them). */
int store_cluster_get(struct store *s, const char *name_or_arn, struct store_cluster **ret,
		      struct berth_err *err);
/* store_cluster_get() without counting the cluster's tasks and services
 * (the counts are 0): for a request that only names a cluster. */
int store_cluster_find(struct store *s, const char *name_or_arn, struct store_cluster **ret,
		       struct berth_err *err);
/* Cluster ARNs ordered by name, INACTIVE (deleted) ones too: ECS keeps
 * listing a deleted cluster for a while. */
int store_cluster_list(struct store *s, const struct store_page *page,
		       struct store_list *ret, struct berth_err *err);
/* ACTIVE → INACTIVE (an INACTIVE one is returned as is).  -ENOTEMPTY
 * while it has ACTIVE services, -EBUSY while it holds tasks that are not
 * STOPPED. */
int store_cluster_delete(struct store *s, const char *name_or_arn, struct store_cluster **ret,
			 struct berth_err *err);

/* ---- task definitions ---- */

struct store_task_definition {
	char *family;
	int64_t revision;
	char *arn;
	enum store_td_status status;
	int64_t registered_at;
	int64_t deregistered_at;    /* 0 while ACTIVE */
	char *body_json;            /* the definition as registered, defaults filled */
};
void store_task_definition_free(struct store_task_definition *td);
DEFINE_CLEANUP_FUNC(struct store_task_definition, store_task_definition_free)

/* Registers the next revision of FAMILY: 1 for a new family, else one more
 * than any revision the family ever had (deleted ones included: numbers are
 * never reused).  The ARN is "<arn_base>:task-definition/<family>:<rev>",
 * arn_base being "arn:aws:ecs:<region>:<account>". */
int store_task_definition_register(struct store *s, const char *arn_base, const char *family,
				   const char *body_json, int64_t now_ms,
				   struct store_task_definition **ret, struct berth_err *err);
/* REF is an ARN, "family:revision" (any status) or a bare family (its latest
 * ACTIVE revision, -ENOENT when it has none). */
int store_task_definition_get(struct store *s, const char *ref,
			      struct store_task_definition **ret, struct berth_err *err);

struct store_td_filter {
	const char *family;         /* exact family (ECS's familyPrefix); NULL = all */
	bool has_status;            /* false = every status */
	enum store_td_status status;
	bool descending;            /* sort DESC: family, then revision, both descending */
};
/* Task definition ARNs ordered by (family, revision). */
int store_task_definition_list(struct store *s, const struct store_td_filter *f,
			       const struct store_page *page, struct store_list *ret,
			       struct berth_err *err);

enum store_family_status {
	STORE_FAMILY_ALL,           /* every family ever registered */
	STORE_FAMILY_ACTIVE,        /* with at least one ACTIVE revision */
	STORE_FAMILY_INACTIVE,      /* with no ACTIVE revision */
};
/* Family names in order, those starting with family_prefix (NULL = all). */
int store_task_definition_families(struct store *s, const char *family_prefix,
				   enum store_family_status status, const struct store_page *page,
				   struct store_list *ret, struct berth_err *err);

/* REF must name a revision (ARN or family:rev).  Deregister: ACTIVE →
 * INACTIVE stamped now_ms (an INACTIVE one is returned as is).  Delete:
 * INACTIVE → DELETE_IN_PROGRESS (an ACTIVE one is -EINVAL: ECS requires
 * deregistering first). */
int store_task_definition_deregister(struct store *s, const char *ref, int64_t now_ms,
				     struct store_task_definition **ret, struct berth_err *err);
int store_task_definition_delete(struct store *s, const char *ref,
				 struct store_task_definition **ret, struct berth_err *err);
/* Physically removes DELETE_IN_PROGRESS revisions that no task references
 * any more (ECS finishes the deletion then), with their tags.  The family's
 * revision counter stays.  ret_n may be NULL. */
int store_task_definition_purge(struct store *s, size_t *ret_n, struct berth_err *err);

/* ---- tasks ---- */

struct store_container {
	char *name;
	char *arn;
	char *image;
	char *image_digest;
	char *runtime_id;
	enum store_task_status last_status;  /* PENDING, RUNNING, STOPPED */
	bool has_exit_code;                  /* exitCode exists only after exit */
	int exit_code;
	char *reason;
	enum store_health health_status;
	char *network_json;  /* {"networkInterfaces":[…],"networkBindings":[…]} or NULL */
	int restart_count;   /* restarts in place (restartPolicy) */
};

struct store_task {
	char id[STORE_TASK_ID_LEN + 1];
	char *arn;
	char *cluster;              /* cluster name */
	char *task_definition_arn;
	char *group;
	char *started_by;
	char *service_name;         /* NULL for a standalone task */
	char *client_token;         /* RunTask clientToken, or NULL */
	char *launch_type;
	char *cpu;                  /* strings, as ECS prints them */
	char *memory;
	enum store_task_status desired_status;
	enum store_task_status last_status;
	int64_t version;            /* 1 on insert, +1 on every update */
	enum store_health health_status;
	char *stop_code;
	char *stopped_reason;
	char *connectivity;         /* CONNECTED / DISCONNECTED, or NULL */
	int64_t connectivity_at;
	int64_t created_at;
	int64_t pull_started_at;
	int64_t pull_stopped_at;
	int64_t started_at;
	int64_t stopping_at;
	int64_t execution_stopped_at;
	int64_t stopped_at;
	char *overrides_json;       /* task.overrides as echoed, or NULL */
	char *attachments_json;     /* task.attachments (the ENI) as echoed, or NULL */
	int shim_pid;               /* 0 when no shim runs */
	bool enable_execute_command;  /* as RunTask / CreateService gave it */
	size_t n_containers;
	struct store_container *containers;  /* in task definition order */
};
/* Frees a task from store_task_get() (the struct and every string). */
void store_task_free(struct store_task *t);
DEFINE_CLEANUP_FUNC(struct store_task, store_task_free)

/* A fresh random task id: 32 lowercase hex digits. */
int store_task_new_id(char ret[STORE_TASK_ID_LEN + 1], struct berth_err *err);

/* Inserts T (every member; version is set to 1).  The cluster must exist and
 * be ACTIVE, the task definition must exist. */
int store_task_insert(struct store *s, struct store_task *t, struct berth_err *err);
/* Writes T's whole mutable state (everything but id, arn, cluster,
 * task_definition_arn and created_at) and its containers, in one
 * transaction.  t->version must be the version last read: otherwise -ESTALE
 * (someone changed the task since), so a stale copy never overwrites a
 * newer state.  On success t->version is the new version. */
int store_task_update(struct store *s, struct store_task *t, struct berth_err *err);
/* By task id or task ARN. */
int store_task_get(struct store *s, const char *id_or_arn, struct store_task **ret,
		   struct berth_err *err);

/* What a store_task_modify() FN returns when it changed nothing: the
 * task is not written (its version stays). */
#define STORE_TASK_UNCHANGED 1
/* FN changes T (read just now, inside the transaction) and returns 0 to
 * have it written, STORE_TASK_UNCHANGED, or a negative errno (with ERR
 * set) to write nothing.  It runs inside the transaction: other store
 * calls it makes join it; it must not block. */
typedef int (*store_task_modify_fn)(struct store_task *t, void *arg, struct berth_err *err);
/* Read, FN, write back, in one transaction: no other writer's change to
 * the task between the read and the write can be lost (the get → change
 * → store_task_update() shape, with its -ESTALE, done atomically).
 * Returns 0 (written) or STORE_TASK_UNCHANGED, FN's error, -ENOENT for no
 * such task, or a store error; *RET (RET may be NULL) is then the task as
 * stored now, the caller's to free. */
int store_task_modify(struct store *s, const char *id_or_arn, store_task_modify_fn fn, void *arg,
		      struct store_task **ret, struct berth_err *err);

struct store_task_filter {
	const char *cluster;        /* cluster name; NULL = every cluster */
	const char *family;         /* task definition family */
	const char *service_name;
	const char *started_by;
	bool has_desired_status;
	enum store_task_status desired_status;
	bool not_stopped;           /* lastStatus != STOPPED (re-adoption on start) */
	const char *launch_type;    /* "FARGATE", "EC2", "EXTERNAL" */
};
/* Task ARNs ordered by task id, matching every filter given. */
int store_task_list(struct store *s, const struct store_task_filter *f,
		    const struct store_page *page, struct store_list *ret, struct berth_err *err);
/* The tasks not STOPPED as groups of alike tasks: FN is called once per
 * (task definition, overrides, cluster, lastStatus) with how many tasks
 * share them; the strings live until FN returns.  A negative return from
 * FN stops the walk and is returned. */
struct store_task_group {
	const char *task_definition_arn;
	const char *overrides_json;  /* NULL: none */
	const char *cluster;
	enum store_task_status last_status;
	int64_t count;
};
typedef int (*store_task_group_fn)(void *arg, const struct store_task_group *g,
				   struct berth_err *err);
int store_task_groups(struct store *s, store_task_group_fn fn, void *arg, struct berth_err *err);
/* Retention: deletes the tasks STOPPED before stopped_before_ms, with their
 * containers and tags, and the RunTask requests left with no task.  *ret_ids (may be NULL) lists the deleted task ids,
 * so the caller can remove their task directories. */
int store_task_prune(struct store *s, int64_t stopped_before_ms, struct store_list *ret_ids,
		     struct berth_err *err);

/* RunTask's clientToken: records the request (its JSON as received) under
 * (cluster, token), in the caller's transaction, with the tasks it makes
 * (each inserted with client_token = token). */
int store_run_request_put(struct store *s, const char *cluster, const char *token,
			  const char *request_json, struct berth_err *err);
/* The request recorded under (cluster, token) and the ARNs of its tasks
 * still kept, in the order they were made; -ENOENT when there is none
 * (never recorded, or all its tasks pruned). */
int store_run_request_get(struct store *s, const char *cluster, const char *token,
			  char **ret_request_json, struct store_list *ret_arns,
			  struct berth_err *err);

/* ---- services ---- */

enum store_service_status {
	STORE_SERVICE_ACTIVE,
	STORE_SERVICE_DRAINING,
	STORE_SERVICE_INACTIVE,
};
const char *store_service_status_name(enum store_service_status v);

/* A service: its columns, and the JSON the scheduler keeps (the request's
 * configuration as echoed, the deployments and events newest first, its
 * own state).  The store does not look inside the JSON. */
struct store_service {
	char *cluster;              /* cluster name */
	char *name;
	char *arn;
	enum store_service_status status;
	int64_t created_at;
	int64_t desired_count;
	char *config_json;
	char *deployments_json;
	char *events_json;
	char *state_json;
};
void store_service_free(struct store_service *v);
DEFINE_CLEANUP_FUNC(struct store_service, store_service_free)

/* Inserts IN.  -EEXIST when the cluster has an ACTIVE or DRAINING service
 * of that name (an INACTIVE one is replaced, its tags dropped); -ENOENT
 * or -EINVAL for a missing or INACTIVE cluster. */
int store_service_create(struct store *s, const struct store_service *in, struct berth_err *err);
/* By cluster and name, or by ARN (cluster may then be NULL). */
int store_service_get(struct store *s, const char *cluster, const char *name_or_arn,
		      struct store_service **ret, struct berth_err *err);
/* Writes every mutable member (status, desired count, the JSON). */
int store_service_update(struct store *s, const struct store_service *v, struct berth_err *err);
/* Which services store_service_list() lists: CLUSTER's (NULL = every
 * cluster's), ACTIVE ones and DRAINING ones too when with_draining; with
 * the launch type and scheduling strategy of their configuration when
 * given. */
struct store_service_filter {
	const char *cluster;
	bool with_draining;
	const char *launch_type;
	const char *scheduling_strategy;
};
/* Service ARNs ordered by name. */
int store_service_list(struct store *s, const struct store_service_filter *f,
		       const struct store_page *page, struct store_list *ret,
		       struct berth_err *err);

/* ---- tags ---- */

struct store_tag {
	char *key;
	char *value;
};
void store_tags_free(struct store_tag *tags, size_t n);

/* 0 when ARN names a cluster, task definition or task we hold, else -ENOENT
 * (ECS's ResourceNotFoundException). */
int store_resource_exists(struct store *s, const char *arn, struct berth_err *err);
/* TagResource: adds the tags, replacing the value of keys already there.
 * All or nothing: refused (-EINVAL) when a key is empty, longer than 128
 * characters or starts with "aws:", a value is longer than 256 characters,
 * or the resource would end up with more than 50 tags. */
int store_tags_put(struct store *s, const char *arn, const struct store_tag *tags, size_t n,
		   struct berth_err *err);
/* UntagResource: keys the resource does not have are ignored. */
int store_tags_remove(struct store *s, const char *arn, const char *const *keys, size_t n,
		      struct berth_err *err);
/* The resource's tags ordered by key; *ret is NULL when it has none. */
int store_tags_list(struct store *s, const char *arn, struct store_tag **ret, size_t *ret_n,
		    struct berth_err *err);

/* ---- account settings (store_account.c) ---- */

/* One setting of one principal (an IAM ARN; the account's default is
 * under arn:aws:iam::<account>:root). */
struct store_account_setting {
	char *principal;
	char *name;
	char *value;
};
int store_account_setting_put(struct store *s, const char *principal, const char *name,
			      const char *value, struct berth_err *err);
/* -ENOENT when PRINCIPAL has no NAME setting. */
int store_account_setting_delete(struct store *s, const char *principal, const char *name,
				 struct berth_err *err);
/* Every setting of every principal, by name then principal. */
int store_account_settings_list(struct store *s, struct store_account_setting **ret,
				size_t *ret_n, struct berth_err *err);
void store_account_settings_free(struct store_account_setting *v, size_t n);

/* Custom attributes of CLUSTER's container instance (the host): a name and
 * a value (NULL: none), as store_tag key and value. */
int store_attribute_put(struct store *s, const char *cluster, const char *name,
			const char *value, struct berth_err *err);
int store_attribute_delete(struct store *s, const char *cluster, const char *name,
			   struct berth_err *err);
/* The status of CLUSTER's container instance (UpdateContainerInstancesState):
 * DRAINING (true) or ACTIVE; get: ACTIVE when never set. */
int store_instance_draining_set(struct store *s, const char *cluster, bool draining,
				struct berth_err *err);
int store_instance_draining_get(struct store *s, const char *cluster, bool *ret,
				struct berth_err *err);
/* Task scale-in protection: ARN protected until EXPIRES_AT (ms), or not
 * at all when EXPIRES_AT is 0.  get: *ret 0 when none. */
int store_task_protection_set(struct store *s, const char *arn, int64_t expires_at,
			      struct berth_err *err);
int store_task_protection_get(struct store *s, const char *arn, int64_t *ret,
			      struct berth_err *err);
/* By name; freed with store_tags_free(). */
int store_attributes_list(struct store *s, const char *cluster, struct store_tag **ret,
			  size_t *ret_n, struct berth_err *err);

#endif
