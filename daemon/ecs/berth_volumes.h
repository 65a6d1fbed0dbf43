/* daemon/ecs/berth_volumes: Berth's own operations on named volumes (not
 * ECS's: docs/api.md "Berth operations"), AWS JSON 1.1 under the
 * X-Amz-Target prefix BERTH_TARGET_PREFIX, signing name "berth".
 *
 *   ListVolumes   {} → {"volumes": [{"name", "driver"}]}
 *   DeleteVolume  {"name"} → {}; ResourceNotFoundException for a volume
 *                 that does not exist, ResourceInUseException while a
 *                 running task mounts it */
#ifndef BERTH_DAEMON_ECS_BERTH_VOLUMES_H
#define BERTH_DAEMON_ECS_BERTH_VOLUMES_H

#include "daemon/ecs/ecs.h"

#define BERTH_TARGET_PREFIX "BerthV20261208."

int api_op_list_volumes(struct api_call *c);
int api_op_delete_volume(struct api_call *c);

#endif
