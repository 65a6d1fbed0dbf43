/* daemon/server/log_limit: a rate-limited log stream (log_limit.h). */
#include <string.h>
#include <sys/types.h>

#include "common/time.h"
#include "daemon/server/log_limit.h"

/* Whether a line may pass is decided at its first byte and holds to its
 * newline, whatever the sizes of the writes that carry it. */
static void line_start(struct log_limit *l)
{
	int64_t now = l->now_ms();
	l->tokens += (double)(now - l->last_ms) * l->rate / 1000.0;
	if (l->tokens > l->burst)
		l->tokens = l->burst;
	l->last_ms = now;
	l->mid_line = true;
	l->dropping = l->tokens < 1;
	if (l->dropping) {
		l->dropped++;
		return;
	}
	l->tokens -= 1;
	if (l->dropped)
		fprintf(l->out, "berth daemon: %llu log lines suppressed (more than %g a second)\n",
			l->dropped, l->rate);
	l->dropped = 0;
}

static ssize_t limited_write(void *cookie, const char *buf, size_t size)
{
	struct log_limit *l = cookie;
	for (size_t i = 0; i < size;) {
		if (!l->mid_line)
			line_start(l);
		const char *nl = memchr(buf + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) + 1 : size - i;
		if (!l->dropping)
			fwrite(buf + i, 1, n, l->out);
		l->mid_line = !nl;
		i += n;
	}
	fflush(l->out);
	return (ssize_t)size;
}

FILE *log_limit_open(struct log_limit *l, FILE *out, double rate, double burst,
		     int64_t (*now_ms)(void))
{
	*l = (struct log_limit){ .out = out, .rate = rate, .burst = burst, .tokens = burst,
				 .now_ms = now_ms ? now_ms : berth_mono_ms };
	l->last_ms = l->now_ms();
	FILE *f = fopencookie(l, "w", (cookie_io_functions_t){ .write = limited_write });
	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}
