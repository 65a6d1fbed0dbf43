/* daemon/elb/elb_state: the ELBv2 API's stored state as daemon/lb/lb.h's
 * struct lb_state (elb_state.c). */
#ifndef BERTH_DAEMON_ELB_STATE_H
#define BERTH_DAEMON_ELB_STATE_H

#include <stdint.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/lb/lb.h"
#include "daemon/store/store.h"

struct elb_state;

/* The whole state in STORE as of NOW (epoch ms: targets whose drain ended
 * are left out), in *ret, freed with elb_state_free(). */
int elb_state_build(struct store *s, int64_t now, struct elb_state **ret, struct berth_err *err);
void elb_state_free(struct elb_state *p);
DEFINE_CLEANUP_FUNC(struct elb_state, elb_state_free)
/* What lb_apply() takes; valid as long as P. */
const struct lb_state *elb_state_get(const struct elb_state *p);

#endif
