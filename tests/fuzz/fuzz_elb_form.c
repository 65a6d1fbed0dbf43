/* libFuzzer target for the ELBv2 API's form parser (elb_query_parse) and
 * its XML writer: any body either is refused with a message, or becomes a
 * tree that, written as an answer, is well-formed XML libxml2 reads back
 * with every value intact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "daemon/elb/elb_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_elb_form: %s\n", what);
		abort();
	}
}

/* How many string leaves a tree has, and their total length. */
static void leaves(const cJSON *v, size_t *n, size_t *len)
{
	if (cJSON_IsString(v)) {
		(*n)++;
		*len += strlen(v->valuestring);
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
		leaves(it, n, len);
}

/* The same of the XML's text nodes under N. */
static void texts(xmlNodePtr n, size_t *count, size_t *len)
{
	for (xmlNodePtr c = n->children; c; c = c->next) {
		if (c->type == XML_ELEMENT_NODE && !c->children) {
			(*count)++; /* an empty value */
		} else if (c->type == XML_ELEMENT_NODE && c->children->type == XML_TEXT_NODE &&
			   !c->children->next) {
			(*count)++;
			*len += strlen((const char *)c->children->content);
		} else if (c->type == XML_ELEMENT_NODE) {
			texts(c, count, len);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[256] = "";
	cJSON *tree = NULL;
	if (elb_query_parse((const char *)data, size, &tree, msg, sizeof(msg)) < 0) {
		check(msg[0] != '\0', "refused without a message");
		return 0;
	}
	char *xml = elb_answer_xml("Fuzz", tree, "00000000-0000-4000-8000-000000000000");
	check(xml != NULL, "no answer for a parsed form");
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, "UTF-8",
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	check(doc != NULL, "the answer is not well-formed XML");
	size_t n = 0, len = 0, xn = 0, xlen = 0;
	leaves(tree, &n, &len);
	/* <FuzzResponse><FuzzResult>…</FuzzResult><ResponseMetadata>… */
	texts(xmlDocGetRootElement(doc)->children, &xn, &xlen);
	check(n == xn && len == xlen, "values lost or changed on the way to XML");
	xmlFreeDoc(doc);
	free(xml);
	cJSON_Delete(tree);
	return 0;
}
