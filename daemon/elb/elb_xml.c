/* daemon/elb/elb_xml: answers and errors as XML, built with libxml2.
 *
 * An answer is first a cJSON tree in the model's member names (objects,
 * arrays, strings, numbers, booleans), then written the Query way: a
 * member is an element of its name, a list's items are <member>
 * elements, numbers are integers, booleans true/false. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "daemon/elb/elb_internal.h"

static const xmlChar *X(const char *s)
{
	return (const xmlChar *)s;
}

static bool add_value(xmlNodePtr parent, const char *name, const cJSON *v);

static bool add_children(xmlNodePtr node, const cJSON *v)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
		if (!add_value(node, cJSON_IsArray(v) ? "member" : it->string, it))
			return false;
	return true;
}

static bool add_value(xmlNodePtr parent, const char *name, const cJSON *v)
{
	char num[32];
	const char *text = NULL;
	if (cJSON_IsString(v))
		text = v->valuestring;
	else if (cJSON_IsBool(v))
		text = cJSON_IsTrue(v) ? "true" : "false";
	else if (cJSON_IsNumber(v))
		snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble), text = num;
	/* xmlNewTextChild escapes the text; a NULL one makes an element to fill. */
	xmlNodePtr node = xmlNewTextChild(parent, NULL, X(name), text ? X(text) : NULL);
	if (!node)
		return false;
	return text || add_children(node, v);
}

/* DOC as text, in a malloc'ed string (the caller free()s it). */
static char *dump(xmlDocPtr doc)
{
	xmlChar *buf = NULL;
	int len = 0;
	xmlDocDumpMemoryEnc(doc, &buf, &len, "UTF-8");
	char *s = buf ? strndup((const char *)buf, (size_t)len) : NULL;
	xmlFree(buf);
	return s;
}

static xmlNodePtr new_root(xmlDocPtr doc, const char *name)
{
	xmlNodePtr root = doc ? xmlNewDocNode(doc, NULL, X(name), NULL) : NULL;
	if (!root)
		return NULL;
	xmlDocSetRootElement(doc, root);
	xmlNsPtr ns = xmlNewNs(root, X(ELB_XMLNS), NULL);
	if (!ns)
		return NULL;
	xmlSetNs(root, ns);
	return root;
}

char *elb_answer_xml(const char *op, const cJSON *result, const char *request_id)
{
	char name[96];
	xmlDocPtr doc = xmlNewDoc(X("1.0"));
	snprintf(name, sizeof(name), "%sResponse", op);
	xmlNodePtr root = new_root(doc, name);
	snprintf(name, sizeof(name), "%sResult", op);
	xmlNodePtr res = root ? xmlNewChild(root, NULL, X(name), NULL) : NULL;
	xmlNodePtr meta = res ? xmlNewChild(root, NULL, X("ResponseMetadata"), NULL) : NULL;
	char *s = NULL;
	if (meta && xmlNewTextChild(meta, NULL, X("RequestId"), X(request_id)) &&
	    add_children(res, result))
		s = dump(doc);
	xmlFreeDoc(doc);
	return s;
}

/* The JSON protocol's front-end errors in the Query protocol's words. */
static const char *query_code(const char *code)
{
	static const char *const map[][2] = {
		{ "MissingAuthenticationTokenException", "MissingAuthenticationToken" },
		{ "IncompleteSignatureException", "IncompleteSignature" },
		{ "InvalidSignatureException", "SignatureDoesNotMatch" },
		{ "UnrecognizedClientException", "InvalidClientTokenId" },
		{ "AccessDeniedException", "AccessDenied" },
		{ "ServerException", "InternalFailure" },
		{ "ClientException", "ValidationError" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(code, map[i][0]) == 0)
			return map[i][1];
	return code;
}

char *elb_error_xml(const char *code, const char *message, const char *request_id)
{
	code = query_code(code);
	xmlDocPtr doc = xmlNewDoc(X("1.0"));
	xmlNodePtr root = new_root(doc, "ErrorResponse");
	xmlNodePtr e = root ? xmlNewChild(root, NULL, X("Error"), NULL) : NULL;
	char *s = NULL;
	if (e &&
	    xmlNewTextChild(e, NULL, X("Type"),
			    X(strcmp(code, "InternalFailure") == 0 ? "Receiver" : "Sender")) &&
	    xmlNewTextChild(e, NULL, X("Code"), X(code)) &&
	    xmlNewTextChild(e, NULL, X("Message"), X(message)) &&
	    xmlNewTextChild(root, NULL, X("RequestId"), X(request_id)))
		s = dump(doc);
	xmlFreeDoc(doc);
	return s;
}

void elb_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char base[24];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}
