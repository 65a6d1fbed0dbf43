/* berth-shim: the container restart policy's one decision (ECS's
 * ContainerRestartPolicy; the rules are the ECS agent's restart tracker:
 * github.com/aws/amazon-ecs-agent ecs-agent/api/container/restart).
 * Kept pure so that a unit test can drive it with any clock. */
#include "runtime/shim_internal.h"

enum shim_restart_verdict shim_restart_decide(const struct plan_restart *rp, int code,
					      int64_t ran_ms, bool stopping)
{
	if (!rp->enabled)
		return SHIM_RESTART_OFF;
	if (stopping)
		return SHIM_RESTART_STOPPING;
	for (size_t i = 0; i < rp->n_ignored; i++)
		if (rp->ignored[i] == code)
			return SHIM_RESTART_IGNORED;
	/* "A container can be restarted only once every restartAttemptPeriod
	 * seconds": this is also what keeps a container that dies at once
	 * from making the shim spin. */
	if (ran_ms < (int64_t)rp->attempt_period * 1000)
		return SHIM_RESTART_TOO_SOON;
	return SHIM_RESTART_YES;
}

const char *shim_restart_verdict_text(enum shim_restart_verdict v)
{
	switch (v) {
	case SHIM_RESTART_YES:
		return "restarted";
	case SHIM_RESTART_OFF:
		return "no restart policy";
	case SHIM_RESTART_STOPPING:
		return "the task is stopping";
	case SHIM_RESTART_IGNORED:
		return "its exit code is in ignoredExitCodes";
	case SHIM_RESTART_TOO_SOON:
		return "it ran for less than restartAttemptPeriod";
	}
	return "?";
}
