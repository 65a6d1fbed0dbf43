/* daemon/ecs/taskdef_volumes: the checks ECS makes at RegisterTaskDefinition
 * on `volumes`, `mountPoints` and `volumesFrom` (taskdef.h), on the stored
 * copy (types already checked, nulls gone).  The messages are ECS's where
 * ECS's are known ("Unknown volume 'x'.", "host.sourcePath should not be
 * blank.", "Invalid 'volumesFrom' setting. Unknown container: 'x'.",
 * "Fargate compatible task definitions do not support sourcePath"). */
#include <string.h>

#include "common/json.h"
#include "daemon/ecs/taskdef.h"

static const cJSON *get(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const cJSON *volume_named(const cJSON *vols, const char *name)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, vols)
		if (name && json_str(v, "name") && strcmp(json_str(v, "name"), name) == 0)
			return v;
	return NULL;
}

static int check_volume(struct api_call *c, const cJSON *v, const cJSON *vols, bool fargate)
{
	const char *name = json_str(v, "name");
	const cJSON *host = get(v, "host"), *dvc = get(v, "dockerVolumeConfiguration");
	if (!name || !*name)
		return api_error(c, 0, API_E_CLIENT, "volume.name should not be blank.");
	if (!api_name_valid(name))
		return api_error(c, 0, API_E_CLIENT, "volume.name contains invalid characters.");
	if (volume_named(vols, name) != v)
		return api_error(c, 0, API_E_CLIENT, "Duplicate volume name '%s'.", name);
	const char *src = json_str(host, "sourcePath");
	if (src && !*src)
		return api_error(c, 0, API_E_CLIENT, "host.sourcePath should not be blank.");
	if (src && src[0] != '/')
		return api_error(c, 0, API_E_CLIENT, "Volume '%s': host.sourcePath '%.255s' must be "
				 "an absolute path.", name, src);
	if (src && dvc)
		return api_error(c, 0, API_E_CLIENT, "Volume '%s' cannot specify both host and "
				 "dockerVolumeConfiguration.", name);
	if (fargate && src)
		return api_error(c, 0, API_E_CLIENT, "Fargate compatible task definitions do not "
				 "support sourcePath");
	if (fargate && dvc)
		return api_error(c, 0, API_E_CLIENT, "Fargate compatible task definitions do not "
				 "support dockerVolumeConfiguration");
	return 0;
}

static int check_mount_points(struct api_call *c, const cJSON *ct, const cJSON *vols)
{
	const char *cname = json_str(ct, "name");
	const cJSON *mps = get(ct, "mountPoints"), *mp, *other;
	cJSON_ArrayForEach(mp, mps) {
		const char *vol = json_str(mp, "sourceVolume"), *path = json_str(mp, "containerPath");
		if (!volume_named(vols, vol))
			return api_error(c, 0, API_E_CLIENT, "Unknown volume '%.255s'.",
					 vol ? vol : "null");
		if (!path || !*path)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "mountPoints.containerPath should not be blank.", cname);
		if (path[0] != '/')
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "mountPoints.containerPath '%.255s' must be an absolute "
					 "path.", cname, path);
		for (other = mps->child; other != mp; other = other->next) {
			const char *op = json_str(other, "containerPath");
			if (op && strcmp(op, path) == 0)
				return api_error(c, 0, API_E_CLIENT, "Invalid setting for container "
						 "'%s'. Duplicate mount point containerPath "
						 "'%.255s'.", cname, path);
		}
	}
	return 0;
}

static int container_index(const cJSON *defs, const char *name)
{
	const cJSON *ct;
	int i = 0;
	cJSON_ArrayForEach(ct, defs) {
		if (name && strcmp(json_str(ct, "name"), name) == 0)
			return i;
		i++;
	}
	return -1;
}

enum { WHITE, GREY, BLACK };

/* Depth-first over volumesFrom; a grey container reached again closes a
 * cycle, which Docker could never start. */
static int visit(struct api_call *c, const cJSON *defs, int i, unsigned char *color)
{
	const cJSON *ct = cJSON_GetArrayItem(defs, i), *vf;
	color[i] = GREY;
	cJSON_ArrayForEach(vf, get(ct, "volumesFrom")) {
		const char *src = json_str(vf, "sourceContainer");
		int t = container_index(defs, src);
		if (t < 0)
			return api_error(c, 0, API_E_CLIENT, "Invalid 'volumesFrom' setting. Unknown "
					 "container: '%.255s'.", src ? src : "null");
		if (color[t] == GREY)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "volumesFrom: '%s' takes volumes from it in turn (a "
					 "cycle).", json_str(ct, "name"), src);
		if (color[t] == WHITE && visit(c, defs, t, color) < 0)
			return -1;
	}
	color[i] = BLACK;
	return 0;
}

int taskdef_check_volumes(struct api_call *c, const cJSON *body, bool fargate)
{
	const cJSON *vols = get(body, "volumes"), *v, *defs = get(body, "containerDefinitions"), *ct;
	cJSON_ArrayForEach(v, vols)
		if (check_volume(c, v, vols, fargate) < 0)
			return -1;
	cJSON_ArrayForEach(ct, defs)
		if (check_mount_points(c, ct, vols) < 0)
			return -1;
	unsigned char color[TASKDEF_CONTAINERS_MAX] = { 0 };
	for (int i = 0; i < cJSON_GetArraySize(defs) && i < TASKDEF_CONTAINERS_MAX; i++)
		if (color[i] == WHITE && visit(c, defs, i, color) < 0)
			return -1;
	return 0;
}
