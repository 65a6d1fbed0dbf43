/* daemon/svc/svc_pins: a deployment's image digests, as ECS's software version
 * consistency has them.  The first task of a deployment that has pulled
 * its images fixes their digests; the deployment's later tasks (scale-up,
 * replacements, a restart's) run exactly those, even once the tag has
 * moved.  A new deployment (another revision, forceNewDeployment) resolves
 * the tags again.  A container with versionConsistency "disabled" follows
 * its tag; one whose image is already by digest needs nothing.  The pins
 * are the deployment's (struct svc_deployment), stored in the service's
 * state as {"pins": {"<deployment id>": [digest…]}}, one digest per
 * container in definition order (svc_state.c). */
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store.h"
#include "daemon/svc/svc_internal.h"

static struct svc_deployment *deployment(struct svc_view *w, const char *id)
{
	for (size_t i = 0; id && i < w->n_deps; i++)
		if (strcmp(w->deps[i].id, id) == 0)
			return &w->deps[i];
	return NULL;
}

/* Every container's digest into D, unless one is not pulled yet. */
static void pin(struct svc_deployment *d, const struct store_task *t)
{
	for (size_t i = 0; i < t->n_containers; i++)
		if (!t->containers[i].image_digest)
			return;
	char **pins = t->n_containers ? calloc(t->n_containers, sizeof(*pins)) : NULL;
	if (t->n_containers && !pins)
		return;  /* out of memory: the next reconcile learns them */
	for (size_t i = 0; i < t->n_containers; i++)
		if (!(pins[i] = strdup(t->containers[i].image_digest))) {
			while (i--)
				free(pins[i]);
			free(pins);
			return;
		}
	d->pins = pins;
	d->n_pins = t->n_containers;
	d->pinned = true;
}

void svc_pins_learn(struct svc_view *w)
{
	for (size_t i = 0; i < w->n; i++) {
		struct svc_deployment *d = deployment(w, w->tasks[i]->started_by);
		if (d && !d->pinned)
			pin(d, w->tasks[i]);
	}
}

size_t svc_pins_for(const struct svc_deployment *d, const cJSON *body, const char **ret,
		    size_t max)
{
	const cJSON *cd;
	size_t n = 0;
	if (!d->pinned)
		return 0;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(body, "containerDefinitions")) {
		if (n == max)
			break;
		const char *vc = json_str(cd, "versionConsistency");
		ret[n] = vc && strcmp(vc, "disabled") == 0 ? NULL
			 : n < d->n_pins ? d->pins[n] : NULL;
		n++;
	}
	return n;
}
