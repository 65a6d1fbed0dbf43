/* The schema and its migrations.
 *
 * migrations[i] takes the database from user_version i to i + 1.  Append
 * only: a released migration is never edited, because databases out there
 * already ran it; a change is a new migration (services, deployments and
 * service events are migration 2, RunTask's client tokens 3, SSM parameters
 * and secrets 4).  Each one runs in its own
 * transaction together with the user_version bump, so a crash mid-upgrade
 * leaves the previous version intact and the next open retries.
 *
 * STRICT tables make SQLite reject a value of the wrong type instead of
 * storing it; CHECK constraints hold the ECS enums, so even a buggy caller
 * cannot write a status the API would not echo. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "daemon/store/store_internal.h"

/* "berth" in ASCII-ish hex, set in PRAGMA application_id so that another
 * program's SQLite file is recognised as not ours. */
#define STORE_APPLICATION_ID 0x42657274

#define TASK_STATUS_WORDS \
	"'PROVISIONING','PENDING','ACTIVATING','RUNNING','DEACTIVATING'," \
	"'STOPPING','DEPROVISIONING','STOPPED','DELETED'"
#define HEALTH_WORDS "'UNKNOWN','HEALTHY','UNHEALTHY'"

static const char *const migrations[] = {
	/* 0 → 1: clusters, task definitions, tasks, containers, tags. */
	"CREATE TABLE clusters ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  arn TEXT NOT NULL UNIQUE,"
	"  status TEXT NOT NULL CHECK (status IN ('ACTIVE','INACTIVE')),"
	"  created_at INTEGER NOT NULL,"
	"  settings_json TEXT,"
	"  configuration_json TEXT"
	") STRICT;"
	/* The revision counter lives apart from the revisions so that it
	 * survives their deletion: numbers are never reused. */
	"CREATE TABLE task_definition_families ("
	"  family TEXT PRIMARY KEY NOT NULL,"
	"  last_revision INTEGER NOT NULL CHECK (last_revision >= 1)"
	") STRICT;"
	"CREATE TABLE task_definitions ("
	"  family TEXT NOT NULL REFERENCES task_definition_families(family),"
	"  revision INTEGER NOT NULL CHECK (revision >= 1),"
	"  arn TEXT NOT NULL UNIQUE,"
	"  status TEXT NOT NULL CHECK (status IN ('ACTIVE','INACTIVE','DELETE_IN_PROGRESS')),"
	"  registered_at INTEGER NOT NULL,"
	"  deregistered_at INTEGER,"
	"  body_json TEXT NOT NULL,"
	"  PRIMARY KEY (family, revision)"
	") STRICT;"
	"CREATE INDEX task_definitions_by_status ON task_definitions (status, family, revision);"
	/* A task keeps its definition from being purged (ECS deletes a
	 * DELETE_IN_PROGRESS revision only once no task uses it): the foreign
	 * key enforces it. */
	"CREATE TABLE tasks ("
	"  id TEXT PRIMARY KEY NOT NULL"
	"    CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),"
	"  arn TEXT NOT NULL UNIQUE,"
	"  cluster TEXT NOT NULL REFERENCES clusters(name),"
	"  task_definition_arn TEXT NOT NULL REFERENCES task_definitions(arn),"
	"  group_name TEXT,"
	"  started_by TEXT,"
	"  service_name TEXT,"
	"  client_token TEXT,"
	"  launch_type TEXT,"
	"  cpu TEXT,"
	"  memory TEXT,"
	"  desired_status TEXT NOT NULL CHECK (desired_status IN ('PENDING','RUNNING','STOPPED')),"
	"  last_status TEXT NOT NULL CHECK (last_status IN (" TASK_STATUS_WORDS ")),"
	"  version INTEGER NOT NULL CHECK (version >= 1),"
	"  health_status TEXT NOT NULL CHECK (health_status IN (" HEALTH_WORDS ")),"
	"  stop_code TEXT,"
	"  stopped_reason TEXT,"
	"  connectivity TEXT,"
	"  connectivity_at INTEGER,"
	"  created_at INTEGER NOT NULL,"
	"  pull_started_at INTEGER,"
	"  pull_stopped_at INTEGER,"
	"  started_at INTEGER,"
	"  stopping_at INTEGER,"
	"  execution_stopped_at INTEGER,"
	"  stopped_at INTEGER,"
	"  overrides_json TEXT,"
	"  attachments_json TEXT,"
	"  shim_pid INTEGER CHECK (shim_pid IS NULL OR shim_pid > 0)"
	") STRICT;"
	"CREATE INDEX tasks_by_cluster ON tasks (cluster, id);"
	"CREATE INDEX tasks_by_task_definition ON tasks (task_definition_arn);"
	"CREATE INDEX tasks_by_service ON tasks (cluster, service_name, id)"
	"  WHERE service_name IS NOT NULL;"
	"CREATE INDEX tasks_by_client_token ON tasks (cluster, client_token)"
	"  WHERE client_token IS NOT NULL;"
	"CREATE INDEX tasks_stopped ON tasks (stopped_at) WHERE last_status = 'STOPPED';"
	"CREATE TABLE task_containers ("
	"  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL CHECK (position >= 0),"
	"  name TEXT NOT NULL,"
	"  arn TEXT NOT NULL UNIQUE,"
	"  image TEXT,"
	"  image_digest TEXT,"
	"  runtime_id TEXT,"
	"  last_status TEXT NOT NULL CHECK (last_status IN (" TASK_STATUS_WORDS ")),"
	"  exit_code INTEGER,"
	"  reason TEXT,"
	"  health_status TEXT NOT NULL CHECK (health_status IN (" HEALTH_WORDS ")),"
	"  network_json TEXT,"
	"  PRIMARY KEY (task_id, name),"
	"  UNIQUE (task_id, position)"
	") STRICT;"
	/* Tags hang off any resource ARN (cluster, task definition, task, and
	 * later service), so no foreign key; deleting a resource deletes its
	 * tags in the same transaction. */
	"CREATE TABLE tags ("
	"  resource_arn TEXT NOT NULL,"
	"  key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 128),"
	"  value TEXT NOT NULL CHECK (length(value) <= 256),"
	"  PRIMARY KEY (resource_arn, key)"
	") STRICT, WITHOUT ROWID;",

	/* 1 → 2: services.  The scheduler's view of a service (deployments,
	 * events, backoff) is ECS JSON the API echoes, so it is stored as
	 * such; the columns are what is queried. */
	"CREATE TABLE services ("
	"  cluster TEXT NOT NULL REFERENCES clusters(name),"
	"  name TEXT NOT NULL,"
	"  arn TEXT NOT NULL UNIQUE,"
	"  status TEXT NOT NULL CHECK (status IN ('ACTIVE','DRAINING','INACTIVE')),"
	"  created_at INTEGER NOT NULL,"
	"  desired_count INTEGER NOT NULL CHECK (desired_count >= 0),"
	"  config_json TEXT NOT NULL,"
	"  deployments_json TEXT NOT NULL,"
	"  events_json TEXT NOT NULL,"
	"  state_json TEXT NOT NULL,"
	"  PRIMARY KEY (cluster, name)"
	") STRICT;",

	/* 2 → 3: RunTask's clientToken.  The request as it came, so that a
	 * retry can be told from another request under the same token; its
	 * tasks are the ones with that client_token. */
	"CREATE TABLE run_requests ("
	"  cluster TEXT NOT NULL,"
	"  client_token TEXT NOT NULL,"
	"  request_json TEXT NOT NULL,"
	"  PRIMARY KEY (cluster, client_token)"
	") STRICT, WITHOUT ROWID;",

	/* 3 → 4: a cluster's capacity providers and default strategy, as
	 * CreateCluster and PutClusterCapacityProviders set them. */
	"ALTER TABLE clusters ADD COLUMN capacity_json TEXT;",

	/* 4 → 5: a task's enableExecuteCommand (RunTask's or its service's). */
	"ALTER TABLE tasks ADD COLUMN enable_execute_command INTEGER NOT NULL DEFAULT 0"
	"  CHECK (enable_execute_command IN (0, 1));",

	/* 5 → 6: SSM parameters and Secrets Manager secrets
	 * (store_secrets.h).  Values are sealed blobs, never plaintext;
	 * sealed_check holds one sealed under the host key so that a wrong
	 * key file is refused at start.  A stage names exactly one version
	 * of its secret: the primary key says so. */
	"CREATE TABLE sealed_check ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  sealed BLOB NOT NULL"
	") STRICT;"
	"CREATE TABLE ssm_parameters ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  version INTEGER NOT NULL CHECK (version >= 1),"
	"  description TEXT,"
	"  allowed_pattern TEXT,"
	"  tier TEXT NOT NULL,"
	"  data_type TEXT NOT NULL"
	") STRICT;"
	"CREATE TABLE ssm_parameter_versions ("
	"  name TEXT NOT NULL REFERENCES ssm_parameters(name) ON DELETE CASCADE,"
	"  version INTEGER NOT NULL,"
	"  type TEXT NOT NULL CHECK (type IN ('String','StringList','SecureString')),"
	"  sealed BLOB NOT NULL,"
	"  modified_at INTEGER NOT NULL,"
	"  PRIMARY KEY (name, version)"
	") STRICT;"
	"CREATE TABLE sm_secrets ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  arn TEXT NOT NULL UNIQUE,"
	"  description TEXT,"
	"  kms_key_id TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  changed_at INTEGER NOT NULL,"
	"  deleted_at INTEGER,"
	"  deletion_date INTEGER"
	") STRICT;"
	"CREATE TABLE sm_versions ("
	"  arn TEXT NOT NULL REFERENCES sm_secrets(arn) ON DELETE CASCADE,"
	"  version_id TEXT NOT NULL,"
	"  is_binary INTEGER NOT NULL CHECK (is_binary IN (0, 1)),"
	"  sealed BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (arn, version_id)"
	") STRICT;"
	"CREATE TABLE sm_stages ("
	"  arn TEXT NOT NULL,"
	"  stage TEXT NOT NULL,"
	"  version_id TEXT NOT NULL,"
	"  PRIMARY KEY (arn, stage),"
	"  FOREIGN KEY (arn, version_id) REFERENCES sm_versions(arn, version_id) ON DELETE CASCADE"
	") STRICT;",

	/* 6 → 7: ECS account settings, per principal (the account's default
	 * under its root ARN), container instance attributes and task
	 * protection. */
	"CREATE TABLE account_settings ("
	"  principal TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (principal, name)"
	") STRICT, WITHOUT ROWID;"
	/* Custom attributes of each cluster's one container instance. */
	"CREATE TABLE instance_attributes ("
	"  cluster TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  value TEXT,"
	"  PRIMARY KEY (cluster, name)"
	") STRICT, WITHOUT ROWID;"
	/* Task scale-in protection (UpdateTaskProtection), until expires_at. */
	"CREATE TABLE task_protection ("
	"  task_arn TEXT PRIMARY KEY NOT NULL,"
	"  expires_at INTEGER NOT NULL"
	") STRICT, WITHOUT ROWID;",

	/* 7 → 8: the ELBv2 API's load balancers, target groups, listeners and
	 * rules (daemon/elb): ELB's own XML-shaped members as JSON, the
	 * columns what is looked up; a listener's parent is its load
	 * balancer, a rule's its listener.  Targets are rows of their own so
	 * that draining ones carry their deadline across a restart. */
	"CREATE TABLE elb_resources ("
	"  arn TEXT PRIMARY KEY NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('loadbalancer','targetgroup','listener','rule')),"
	"  name TEXT,"
	"  parent_arn TEXT REFERENCES elb_resources(arn),"
	"  created_at INTEGER NOT NULL,"
	"  doc_json TEXT NOT NULL"
	") STRICT;"
	"CREATE UNIQUE INDEX elb_resources_by_name ON elb_resources (kind, name)"
	"  WHERE name IS NOT NULL;"
	"CREATE INDEX elb_resources_by_parent ON elb_resources (parent_arn)"
	"  WHERE parent_arn IS NOT NULL;"
	"CREATE TABLE elb_targets ("
	"  target_group_arn TEXT NOT NULL REFERENCES elb_resources(arn) ON DELETE CASCADE,"
	"  id TEXT NOT NULL,"
	"  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),"
	"  registered_at INTEGER NOT NULL,"
	"  drain_until INTEGER,"
	"  PRIMARY KEY (target_group_arn, id, port)"
	") STRICT, WITHOUT ROWID;",
	/* 8 → 9: how often a container was restarted in place (restartPolicy),
	 * the task metadata endpoint's RestartCount. */
	"ALTER TABLE task_containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0"
	" CHECK (restart_count >= 0);",
	/* 9 → 10: the status of each cluster's one container instance as
	 * UpdateContainerInstancesState set it; no row: ACTIVE. */
	"CREATE TABLE instance_states ("
	"  cluster TEXT PRIMARY KEY NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('DRAINING'))"
	") STRICT, WITHOUT ROWID;",
};

int store_schema_version(void)
{
	return (int)ARRAY_SIZE(migrations);
}

static int read_int_pragma(struct store *s, const char *sql, int64_t *ret, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: %s: %s", s->path, sql);
	*ret = sqlite3_column_int64(st, 0);
	return 0;
}

static int count_objects(struct store *s, int64_t *ret, struct berth_err *err)
{
	return read_int_pragma(s, "SELECT count(*) FROM sqlite_master", ret, err);
}

int store_schema_check(struct store *s, struct berth_err *err)
{
	const int64_t latest = store_schema_version();
	int64_t version = 0, app_id = 0, objects = 0;
	int r = read_int_pragma(s, "PRAGMA user_version", &version, err);
	if (r < 0)
		return r;
	r = read_int_pragma(s, "PRAGMA application_id", &app_id, err);
	if (r < 0)
		return r;
	if (version > latest)
		return berth_errf(err, ENOTSUP,
				  "store: %s: schema version %lld is newer than this berth knows (%lld): "
				  "downgrade not supported", s->path, (long long)version, (long long)latest);
	if (app_id != 0 && app_id != STORE_APPLICATION_ID)
		return berth_errf(err, EBADMSG, "store: %s: not a berth database (application_id %#llx)",
				  s->path, (long long)app_id);
	if (version == 0) {
		/* Version 0 must be an empty file: tables there belong to
		 * someone else, and migration 1 must not run over them. */
		r = count_objects(s, &objects, err);
		if (r < 0)
			return r;
		if (objects > 0)
			return berth_errf(err, EBADMSG,
					  "store: %s: not a berth database (it has tables but no schema version)",
					  s->path);
	}
	return 0;
}

int store_migrate(struct store *s, struct berth_err *err)
{
	const int64_t latest = store_schema_version();
	int64_t version = 0;
	int r = store_schema_check(s, err);
	if (r < 0)
		return r;
	r = read_int_pragma(s, "PRAGMA user_version", &version, err);
	if (r < 0)
		return r;
	while (version < latest) {
		struct store_tx tx _cleanup_tx_ = { 0 };
		r = store_tx_begin(s, &tx, err);
		if (r < 0)
			return berth_err_wrap(err, "store: %s: migration %lld", s->path, (long long)version + 1);
		/* Another process may have upgraded while we waited for the
		 * write lock: re-read inside the transaction. */
		r = read_int_pragma(s, "PRAGMA user_version", &version, err);
		if (r < 0)
			return r;
		if (version >= latest)
			break;
		r = store_exec(s, migrations[version], err);
		if (r < 0)
			return berth_err_wrap(err, "store: %s: migration %lld", s->path, (long long)version + 1);
		char sql[96];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld; PRAGMA application_id = %d",
			 (long long)version + 1, STORE_APPLICATION_ID);
		r = store_exec(s, sql, err);
		if (r < 0)
			return r;
		r = store_tx_commit(&tx, err);
		if (r < 0)
			return berth_err_wrap(err, "store: %s: migration %lld", s->path, (long long)version + 1);
		version++;
	}
	return 0;
}
