/* berth-netpolicy's worker (netns/policy_main.c) and its clients, berthd
 * that runs it and berth-shim that asks it: where it listens and how big
 * a request may be.  docs/networking.md "The policy worker". */
#ifndef BERTH_NETPOLICY_WORKER_H
#define BERTH_NETPOLICY_WORKER_H

#include "netns/net.h"

#define NETPOLICY_WORKER_DIR "netpolicy"      /* under the daemon's run root, 0700 */
#define NETPOLICY_WORKER_SOCK "sock"          /* in it, 0600 */
#define NETPOLICY_WORKER_REQ_MAX 8192
#define NETPOLICY_WORKER_ARGS_MAX (20 + 2 * NET_GROUPS_MAX + 2 * NET_PUBLISH_MAX)

#endif
