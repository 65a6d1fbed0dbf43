/* The daemon's access keys, read from a file in the AWS shared-credentials
 * INI format (~/.aws/credentials), so the file a client already uses can be
 * handed to `berth daemon --credentials FILE` as-is:
 *
 *   [default]
 *   aws_access_key_id = AKIDEXAMPLE
 *   aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
 *   aws_session_token = ...            (optional)
 *
 * Every profile that has a key pair contributes one access key; lookups are
 * by access key id, which is what a SigV4 Credential scope names.  Profiles
 * without keys (a config file's region-only sections) are skipped. */
#ifndef BERTH_DAEMON_CREDENTIALS_H
#define BERTH_DAEMON_CREDENTIALS_H

#include <stddef.h>

#include "common/cleanup.h"
#include "common/err.h"

/* Largest credentials file we read: real ones are a few hundred bytes. */
#define API_CREDENTIALS_MAX_BYTES (1024 * 1024)

struct api_credential {
	const char *profile;           /* section name, "profile " prefix dropped */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;     /* NULL when the profile has none */
	unsigned line;                 /* line of the section header */
};

struct api_credentials;

/* Reads PATH.  Refuses a file that is not a regular file, that group or
 * others can read or write (like ssh with private keys: the file holds
 * secrets that are root-equivalent on this host), or that is owned by
 * neither root nor the caller.  On success *ret is the caller's, freed with
 * api_credentials_free().  Errors name the file, the line and the problem. */
int api_credentials_load(const char *path, struct api_credentials **ret,
			 struct berth_err *err);

/* Parses LEN bytes of TEXT (no NUL needed); NAME is used in messages only.
 * No file checks: for tests and for callers that read the file themselves. */
int api_credentials_parse(const char *name, const char *text, size_t len,
			  struct api_credentials **ret, struct berth_err *err);

/* The key whose id is exactly ID[0..len), or NULL.  The pointer lives as
 * long as CREDS. */
const struct api_credential *api_credentials_find(const struct api_credentials *creds,
						  const char *id, size_t len);

size_t api_credentials_count(const struct api_credentials *creds);
/* The i-th key in file order, or NULL past the end. */
const struct api_credential *api_credentials_get(const struct api_credentials *creds,
						 size_t i);

/* Wipes the secrets and frees; NULL is fine. */
void api_credentials_free(struct api_credentials *creds);
DEFINE_CLEANUP_FUNC(struct api_credentials, api_credentials_free)

#endif
