/* berth daemon: the control plane (daemon/daemon.h does the work). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "daemon/daemon.h"

int cmd_daemon(struct cli *c, int argc, char **argv);

static const char usage_text[] =
	"berth daemon [--root DIR] [--run-root DIR] [--listen unix:PATH|tcp:HOST:PORT]...\n"
	"             [--credentials FILE] [--insecure-no-auth] [--region R] [--account-id N]";

int cmd_daemon(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "run-root", required_argument, NULL, 'R' },
		{ "listen", required_argument, NULL, 'l' },
		{ "credentials", required_argument, NULL, 'c' },
		{ "insecure-no-auth", no_argument, NULL, 'I' },
		{ "region", required_argument, NULL, 'g' },
		{ "account-id", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* `berth --root X daemon` and `berth daemon --root X` both work. */
	struct daemon_opts o = { .root = c->root, .log = stderr };
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			o.root = optarg;
			break;
		case 'R':
			o.run_root = optarg;
			break;
		case 'l':
			if (o.n_listen >= DAEMON_LISTEN_MAX) {
				fprintf(stderr, "berth: at most %d --listen options\n", DAEMON_LISTEN_MAX);
				return 2;
			}
			o.listen[o.n_listen++] = optarg;
			break;
		case 'c':
			o.credentials_file = optarg;
			break;
		case 'I':
			o.insecure_no_auth = true;
			break;
		case 'g':
			o.region = optarg;
			break;
		case 'a':
			o.account_id = optarg;
			break;
		case 'h':
			printf("usage: %s\n", usage_text);
			return 0;
		default:
			fprintf(stderr, "usage: %s\n", usage_text);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: %s\n", usage_text);
		return 2;
	}
	struct berth_err err = { 0 };
	if (daemon_run(&o, &err) < 0)
		return cli_fail(&err);
	return 0;
}
