/* daemon/lb/lb_health: ELB's target health from HAProxy's `show stat`. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/lb/lb_internal.h"

enum { COL_PX, COL_SV, COL_STATUS, COL_CHECK, COL_CODE, N_COLS };
static const char *const col_names[N_COLS] = { "pxname", "svname", "status", "check_status",
					       "check_code" };

/* Splits LINE at commas in place; FIELDS[i] is the i-th, up to MAX. */
static size_t split_csv(char *line, char **fields, size_t max)
{
	size_t n = 0;
	for (char *p = line; n < max;) {
		fields[n++] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p++ = '\0';
	}
	return n;
}

#define MAX_FIELDS 128

/* The row of PX/SV in OUT (show stat's CSV), its columns in COLS. */
static bool find_row(char *out, const char *px, const char *sv, char *cols[N_COLS])
{
	int idx[N_COLS] = { -1, -1, -1, -1, -1 };
	char *f[MAX_FIELDS];
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# ", 2) == 0) {
			size_t n = split_csv(line + 2, f, MAX_FIELDS);
			for (size_t i = 0; i < n; i++)
				for (int c = 0; c < N_COLS; c++)
					if (strcmp(f[i], col_names[c]) == 0)
						idx[c] = (int)i;
			continue;
		}
		size_t n = split_csv(line, f, MAX_FIELDS);
		bool ok = true;
		for (int c = 0; c < N_COLS; c++)
			ok &= idx[c] >= 0 && (size_t)idx[c] < n;
		if (!ok || strcmp(f[idx[COL_PX]], px) != 0 || strcmp(f[idx[COL_SV]], sv) != 0)
			continue;
		for (int c = 0; c < N_COLS; c++)
			cols[c] = f[idx[c]];
		return true;
	}
	return false;
}

static void set(struct lb_target_health *h, enum lb_target_state st, const char *reason)
{
	h->state = st;
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
}

/* HAProxy's status ("UP", "UP 1/3", "DOWN", "DOWN 1/2", "NOLB", "MAINT",
 * "no check") and last check ("L7OK", "L7STS", "L4TOUT", "INI", "* L7OK", …). */
static void map_state(const char *status, const char *check, struct lb_target_health *h)
{
	/* "* " marks a check under way: the status is the last one's. */
	if (strncmp(check, "* ", 2) == 0)
		check += 2;
	if (strncmp(status, "UP", 2) == 0 || strcmp(status, "no check") == 0)
		set(h, LB_HEALTHY, "");
	else if (!*check || strcmp(check, "INI") == 0)
		set(h, LB_INITIAL, "Elb.RegistrationInProgress");
	else if (strlen(check) == 4 && strcmp(check + 2, "OK") == 0)  /* L4OK, L7OK: rising */
		set(h, LB_INITIAL, "Elb.InitialHealthChecking");
	else if (strcmp(check, "L7STS") == 0)
		set(h, LB_UNHEALTHY, "Target.ResponseCodeMismatch");
	else if (strcmp(check, "L4TOUT") == 0 || strcmp(check, "L7TOUT") == 0)
		set(h, LB_UNHEALTHY, "Target.Timeout");
	else
		set(h, LB_UNHEALTHY, "Target.FailedHealthChecks");
}

int lb_target_health(struct lb *lb, const char *group, const char *addr, int port,
		     struct lb_target_health *ret, struct berth_err *err)
{
	*ret = (struct lb_target_health){ LB_INITIAL, "", 0 };
	const struct lb_applied *a = NULL;
	for (size_t i = 0; !a && i < lb->n_targets; i++)
		if (lb->targets[i].port == port && strcmp(lb->targets[i].group, group) == 0 &&
		    strcmp(lb->targets[i].addr, addr) == 0)
			a = &lb->targets[i];
	if (!a)
		return berth_errf(err, ENOENT, "target group %s: target %s:%d is not registered",
				  group, addr, port);
	if (!a->used) {
		set(ret, LB_UNUSED, "Target.NotInUse");
		return 0;
	}
	if (a->draining) {
		set(ret, LB_DRAINING, "Target.DeregistrationInProgress");
		return 0;
	}
	if (lb->pid <= 0) {
		/* Restarting: its checks start over. */
		set(ret, LB_INITIAL, "Elb.RegistrationInProgress");
		return 0;
	}
	_cleanup_free_ char *out = NULL;
	int r = lb_proc_cmd(lb, &out, err, "show stat");
	if (r < 0)
		return berth_err_wrap(err, "target group %s: target %s:%d", group, addr, port);
	char px[LB_NAME_MAX + 3], sv[LB_SRV_NAME_MAX], *cols[N_COLS];
	snprintf(px, sizeof(px), "g_%s", group);
	lb_conf_server_name(addr, port, sv);
	if (!find_row(out, px, sv, cols))
		return berth_errf(err, ENOENT,
				  "target group %s: target %s:%d: not in HAProxy's statistics",
				  group, addr, port);
	map_state(cols[COL_STATUS], cols[COL_CHECK], ret);
	ret->last_code = atoi(cols[COL_CODE]);
	return 0;
}
