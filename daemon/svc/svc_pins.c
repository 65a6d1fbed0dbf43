/* daemon/svc/svc_pins: a deployment's image digests, as ECS's software version
 * consistency has them.  The first task of a deployment that has pulled
 * its images fixes their digests; the deployment's later tasks (scale-up,
 * replacements, a restart's) run exactly those, even once the tag has
 * moved.  A new deployment (another revision, forceNewDeployment) resolves
 * the tags again.  A container with versionConsistency "disabled" follows
 * its tag; one whose image is already by digest needs nothing.  The pins
 * live in the service's state: {"pins": {"<deployment id>": [digest…]}},
 * one digest per container in definition order. */
#include <string.h>

#include "daemon/store/store.h"
#include "daemon/svc/svc_internal.h"

static bool is_deployment(const struct svc_view *w, const char *id)
{
	const cJSON *d;
	cJSON_ArrayForEach(d, w->deps) {
		const char *did = json_str(d, "id");
		if (did && strcmp(did, id) == 0)
			return true;
	}
	return false;
}

/* Every container's digest, or NULL while one is not pulled yet. */
static cJSON *digests_of(const struct store_task *t)
{
	for (size_t i = 0; i < t->n_containers; i++)
		if (!t->containers[i].image_digest)
			return NULL;
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < t->n_containers; i++)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateString(t->containers[i].image_digest))) {
			cJSON_Delete(arr);
			return NULL;
		}
	return arr;
}

void svc_pins_learn(struct svc_view *w)
{
	cJSON *pins = cJSON_GetObjectItemCaseSensitive(w->state, "pins");
	if (!pins && !(pins = cJSON_AddObjectToObject(w->state, "pins")))
		return;  /* out of memory: the next reconcile learns them */
	for (cJSON *p = pins->child, *next; p; p = next) {
		next = p->next;
		if (!is_deployment(w, p->string))
			cJSON_Delete(cJSON_DetachItemViaPointer(pins, p));
	}
	for (size_t i = 0; i < w->n; i++) {
		const struct store_task *t = w->tasks[i];
		if (!t->started_by || cJSON_GetObjectItemCaseSensitive(pins, t->started_by) ||
		    !is_deployment(w, t->started_by))
			continue;
		cJSON *arr = digests_of(t);
		if (arr && !cJSON_AddItemToObject(pins, t->started_by, arr))
			cJSON_Delete(arr);
	}
}

size_t svc_pins_for(const struct svc_view *w, const char *deployment, const cJSON *body,
		    const char **ret, size_t max)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(w->state, "pins"), deployment);
	const cJSON *cd;
	size_t n = 0;
	if (!arr)
		return 0;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(body, "containerDefinitions")) {
		if (n == max)
			break;
		const char *vc = json_str(cd, "versionConsistency");
		ret[n] = vc && strcmp(vc, "disabled") == 0
				 ? NULL : cJSON_GetStringValue(cJSON_GetArrayItem(arr, (int)n));
		n++;
	}
	return n;
}
