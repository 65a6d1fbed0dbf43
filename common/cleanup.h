/* Scope-bound cleanup and ownership hand-off (systemd/crun style).
 *
 *   _cleanup_free_ char *p = strdup(x);   freed when p leaves scope
 *   _cleanup_close_ int fd = open(...);   closed when fd leaves scope
 *   *ret = TAKE_PTR(p);                   hand ownership to the caller
 *
 * Destructors accept NULL / -1, so half-built objects clean up safely. */
#ifndef BERTH_CLEANUP_H
#define BERTH_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void closedirp(DIR **d) { if (*d) closedir(*d); }

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Declares type_freep() for a `void type_free(type *)` destructor. */
#define DEFINE_CLEANUP_FUNC(type, func) \
	static inline void func##p(type **p) { if (*p) func(*p); }

#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
