/* daemon/elb/elb_state: what the ELBv2 API's requests (served by
 * elb_serve on a real store) become in the data plane's terms — groups
 * with their health checks and targets, listeners with weighted forwards,
 * fixed responses and rules by priority, draining targets. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/time.h"
#include "daemon/elb/elb.h"
#include "daemon/elb/elb_state.h"
#include "daemon/store/store.h"
#include "tests/unit/store_fixture.h"

struct fixture {
	char dir[64];
	struct store *s;
	struct event_base *base;
	struct elb *e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	char path[96];
	f->s = unit_store_open("elb-state", f->dir, path);
	struct berth_err err = { 0 };
	f->base = event_base_new();
	assert_non_null(f->base);
	struct elb_config cfg = { .region = "us-east-1",
				  .account_id = "000000000000",
				  .dns_name = "127.0.0.1" };
	if (elb_new(f->base, f->s, &cfg, &f->e, &err) < 0)
		fail_msg("elb_new: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	elb_free(f->e);
	event_base_free(f->base);
	unit_store_close(f->s, f->dir);
	free(f);
	return 0;
}

/* Serves FORM (Action=… without the Version); the text between <TAG> and
 * </TAG> of the answer into OUT (may be NULL). */
static void call(struct fixture *f, const char *form, const char *tag, char *out, size_t len)
{
	char body[4096];
	snprintf(body, sizeof(body), "Version=2015-12-01&%s", form);
	int status;
	_cleanup_free_ char *xml = NULL;
	elb_serve(f->e, body, strlen(body), "00000000-0000-4000-8000-000000000000", &status, &xml);
	assert_non_null(xml);
	if (status != 200)
		fail_msg("%s: %d %s", form, status, xml);
	if (!tag)
		return;
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *a = strstr(xml, open), *b = a ? strstr(a, close) : NULL;
	assert_non_null(b);
	a += strlen(open);
	snprintf(out, len, "%.*s", (int)(b - a), a);
}

/* ARN as a form value (':' and '/' are fine in a form; nothing to escape). */
static void test_state(void **state)
{
	struct fixture *f = *state;
	char lb[256], tg1[256], tg2[256], listener[256], form[2048];
	call(f, "Action=CreateLoadBalancer&Name=web", "LoadBalancerArn", lb, sizeof(lb));
	call(f,
	     "Action=CreateTargetGroup&Name=one&Protocol=HTTP&Port=8080&TargetType=ip"
	     "&HealthCheckPath=/up&HealthCheckIntervalSeconds=5&HealthCheckTimeoutSeconds=2"
	     "&Matcher.HttpCode=200-299",
	     "TargetGroupArn", tg1, sizeof(tg1));
	call(f, "Action=CreateTargetGroup&Name=two&Protocol=HTTP&Port=9090&TargetType=instance",
	     "TargetGroupArn", tg2, sizeof(tg2));
	snprintf(form, sizeof(form),
		 "Action=CreateListener&LoadBalancerArn=%s&Protocol=HTTP&Port=8000"
		 "&DefaultActions.member.1.Type=forward"
		 "&DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=%s"
		 "&DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight=3"
		 "&DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=%s",
		 lb, tg1, tg2);
	call(f, form, "ListenerArn", listener, sizeof(listener));
	snprintf(form, sizeof(form),
		 "Action=CreateRule&ListenerArn=%s&Priority=20"
		 "&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/api/"
		 "*"
		 "&Conditions.member.2.Field=host-header&Conditions.member.2.Values.member.1=a."
		 "example"
		 "&Conditions.member.2.Values.member.2=b.example"
		 "&Actions.member.1.Type=forward&Actions.member.1.TargetGroupArn=%s",
		 listener, tg2);
	call(f, form, NULL, NULL, 0);
	snprintf(form, sizeof(form),
		 "Action=CreateRule&ListenerArn=%s&Priority=10"
		 "&Conditions.member.1.Field=path-pattern&Conditions.member.1.Values.member.1=/x"
		 "&Actions.member.1.Type=fixed-response&Actions.member.1.FixedResponseConfig."
		 "StatusCode=418"
		 "&Actions.member.1.FixedResponseConfig.MessageBody=tea",
		 listener);
	call(f, form, NULL, NULL, 0);
	snprintf(form, sizeof(form),
		 "Action=RegisterTargets&TargetGroupArn=%s"
		 "&Targets.member.1.Id=10.0.0.1&Targets.member.2.Id=10.0.0.2&Targets.member.2.Port="
		 "81",
		 tg1);
	call(f, form, NULL, NULL, 0);
	snprintf(form, sizeof(form),
		 "Action=RegisterTargets&TargetGroupArn=%s&Targets.member.1.Id=i-1", tg2);
	call(f, form, NULL, NULL, 0);
	snprintf(form, sizeof(form),
		 "Action=DeregisterTargets&TargetGroupArn=%s&Targets.member.1.Id=10.0.0.1", tg1);
	call(f, form, NULL, NULL, 0);

	struct berth_err err = { 0 };
	_cleanup_(elb_state_freep) struct elb_state *p = NULL;
	assert_int_equal(elb_state_build(f->s, berth_real_ms(), &p, &err), 0);
	const struct lb_state *st = elb_state_get(p);
	assert_int_equal(st->n_groups, 2);
	const struct lb_group *g1 = &st->groups[0], *g2 = &st->groups[1];
	assert_true(strncmp(g1->name, "tg-", 3) == 0 && strlen(g1->name) == 19);
	assert_int_equal(g1->proto, LB_HTTP);
	assert_string_equal(g1->hc.path, "/up");
	assert_string_equal(g1->hc.matcher, "200-299");
	assert_int_equal(g1->hc.interval_s, 5);
	assert_int_equal(g1->hc.timeout_s, 2);
	assert_int_equal(g1->hc.port, 0);
	assert_int_equal(g1->n_targets, 2);
	assert_string_equal(g1->targets[0].addr, "10.0.0.1");
	assert_int_equal(g1->targets[0].port, 8080);
	assert_true(g1->targets[0].draining); /* the default delay: 300 s */
	assert_int_equal(g1->targets[1].port, 81);
	assert_false(g1->targets[1].draining);
	assert_int_equal(g2->n_targets, 1);
	assert_string_equal(g2->targets[0].addr, "127.0.0.1"); /* an instance: this host */
	assert_int_equal(g2->targets[0].port, 9090);

	assert_int_equal(st->n_listeners, 1);
	const struct lb_listener *l = &st->listeners[0];
	assert_int_equal(l->port, 8000);
	assert_int_equal(l->default_action.kind, LB_ACTION_FORWARD);
	assert_int_equal(l->default_action.n_forward, 2);
	assert_string_equal(l->default_action.forward[0].group, g1->name);
	assert_int_equal(l->default_action.forward[0].weight, 3);
	assert_string_equal(l->default_action.forward[1].group, g2->name);
	assert_int_equal(l->default_action.forward[1].weight, 1);
	assert_int_equal(l->n_rules, 2);
	/* Stored in creation order; lb.h orders by priority itself. */
	const struct lb_rule *r20 = l->rules[0].priority == 20 ? &l->rules[0] : &l->rules[1];
	const struct lb_rule *r10 = l->rules[0].priority == 10 ? &l->rules[0] : &l->rules[1];
	assert_int_equal(r20->n_paths, 1);
	assert_string_equal(r20->paths[0], "/api/*");
	assert_int_equal(r20->n_hosts, 2);
	assert_string_equal(r20->hosts[1], "b.example");
	assert_string_equal(r20->action.forward[0].group, g2->name);
	assert_int_equal(r10->action.kind, LB_ACTION_FIXED);
	assert_int_equal(r10->action.status, 418);
	assert_string_equal(r10->action.body, "tea");
	assert_int_equal(r10->n_hosts, 0);

	/* Once the drain has ended the target is out of the state. */
	_cleanup_(elb_state_freep) struct elb_state *later = NULL;
	assert_int_equal(elb_state_build(f->s, berth_real_ms() + 301000, &later, &err), 0);
	assert_int_equal(elb_state_get(later)->groups[0].n_targets, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
