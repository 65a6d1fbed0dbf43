/* Registry client (OCI distribution spec) on libcurl.
 *
 * One struct img_registry talks to one repository on one registry.  It
 * sends each request without authorization until a 401 asks for it (no
 * /v2/ ping first), answers a "WWW-Authenticate: Bearer realm=…,service=…,
 * scope=…" challenge by fetching a token (with credentials when it has
 * them), or uses Basic auth, and retries the request once with the new
 * authorization.  Credentials come from a docker-style config.json
 * ("auths": {"host:port": {"auth": base64(user:pass)}}).  Hosts listed
 * as insecure speak plain HTTP, all others HTTPS; a loopback registry
 * (localhost, 127.0.0.0/8, [::1]) that is not listed is refused, so that
 * an image reference cannot make berth connect to any local port.  Redirects are followed (blob storage backends redirect), with
 * the Authorization header dropped on a change of host.
 *
 * Thread safety: img_registry_get_blob() and img_registry_get_manifest()
 * may run from several threads at once on one img_registry; the token
 * cache is shared under a mutex (one thread fetches, the others wait and
 * reuse it), DNS and TLS sessions through a CURLSH, and idle connections
 * through a pool of easy handles (keep-alive across requests).
 *
 * Errors common to both GETs: -EHOSTUNREACH "registry <host> unreachable:
 * <curl error>" (refused, DNS, connect timeout); -ETIMEDOUT a transfer
 * stalled (< 1 KiB/s for 60 s) or reached its deadline; -EPROTO TLS failures and protocol
 * violations; -EINVAL an invalid tag or digest (never sent). */
#ifndef BERTH_IMG_REGISTRY_H
#define BERTH_IMG_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "images/ref.h"

struct img_registry_opts {
	/* docker config.json; NULL means $DOCKER_CONFIG/config.json when
	 * DOCKER_CONFIG is set and that file exists, else no credentials.
	 * A named file that is missing or malformed fails img_registry_open()
	 * with an error naming the file. */
	const char *auth_file;
	/* host:port entries that speak plain HTTP; the only loopback
	 * registries img_registry_open() accepts. */
	const char *const *insecure;
	size_t n_insecure;
};

struct img_registry;

/* Prepares a client for ref's registry and repository.  Reads (and
 * validates) the auth file, does no network I/O.  img_registry_free(NULL)
 * is a no-op. */
/* libcurl's one-time global set-up (TLS included), which img_registry_open()
 * otherwise does on first use.  A process that forks pulls (berthd's pull
 * worker) calls it once, so that each child starts with it done. */
int img_registry_init(struct berth_err *err);

int img_registry_open(const struct img_ref *ref, const struct img_registry_opts *opts,
		      struct img_registry **ret, struct berth_err *err);
void img_registry_free(struct img_registry *r);

/* GET /v2/<name>/manifests/<reference> with the Accept header for every
 * supported manifest type.  The body is capped at IMG_MANIFEST_MAX.
 * Returns heap copies of the body (NUL-terminated), its Content-Type and
 * the Docker-Content-Digest header ("" when absent); the caller frees
 * them.  Content-Type has its parameters ("; charset=…") removed ("" when
 * absent); a Docker-Content-Digest that is not a valid digest counts as
 * absent.  Errors: -ENOENT "not found" (404, MANIFEST_UNKNOWN,
 * BLOB_UNKNOWN, NAME_UNKNOWN), -EACCES "unauthorized" (401/403 after auth,
 * or the token server refused), -EFBIG body over IMG_MANIFEST_MAX (the
 * transfer stops there), -EPROTO other HTTP errors; the message names the
 * URL and the registry's own error text when it sent one. */
int img_registry_get_manifest(struct img_registry *r, const char *reference,
			      char **ret_body, size_t *ret_len, char **ret_content_type,
			      char **ret_digest, struct berth_err *err);

/* Sink for blob bytes: called for each chunk, in order.  A negative return
 * aborts the transfer and is returned by img_registry_get_blob(). */
typedef int (*img_blob_sink_fn)(void *opaque, const void *buf, size_t len,
				struct berth_err *err);
/* Called when the server ignored a Range request (answered 200, not 206),
 * before the first byte of that body: the sink must drop what it had, the
 * body starts again at offset 0. */
typedef int (*img_blob_restart_fn)(void *opaque, struct berth_err *err);

/* GET /v2/<name>/blobs/<digest>, from byte `offset` (a Range request when
 * offset > 0), ending by deadline_ms (0: the registry's deadline only).  Does not verify the content: the store does.  digest must
 * be valid (checked again here before it goes into a URL).  A 206 must
 * start at offset (else -EPROTO).  Errors as for manifests; a sink or
 * restart failure is returned as is. */
int img_registry_get_blob(struct img_registry *r, const char *digest, int64_t offset,
			  int64_t deadline_ms, img_blob_sink_fn sink, img_blob_restart_fn restart,
			  void *opaque, struct berth_err *err);

/* Every request of r (token, manifest, blob) ends by deadline_ms
 * (CLOCK_MONOTONIC, berth_mono_ms(); 0: none), with -ETIMEDOUT
 * "… deadline reached", however slowly the registry keeps sending.  A
 * blob GET may carry an earlier deadline of its own.  Call before the
 * first request. */
void img_registry_set_deadline(struct img_registry *r, int64_t deadline_ms);

/* Parses a docker config.json's "auths" for host (a reference's domain:
 * "docker.io", "host:port"); fills ret_user/ret_pass (heap, caller frees)
 * or sets them NULL when there is no usable entry.  Keys may carry a
 * scheme and path ("http://host:port", "https://index.docker.io/v1/");
 * Docker Hub's aliases all mean docker.io; an exact key wins.  Entries
 * give "auth" (strict base64 of user:password) or "username"/"password";
 * an "identitytoken" alone means no credentials.  -EINVAL for malformed
 * JSON or a malformed entry for host.  Exposed for unit tests. */
int img_auth_lookup(const char *config_json, const char *host, char **ret_user,
		    char **ret_pass, struct berth_err *err);

/* Parses a WWW-Authenticate header value (RFC 7235: case-insensitive
 * scheme and parameter names, quoted strings with backslash escapes;
 * only the first challenge of the header is used).  scheme gets
 * "Bearer"/"Basic"; realm, service, scope are heap strings or NULL.
 * Bearer requires a realm.  -EPROTO for other schemes and malformed
 * headers; *ret is written only on success.  Exposed for unit tests. */
struct img_challenge {
	char scheme[16];
	char *realm;
	char *service;
	char *scope;
};
int img_challenge_parse(const char *header, struct img_challenge *ret, struct berth_err *err);
void img_challenge_done(struct img_challenge *c);

#endif
