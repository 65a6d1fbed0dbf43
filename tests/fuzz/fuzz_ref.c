/* libFuzzer target for img_ref_parse: any input either fails with an
 * "invalid reference" error or parses to a reference whose canonical text
 * (img_ref_format) fits its buffer and parses back to the same struct. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "images/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer than any valid reference, so the length rules are exercised. */
#define INPUT_MAX 4096

static void check(int cond, const char *what, const char *in)
{
	if (!cond) {
		fprintf(stderr, "fuzz_ref: %s: \"%s\"\n", what, in);
		abort();
	}
}

static int terminated(const char *s, size_t size)
{
	return strnlen(s, size) < size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[INPUT_MAX + 1];
	struct img_ref r, again;
	struct berth_err e = { 0 };
	char text[IMG_REF_STR_MAX], text2[IMG_REF_STR_MAX];

	if (size > INPUT_MAX)
		size = INPUT_MAX;
	memcpy(in, data, size);
	in[size] = '\0'; /* an embedded NUL simply ends the reference */

	if (img_ref_parse(in, &r, &e) != 0) {
		check(e.code != 0 && !strncmp(e.msg, "invalid reference \"", 19),
		      "error without a message", in);
		return 0;
	}
	check(terminated(r.domain, sizeof(r.domain)) && terminated(r.path, sizeof(r.path)) &&
	      terminated(r.tag, sizeof(r.tag)) && terminated(r.digest, sizeof(r.digest)),
	      "unterminated field", in);
	check(r.domain[0] && r.path[0], "empty domain or path", in);
	check(r.tag[0] || r.digest[0], "neither tag nor digest", in);

	img_ref_format(&r, text);
	check(strlen(text) < sizeof(text) - 1, "formatted text may be truncated", in);
	if (img_ref_parse(text, &again, &e) != 0) {
		fprintf(stderr, "fuzz_ref: \"%s\" -> \"%s\": %s\n", in, text, e.msg);
		abort();
	}
	check(!strcmp(r.domain, again.domain) && !strcmp(r.path, again.path) &&
	      !strcmp(r.tag, again.tag) && !strcmp(r.digest, again.digest),
	      "round trip changed the reference", in);
	img_ref_format(&again, text2);
	check(!strcmp(text, text2), "canonical text is not a fixed point", in);

	const char *ref = img_ref_reference(&r);
	check(ref == r.digest || ref == r.tag, "reference is neither tag nor digest", in);
	check(img_ref_registry_host(&r)[0] != '\0', "empty registry host", in);
	(void)img_ref_is_loopback(&r);
	return 0;
}
