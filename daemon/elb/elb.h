/* daemon/elb: the Elastic Load Balancing v2 API (the control plane of
 * Berth's load balancers), served on the same endpoint as ECS.
 *
 * Wire protocol (docs/load-balancing.md): AWS Query — `POST /` with a
 * form-encoded body `Action=<Op>&Version=2015-12-01&<members>` (lists as
 * `Name.member.N`, structures as `Name.Member`), answered with XML
 * (<OpResponse><OpResult>…</OpResult><ResponseMetadata>…) or an
 * <ErrorResponse>.  A member this subset does not support is a
 * ValidationError naming it, never ignored.
 *
 * The state lives in the store (daemon/store/store_elb.h); every change is
 * handed whole to the data plane (daemon/lb/lb.h) when one is wired, and
 * again at start.  Deregistered targets drain for the target group's
 * deregistration delay: a timer on the event loop removes them then, and
 * a restarted daemon picks the deadlines up from the store. */
#ifndef BERTH_DAEMON_ELB_H
#define BERTH_DAEMON_ELB_H

#include <stddef.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/store/store.h"

struct event_base;
struct lb;
struct elb;
struct svc;

#define ELB_CONTENT_TYPE "text/xml"
/* The SigV4 credential scope's service for this API. */
#define ELB_SIGNING_NAME "elasticloadbalancing"

struct elb_config {
	const char *region; /* ARNs */
	const char *account_id;
	/* What DescribeLoadBalancers shows as DNSName: the address the
	 * listeners are reached at; NULL = this host's name. */
	const char *dns_name;
	struct lb *lb; /* the data plane; NULL = state kept, nothing served */
	/* This host's container instance id: the Id bridge-mode service tasks
	 * are registered under in instance target groups; NULL: none are. */
	const char *instance_id;
	FILE *log;     /* data-plane failures after the answer; NULL = quiet */
};

/* Re-applies the stored state to CFG->lb (a failure, such as a port now
 * taken, is logged, not fatal) and arms the drain timer.  BASE,
 * STORE and CFG's strings must outlive the result. */
int elb_new(struct event_base *base, struct store *store, const struct elb_config *cfg,
	    struct elb **ret, struct berth_err *err);
void elb_free(struct elb *e);
DEFINE_CLEANUP_FUNC(struct elb, elb_free)

/* One Query request (BODY, LEN bytes): the HTTP status and the XML answer
 * (*ret_body, heap, NUL-terminated; NULL only when out of memory). */
void elb_serve(struct elb *e, const char *body, size_t len, const char *request_id, int *ret_status,
	       char **ret_body);

/* Task T of an ECS service changed or stopped: registers it in the
 * target groups of the service's loadBalancers once it is RUNNING, and
 * drains it once it no longer runs (elb_ecs.c); each change is an event
 * of the service (svc_note() on SVC, which may be NULL).  A NULL E does
 * nothing. */
void elb_task_changed(struct elb *e, struct svc *svc, const struct store_task *t);
/* The task engine's deregister hook (sched.h) for T, desired STOPPED:
 * starts draining its targets and answers when the last drain ends
 * (epoch ms; 0 when it has none), until when it must keep running. */
int64_t elb_task_deregister(struct elb *e, struct svc *svc, const struct store_task *t);

/* The service engine's target health (struct svc_targets, svc.h) of T:
 * the worst verdict over its service's groups, with ECS's event for an
 * unhealthy one (elb_ecs.c). */
struct svc_target_report;
void elb_task_health(struct elb *e, const struct store_task *t, struct svc_target_report *ret);

/* An <ErrorResponse> for the front end's own refusals (signature, size):
 * CODE in ELB's words (the JSON protocol's "…Exception" names are mapped). */
char *elb_error_xml(const char *code, const char *message, const char *request_id);

#endif
