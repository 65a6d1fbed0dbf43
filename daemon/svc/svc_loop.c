/* daemon/svc/svc_loop: one timer per service. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "daemon/svc/svc_internal.h"

struct svc_note {
	char *message;
	struct svc_note *next;
};

struct svc_entry {
	struct svc *v;
	char *cluster, *name;
	struct event *ev;
	struct svc_note *notes, **notes_tail;   /* svc_note()'s, oldest first */
	struct svc_entry *next;
};

void svc_say(struct svc *v, const char *fmt, ...)
{
	if (!v->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("berth daemon: ", v->log);
	vfprintf(v->log, fmt, ap);
	fputc('\n', v->log);
	va_end(ap);
	fflush(v->log);
}

static void notes_free(struct svc_entry *e)
{
	while (e->notes) {
		struct svc_note *n = e->notes;
		e->notes = n->next;
		free(n->message);
		free(n);
	}
	e->notes_tail = &e->notes;
}

static void entry_free(struct svc_entry *e)
{
	notes_free(e);
	if (e->ev)
		event_free(e->ev);
	free(e->cluster);
	free(e->name);
	free(e);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct svc_entry *e = arg;
	int64_t wake = svc_reconcile(e->v, e->cluster, e->name);
	if (!wake && !e->notes)
		return;
	/* The reconcile took time: a wake it asked for may be past already;
	 * notes made during it are written at once. */
	int64_t now = e->v->clock.now_ms(e->v->clock.arg);
	int64_t in = wake > now && !e->notes ? wake - now : 0;
	struct timeval tv = { in / 1000, (in % 1000) * 1000 };
	evtimer_add(e->ev, &tv);
}

static struct svc_entry *entry_get(struct svc *v, const char *cluster, const char *name)
{
	for (struct svc_entry *e = v->entries; e; e = e->next)
		if (strcmp(e->cluster, cluster) == 0 && strcmp(e->name, name) == 0)
			return e;
	struct svc_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->v = v;
	e->notes_tail = &e->notes;
	e->cluster = strdup(cluster);
	e->name = strdup(name);
	e->ev = evtimer_new(v->base, on_timer, e);
	if (!e->cluster || !e->name || !e->ev) {
		entry_free(e);
		return NULL;
	}
	e->next = v->entries;
	v->entries = e;
	return e;
}

void svc_poke(struct svc *v, const char *cluster, const char *name)
{
	if (!v)
		return;  /* adopting tasks at start: every service is poked after */
	struct svc_entry *e = entry_get(v, cluster, name);
	struct timeval now = { 0, 0 };
	if (!e || evtimer_add(e->ev, &now) < 0)
		svc_say(v, "service %s: cannot schedule it (out of memory)", name);
}

void svc_note(struct svc *v, const char *cluster, const char *name, const char *message)
{
	if (!v)
		return;
	struct svc_entry *e = entry_get(v, cluster, name);
	struct svc_note *n = calloc(1, sizeof(*n));
	if (!e || !n || !(n->message = strdup(message))) {
		free(n);
		svc_say(v, "service %s: an event is lost (out of memory): %s", name, message);
		return;
	}
	*e->notes_tail = n;
	e->notes_tail = &n->next;
	svc_poke(v, cluster, name);
}

size_t svc_notes_flush(struct svc *v, const char *cluster, const char *name, struct svc_view *w,
		       int64_t now)
{
	size_t k = 0;
	for (struct svc_entry *e = v->entries; e; e = e->next) {
		if (strcmp(e->cluster, cluster) != 0 || strcmp(e->name, name) != 0)
			continue;
		for (struct svc_note *n = e->notes; n; n = n->next, k++)
			if (w)
				svc_event(w, now, "%s", n->message);
		notes_free(e);
	}
	return k;
}

/* Every ACTIVE or DRAINING service of CLUSTER (NULL: of every cluster). */
static int poke_all(struct svc *v, const char *cluster, struct berth_err *err)
{
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		struct store_service_filter f = { .cluster = cluster, .with_draining = true };
		int r = store_service_list(v->store, &f, &page, &l, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < l.n; i++) {
			_cleanup_(store_service_freep) struct store_service *row = NULL;
			if (store_service_get(v->store, NULL, l.items[i], &row, err) == 0)
				svc_poke(v, row->cluster, row->name);
		}
		free(token);
		token = TAKE_PTR(l.next_token);
		store_list_clear(&l);
	} while (token);
	return 0;
}

void svc_poke_cluster(struct svc *v, const char *cluster)
{
	struct berth_err err = { 0 };
	if (v && poke_all(v, cluster, &err) < 0)
		svc_say(v, "cluster %s: cannot reconcile its services: %s", cluster, err.msg);
}

int svc_new(struct event_base *base, struct store *store, const struct svc_engine *engine,
	    const struct svc_clock *clock, const struct svc_config *cfg, FILE *log,
	    struct svc **ret, struct berth_err *err)
{
	_cleanup_(svc_freep) struct svc *v = calloc(1, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "out of memory");
	*v = (struct svc){ .base = base, .store = store, .engine = *engine, .clock = *clock,
			   .cfg = *cfg, .log = log };
	if (!v->cfg.healthy_after_ms)
		v->cfg.healthy_after_ms = SVC_DEFAULT_HEALTHY_AFTER_MS;
	int r = poke_all(v, NULL, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

void svc_free(struct svc *v)
{
	if (!v)
		return;
	while (v->entries) {
		struct svc_entry *e = v->entries;
		v->entries = e->next;
		entry_free(e);
	}
	free(v);
}
