/* cJSON glue shared by every layer: the scope-bound cleanup for a cJSON
 * tree. */
#ifndef BERTH_JSON_H
#define BERTH_JSON_H

#include <cjson/cJSON.h>

#include "common/cleanup.h"

/* _cleanup_(cJSON_Deletep) cJSON *j = cJSON_Parse(...); */
DEFINE_CLEANUP_FUNC(cJSON, cJSON_Delete)

#endif
