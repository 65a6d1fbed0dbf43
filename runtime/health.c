#include "runtime/health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "runtime/container.h"

const char *rt_health_status_name(enum rt_health_status s)
{
	switch (s) {
	case RT_HEALTH_HEALTHY:
		return "HEALTHY";
	case RT_HEALTH_UNHEALTHY:
		return "UNHEALTHY";
	case RT_HEALTH_UNKNOWN:
	default:
		return "UNKNOWN";
	}
}

/* -1 (absent) → def; otherwise within [min, max], or an error that quotes
 * ECS's own limits so the plan's author knows what to write. */
static int number(const char *field, int v, int def, int min, int max, int *out,
		  struct berth_err *err)
{
	if (v == -1) {
		*out = def;
		return 0;
	}
	if (v < min || v > max)
		return berth_errf(err, EINVAL, "healthCheck.%s %d: must be between %d and %d",
				  field, v, min, max);
	*out = v;
	return 0;
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **out = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; out && i < n; i++)
		if (!(out[i] = strdup(v[i]))) {
			rt_strv_free(out);
			return NULL;
		}
	return out;
}

static int command(const char *const *cmd, size_t n, char ***ret, struct berth_err *err)
{
	if (n == 0 || !cmd || !cmd[0])
		return berth_errf(err, EINVAL, "healthCheck.command: empty");
	for (size_t i = 0; i < n; i++)
		if (!cmd[i])
			return berth_errf(err, EINVAL, "healthCheck.command[%zu]: null", i);
	char **argv = NULL;
	if (!strcmp(cmd[0], "NONE")) {
		if (n > 1)
			return berth_errf(err, EINVAL, "healthCheck.command: NONE takes no arguments");
	} else if (!strcmp(cmd[0], "CMD")) {
		if (n < 2 || !cmd[1][0])
			return berth_errf(err, EINVAL, "healthCheck.command: CMD without a command");
		if (!(argv = strv_dup(cmd + 1, n - 1)))
			return berth_errnof(err, ENOMEM, "healthCheck.command");
	} else if (!strcmp(cmd[0], "CMD-SHELL")) {
		if (n < 2 || !cmd[1][0])
			return berth_errf(err, EINVAL, "healthCheck.command: CMD-SHELL without a command");
		/* Docker runs /bin/sh -c followed by every string after
		 * CMD-SHELL unchanged, and the ECS agent hands the array to
		 * Docker as it is. */
		_cleanup_free_ const char **v = calloc(n + 2, sizeof(char *));
		if (!v)
			return berth_errnof(err, ENOMEM, "healthCheck.command");
		v[0] = "/bin/sh";
		v[1] = "-c";
		memcpy(v + 2, cmd + 1, (n - 1) * sizeof(char *));
		if (!(argv = strv_dup(v, n + 1)))
			return berth_errnof(err, ENOMEM, "healthCheck.command");
	} else {
		return berth_errf(err, EINVAL, "healthCheck.command: \"%s\": must start with "
				  "CMD, CMD-SHELL or NONE", cmd[0]);
	}
	*ret = argv;
	return 0;
}

int rt_health_config_from(const char *const *cmd, size_t n, int interval_s, int timeout_s,
			  int retries, int start_period_s, struct rt_health_config *ret,
			  struct berth_err *err)
{
	struct rt_health_config c = { 0 };
	int r = number("interval", interval_s, RT_HEALTH_INTERVAL_DEFAULT,
		       RT_HEALTH_INTERVAL_MIN, RT_HEALTH_INTERVAL_MAX, &c.interval_s, err);
	if (r >= 0)
		r = number("timeout", timeout_s, RT_HEALTH_TIMEOUT_DEFAULT,
			   RT_HEALTH_TIMEOUT_MIN, RT_HEALTH_TIMEOUT_MAX, &c.timeout_s, err);
	if (r >= 0)
		r = number("retries", retries, RT_HEALTH_RETRIES_DEFAULT,
			   RT_HEALTH_RETRIES_MIN, RT_HEALTH_RETRIES_MAX, &c.retries, err);
	if (r >= 0)
		r = number("startPeriod", start_period_s, RT_HEALTH_START_PERIOD_DEFAULT,
			   RT_HEALTH_START_PERIOD_MIN, RT_HEALTH_START_PERIOD_MAX,
			   &c.start_period_s, err);
	/* The command last: it is the only part that allocates. */
	if (r >= 0)
		r = command(cmd, n, &c.argv, err);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

void rt_health_config_free(struct rt_health_config *cfg)
{
	if (!cfg)
		return;
	rt_strv_free(cfg->argv);
	*cfg = (struct rt_health_config){ 0 };
}

void rt_health_start(struct rt_health *h, const struct rt_health_config *cfg, int64_t now)
{
	*h = (struct rt_health){
		.status = RT_HEALTH_UNKNOWN,
		.started_at = now,
		.interval_ms = (int64_t)cfg->interval_s * 1000,
		.start_period_ms = (int64_t)cfg->start_period_s * 1000,
		.retries = cfg->retries > 0 ? (unsigned)cfg->retries : 1,
	};
	h->next_due = now + h->interval_ms;
}

int64_t rt_health_next_due(const struct rt_health *h)
{
	return h->next_due;
}

bool rt_health_record(struct rt_health *h, bool passed, int64_t now)
{
	enum rt_health_status before = h->status;
	h->next_due = now + h->interval_ms;
	if (passed) {
		h->failures = h->counted = 0;
		h->status = RT_HEALTH_HEALTHY;
		return before != h->status;
	}
	h->failures++;
	/* The grace period ends early with the first pass, after which the
	 * status is never UNKNOWN again. */
	bool grace = h->status == RT_HEALTH_UNKNOWN && now - h->started_at < h->start_period_ms;
	if (!grace)
		h->counted++;
	if (h->counted >= h->retries)
		h->status = RT_HEALTH_UNHEALTHY;
	return before != h->status;
}

enum rt_health_status rt_health_task(const struct rt_health_member *m, size_t n)
{
	size_t checked = 0, healthy = 0;
	for (size_t i = 0; i < n; i++) {
		if (!m[i].essential || !m[i].has_check)
			continue;
		if (m[i].status == RT_HEALTH_UNHEALTHY)
			return RT_HEALTH_UNHEALTHY;
		checked++;
		healthy += m[i].status == RT_HEALTH_HEALTHY;
	}
	return checked > 0 && healthy == checked ? RT_HEALTH_HEALTHY : RT_HEALTH_UNKNOWN;
}
