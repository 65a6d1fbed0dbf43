/* daemon/server/log_limit: the daemon's log behind a token bucket, so that no
 * client can make it write faster than a bounded number of lines a second,
 * whatever it provokes.  Lines pass while the bucket holds a token (BURST
 * at first, RATE more a second); the others are dropped whole, and the
 * next line that passes is preceded by one saying how many were. */
#ifndef BERTH_DAEMON_LOG_LIMIT_H
#define BERTH_DAEMON_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct log_limit {
	FILE *out;
	double rate, burst, tokens;
	int64_t last_ms;
	int64_t (*now_ms)(void);        /* the clock; tests set their own */
	unsigned long long dropped;
	bool mid_line, dropping;
};

/* A line-buffered stream writing to OUT through L (both must outlive it),
 * or NULL when out of memory.  NOW_MS may be NULL: CLOCK_MONOTONIC. */
FILE *log_limit_open(struct log_limit *l, FILE *out, double rate, double burst,
		     int64_t (*now_ms)(void));

#endif
