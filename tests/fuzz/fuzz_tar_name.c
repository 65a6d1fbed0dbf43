/* libFuzzer target for img_tar_name_normalize (images/unpack.h).
 *
 * Input: the first byte picks the output size (0xff: PATH_MAX, anything
 * else: that many bytes), the rest is the name (an embedded NUL ends it,
 * as it would for libarchive's C strings).  The output buffer is a heap
 * block of exactly that size, so ASan catches any write past it.
 *
 * Invariants on success: the result fits, never starts with "/", has no
 * "//", no trailing "/", no "." or ".." component, and normalising it
 * again gives it back.  A name with no ".." component that fits is never
 * refused; a name with one always is. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "images/unpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_component(const char *s, const char *comp)
{
	size_t n = strlen(comp);
	for (const char *p = s; *p;) {
		const char *c = p;
		while (*p && *p != '/')
			p++;
		if ((size_t)(p - c) == n && !memcmp(c, comp, n))
			return true;
		while (*p == '/')
			p++;
	}
	return false;
}

static void check_output(const char *out, size_t outsz)
{
	size_t len = strlen(out);
	if (len >= outsz || out[0] == '/' || strstr(out, "//") ||
	    (len && out[len - 1] == '/') || has_component(out, "..") || has_component(out, "."))
		abort();
	if (len == 0)
		return;
	char *again = malloc(len + 1);
	if (!again)
		abort();
	if (img_tar_name_normalize(out, again, len + 1, NULL) != 0 || strcmp(again, out))
		abort();
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 2 * PATH_MAX)
		return 0;
	size_t outsz = data[0] == 0xff ? PATH_MAX : data[0];
	char *name = malloc(size);
	char *out = malloc(outsz ? outsz : 1);
	if (!name || !out)
		abort();
	memcpy(name, data + 1, size - 1);
	name[size - 1] = '\0';
	struct berth_err err = { 0 };
	/* outsz 0 gets a 1-byte block it must not touch either. */
	if (!outsz)
		out[0] = 'x';
	int r = img_tar_name_normalize(name, out, outsz, size % 2 ? &err : NULL);
	if (r == 0)
		check_output(out, outsz);
	else if (r != -EINVAL || (size % 2 && (err.code != EINVAL || !strstr(err.msg, "layer entry"))))
		abort();
	if (!outsz && out[0] != 'x')
		abort();
	bool dotdot = has_component(name, "..");
	if (dotdot && r == 0)
		abort();
	/* Never refused without cause: fits (name only shrinks) and no "..". */
	if (!dotdot && name[0] && strlen(name) < outsz && r != 0)
		abort();
	free(out);
	free(name);
	return 0;
}
