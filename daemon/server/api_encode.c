/* daemon/server/api_encode: see api_encode.h. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/api_encode.h"

#define HINT_MIN 1024
#define HINT_MAX (1 << 20)

struct api_num_chunk {
	struct api_num_chunk *next;
	size_t used;
	char text[4096];
};

size_t api_ms_text(double d, char out[24])
{
	/* NaN and infinities fail the range check too. */
	if (!(d < 1e12 && d > -1e12))
		return 0;
	long long m = (long long)(d * 1000.0 + (d < 0 ? -0.5 : 0.5));
	if ((double)m / 1000.0 != d)
		return 0;
	char rev[20];
	size_t n = 0, len = 0;
	unsigned long long u = (unsigned long long)(m < 0 ? -m : m);
	for (; n < 3 || u; u /= 10)     /* digits, last first */
		rev[n++] = (char)('0' + u % 10);
	if (m < 0)
		out[len++] = '-';
	size_t zeros = 0;               /* the decimals' trailing zeros: not printed */
	while (zeros < 3 && rev[zeros] == '0')
		zeros++;
	size_t frac = 3 - zeros;
	if (n == 3)
		out[len++] = '0';
	for (size_t i = n; i > 3; i--)
		out[len++] = rev[i - 1];
	if (frac)
		out[len++] = '.';
	for (size_t i = 0; i < frac; i++)
		out[len++] = rev[2 - i];
	out[len] = '\0';
	return len;
}

/* The number texts go into chunks kept from answer to answer: no
 * allocation once the first answers have grown them. */
static const char *keep_text(struct api_encoder *e, const char *text, size_t n)
{
	struct api_num_chunk *k = e->cur;
	if (!k || k->used + n + 1 > sizeof(k->text)) {
		k = k ? k->next : e->chunks;
		if (!k) {
			if (!(k = calloc(1, sizeof(*k))))
				return NULL;
			if (e->cur)
				e->cur->next = k;
			else
				e->chunks = k;
		}
		k->used = 0;
		e->cur = k;
	}
	char *p = memcpy(k->text + k->used, text, n + 1);
	k->used += n + 1;
	return p;
}

/* Every number of the list ITEM (and below) that api_ms_text() can write
 * becomes that raw text: whole ones too (cJSON prints them with "%1.15g"
 * and sscanf() as well), but for -0, which cJSON prints "-0". */
static int fast_numbers(struct api_encoder *e, cJSON *item)
{
	for (; item; item = item->next) {
		if (item->child && fast_numbers(e, item->child) < 0)
			return -1;
		char text[24];
		size_t n;
		if (!cJSON_IsNumber(item) || (item->valuedouble == 0 && signbit(item->valuedouble)) ||
		    !(n = api_ms_text(item->valuedouble, text)))
			continue;
		const char *kept = keep_text(e, text, n);
		if (!kept)
			return -1;
		/* A reference: cJSON_Delete() leaves the text alone.  The
		 * other flags, such as a constant key, stay. */
		item->type = (item->type & ~0xff) | cJSON_Raw | cJSON_IsReference;
		item->valuestring = (char *)kept;
	}
	return 0;
}

char *api_encode(struct api_encoder *e, cJSON *out)
{
	e->cur = NULL;                  /* every chunk is free again */
	if (fast_numbers(e, out) < 0)
		return NULL;
	char *s = cJSON_PrintBuffered(out, e->hint > HINT_MIN ? e->hint : HINT_MIN, false);
	if (s) {
		size_t n = strlen(s);
		e->hint = n > HINT_MAX ? HINT_MAX : (int)n + 64;
	}
	return s;
}

void api_encoder_done(struct api_encoder *e)
{
	for (struct api_num_chunk *k = e->chunks, *next; k; k = next) {
		next = k->next;
		free(k);
	}
	*e = (struct api_encoder){ 0 };
}
