/* daemon/sched/sched_watch: following a shim's event stream and writing what it says
 * to the store (docs/runtime.md "The control socket" is the protocol). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/time.h"
#include "common/json.h"
#include "daemon/sched/sched_internal.h"
#include "runtime/plan.h"
#include "runtime/shim.h"

/* A STATUS line is a few KiB; anything this long without a newline is not
 * a shim talking. */
#define LINE_MAX_BYTES (1u << 20)
#define REQUEST_TIMEOUT_S 5
#define EXIT_RECORD_MAX (1u << 20)

static int64_t ms_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (int64_t)(v->valuedouble * 1000 + 0.5) : 0;
}

/* ---- the ENI attachment ---------------------------------------------------- */

static bool add_detail(cJSON *details, const char *name, const char *value)
{
	cJSON *d = value ? json_add_object(details) : NULL;
	return !value || (d && json_add_string(d, "name", name) && json_add_string(d, "value", value));
}

char *sched_eni_json(const struct sched *s, const char *task_id, const char *attachment_id,
		     const char *subnet_id, const char *groups, const char *status,
		     const cJSON *network)
{
	char subnet[64], eni[32];
	snprintf(subnet, sizeof(subnet), "subnet-%s", s->cfg.bridge);
	if (subnet_id)
		snprintf(subnet, sizeof(subnet), "%s", subnet_id);
	snprintf(eni, sizeof(eni), "eni-%.17s", task_id);
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	cJSON *a = arr ? json_add_object(arr) : NULL;
	cJSON *details = a ? cJSON_CreateArray() : NULL;
	if (!details || !json_add_string(a, "id", attachment_id) ||
	    !json_add_string(a, "type", "ElasticNetworkInterface") ||
	    !json_add_string(a, "status", status) || !cJSON_AddItemToObject(a, "details", details) ||
	    !add_detail(details, "subnetId", subnet) ||
	    !add_detail(details, "networkInterfaceId", eni) ||
	    !add_detail(details, "macAddress", json_str(network, "macAddress")) ||
	    !add_detail(details, "privateDnsName", json_str(network, "hostname")) ||
	    !add_detail(details, "privateIPv4Address", json_str(network, "ipv4Address")) ||
	    !add_detail(details, "securityGroups", groups))
		return NULL;
	return cJSON_PrintUnformatted(arr);
}

/* The value of detail NAME of the first attachment, or NULL. */
static const char *detail_of(const cJSON *attachments, const char *name)
{
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(attachments, 0),
							     "details"))
		if (json_str(d, "name") && strcmp(json_str(d, "name"), name) == 0)
			return json_str(d, "value");
	return NULL;
}

char *sched_task_groups(const char *attachments_json)
{
	_cleanup_(cJSON_Deletep) cJSON *a = attachments_json ? cJSON_Parse(attachments_json) : NULL;
	const char *g = detail_of(a, "securityGroups");
	return g ? strdup(g) : NULL;
}

/* The attachment RunTask gave the task: its id, subnetId and security
 * groups (malloc'd). */
static int attachment_of(const struct store_task *t, char **ret_id, char **ret_subnet,
			 char **ret_groups)
{
	_cleanup_(cJSON_Deletep) cJSON *a = t->attachments_json ? cJSON_Parse(t->attachments_json)
							       : NULL;
	const char *id = json_str(cJSON_GetArrayItem(a, 0), "id");
	const char *subnet = detail_of(a, "subnetId"), *groups = detail_of(a, "securityGroups");
	if (!id || !(*ret_id = strdup(id)))
		return -ENOENT;
	*ret_subnet = subnet ? strdup(subnet) : NULL;
	*ret_groups = groups ? strdup(groups) : NULL;
	return 0;
}

/* The container's networkInterfaces: the task's address; its
 * networkBindings (the published ports placement gave it) stay. */
static bool set_container_network(struct store_container *k, const char *att, const char *ip)
{
	_cleanup_(cJSON_Deletep) cJSON *old = k->network_json ? cJSON_Parse(k->network_json) : NULL;
	cJSON *bindings = cJSON_DetachItemFromObjectCaseSensitive(old, "networkBindings");
	_cleanup_(cJSON_Deletep) cJSON *cn = cJSON_CreateObject();
	cJSON *nis = cn ? json_add_array(cn, "networkInterfaces") : NULL;
	cJSON *ni = nis ? json_add_object(nis) : NULL;
	if (!bindings)
		bindings = cJSON_CreateArray();
	if (!ni || !bindings || !cJSON_AddItemToObject(cn, "networkBindings", bindings)) {
		cJSON_Delete(bindings);
		return false;
	}
	_cleanup_free_ char *text = NULL;
	if (json_add_string(ni, "attachmentId", att) &&
	    json_add_string(ni, "privateIpv4Address", ip))
		text = cJSON_PrintUnformatted(cn);
	return text && sched_set_str(&k->network_json, text);
}

static bool set_network(struct sched *s, struct store_task *t, const cJSON *net, bool final)
{
	const char *ip = json_str(net, "ipv4Address");
	if (!ip)
		return false;
	_cleanup_free_ char *att = NULL, *subnet = NULL, *groups = NULL;
	if (attachment_of(t, &att, &subnet, &groups) < 0)
		return false;
	bool changed = false;
	_cleanup_free_ char *eni = sched_eni_json(s, t->id, att, subnet, groups,
						  final ? "DELETED" : "ATTACHED", net);
	if (eni && sched_set_str(&t->attachments_json, eni))
		changed = true;
	for (size_t i = 0; i < t->n_containers; i++)
		changed |= set_container_network(&t->containers[i], att, ip);
	return changed;
}

/* ---- STATUS → store -------------------------------------------------------- */

static bool set_ms(int64_t *dst, int64_t v, bool keep_first)
{
	if (!v || *dst == v || (keep_first && *dst))
		return false;
	*dst = v;
	return true;
}

static bool set_status(enum store_task_status *dst, enum store_task_status v)
{
	if (v <= *dst)
		return false;  /* states only move forward */
	*dst = v;
	return true;
}

static bool set_health(enum store_health *dst, const char *word)
{
	enum store_health h;
	if (!word || store_health_parse(word, &h) < 0 || *dst == h)
		return false;
	*dst = h;
	return true;
}

static bool set_container(struct store_container *c, const cJSON *sc)
{
	enum store_task_status st;
	const char *word = json_str(sc, "lastStatus");
	bool changed = word && store_task_status_parse(word, &st) == 0 &&
		       set_status(&c->last_status, st);
	changed |= set_health(&c->health_status, json_str(sc, "healthStatus"));
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(sc, "exitCode");
	if (cJSON_IsNumber(code) && (!c->has_exit_code || c->exit_code != code->valueint)) {
		c->has_exit_code = true;
		c->exit_code = code->valueint;
		changed = true;
	}
	if (json_str(sc, "reason"))
		changed |= sched_set_str(&c->reason, json_str(sc, "reason"));
	/* Restarts only add up (docs/runtime.md "Restarts"). */
	const cJSON *rc = cJSON_GetObjectItemCaseSensitive(sc, "restartCount");
	if (cJSON_IsNumber(rc) && rc->valueint > c->restart_count) {
		c->restart_count = rc->valueint;
		changed = true;
	}
	return changed;
}

static bool set_containers(struct store_task *t, const cJSON *status)
{
	bool changed = false;
	const cJSON *sc;
	cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(status, "containers")) {
		const char *name = json_str(sc, "name");
		for (size_t i = 0; name && i < t->n_containers; i++)
			if (strcmp(t->containers[i].name, name) == 0)
				changed |= set_container(&t->containers[i], sc);
	}
	return changed;
}

static enum store_task_status task_status_of(const char *shim_word)
{
	if (!shim_word || strcmp(shim_word, "PENDING") == 0)
		return STORE_TASK_ACTIVATING;  /* the shim is setting the task up */
	if (strcmp(shim_word, "RUNNING") == 0)
		return STORE_TASK_RUNNING;
	if (strcmp(shim_word, "STOPPING") == 0)
		return STORE_TASK_STOPPING;
	return STORE_TASK_DEPROVISIONING;  /* STOPPED: torn down, then recorded */
}

static bool set_task(struct sched *s, struct store_task *t, const cJSON *st, bool final)
{
	enum store_task_status want = final ? STORE_TASK_DEPROVISIONING
					    : task_status_of(json_str(st, "lastStatus"));
	bool changed = set_status(&t->last_status, want);
	if (want >= STORE_TASK_STOPPING)
		changed |= set_status(&t->desired_status, STORE_TASK_STOPPED);
	changed |= set_health(&t->health_status, json_str(st, "healthStatus"));
	changed |= set_ms(&t->started_at, ms_of(st, "startedAt"), true);
	changed |= set_ms(&t->stopping_at, ms_of(st, "stoppingAt"), true);
	if (!t->stop_code && json_str(st, "stopCode")) {
		changed |= sched_set_str(&t->stop_code, json_str(st, "stopCode"));
		changed |= sched_set_str(&t->stopped_reason, json_str(st, "stoppedReason"));
	}
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(st, "shimPid");
	if (cJSON_IsNumber(pid) && pid->valueint != t->shim_pid) {
		t->shim_pid = pid->valueint;
		changed = true;
	}
	changed |= set_containers(t, st);
	changed |= set_network(s, t, cJSON_GetObjectItemCaseSensitive(st, "network"), final);
	return changed;
}

struct apply {
	struct sched *s;
	const cJSON *status;
	bool final;
};

static int apply_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	(void)err;
	const struct apply *a = arg;
	if (t->last_status == STORE_TASK_STOPPED)
		return STORE_TASK_UNCHANGED;
	return set_task(a->s, t, a->status, a->final) ? 0 : STORE_TASK_UNCHANGED;
}

/* DEPROVISIONING is recorded (its version), then STOPPED: the shim has
 * torn everything down before it reports. */
static int stopped_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	(void)err;
	const cJSON *status = arg;
	int64_t stopped = ms_of(status, "stoppedAt");
	t->last_status = t->desired_status = STORE_TASK_STOPPED;
	t->stopped_at = stopped ? stopped : berth_real_ms();
	/* ECS's executionStoppedAt: when the last container stopped, before
	 * the teardown that stoppedAt includes. */
	t->execution_stopped_at = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(status, "containers"))
		if (ms_of(c, "finishedAt") > t->execution_stopped_at)
			t->execution_stopped_at = ms_of(c, "finishedAt");
	if (!t->execution_stopped_at || t->execution_stopped_at > t->stopped_at)
		t->execution_stopped_at = t->stopped_at;
	t->shim_pid = 0;
	for (size_t i = 0; i < t->n_containers; i++)
		t->containers[i].last_status = STORE_TASK_STOPPED;
	return 0;
}

void sched_apply_status(struct sched *s, const char *id, const cJSON *status, bool final)
{
	struct berth_err err = { 0 };
	struct apply a = { s, status, final };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	int r = store_task_modify(s->store, id, apply_fn, &a, &t, &err);
	if (r < 0) {
		sched_say(s, "task %s: %s", id, err.msg);
		return;
	}
	if (t->last_status == STORE_TASK_STOPPED)
		return;  /* already recorded: nothing follows a STOPPED task */
	if (!final) {
		/* Draining, or to stop without its shim told (a daemon that
		 * died between recording the stop and telling it). */
		if (t->last_status == STORE_TASK_DEACTIVATING ||
		    t->desired_status == STORE_TASK_STOPPED)
			sched_drain_resume(s, t);
		if (r != STORE_TASK_UNCHANGED && s->cfg.hooks.task_changed)
			s->cfg.hooks.task_changed(s->cfg.hooks.arg, t);
		return;
	}
	store_task_free(TAKE_PTR(t));
	if (store_task_modify(s->store, id, stopped_fn, (void *)status, &t, &err) < 0)
		sched_say(s, "task %s: %s", id, err.msg);
	else
		sched_hook_stopped(s, t);
}

/* ---- a shim gone without a word -------------------------------------------- */

static int read_exit_record(struct sched *s, const char *id, cJSON **ret)
{
	char dir[4096];
	sched_task_dir(s, id, dir, sizeof(dir));
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	struct berth_err err = { 0 };
	if (dfd < 0 || berth_read_file_at(dfd, "exit.json", EXIT_RECORD_MAX, &text, NULL, &err) < 0)
		return -ENOENT;
	*ret = cJSON_Parse(text);
	return *ret ? 0 : -EBADMSG;
}

#define GONE_RETRY_MS 50
#define GONE_RETRIES 40     /* 2 s for a killed shim to finish exiting */

static void gone_attempt(struct sched *s, const char *id, int tries);

static void on_gone_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched_task *t = arg;
	struct sched *s = t->s;
	char id[sizeof(t->id)];
	memcpy(id, t->id, sizeof(id));
	int tries = t->retries;
	sched_task_forget(t);
	gone_attempt(s, id, tries);
}

/* -EBUSY while the killed shim is still exiting: try again shortly (a
 * process's fds close one by one, so our connection can see EOF while its
 * listening socket still takes connections for a moment). */
static int retry_later(struct sched *s, const char *id, int tries)
{
	struct sched_task *t = tries < GONE_RETRIES ? sched_task_new(s, id) : NULL;
	struct timeval tv = { 0, GONE_RETRY_MS * 1000 };
	if (!t)
		return -1;
	t->retries = tries + 1;
	t->retry_ev = evtimer_new(s->base, on_gone_retry, t);
	if (!t->retry_ev || evtimer_add(t->retry_ev, &tv) < 0) {
		sched_task_forget(t);
		return -1;
	}
	return 0;
}

static void gone_attempt(struct sched *s, const char *id, int tries)
{
	_cleanup_(cJSON_Deletep) cJSON *rec = NULL;
	if (read_exit_record(s, id, &rec) == 0) {
		sched_apply_status(s, id, rec, true);
		return;
	}
	char dir[4096], path[4200];
	sched_task_dir(s, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/plan.json", dir);
	struct berth_err err = { 0 };
	_cleanup_(plan_freep) struct plan *p = NULL;
	int r = plan_load(path, &p, &err);
	if (r == 0)
		r = shim_cleanup(p, &err);
	if (r == -EBUSY && retry_later(s, id, tries) == 0)
		return;
	if (r < 0)
		sched_say(s, "task %s: cleaning up after its task agent: %s", id, err.msg);
	sched_say(s, "task %s: its task agent is gone without an exit record", id);
	sched_stop_unstarted(s, id, NULL, SCHED_AGENT_GONE, NULL, 0);
}

void sched_shim_gone(struct sched *s, const char *id)
{
	sched_flush(s);  /* what it said before it went comes first */
	gone_attempt(s, id, 0);
}

/* ---- the event stream ------------------------------------------------------ */

void sched_watch_close(struct sched_task *t)
{
	if (t->bev)
		bufferevent_free(t->bev);
	t->bev = NULL;
}

static void status_apply(struct sched *s, const char *id, void *arg)
{
	const cJSON *msg = arg;
	const char *ev = json_str(msg, "event");
	sched_apply_status(s, id, cJSON_GetObjectItemCaseSensitive(msg, "task"),
			   ev && strcmp(ev, "task-stopped") == 0);
}

static void status_free(void *arg)
{
	cJSON_Delete(arg);
}

/* A STATUS line: recorded on the next turn of the loop, with what other
 * shims said meanwhile (sched_batch.c). */
static void on_line(struct sched_task *t, const char *line)
{
	cJSON *msg = cJSON_Parse(line);
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(msg, "task");
	if (!cJSON_IsObject(status)) {
		sched_say(t->s, "task %s: its shim said something unexpected: %.200s", t->id, line);
		cJSON_Delete(msg);
		return;
	}
	const char *ev = json_str(msg, "event");
	t->final_seen |= ev && strcmp(ev, "task-stopped") == 0;
	sched_write_later(t->s, t->id, status_apply, msg, status_free);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct sched_task *t = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF))) {
		on_line(t, line);
		free(line);
	}
	if (evbuffer_get_length(in) > LINE_MAX_BYTES) {
		sched_say(t->s, "task %s: its shim sent an endless line; no longer following it",
			  t->id);
		sched_watch_close(t);
		sched_task_forget(t);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct sched_task *t = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	struct sched *s = t->s;
	char id[sizeof(t->id)];
	memcpy(id, t->id, sizeof(id));
	bool final = t->final_seen;
	sched_watch_close(t);
	sched_task_forget(t);
	if (!final)
		sched_shim_gone(s, id);
}

int sched_shim_connect(struct sched *s, const char *id, struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sched_sock_path(s, id, sa.sun_path, sizeof(sa.sun_path));
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "task %s: socket", id);
	struct timeval tv = { REQUEST_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return berth_errnof(err, errno, "task %s: connect %s", id, sa.sun_path);
	return TAKE_FD(fd);
}

static int send_line(int fd, const char *id, const char *line, struct berth_err *err)
{
	size_t n = strlen(line);
	if (send(fd, line, n, MSG_NOSIGNAL) != (ssize_t)n || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return berth_errnof(err, errno, "task %s: write to its shim", id);
	return 0;
}

int sched_follow(struct sched_task *t, struct berth_err *err)
{
	_cleanup_close_ int fd = sched_shim_connect(t->s, t->id, err);
	if (fd < 0)
		return fd;
	int r = send_line(fd, t->id, "{\"op\":\"events\"}", err);
	if (r < 0)
		return r;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return berth_errnof(err, errno, "task %s: socket", t->id);
	t->bev = bufferevent_socket_new(t->s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!t->bev)
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	TAKE_FD(fd);
	bufferevent_setcb(t->bev, on_read, NULL, on_event, t);
	if (bufferevent_enable(t->bev, EV_READ) < 0) {
		sched_watch_close(t);
		return berth_errf(err, ENOMEM, "task %s: cannot follow its shim", t->id);
	}
	return 0;
}

/* A request sent to a shim whose answer is read on the loop. */
struct shim_req {
	struct sched *s;
	char id[STORE_TASK_ID_LEN + 1];
	struct bufferevent *bev;
	sched_answer_fn done;       /* NULL: the answer is only checked */
	void *arg;
	struct shim_req *next, **pprev;
};

/* DONE hears of every request once: the answer, or NULL. */
static void req_free(struct shim_req *q, const cJSON *answer)
{
	if (q->done)
		q->done(q->arg, answer);
	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	bufferevent_free(q->bev);
	free(q);
}

static void on_req_read(struct bufferevent *bev, void *arg)
{
	struct shim_req *q = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	_cleanup_free_ char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_LF);
	if (!line && evbuffer_get_length(in) <= LINE_MAX_BYTES)
		return;  /* not whole yet */
	_cleanup_(cJSON_Deletep) cJSON *answer = line ? cJSON_Parse(line) : NULL;
	bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ok"));
	if (!ok)
		sched_say(q->s, "task %s: its shim refused: %.200s", q->id, line ? line : "(endless)");
	req_free(q, ok ? answer : NULL);
}

static void on_req_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct shim_req *q = arg;
	sched_say(q->s, "task %s: no answer from its shim%s", q->id,
		  what & BEV_EVENT_TIMEOUT ? " (timed out)" : "");
	req_free(q, NULL);
}

/* The answer is read on the loop, not waited for here: a StopTask of
 * each of 1,000 tasks waited for each shim in turn, and shims busy
 * tearing down answer slowly. */
int sched_shim_request(struct sched *s, const char *id, const char *line, sched_answer_fn done,
		       void *arg, struct berth_err *err)
{
	_cleanup_close_ int fd = sched_shim_connect(s, id, err);
	if (fd < 0)
		return fd;
	int r = send_line(fd, id, line, err);
	if (r < 0)
		return r;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return berth_errnof(err, errno, "task %s: socket", id);
	struct shim_req *q = calloc(1, sizeof(*q));
	if (!q || !(q->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		free(q);
		return berth_errf(err, ENOMEM, "task %s: out of memory", id);
	}
	TAKE_FD(fd);
	q->s = s;
	q->done = done;
	q->arg = arg;
	snprintf(q->id, sizeof(q->id), "%s", id);
	q->next = s->reqs;
	if (q->next)
		q->next->pprev = &q->next;
	q->pprev = &s->reqs;
	s->reqs = q;
	struct timeval tv = { REQUEST_TIMEOUT_S, 0 };
	bufferevent_setcb(q->bev, on_req_read, NULL, on_req_event, q);
	if (bufferevent_set_timeouts(q->bev, &tv, NULL) < 0 ||
	    bufferevent_enable(q->bev, EV_READ) < 0) {
		q->done = NULL;   /* the caller hears of it from the error */
		req_free(q, NULL);
		return berth_errf(err, ENOMEM, "task %s: cannot read its shim's answer", id);
	}
	return 0;
}

int sched_task_stats(struct sched *s, const char *id, sched_answer_fn done, void *arg,
		     struct berth_err *err)
{
	return sched_shim_request(s, id, "{\"op\":\"stats\"}", done, arg, err);
}

void sched_requests_free(struct sched *s)
{
	while (s->reqs)
		req_free(s->reqs, NULL);
}
