/* berth volume ls | rm NAME: the daemon's named volumes (Berth's own API
 * operations ListVolumes and DeleteVolume, docs/api.md). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"

#define BERTH_TARGET "BerthV20261208."

static int volume_ls(struct ecs *e, const struct cli *c, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *resp = NULL;
	if (ecs_call(e, BERTH_TARGET "ListVolumes", NULL, &resp, err) < 0)
		return cli_fail(err);
	const cJSON *vols = cJSON_GetObjectItemCaseSensitive(resp, "volumes"), *v;
	if (c->json)
		return ecs_print_json(vols);
	printf("%-10s %s\n", "DRIVER", "VOLUME NAME");
	cJSON_ArrayForEach(v, vols)
		printf("%-10s %s\n", ecs_str(v, "driver"), ecs_str(v, "name"));
	return 0;
}

static int volume_rm(struct ecs *e, const char *name, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *resp = NULL;
	if (!req || !cJSON_AddStringToObject(req, "name", name))
		return cli_fail(&(struct berth_err){ ENOMEM, "volume rm: out of memory" });
	if (ecs_call(e, BERTH_TARGET "DeleteVolume", req, &resp, err) < 0)
		return cli_fail(err);
	printf("%s\n", name);
	return 0;
}

int cmd_volume(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth volume ls [--output table|json] | berth volume rm NAME",
		.help = "Named volumes (dockerVolumeConfiguration scope shared, driver local):\n"
			"  ls        lists them: DRIVER, VOLUME NAME\n"
			"  rm NAME   removes one with everything in it; refused while a running\n"
			"            task mounts it\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 1, 2, &first);
	if (rc >= 0)
		return rc;
	const char *sub = argv[first];
	bool ls = !strcmp(sub, "ls") && first + 1 == argc;
	bool rm = !strcmp(sub, "rm") && first + 2 == argc;
	if (!ls && !rm) {
		fprintf(stderr, "berth: volume: expected `ls` or `rm NAME`\nusage: %s\n", cmd.usage);
		return 2;
	}
	struct berth_err err = { 0 };
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	if (ecs_open(c->socket, &e, &err) < 0)
		return cli_fail(&err);
	return ls ? volume_ls(e, c, &err) : volume_rm(e, argv[first + 1], &err);
}
