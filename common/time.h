/* The two clocks the code reads, in milliseconds.  Monotonic for
 * deadlines and intervals (it never jumps with the wall clock); realtime
 * for the timestamps the API reports (createdAt, stoppedAt, …). */
#ifndef BERTH_TIME_H
#define BERTH_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t berth_clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t berth_mono_ms(void)
{
	return berth_clock_ms(CLOCK_MONOTONIC);
}

static inline int64_t berth_real_ms(void)
{
	return berth_clock_ms(CLOCK_REALTIME);
}

#endif
