/* daemon/elb/elb_plane: the stored state handed to the data plane
 * (daemon/lb/lb.h) whole, target health read from it, and the drain
 * timer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/time.h"
#include "daemon/elb/elb_internal.h"
#include "daemon/elb/elb_state.h"
#include "daemon/lb/lb.h"

int elb_plane_apply(struct elb *e, struct berth_err *err)
{
	if (!e->cfg.lb)
		return 0;
	_cleanup_(elb_state_freep) struct elb_state *p = NULL;
	int r = elb_state_build(e->store, berth_real_ms(), &p, err);
	return r < 0 ? r : lb_apply(e->cfg.lb, elb_state_get(p), err);
}

int elb_plane_health(struct elb *e, const char *tg_arn, const char *addr, int port,
		     struct lb_target_health *ret, struct berth_err *err)
{
	if (!e->cfg.lb)
		return -ENODEV;
	char name[40];
	elb_plane_name(tg_arn, name);
	return lb_target_health(e->cfg.lb, name, addr, port, ret, err);
}

/* ---- draining ---- */

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct elb *e = arg;
	struct berth_err err = { 0 };
	size_t n = 0;
	if (store_elb_target_purge(e->store, berth_real_ms(), &n, &err) < 0 ||
	    (n && elb_plane_apply(e, &err) < 0)) {
		if (e->cfg.log)
			fprintf(e->cfg.log, "berth daemon: load balancers: ending a drain: %s\n",
				err.msg);
	}
	elb_drain_arm(e);
}

void elb_drain_arm(struct elb *e)
{
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	if (store_elb_target_list(e->store, NULL, &ts, &n, &err) < 0) {
		if (e->cfg.log)
			fprintf(e->cfg.log, "berth daemon: load balancers: %s\n", err.msg);
		return;
	}
	int64_t first = 0;
	for (size_t i = 0; i < n; i++)
		if (ts[i].drain_until && (!first || ts[i].drain_until < first))
			first = ts[i].drain_until;
	store_elb_targets_free(ts, n);
	if (!e->drain_timer && !(e->drain_timer = evtimer_new(e->base, on_drain_timer, e)))
		return;
	evtimer_del(e->drain_timer);
	if (!first)
		return;
	int64_t wait = first - berth_real_ms();
	if (wait < 0)
		wait = 0;
	struct timeval tv = { wait / 1000, (wait % 1000) * 1000 + 1000 };
	evtimer_add(e->drain_timer, &tv);
}
