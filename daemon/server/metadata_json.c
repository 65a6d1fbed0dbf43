/* daemon/server/metadata_json: ECS's task metadata shapes. */
#include "daemon/server/metadata_json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/time.h"
#include "daemon/sched/taskplan.h"

/* RFC 3339 in UTC with the fraction, as the agent prints its times. */
static bool add_time(cJSON *o, const char *name, int64_t ms)
{
	if (!ms)
		return true;
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char buf[64], out[80];
	gmtime_r(&s, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, sizeof(out), "%s.%03dZ", buf, (int)(ms % 1000));
	return json_add_string(o, name, out);
}

static bool add_opt(cJSON *o, const char *name, const char *v)
{
	return !v || json_add_string(o, name, v);
}

/* The first ENI attachment's detail NAME, or NULL. */
static const char *eni_detail(const cJSON *att, const char *name)
{
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(att, 0),
							     "details")) {
		const char *n = json_str(d, "name");
		if (n && strcmp(n, name) == 0)
			return json_str(d, "value");
	}
	return NULL;
}

static bool add_networks(const struct md_task *m, cJSON *o)
{
	_cleanup_(cJSON_Deletep) cJSON *att = m->t->attachments_json
						      ? cJSON_Parse(m->t->attachments_json) : NULL;
	const char *ip = eni_detail(att, "privateIPv4Address");
	cJSON *arr = json_add_array(o, "Networks");
	if (!arr || !ip)
		return arr != NULL;  /* no address yet: no network */
	cJSON *n = json_add_object(arr), *ips = n ? json_add_array(n, "IPv4Addresses") : NULL;
	cJSON *s = ips ? cJSON_CreateString(ip) : NULL;
	if (!s || !cJSON_AddItemToArray(ips, s)) {
		cJSON_Delete(s);
		return false;
	}
	return json_add_string(n, "NetworkMode", "awsvpc") &&
	       json_add_number(n, "AttachmentIndex", 0) &&
	       add_opt(n, "MACAddress", eni_detail(att, "macAddress")) &&
	       json_add_string(n, "IPv4SubnetCIDRBlock", m->subnet) &&
	       add_opt(n, "PrivateDNSName", eni_detail(att, "privateDnsName")) &&
	       json_add_string(n, "SubnetGatewayIpv4Address", m->gateway);
}

static bool add_labels(const struct md_task *m, const struct store_container *k, cJSON *o)
{
	char rev[24];
	snprintf(rev, sizeof(rev), "%lld", (long long)m->revision);
	cJSON *l = cJSON_AddObjectToObject(o, "Labels");
	return l && json_add_string(l, "com.amazonaws.ecs.cluster", m->cluster_arn) &&
	       json_add_string(l, "com.amazonaws.ecs.container-name", k->name) &&
	       json_add_string(l, "com.amazonaws.ecs.task-arn", m->t->arn) &&
	       json_add_string(l, "com.amazonaws.ecs.task-definition-family", m->family) &&
	       json_add_string(l, "com.amazonaws.ecs.task-definition-version", rev);
}

/* RestartCount, which the ECS agent's v4 answer carries only for a
 * container whose restart policy is enabled. */
static bool add_restarts(const struct md_task *m, const struct store_container *k, cJSON *o)
{
	const cJSON *cd;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(m->td, "containerDefinitions")) {
		const char *name = json_str(cd, "name");
		if (!name || strcmp(name, k->name) != 0)
			continue;
		const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cd, "restartPolicy");
		return !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rp, "enabled")) ||
		       json_add_number(o, "RestartCount", k->restart_count);
	}
	return true;
}

cJSON *md_container_json(const struct md_task *m, size_t i)
{
	const struct store_task *t = m->t;
	const struct store_container *k = &t->containers[i];
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *lim = o ? cJSON_CreateObject() : NULL;
	if (!lim || !cJSON_AddItemToObject(o, "Limits", lim))
		return cJSON_Delete(lim), NULL;
	long long cpu = taskplan_container_size(m->td, m->ov, k->name, "cpu"),
		  mem = taskplan_container_size(m->td, m->ov, k->name, "memory");
	bool started = k->last_status != STORE_TASK_PENDING;
	if (!json_add_string(o, "DockerId", k->runtime_id) || !json_add_string(o, "Name", k->name) ||
	    !json_add_string(o, "DockerName", k->name) || !json_add_string(o, "Image", k->image) ||
	    !add_opt(o, "ImageID", k->image_digest) || !add_labels(m, k, o) ||
	    !json_add_string(o, "DesiredStatus", store_task_status_name(t->desired_status)) ||
	    !json_add_string(o, "KnownStatus", store_task_status_name(k->last_status)) ||
	    (k->has_exit_code && !json_add_number(o, "ExitCode", k->exit_code)) ||
	    !add_restarts(m, k, o) ||
	    !json_add_number(lim, "CPU", (double)cpu) || (mem && !json_add_number(lim, "Memory", (double)mem)) ||
	    !add_time(o, "CreatedAt", t->created_at) ||
	    (started && !add_time(o, "StartedAt", t->started_at)) ||
	    !json_add_string(o, "Type", "NORMAL") || !json_add_string(o, "ContainerARN", k->arn) ||
	    !add_networks(m, o))
		return NULL;
	return TAKE_PTR(o);
}

cJSON *md_task_json(const struct md_task *m)
{
	const struct store_task *t = m->t;
	char rev[24], az[64];
	snprintf(rev, sizeof(rev), "%lld", (long long)m->revision);
	snprintf(az, sizeof(az), "%sa", m->region);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *lim = o ? cJSON_CreateObject() : NULL;
	if (!lim || !cJSON_AddItemToObject(o, "Limits", lim))
		return cJSON_Delete(lim), NULL;
	double cpu = t->cpu ? strtod(t->cpu, NULL) / 1024.0 : 0,
	       mem = t->memory ? strtod(t->memory, NULL) : 0;
	cJSON *ctrs = NULL;
	if (!json_add_string(o, "Cluster", m->cluster_arn) || !json_add_string(o, "TaskARN", t->arn) ||
	    !json_add_string(o, "Family", m->family) || !json_add_string(o, "Revision", rev) ||
	    !json_add_string(o, "DesiredStatus", store_task_status_name(t->desired_status)) ||
	    !json_add_string(o, "KnownStatus", store_task_status_name(t->last_status)) ||
	    !json_add_number(lim, "CPU", cpu) || !json_add_number(lim, "Memory", mem) ||
	    !add_time(o, "PullStartedAt", t->pull_started_at) ||
	    !add_time(o, "PullStoppedAt", t->pull_stopped_at) ||
	    !add_time(o, "ExecutionStoppedAt", t->execution_stopped_at) ||
	    !json_add_string(o, "AvailabilityZone", az) ||
	    !add_opt(o, "LaunchType", t->launch_type) || !add_opt(o, "ServiceName", t->service_name) ||
	    !(ctrs = json_add_array(o, "Containers")))
		return NULL;
	for (size_t i = 0; i < t->n_containers; i++) {
		cJSON *c = md_container_json(m, i);
		if (!c || !cJSON_AddItemToArray(ctrs, c))
			return cJSON_Delete(c), NULL;
	}
	return TAKE_PTR(o);
}

/* ---- stats: Docker's ContainerStats shape ---- */

/* The host's CPU time in nanoseconds (Docker's system_cpu_usage). */
static uint64_t system_cpu_ns(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/stat", "re");
	unsigned long long v[8] = { 0 };
	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			 &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
		return 0;
	unsigned long long sum = 0;
	for (int i = 0; i < 8; i++)
		sum += v[i];
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? sum * (1000000000ull / (unsigned long long)hz) : 0;
}

static bool add_cpu(cJSON *parent, const char *name, uint64_t total_ns, uint64_t system_ns)
{
	cJSON *o = cJSON_AddObjectToObject(parent, name);
	cJSON *u = o ? cJSON_AddObjectToObject(o, "cpu_usage") : NULL;
	cJSON *th = o ? cJSON_AddObjectToObject(o, "throttling_data") : NULL;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return u && th && json_add_number(u, "total_usage", (double)total_ns) &&
	       json_add_number(u, "usage_in_kernelmode", 0) &&
	       json_add_number(u, "usage_in_usermode", 0) &&
	       json_add_number(o, "system_cpu_usage", (double)system_ns) &&
	       json_add_number(o, "online_cpus", (double)(cpus > 0 ? cpus : 1)) &&
	       json_add_number(th, "periods", 0) && json_add_number(th, "throttled_periods", 0) &&
	       json_add_number(th, "throttled_time", 0);
}

static bool add_net(cJSON *o, const struct md_net *n, const struct md_sample *prev,
		    const struct md_sample *now)
{
	cJSON *nets = cJSON_AddObjectToObject(o, "networks");
	cJSON *e = nets ? cJSON_AddObjectToObject(nets, "eth1") : NULL;
	cJSON *rate = e ? cJSON_AddObjectToObject(o, "network_rate_stats") : NULL;
	double secs = prev->read_ms ? (double)(now->read_ms - prev->read_ms) / 1000.0 : 0;
	double rx = secs > 0 && n->rx_bytes >= prev->rx_bytes
			    ? (double)(n->rx_bytes - prev->rx_bytes) / secs : 0;
	double tx = secs > 0 && n->tx_bytes >= prev->tx_bytes
			    ? (double)(n->tx_bytes - prev->tx_bytes) / secs : 0;
	return rate && json_add_number(e, "rx_bytes", (double)n->rx_bytes) &&
	       json_add_number(e, "rx_packets", (double)n->rx_packets) &&
	       json_add_number(e, "rx_errors", (double)n->rx_errors) &&
	       json_add_number(e, "rx_dropped", (double)n->rx_dropped) &&
	       json_add_number(e, "tx_bytes", (double)n->tx_bytes) &&
	       json_add_number(e, "tx_packets", (double)n->tx_packets) &&
	       json_add_number(e, "tx_errors", (double)n->tx_errors) &&
	       json_add_number(e, "tx_dropped", (double)n->tx_dropped) &&
	       json_add_number(rate, "rx_bytes_per_sec", rx) &&
	       json_add_number(rate, "tx_bytes_per_sec", tx);
}

static bool add_memory(cJSON *o, const struct md_task *m, const struct store_container *k,
		       const cJSON *cg)
{
	long long mib = taskplan_container_size(m->td, m->ov, k->name, "memory");
	if (!mib && m->t->memory)
		mib = strtoll(m->t->memory, NULL, 10);
	cJSON *mem = cJSON_AddObjectToObject(o, "memory_stats");
	return mem && json_add_number(mem, "usage", (double)json_int(cg, "memoryCurrent", 0)) &&
	       json_add_number(mem, "max_usage", (double)json_int(cg, "memoryPeak", 0)) &&
	       json_add_number(mem, "limit", (double)mib * 1024 * 1024) &&
	       cJSON_AddObjectToObject(mem, "stats");
}

cJSON *md_stats_json(const struct md_task *m, size_t i, const cJSON *cg, const struct md_net *net,
		     const struct md_sample *prev, struct md_sample *now)
{
	const struct store_container *k = &m->t->containers[i];
	*now = (struct md_sample){
		.read_ms = berth_real_ms(),
		.cpu_ns = (uint64_t)json_int(cg, "cpuUsageUsec", 0) * 1000,
		.system_ns = system_cpu_ns(),
		.rx_bytes = net->rx_bytes, .tx_bytes = net->tx_bytes,
	};
	char name[STORE_TASK_ID_LEN + 256];
	snprintf(name, sizeof(name), "/%s", k->name);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *pids = o ? cJSON_AddObjectToObject(o, "pids_stats") : NULL;
	cJSON *blk = pids ? cJSON_AddObjectToObject(o, "blkio_stats") : NULL;
	if (!blk || !add_time(o, "read", now->read_ms) ||
	    !add_cpu(o, "cpu_stats", now->cpu_ns, now->system_ns) ||
	    !add_cpu(o, "precpu_stats", prev->cpu_ns, prev->system_ns) ||
	    !(prev->read_ms ? add_time(o, "preread", prev->read_ms)
			    : json_add_string(o, "preread", "0001-01-01T00:00:00Z")) ||
	    !json_add_number(pids, "current", (double)json_int(cg, "pidsCurrent", 0)) ||
	    !json_add_array(blk, "io_service_bytes_recursive") || !json_add_number(o, "num_procs", 0) ||
	    !cJSON_AddObjectToObject(o, "storage_stats") || !add_memory(o, m, k, cg) ||
	    !json_add_string(o, "name", name) || !json_add_string(o, "id", k->runtime_id) ||
	    !add_net(o, net, prev, now))
		return NULL;
	return TAKE_PTR(o);
}
