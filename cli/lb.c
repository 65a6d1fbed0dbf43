/* berth lb ls | targets: the load balancers through the daemon's ELBv2 API
 * (AWS Query: a form body, XML answers read with libxml2). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "cli/table.h"

#define ELB_VERSION "2015-12-01"

static void free_doc(xmlDocPtr *d)
{
	if (*d)
		xmlFreeDoc(*d);
}

/* "NAME=VALUE", VALUE form-encoded; NULL when out of memory. */
static char *param(const char *name, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0), *s = NULL;
	if (esc && asprintf(&s, "%s=%s", name, esc) < 0)
		s = NULL;
	curl_free(esc);
	return s;
}

static int oom(void)
{
	struct berth_err err = { 0 };
	berth_errf(&err, ENOMEM, "out of memory");
	return cli_fail(&err);
}

/* The first child element of N named NAME (namespaces aside). */
static xmlNodePtr child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* The text of N's child NAME, into BUF ("-" when absent). */
static const char *text(xmlNodePtr n, const char *name, char *buf, size_t len)
{
	xmlNodePtr c = child(n, name);
	xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
	snprintf(buf, len, "%s", t && *t ? (const char *)t : "-");
	xmlFree(t);
	return buf;
}

/* One call: ACTION with the form members PARAMS (already encoded, "" for
 * none); the <ActionResult> element of *ret_doc. */
static int call(struct ecs *e, const char *action, const char *params, xmlDocPtr *ret_doc,
		xmlNodePtr *ret_result, struct berth_err *err)
{
	_cleanup_free_ char *form = NULL, *body = NULL;
	if (asprintf(&form, "Action=%s&Version=" ELB_VERSION "%s%s", action, *params ? "&" : "",
		     params) < 0)
		return berth_errf(err, ENOMEM, "%s: out of memory", action);
	long status = 0;
	int r = ecs_post_form(e, action, form, &body, &status, err);
	if (r < 0)
		return r;
	xmlDocPtr doc = xmlReadMemory(body, (int)strlen(body), NULL, "UTF-8", XML_PARSE_NONET);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root) {
		free_doc(&doc);
		return berth_errf(err, EBADMSG, "%s: HTTP %ld: the answer is not XML: %.200s",
				  action, status, body);
	}
	if (status != 200) {
		char code[128], msg[512];
		xmlNodePtr er = child(root, "Error");
		berth_errf(err, EPROTO, "%s: %s: %s", action, text(er, "Code", code, sizeof(code)),
			   text(er, "Message", msg, sizeof(msg)));
		xmlFreeDoc(doc);
		return -EPROTO;
	}
	char name[96];
	snprintf(name, sizeof(name), "%sResult", action);
	*ret_doc = doc;
	*ret_result = child(root, name);
	return 0;
}

/* "80/HTTP, 9000/TCP": the listeners of the load balancer ARN. */
static int listeners(struct ecs *e, const char *arn, char *out, size_t len, struct berth_err *err)
{
	_cleanup_free_ char *params = param("LoadBalancerArn", arn);
	if (!params)
		return berth_errf(err, ENOMEM, "out of memory");
	_cleanup_(free_doc) xmlDocPtr doc = NULL;
	xmlNodePtr res;
	int r = call(e, "DescribeListeners", params, &doc, &res, err);
	if (r < 0)
		return r;
	size_t at = 0;
	out[0] = '\0';
	for (xmlNodePtr m = child(child(res, "Listeners"), "member"); m; m = m->next) {
		char port[16], proto[16];
		if (m->type != XML_ELEMENT_NODE)
			continue;
		at += (size_t)snprintf(out + at, at < len ? len - at : 0, "%s%s/%s", at ? ", " : "",
				       text(m, "Port", port, sizeof(port)),
				       text(m, "Protocol", proto, sizeof(proto)));
	}
	if (!out[0])
		snprintf(out, len, "-");
	return 0;
}

static const struct table_col ls_cols[] = {
	{ "NAME", 16 }, { "TYPE", 11 }, { "STATE", 6 }, { "ADDRESS", 15 }, { "LISTENERS", 0 },
};

static int lb_ls(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd cmd = {
		.usage = "berth lb ls",
		.help = "Lists the load balancers: name, type, state, the address clients use and\n"
			"the listeners' ports.\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 0, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	_cleanup_(free_doc) xmlDocPtr doc = NULL;
	xmlNodePtr res;
	if (ecs_open(c->socket, &e, &err) < 0 ||
	    call(e, "DescribeLoadBalancers", "", &doc, &res, &err) < 0)
		return cli_fail(&err);
	_cleanup_(table_done) struct table tab = TABLE_INIT(ls_cols);
	for (xmlNodePtr m = child(child(res, "LoadBalancers"), "member"); m; m = m->next) {
		if (m->type != XML_ELEMENT_NODE)
			continue;
		char name[64], type[16], state[32], dns[256], arn[512], ls[512];
		if (listeners(e, text(m, "LoadBalancerArn", arn, sizeof(arn)), ls, sizeof(ls),
			      &err) < 0)
			return cli_fail(&err);
		const char *row[] = { text(m, "LoadBalancerName", name, sizeof(name)),
				      text(m, "Type", type, sizeof(type)),
				      text(child(m, "State"), "Code", state, sizeof(state)),
				      text(m, "DNSName", dns, sizeof(dns)), ls };
		if (table_add(&tab, row) < 0)
			return oom();
	}
	table_print(&tab, stdout);
	return 0;
}

/* The ARN of target group ARG (a name or an ARN). */
static int tg_arn(struct ecs *e, const char *arg, char *out, size_t len, struct berth_err *err)
{
	bool is_arn = strncmp(arg, "arn:", 4) == 0;
	_cleanup_free_ char *params = param(is_arn ? "TargetGroupArns.member.1" : "Names.member.1",
					    arg);
	if (!params)
		return berth_errf(err, ENOMEM, "out of memory");
	_cleanup_(free_doc) xmlDocPtr doc = NULL;
	xmlNodePtr res;
	int r = call(e, "DescribeTargetGroups", params, &doc, &res, err);
	if (r < 0)
		return r;
	text(child(child(res, "TargetGroups"), "member"), "TargetGroupArn", out, len);
	return 0;
}

static const struct table_col targets_cols[] = {
	{ "TARGET", 15 }, { "PORT", 5 }, { "STATE", 9 }, { "REASON", 0 }, { "DESCRIPTION", 0 },
};

static int lb_targets(struct cli *c, int argc, char **argv)
{
	const struct cli_cmd cmd = {
		.usage = "berth lb targets TARGET-GROUP",
		.help = "Lists a target group's targets (TARGET-GROUP: its name or ARN) with "
			"their\n"
			"health as the load balancer sees it: initial, healthy, unhealthy, "
			"draining\n"
			"or unused, and why.\n",
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 1, 1, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	_cleanup_(ecs_closep) struct ecs *e = NULL;
	char arn[512];
	if (ecs_open(c->socket, &e, &err) < 0 || tg_arn(e, argv[first], arn, sizeof(arn), &err) < 0)
		return cli_fail(&err);
	_cleanup_free_ char *params = param("TargetGroupArn", arn);
	if (!params)
		return oom();
	_cleanup_(free_doc) xmlDocPtr doc = NULL;
	xmlNodePtr res;
	if (call(e, "DescribeTargetHealth", params, &doc, &res, &err) < 0)
		return cli_fail(&err);
	_cleanup_(table_done) struct table tab = TABLE_INIT(targets_cols);
	for (xmlNodePtr m = child(child(res, "TargetHealthDescriptions"), "member"); m; m = m->next) {
		if (m->type != XML_ELEMENT_NODE)
			continue;
		char id[64], port[16], state[32], reason[64], desc[256];
		xmlNodePtr t = child(m, "Target"), h = child(m, "TargetHealth");
		const char *row[] = { text(t, "Id", id, sizeof(id)),
				      text(t, "Port", port, sizeof(port)),
				      text(h, "State", state, sizeof(state)),
				      text(h, "Reason", reason, sizeof(reason)),
				      text(h, "Description", desc, sizeof(desc)) };
		if (table_add(&tab, row) < 0)
			return oom();
	}
	table_print(&tab, stdout);
	return 0;
}

#define LB_USAGE "berth lb SUBCOMMAND"

static const struct {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary;
} subcommands[] = {
	{ "ls", lb_ls, "list the load balancers and their listeners" },
	{ "targets", lb_targets, "a target group's targets and their health" },
};

static void lb_usage(FILE *f, bool head)
{
	if (head)
		fprintf(f, "usage: " LB_USAGE "\n");
	fprintf(f, "\nsubcommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\nThe load balancers are managed with the ELBv2 API (aws elbv2, boto3):\n"
		   "docs/load-balancing.md.  `berth lb SUBCOMMAND --help` tells each one's "
		   "options.\n");
}

int cmd_lb(struct cli *c, int argc, char **argv)
{
	int first = cli_parse_options(c, argc, argv, true, LB_USAGE);
	if (first == -2) {
		lb_usage(stdout, false);
		return 0;
	}
	if (first < 0)
		return 2;
	for (size_t i = 0; first < argc && i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(argv[first], subcommands[i].name))
			return subcommands[i].run(c, argc - first, argv + first);
	if (first < argc && !strcmp(argv[first], "help")) {
		lb_usage(stdout, true);
		return 0;
	}
	if (first < argc)
		fprintf(stderr, "berth: lb: unknown subcommand \"%s\"\n", argv[first]);
	lb_usage(stderr, true);
	return 2;
}
