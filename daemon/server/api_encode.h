/* daemon/server/api_encode: an operation's answer (cJSON) as the text of
 * the reply body, the other half of the AWS JSON 1.1 codec
 * (api_decode.h).  The text is cJSON's own, printed faster: see
 * api_ms_text(). */
#ifndef BERTH_DAEMON_API_ENCODE_H
#define BERTH_DAEMON_API_ENCODE_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct api_num_chunk;

/* What one server keeps from answer to answer; zero-initialised, then
 * api_encoder_done(). */
struct api_encoder {
	/* The size the text starts at: the last answer's (cJSON grows it by
	 * realloc, a copy each time). */
	int hint;
	/* Number texts: chunks reused by every answer, the one being filled. */
	struct api_num_chunk *chunks, *cur;
};

/* OUT as unformatted JSON text (the caller's, free()), NULL when out of
 * memory.  OUT's numbers may now refer to E's storage: delete OUT before
 * the next api_encode() on E. */
char *api_encode(struct api_encoder *e, cJSON *out);
void api_encoder_done(struct api_encoder *e);

/* cJSON (1.7.15) prints every number, whole ones too, with
 * printf("%1.15g") and reads it back with sscanf() to check: most of the
 * time of printing an answer full of timestamps (seconds with
 * milliseconds) and counts.  A number that is
 * a whole count of thousandths under 1e12 in magnitude has at most 15
 * significant digits, so its text is "<whole>.<3 digits>" without the
 * trailing zeros, the same as cJSON's.  That text in OUT and its length,
 * or 0 when D is not such a number. */
size_t api_ms_text(double d, char out[24]);

#endif
