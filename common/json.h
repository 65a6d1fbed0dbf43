/* cJSON glue shared by every layer: the scope-bound cleanup for a cJSON
 * tree and the few member readers/writers that several files needed.
 * Readers take a NULL object or a member of the wrong type as absent, so
 * callers can walk optional structure without checking each step. */
#ifndef BERTH_JSON_H
#define BERTH_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/cleanup.h"

/* _cleanup_(cJSON_Deletep) cJSON *j = cJSON_Parse(...); */
DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)

/* Member NAME of O if it is a string, else NULL. */
const char *json_str(const cJSON *o, const char *name);

/* Member NAME of O if it is a number (truncated toward zero), else DFLT. */
int64_t json_int(const cJSON *o, const char *name, int64_t dflt);

/* Sets NAME to the string V in O, dropping any earlier NAME (the member
 * moves to the end).  False when out of memory. */
bool json_set_str(cJSON *o, const char *name, const char *v);

/* Adders that report allocation failure as false (NULL).  A NULL string
 * is added as "". */
bool json_add_string(cJSON *obj, const char *name, const char *v);
bool json_add_number(cJSON *obj, const char *name, double v);
/* An empty array added under NAME, or NULL. */
cJSON *json_add_array(cJSON *obj, const char *name);
/* A new object appended to ARR (which owns it), or NULL. */
cJSON *json_add_object(cJSON *arr);

/* A random (version 4) UUID: request ids, attachment ids, container ARNs. */
void json_uuid(char out[37]);

#endif
