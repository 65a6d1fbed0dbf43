/* Pull progress: per-layer bars (bytes/total, speed) redrawn in place on a
 * terminal; on anything else one plain line per layer state change, so
 * logs and CI output stay readable. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "images/pull.h"

#define REDRAW_NS 100000000LL /* at most 10 redraws a second between state changes */
#define BAR_WIDTH 30

struct layer_view {
	enum img_layer_state state;
	bool seen;
	int64_t start_done;   /* bytes present when downloading started */
	long long started_ns; /* when downloading started */
};

struct progress {
	bool tty;
	size_t drawn; /* lines of the last TTY frame */
	long long last_draw_ns;
	struct layer_view *views;
	size_t n;
};

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct progress *progress_new(int fd)
{
	struct progress *pr = calloc(1, sizeof(*pr));
	if (pr)
		pr->tty = isatty(fd) == 1;
	return pr;
}

void progress_free(struct progress *pr)
{
	if (!pr)
		return;
	free(pr->views);
	free(pr);
}

static const char *state_name(enum img_layer_state st)
{
	switch (st) {
	case IMG_LAYER_WAITING: return "waiting";
	case IMG_LAYER_DOWNLOADING: return "downloading";
	case IMG_LAYER_UNPACKING: return "unpacking";
	case IMG_LAYER_DONE: return "done";
	case IMG_LAYER_EXISTS: return "already exists";
	case IMG_LAYER_FAILED: return "failed";
	}
	return "?";
}

/* Decimal units, as docker pull prints them: "512 B", "65.5 kB", "1.0 MB". */
static void human(double n, const char *suffix, char buf[24])
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	size_t u = 0;
	while (n >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		n /= 1000;
		u++;
	}
	snprintf(buf, 24, u ? "%.1f %s%s" : "%.0f %s%s", n, units[u], suffix);
}

static void draw_line(const struct img_layer_progress *l, const struct layer_view *v, long long now)
{
	char done[24], total[24], speed[24] = "";
	human((double)l->done, "", done);
	human((double)l->size, "", total);
	int fill = l->size > 0 ? (int)(BAR_WIDTH * (double)l->done / (double)l->size) : BAR_WIDTH;
	if (fill > BAR_WIDTH)
		fill = BAR_WIDTH;
	if (l->state == IMG_LAYER_DOWNLOADING && now > v->started_ns) {
		double secs = (double)(now - v->started_ns) / 1e9;
		human((double)(l->done - v->start_done) / secs, "/s", speed);
	}
	printf("\r\033[2K%.12s  %-14s [%.*s%s%*s] %9s / %-9s %s\n", l->digest + 7, state_name(l->state),
	       fill > 0 ? fill - 1 : 0, "==============================",
	       fill > 0 ? (fill == BAR_WIDTH ? "=" : ">") : "", BAR_WIDTH - fill, "", done, total, speed);
}

static void draw_tty(struct progress *pr, const struct img_layer_progress *layers, size_t n,
		     long long now)
{
	if (pr->drawn)
		printf("\033[%zuA", pr->drawn);
	for (size_t i = 0; i < n; i++)
		draw_line(&layers[i], &pr->views[i], now);
	pr->drawn = n;
	pr->last_draw_ns = now;
	fflush(stdout);
}

/* Records state changes; returns whether any layer changed state. */
static bool track(struct progress *pr, const struct img_layer_progress *layers, size_t n,
		  long long now)
{
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		struct layer_view *v = &pr->views[i];
		if (v->seen && v->state == layers[i].state)
			continue;
		if (layers[i].state == IMG_LAYER_DOWNLOADING) {
			v->started_ns = now;
			v->start_done = layers[i].done;
		}
		v->state = layers[i].state;
		v->seen = true;
		changed = true;
		if (!pr->tty && layers[i].state != IMG_LAYER_WAITING) {
			char size[24];
			human((double)layers[i].size, "", size);
			printf("%.19s: %s (%s)\n", layers[i].digest, state_name(layers[i].state), size);
		}
	}
	return changed;
}

void progress_update(void *opaque, const struct img_layer_progress *layers, size_t n)
{
	struct progress *pr = opaque;
	if (!pr->views) {
		pr->views = calloc(n ? n : 1, sizeof(*pr->views));
		if (!pr->views)
			return;
		pr->n = n;
	}
	if (n != pr->n)
		return;
	long long now = now_ns();
	bool changed = track(pr, layers, n, now);
	if (!pr->tty) {
		if (changed)
			fflush(stdout);
		return;
	}
	if (changed || now - pr->last_draw_ns >= REDRAW_NS)
		draw_tty(pr, layers, n, now);
}
