/* daemon/ecs/clusters: CreateCluster, DescribeClusters, ListClusters, DeleteCluster.
 *
 * Berth is one host, so a cluster is a namespace for tasks and services:
 * every ACTIVE cluster has the host as its one container instance
 * (daemon/api_instances.c) and there are no capacity providers to manage.  CreateCluster accepts the
 * Fargate providers tutorials pass (FARGATE, FARGATE_SPOT) because every
 * task runs here whichever is named; they are validated but not echoed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"

#define DEFAULT_CLUSTER "default"

/* DescribeClusters `include`, as bits. */
enum {
	INC_ATTACHMENTS = 1 << 0,
	INC_CONFIGURATIONS = 1 << 1,
	INC_SETTINGS = 1 << 2,
	INC_STATISTICS = 1 << 3,
	INC_TAGS = 1 << 4,
};
static const char *const cluster_fields[] = {
	"ATTACHMENTS", "CONFIGURATIONS", "SETTINGS", "STATISTICS", "TAGS", NULL,
};

static const char *const insights_values[] = { "enabled", "disabled", "enhanced", NULL };
static const char *const setting_names[] = { "containerInsights", NULL };
static const char *const exec_logging[] = { "NONE", "DEFAULT", "OVERRIDE", NULL };
static const char *const capacity_providers[] = { "FARGATE", "FARGATE_SPOT", NULL };
/* The members a cluster's capacity_json holds. */
static const char *const capacity_members[] = {
	"capacityProviders", "defaultCapacityProviderStrategy",
};

/* A stored JSON member (settings, configuration) added under NAME. */
static int add_stored(struct api_call *c, cJSON *o, const char *name, const char *json)
{
	cJSON *v = cJSON_Parse(json);
	if (!v)
		return api_error(c, 0, API_E_SERVER, "cluster %s: stored JSON does not parse", name);
	if (!cJSON_AddItemToObject(o, name, v)) {
		cJSON_Delete(v);
		return api_oom(c);
	}
	return 0;
}

/* capacityProviders and defaultCapacityProviderStrategy, as stored ([] for
 * none). */
static int add_capacity(struct api_call *c, cJSON *o, const char *json)
{
	_cleanup_(cJSON_Deletep) cJSON *cap = json ? cJSON_Parse(json) : cJSON_CreateObject();
	if (!cap)
		return api_error(c, 0, API_E_SERVER, "cluster: stored capacity providers do not parse");
	for (size_t i = 0; i < ARRAY_SIZE(capacity_members); i++) {
		cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(cap, capacity_members[i]);
		if (!v)
			v = cJSON_CreateArray();
		if (!v || !cJSON_AddItemToObject(o, capacity_members[i], v)) {
			cJSON_Delete(v);
			return api_oom(c);
		}
	}
	return 0;
}

/* The Cluster shape as ECS returns it; INCLUDE chooses the optional parts. */
static int cluster_json(struct api_call *c, const struct store_cluster *cl, unsigned include,
			cJSON **ret)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o || !json_add_string(o, "clusterArn", cl->arn) ||
	    !json_add_string(o, "clusterName", cl->name) ||
	    !json_add_string(o, "status", store_cluster_status_name(cl->status)) ||
	    !json_add_number(o, "registeredContainerInstancesCount",
			    cl->status == STORE_CLUSTER_ACTIVE) ||
	    !json_add_number(o, "runningTasksCount", (double)cl->running_tasks_count) ||
	    !json_add_number(o, "pendingTasksCount", (double)cl->pending_tasks_count) ||
	    !json_add_number(o, "activeServicesCount", (double)cl->active_services_count) ||
	    /* Per-launch-type statistics are not kept: the counts above are
	     * the cluster's only figures. */
	    !json_add_array(o, "statistics"))
		return api_oom(c);
	if (add_capacity(c, o, cl->capacity_json) < 0)
		return -1;
	if ((include & INC_TAGS) && api_add_tags(c, o, cl->arn) < 0)
		return -1;
	if (include & INC_SETTINGS) {
		if (cl->settings_json) {
			if (add_stored(c, o, "settings", cl->settings_json) < 0)
				return -1;
		} else {
			/* ECS's account default, which Berth has no way to change. */
			cJSON *arr = json_add_array(o, "settings");
			cJSON *s = arr ? json_add_object(arr) : NULL;
			if (!s || !json_add_string(s, "name", "containerInsights") ||
			    !json_add_string(s, "value", "disabled"))
				return api_oom(c);
		}
	}
	if ((include & INC_CONFIGURATIONS) && cl->configuration_json &&
	    add_stored(c, o, "configuration", cl->configuration_json) < 0)
		return -1;
	if ((include & INC_ATTACHMENTS) && !json_add_array(o, "attachments"))
		return api_oom(c);
	*ret = TAKE_PTR(o);
	return 0;
}

/* {"cluster": <cl>} into c->out. */
static int reply_cluster(struct api_call *c, const struct store_cluster *cl)
{
	cJSON *j;
	if (cluster_json(c, cl, INC_TAGS | INC_SETTINGS | INC_CONFIGURATIONS, &j) < 0)
		return -1;
	c->out = cJSON_CreateObject();
	if (!c->out || !cJSON_AddItemToObject(c->out, "cluster", j)) {
		cJSON_Delete(j);
		return api_oom(c);
	}
	return 0;
}

/* ---- CreateCluster ---- */

/* settings[] → the normalised array to store (one entry per name, the
 * last one given wins), or NULL when none were given. */
static int parse_settings(struct api_call *c, char **ret)
{
	const cJSON *arr;
	*ret = NULL;
	if (api_get_array(c, c->in, "", "settings", false, 10, &arr) < 0)
		return -1;
	if (!arr || !cJSON_GetArraySize(arr))
		return 0;
	const char *insights = NULL;
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		char path[32];
		snprintf(path, sizeof(path), "settings[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		const char *name, *value;
		if (api_get_enum(c, it, path, "name", true, setting_names, &name) < 0 ||
		    api_get_enum(c, it, path, "value", true, insights_values, &value) < 0)
			return -1;
		insights = value;
	}
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	cJSON *s = out ? json_add_object(out) : NULL;
	if (!s || !json_add_string(s, "name", "containerInsights") ||
	    !json_add_string(s, "value", insights))
		return api_oom(c);
	*ret = cJSON_PrintUnformatted(out);
	return *ret ? 0 : api_oom(c);
}

/* configuration{executeCommandConfiguration{…}}: checked member by member
 * and stored as given (Berth runs no ECS Exec agent yet; the cluster
 * echoes its configuration as ECS does). */
static int parse_configuration(struct api_call *c, char **ret)
{
	const cJSON *cfg, *exec, *logc;
	*ret = NULL;
	if (api_get_object(c, c->in, "", "configuration", false, &cfg) < 0)
		return -1;
	if (!cfg)
		return 0;
	if (api_get_object(c, cfg, "configuration.", "executeCommandConfiguration", false, &exec) < 0)
		return -1;
	if (exec) {
		static const char p[] = "configuration.executeCommandConfiguration.";
		static const char lp[] = "configuration.executeCommandConfiguration.logConfiguration.";
		const char *s;
		bool have, b;
		if (api_get_string(c, exec, p, "kmsKeyId", false, &s) < 0 ||
		    api_get_enum(c, exec, p, "logging", false, exec_logging, &s) < 0 ||
		    api_get_object(c, exec, p, "logConfiguration", false, &logc) < 0)
			return -1;
		if (s && strcmp(s, "OVERRIDE") == 0 && !logc)
			return api_error(c, 0, API_E_INVALID, "%slogConfiguration: required when "
					 "logging is OVERRIDE", p);
		if (logc && (api_get_string(c, logc, lp, "cloudWatchLogGroupName", false, &s) < 0 ||
			     api_get_bool(c, logc, lp, "cloudWatchEncryptionEnabled", &have, &b) < 0 ||
			     api_get_string(c, logc, lp, "s3BucketName", false, &s) < 0 ||
			     api_get_bool(c, logc, lp, "s3EncryptionEnabled", &have, &b) < 0 ||
			     api_get_string(c, logc, lp, "s3KeyPrefix", false, &s) < 0))
			return -1;
	}
	*ret = cJSON_PrintUnformatted(cfg);
	return *ret ? 0 : api_oom(c);
}

/* capacityProviders (FARGATE, FARGATE_SPOT) and a default strategy drawn
 * from them, into *ret as stored ({...}, or NULL when neither is given).
 * REQUIRED: both must be there (PutClusterCapacityProviders). */
static int parse_capacity(struct api_call *c, bool required, char **ret)
{
	const cJSON *providers, *strategy, *it;
	*ret = NULL;
	if (api_get_array(c, c->in, "", "capacityProviders", required, 6, &providers) < 0 ||
	    api_get_array(c, c->in, "", "defaultCapacityProviderStrategy", required, 6,
			  &strategy) < 0)
		return -1;
	int i = 0;
	cJSON_ArrayForEach(it, providers) {
		if (!cJSON_IsString(it))
			return api_error(c, 0, API_E_INVALID, "capacityProviders[%d]: expected a string", i);
		bool known = false;
		for (size_t k = 0; capacity_providers[k]; k++)
			known |= strcmp(it->valuestring, capacity_providers[k]) == 0;
		if (!known)
			return api_error(c, 0, API_E_INVALID, "capacityProviders[%d]: the capacity "
					 "provider '%.255s' does not exist (only FARGATE and "
					 "FARGATE_SPOT)", i, it->valuestring);
		i++;
	}
	i = 0;
	cJSON_ArrayForEach(it, strategy) {
		char path[48];
		snprintf(path, sizeof(path), "defaultCapacityProviderStrategy[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		const char *name;
		bool have;
		int64_t v;
		if (api_get_string(c, it, path, "capacityProvider", true, &name) < 0 ||
		    api_get_int(c, it, path, "weight", false, 0, 1000, &have, &v) < 0 ||
		    api_get_int(c, it, path, "base", false, 0, 100000, &have, &v) < 0)
			return -1;
		bool listed = false;
		const cJSON *p;
		cJSON_ArrayForEach(p, providers)
			listed |= strcmp(p->valuestring, name) == 0;
		if (!listed)
			return api_error(c, 0, API_E_INVALID, "%scapacityProvider: '%.255s' is not in "
					 "capacityProviders", path, name);
	}
	if (!providers && !strategy)
		return 0;
	_cleanup_(cJSON_Deletep) cJSON *cap = cJSON_CreateObject();
	const cJSON *given[] = { providers, strategy };
	for (size_t k = 0; cap && k < ARRAY_SIZE(capacity_members); k++) {
		cJSON *v = given[k] ? cJSON_Duplicate(given[k], true) : cJSON_CreateArray();
		if (!v || !cJSON_AddItemToObject(cap, capacity_members[k], v)) {
			cJSON_Delete(v);
			return api_oom(c);
		}
	}
	*ret = cap ? cJSON_PrintUnformatted(cap) : NULL;
	return *ret ? 0 : api_oom(c);
}

/* A new cluster's settings when CreateCluster gives none: the account's
 * containerInsights default (PutAccountSettingDefault), as on ECS. */
static int insights_default(struct api_call *c, char **ret)
{
	_cleanup_free_ char *value = NULL;
	if (api_account_default(c, "containerInsights", &value) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	cJSON *s = out ? json_add_object(out) : NULL;
	if (!s || !json_add_string(s, "name", "containerInsights") ||
	    !json_add_string(s, "value", value))
		return api_oom(c);
	*ret = cJSON_PrintUnformatted(out);
	return *ret ? 0 : api_oom(c);
}

static int refuse_service_connect(struct api_call *c)
{
	const cJSON *scd;
	if (api_get_object(c, c->in, "", "serviceConnectDefaults", false, &scd) < 0)
		return -1;
	if (scd)
		return api_error(c, 0, API_E_UNSUPPORTED, "serviceConnectDefaults: Service Connect "
				 "is not supported by Berth");
	return 0;
}

struct create_txn {
	const struct store_cluster *in;
	const struct api_tags_in *tags;
	int64_t now_ms;
	struct store_cluster *out;
};

static int create_fn(struct store *s, void *arg, struct berth_err *err)
{
	struct create_txn *t = arg;
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	int r = store_cluster_create(s, t->in, t->now_ms, &cl, NULL, err);
	if (r < 0)
		return r;
	/* Tags given again to an existing cluster are added to it: a
	 * repeated CreateCluster converges on what it asks for. */
	if (t->tags->n && (r = store_tags_put(s, cl->arn, t->tags->v, t->tags->n, err)) < 0)
		return r;
	t->out = TAKE_PTR(cl);
	return 0;
}

int api_op_create_cluster(struct api_call *c)
{
	const char *name;
	if (api_get_string(c, c->in, "", "clusterName", false, &name) < 0)
		return -1;
	if (!name)
		name = DEFAULT_CLUSTER;
	if (!api_name_valid(name))
		return api_error(c, 0, API_E_INVALID, "clusterName: '%.255s' is not 1 to %d letters, "
				 "numbers, underscores and hyphens", name, API_NAME_MAX);
	_cleanup_free_ char *settings = NULL, *configuration = NULL, *capacity = NULL;
	_cleanup_(api_tags_in_done) struct api_tags_in tags = { 0 };
	if (parse_settings(c, &settings) < 0 || parse_configuration(c, &configuration) < 0 ||
	    parse_capacity(c, false, &capacity) < 0 || refuse_service_connect(c) < 0 ||
	    api_parse_tags(c, &tags) < 0 || (!settings && insights_default(c, &settings) < 0))
		return -1;
	_cleanup_free_ char *arn = api_arn(c, "cluster", name);
	if (!arn)
		return api_oom(c);
	struct store_cluster in = {
		.name = (char *)name,
		.arn = arn,
		.settings_json = settings,
		.configuration_json = configuration,
		.capacity_json = capacity,
	};
	struct create_txn t = { .in = &in, .tags = &tags, .now_ms = c->now_ms };
	struct berth_err err = { 0 };
	int r = store_txn(c->store, create_fn, &t, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(store_cluster_freep) struct store_cluster *cl = t.out;
	return reply_cluster(c, cl);
}

/* ---- DescribeClusters ---- */

static int parse_include(struct api_call *c, unsigned *ret)
{
	const cJSON *arr, *it;
	*ret = 0;
	if (api_get_array(c, c->in, "", "include", false, 16, &arr) < 0)
		return -1;
	int i = 0;
	cJSON_ArrayForEach(it, arr) {
		unsigned bit = 0;
		for (size_t k = 0; cJSON_IsString(it) && cluster_fields[k]; k++)
			if (strcmp(it->valuestring, cluster_fields[k]) == 0)
				bit = 1u << k;
		if (!bit)
			return api_error(c, 0, API_E_INVALID, "include[%d]: expected one of ATTACHMENTS, "
					 "CONFIGURATIONS, SETTINGS, STATISTICS, TAGS", i);
		*ret |= bit;
		i++;
	}
	return 0;
}

static int add_failure(struct api_call *c, cJSON *failures, const char *ref)
{
	_cleanup_free_ char *arn = strncmp(ref, "arn:", 4) == 0 ? strdup(ref)
								: api_arn(c, "cluster", ref);
	cJSON *f = arn ? json_add_object(failures) : NULL;
	if (!f || !json_add_string(f, "arn", arn) || !json_add_string(f, "reason", "MISSING"))
		return api_oom(c);
	return 0;
}

int api_op_describe_clusters(struct api_call *c)
{
	const cJSON *refs, *it;
	unsigned include;
	if (api_get_array(c, c->in, "", "clusters", false, API_DESCRIBE_MAX, &refs) < 0 ||
	    parse_include(c, &include) < 0)
		return -1;
	int i = 0;
	cJSON_ArrayForEach(it, refs) {
		if (!cJSON_IsString(it))
			return api_error(c, 0, API_E_INVALID, "clusters[%d]: expected a string", i);
		i++;
	}
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *clusters = out ? json_add_array(out, "clusters") : NULL;
	cJSON *failures = clusters ? json_add_array(out, "failures") : NULL;
	if (!failures)
		return api_oom(c);

	/* No list, or an empty one, means the default cluster. */
	static const char *const dflt[] = { DEFAULT_CLUSTER };
	size_t n = refs && cJSON_GetArraySize(refs) ? (size_t)cJSON_GetArraySize(refs) : 1;
	it = refs ? refs->child : NULL;
	for (size_t k = 0; k < n; k++, it = it ? it->next : NULL) {
		const char *ref = it ? it->valuestring : dflt[0];
		_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
		struct berth_err err = { 0 };
		int r = store_cluster_get(c->store, ref, &cl, &err);
		if (r == -ENOENT) {
			if (add_failure(c, failures, ref) < 0)
				return -1;
			continue;
		}
		if (r < 0)
			return api_store_error(c, r, &err);
		cJSON *j;
		if (cluster_json(c, cl, include, &j) < 0)
			return -1;
		if (!cJSON_AddItemToArray(clusters, j)) {
			cJSON_Delete(j);
			return api_oom(c);
		}
	}
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- ListClusters ---- */

int api_op_list_clusters(struct api_call *c)
{
	struct store_page page;
	if (api_get_page(c, &page) < 0)
		return -1;
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	struct berth_err err = { 0 };
	int r = store_cluster_list(c->store, &page, &l, &err);
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "nextToken: not a token from ListClusters");
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arns = out ? json_add_array(out, "clusterArns") : NULL;
	if (!arns)
		return api_oom(c);
	for (size_t i = 0; i < l.n; i++) {
		cJSON *s = cJSON_CreateString(l.items[i]);
		if (!s || !cJSON_AddItemToArray(arns, s)) {
			cJSON_Delete(s);
			return api_oom(c);
		}
	}
	if (l.next_token && !json_add_string(out, "nextToken", l.next_token))
		return api_oom(c);
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- DeleteCluster ---- */

int api_op_delete_cluster(struct api_call *c)
{
	const char *ref;
	if (api_get_string(c, c->in, "", "cluster", true, &ref) < 0)
		return -1;
	if (strncmp(ref, "arn:", 4) != 0 && !api_name_valid(ref))
		return api_error(c, 0, API_E_INVALID, "cluster: '%.255s' is neither a cluster name "
				 "nor a cluster ARN", ref);
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r = store_cluster_delete(c->store, ref, &cl, &err);
	if (r == -ENOENT)
		return api_error(c, 0, API_E_CLUSTER_NF, "Cluster not found.");
	if (r == -EBUSY)
		return api_error(c, 0, "ClusterContainsTasksException",
				 "The Cluster cannot be deleted while Tasks are active.");
	if (r == -ENOTEMPTY)
		return api_error(c, 0, "ClusterContainsServicesException",
				 "The Cluster cannot be deleted while Services are active.");
	/* Its container instance goes with it: a cluster made again under the
	 * name finds the host ACTIVE, as a newly registered instance is. */
	if (r == 0)
		r = store_instance_draining_set(c->store, cl->name, false, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_cluster(c, cl);
}

/* ---- PutClusterCapacityProviders, UpdateCluster, UpdateClusterSettings ---- */

/* The cluster the request names (required), ACTIVE, changed by FN, then
 * answered as it is now. */
static int change_cluster(struct api_call *c,
			  int (*fn)(struct api_call *c, const char *name, void *arg), void *arg)
{
	const char *ref;
	if (api_get_string(c, c->in, "", "cluster", true, &ref) < 0)
		return -1;
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r = store_cluster_find(c->store, ref, &cl, &err);
	if (r == -ENOENT || (r == 0 && cl->status != STORE_CLUSTER_ACTIVE))
		return api_error(c, 0, API_E_CLUSTER_NF, "Cluster not found.");
	if (r < 0)
		return api_store_error(c, r, &err);
	if (fn(c, cl->name, arg) < 0)
		return -1;
	store_cluster_free(TAKE_PTR(cl));
	r = store_cluster_get(c->store, ref, &cl, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_cluster(c, cl);
}

static int set_capacity(struct api_call *c, const char *name, void *arg)
{
	(void)arg;
	_cleanup_free_ char *capacity = NULL;
	struct berth_err err = { 0 };
	if (parse_capacity(c, true, &capacity) < 0)
		return -1;
	int r = store_cluster_set_capacity(c->store, name, capacity, &err);
	return r < 0 ? api_store_error(c, r, &err) : 0;
}

int api_op_put_cluster_capacity_providers(struct api_call *c)
{
	return change_cluster(c, set_capacity, NULL);
}

/* ARG: true when `configuration` may be given too (UpdateCluster). */
static int update_cluster(struct api_call *c, const char *name, void *arg)
{
	bool full = *(bool *)arg;
	_cleanup_free_ char *settings = NULL, *configuration = NULL;
	const cJSON *arr;
	if (!full && api_get_array(c, c->in, "", "settings", true, 10, &arr) < 0)
		return -1;
	if (parse_settings(c, &settings) < 0 ||
	    (full && (parse_configuration(c, &configuration) < 0 || refuse_service_connect(c) < 0)))
		return -1;
	struct berth_err err = { 0 };
	int r = store_cluster_update(c->store, name, settings, configuration, &err);
	return r < 0 ? api_store_error(c, r, &err) : 0;
}

int api_op_update_cluster(struct api_call *c)
{
	bool full = true;
	return change_cluster(c, update_cluster, &full);
}

int api_op_update_cluster_settings(struct api_call *c)
{
	bool full = false;
	return change_cluster(c, update_cluster, &full);
}
