/* daemon/ecs/berth_volumes: ListVolumes and DeleteVolume (berth_volumes.h). */
#include "daemon/ecs/berth_volumes.h"

#include <errno.h>

#include "common/cleanup.h"
#include "daemon/sched/volumes.h"

int api_op_list_volumes(struct api_call *c)
{
	struct berth_err err = { 0 };
	cJSON *list = NULL;
	if (volumes_list(c->sched, &list, &err) < 0)
		return api_error(c, 0, API_E_SERVER, "%s", err.msg);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	if (!out || !cJSON_AddItemToObject(out, "volumes", list)) {
		cJSON_Delete(list);
		return api_oom(c);
	}
	c->out = TAKE_PTR(out);
	return 0;
}

int api_op_delete_volume(struct api_call *c)
{
	const char *name;
	if (api_get_string(c, c->in, "", "name", true, &name) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = volumes_remove(c->sched, name, &err);
	if (r == -ENOENT)
		return api_error(c, 0, "ResourceNotFoundException", "%s", err.msg);
	if (r == -EBUSY)
		return api_error(c, 0, "ResourceInUseException", "%s", err.msg);
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "%s", err.msg);
	if (r < 0)
		return api_error(c, 0, API_E_SERVER, "%s", err.msg);
	if (!(c->out = cJSON_CreateObject()))
		return api_oom(c);
	return 0;
}
