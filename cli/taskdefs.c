/* berth register | task-definitions: task definitions through the daemon. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "common/fsutil.h"

#define TD_FILE_MAX (1u << 20) /* the daemon's body limit */

/* The RegisterTaskDefinition request in doc: doc itself, or, for what
 * `aws ecs describe-task-definition` prints ({"taskDefinition": {...},
 * "tags": [...]}), the definition with the tags moved into it. */
static int unwrap_definition(cJSON **doc, const char *path, struct berth_err *err)
{
	cJSON *td = cJSON_GetObjectItemCaseSensitive(*doc, "taskDefinition");
	if (!cJSON_IsObject(*doc))
		return berth_errf(err, EINVAL, "%s: not a JSON object", path);
	if (!td || cJSON_HasObjectItem(*doc, "family"))
		return 0;
	if (!cJSON_IsObject(td))
		return berth_errf(err, EINVAL, "%s: taskDefinition is not an object", path);
	cJSON *inner = cJSON_DetachItemViaPointer(*doc, td);
	cJSON *tags = cJSON_DetachItemFromObjectCaseSensitive(*doc, "tags");
	if (tags && !cJSON_HasObjectItem(inner, "tags"))
		cJSON_AddItemToObject(inner, "tags", tags);
	else
		cJSON_Delete(tags);
	cJSON_Delete(*doc);
	*doc = inner;
	return 0;
}

static int read_definition(const char *path, cJSON **ret, struct berth_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = berth_read_file_at(AT_FDCWD, path, TD_FILE_MAX, &text, &len, err);
	if (r < 0)
		return r;
	const char *end = NULL;
	cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!doc)
		return berth_errf(err, EINVAL, "%s: not valid JSON (near byte %td)", path,
				  end ? end - text : 0);
	r = unwrap_definition(&doc, path, err);
	if (r < 0) {
		cJSON_Delete(doc);
		return r;
	}
	*ret = doc;
	return 0;
}

int cmd_register(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth register [--output table|json] FILE.json",
		.help = "Registers the task definition in FILE.json (a RegisterTaskDefinition\n"
			"request, as `aws ecs register-task-definition --cli-input-json` takes, or\n"
			"what `aws ecs describe-task-definition` prints) and prints its\n"
			"family:revision (json: the daemon's answer).\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 1, 1, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *req = NULL, *resp = NULL;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	if (read_definition(argv[first], &req, &err) < 0 || ecs_open(c->socket, &e, &err) < 0 ||
	    ecs_call(e, "RegisterTaskDefinition", req, &resp, &err) < 0)
		return cli_fail(&err);
	if (c->json)
		return ecs_print_json(resp);
	const cJSON *td = cJSON_GetObjectItemCaseSensitive(resp, "taskDefinition");
	printf("%s\n", ecs_td_name(ecs_str(td, "taskDefinitionArn")));
	return 0;
}

/* ---- task-definitions ---------------------------------------------------- */

/* {"taskDefinitionArn", "family", "revision", "status"} of one ARN. */
static cJSON *td_row(const char *arn, const char *status)
{
	const char *name = ecs_td_name(arn), *colon = strrchr(name, ':');
	size_t flen = colon ? (size_t)(colon - name) : strlen(name);
	_cleanup_free_ char *family = strndup(name, flen);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!family || !o || !cJSON_AddStringToObject(o, "taskDefinitionArn", arn) ||
	    !cJSON_AddStringToObject(o, "family", family) ||
	    !cJSON_AddNumberToObject(o, "revision", colon ? strtod(colon + 1, NULL) : 0) ||
	    !cJSON_AddStringToObject(o, "status", status))
		return NULL;
	return TAKE_PTR(o);
}

/* Appends the rows of every definition with that status to rows. */
static int list_status(struct ecs *e, const char *status, cJSON *rows, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *arns = cJSON_CreateArray();
	if (!req || !arns || !cJSON_AddStringToObject(req, "status", status))
		return berth_errf(err, ENOMEM, "ListTaskDefinitions: out of memory");
	int r = ecs_list_all(e, "ListTaskDefinitions", req, "taskDefinitionArns", arns, err);
	const cJSON *arn;
	cJSON_ArrayForEach(arn, arns)
		if (r == 0 && !cJSON_AddItemToArray(rows, td_row(arn->valuestring, status)))
			r = berth_errf(err, ENOMEM, "ListTaskDefinitions: out of memory");
	return r;
}

/* Family, then revision. */
static int td_row_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	int c = strcmp(ecs_str(x, "family"), ecs_str(y, "family"));
	double xr = cJSON_GetObjectItemCaseSensitive(x, "revision")->valuedouble;
	double yr = cJSON_GetObjectItemCaseSensitive(y, "revision")->valuedouble;
	return c ? c : xr < yr ? -1 : xr > yr;
}

int cmd_task_definitions(struct cli *c, int argc, char **argv)
{
	static const char *const statuses[] = { "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS" };
	bool all = false;
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	int rc = cli_list_args(c, argc, argv, "berth task-definitions [-a] [--output table|json]",
			       "Lists the ACTIVE task definitions: FAMILY, REVISION, STATUS, by family\n"
			       "and revision.\n\n"
			       "  -a, --all          INACTIVE and DELETE_IN_PROGRESS ones too\n",
			       &all, &e);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *rows = cJSON_CreateArray();
	int r = rows ? 0 : berth_errf(&err, ENOMEM, "task-definitions: out of memory");
	for (size_t i = 0; r == 0 && i < (all ? ARRAY_SIZE(statuses) : 1); i++)
		r = list_status(e, statuses[i], rows, &err);
	if (r == 0 && ecs_sort_array(rows, td_row_cmp) < 0)
		r = berth_errf(&err, ENOMEM, "task-definitions: out of memory");
	if (r < 0)
		return cli_fail(&err);
	if (c->json)
		return ecs_print_json(rows);
	printf("%-40s %-8s %s\n", "FAMILY", "REVISION", "STATUS");
	const cJSON *row;
	cJSON_ArrayForEach(row, rows)
		printf("%-40s %-8.0f %s\n", ecs_str(row, "family"),
		       cJSON_GetObjectItemCaseSensitive(row, "revision")->valuedouble,
		       ecs_str(row, "status"));
	return 0;
}
