/* berth: command dispatch and the options shared by every command. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"

struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "pull", cmd_pull, "pull an image from a registry into the local store" },
	{ "images", cmd_images, "list the images in the local store" },
	{ "rmi", cmd_rmi, "remove an image and garbage-collect what nothing uses" },
	{ "inspect-image", cmd_inspect_image, "print an image's config as JSON" },
	{ "daemon", cmd_daemon, "run the control plane: the ECS API on a socket" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: berth [--root DIR] [--registry-auth FILE] [--insecure-registry HOST:PORT]\n"
		   "             [--output table|json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nThe store lives under --root (default %s).\n", BERTH_DEFAULT_ROOT);
}

int cli_fail(const struct berth_err *err)
{
	fprintf(stderr, "berth: %s\n", err->msg[0] ? err->msg : "unknown error");
	return 1;
}

int cli_parse_options(struct cli *c, int argc, char **argv, bool top, const char *use)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "registry-auth", required_argument, NULL, 'a' },
		{ "insecure-registry", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, top ? "+h" : "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			c->root = optarg;
			break;
		case 'a':
			c->registry.auth_file = optarg;
			break;
		case 'i':
			if (c->registry.n_insecure >= ARRAY_SIZE(c->insecure)) {
				fprintf(stderr, "berth: too many --insecure-registry options\n");
				return -1;
			}
			c->insecure[c->registry.n_insecure++] = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") && strcmp(optarg, "table")) {
				fprintf(stderr, "berth: --output %s: expected table or json\n", optarg);
				return -1;
			}
			c->json = !strcmp(optarg, "json");
			break;
		case 'h':
			printf("usage: %s\n", use);
			return -2;
		default:
			fprintf(stderr, "usage: %s\n", use);
			return -1;
		}
	}
	c->registry.insecure = c->insecure;
	return optind;
}

int main(int argc, char **argv)
{
	struct cli c = { .root = BERTH_DEFAULT_ROOT };
	int first = cli_parse_options(&c, argc, argv, true, "berth [OPTIONS] COMMAND [ARGS]");
	if (first == -2)
		return 0;
	if (first < 0)
		return 2;
	if (first >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[first], commands[i].name))
			return commands[i].run(&c, argc - first, argv + first);
	if (!strcmp(argv[first], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "berth: unknown command \"%s\"\n", argv[first]);
	usage(stderr);
	return 2;
}
