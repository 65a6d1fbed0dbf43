/* The load balancer benchmark's HAProxy (tests/bench/lb.py): daemon/lb
 * serving one HTTP listener on 127.0.0.1:PORT that forwards to the given
 * targets on 127.0.0.1, as berthd would program it.
 *
 *   lb_serve RUN_DIR PORT TARGET_PORT...
 *
 * Prints "ready" once every target is healthy, then serves (and restarts
 * HAProxy if it dies) until its stdin closes.  A line "add PORT" on stdin
 * registers one more target (lb_apply: the Runtime API, no reload) and
 * answers "applied MS", the milliseconds lb_apply took. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/time.h"
#include "daemon/lb/lb.h"

#define MAX_TARGETS 16

struct serve {
	struct event_base *base;
	struct lb *lb;
	struct lb_state *s;
	struct lb_group *g;
	struct lb_target *t;
};

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct serve *sv = arg;
	char buf[64];
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	if (k <= 0) {
		event_base_loopbreak(sv->base);
		return;
	}
	buf[k] = '\0';
	int port;
	if (sscanf(buf, "add %d", &port) != 1 || sv->g->n_targets >= MAX_TARGETS)
		return;
	sv->t[sv->g->n_targets++] = (struct lb_target){ "127.0.0.1", port, 1, false };
	struct berth_err err = { 0 };
	int64_t t0 = berth_mono_ms();
	if (lb_apply(sv->lb, sv->s, &err) < 0)
		fprintf(stderr, "lb_serve: %s\n", err.msg);
	printf("applied %lld\n", (long long)(berth_mono_ms() - t0));
	fflush(stdout);
}

static bool all_healthy(struct lb *lb, const struct lb_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct lb_target_health h;
		struct berth_err err = { 0 };
		if (lb_target_health(lb, "bench", t[i].addr, t[i].port, &h, &err) < 0 ||
		    h.state != LB_HEALTHY)
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc - 3 > MAX_TARGETS) {
		fprintf(stderr, "usage: lb_serve RUN_DIR PORT TARGET_PORT...\n");
		return 2;
	}
	struct lb_target t[MAX_TARGETS];
	size_t n = (size_t)argc - 3;
	for (size_t i = 0; i < n; i++)
		t[i] = (struct lb_target){ "127.0.0.1", atoi(argv[3 + i]), 1, false };
	struct lb_group g = { "bench", LB_HTTP, { LB_HTTP, "/", 0, 1, 1, 1, 2, "200" }, 0, t, n };
	struct lb_forward fw = { "bench", 1 };
	struct lb_listener l = { "bench", atoi(argv[2]),
				 LB_HTTP, { LB_ACTION_FORWARD, &fw, 1, 0, NULL, NULL },
				 NULL,	  0 };
	struct lb_state s = { &l, 1, &g, 1 };
	struct event_base *base = event_base_new();
	struct lb_config cfg = { .run_dir = argv[1], .bind_address = "127.0.0.1", .log = stderr };
	struct lb *lb = NULL;
	struct berth_err err = { 0 };
	int r = base ? lb_new(base, &cfg, &lb, &err) : -ENOMEM;
	if (r == 0)
		r = lb_apply(lb, &s, &err);
	int64_t end = berth_mono_ms() + 15000;
	while (r == 0 && !all_healthy(lb, t, n)) {
		if (berth_mono_ms() > end) {
			r = -ETIMEDOUT;
			snprintf(err.msg, sizeof(err.msg),
				 "the targets did not turn healthy in 15 s");
		}
		usleep(20000);
	}
	if (r == 0) {
		printf("ready\n");
		fflush(stdout);
		struct serve sv = { base, lb, &s, &g, t };
		struct event *ev = event_new(base, 0, EV_READ | EV_PERSIST, on_stdin, &sv);
		event_add(ev, NULL);
		event_base_dispatch(base);
		event_free(ev);
	} else {
		fprintf(stderr, "lb_serve: %s\n", err.msg);
	}
	lb_free(lb);
	if (base)
		event_base_free(base);
	return r == 0 ? 0 : 1;
}
