/* daemon/store/store_secrets: SSM parameters and Secrets Manager secrets,
 * their values sealed at rest with the host key (docs/security.md "Secrets
 * at rest").
 *
 * Every value (String and StringList parameters too, and every secret
 * version) is stored as nonce || AES-256-GCM ciphertext || tag, with a
 * fresh random 96-bit nonce per value and the row's identity as the
 * additional authenticated data ("ssm" NUL name NUL version, "sm" NUL arn
 * NUL version id): a sealed value copied into another row does not open.
 * The key is 32 random bytes in a file beside the database (0600, owned by
 * the daemon's user), created on first start.  The database remembers a
 * value sealed under its key, so a key file that is not the one the values
 * were sealed with (or a missing one, once values exist) is refused at
 * start rather than met as "cannot decrypt" later.
 *
 * Errors as the rest of the store: -ENOENT not found, -EEXIST exists,
 * -EINVAL bad argument, -EBADMSG a value that does not open (tampered or
 * another key), -ENOMEM. */
#ifndef BERTH_DAEMON_STORE_SECRETS_H
#define BERTH_DAEMON_STORE_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/store/store.h"

#define STORE_KEY_LEN 32
#define STORE_KEY_FILE "secrets.key"
#define STORE_PARAM_VERSIONS_MAX 100   /* SSM keeps the last 100 versions */

struct store_key;

/* Opens the host key at PATH for the values in S, creating it (32 bytes
 * from getrandom, mode 0600, fsynced) when neither the file nor any
 * sealed value exists yet.  Refused: a file that is not a regular file of
 * STORE_KEY_LEN bytes, is readable or writable by group or others, is not
 * owned by the daemon's user, or does not open the database's check
 * value; a missing file when the database has sealed values. */
int store_key_open(struct store *s, const char *path, struct store_key **ret,
		   struct berth_err *err);
/* Wipes the key from memory and frees it. */
void store_key_free(struct store_key *k);
DEFINE_CLEANUP_FUNC(struct store_key, store_key_free)

/* ---- SSM parameters ---- */

struct store_param {
	char *name;
	char *type;                 /* String, StringList, SecureString */
	int64_t version;
	/* The value: plaintext, or for a SecureString read without
	 * decryption the sealed bytes as base64 (what SSM answers with then:
	 * never the plaintext).  NULL when not asked for. */
	char *value;
	char *description;          /* NULL: none */
	char *allowed_pattern;      /* NULL: none */
	char *tier;
	char *data_type;
	int64_t modified_at;
};
void store_param_free(struct store_param *p);
DEFINE_CLEANUP_FUNC(struct store_param, store_param_free)
/* Frees N parameters of an array (each value wiped) and the array. */
void store_params_free(struct store_param *v, size_t n);

struct store_param_put {
	const char *name, *value;
	const char *type;           /* NULL: the current version's (-EINVAL when new) */
	const char *description, *allowed_pattern;  /* NULL: the current one's */
	const char *tier, *data_type;               /* NULL: current, else defaults */
	bool overwrite;
	int64_t now_ms;
};
/* A new version of a parameter (version 1 when new).  -EEXIST when it
 * exists and !overwrite; -EINVAL for a new parameter without a type.
 * Versions beyond STORE_PARAM_VERSIONS_MAX are dropped, oldest first. */
int store_param_put(struct store *s, const struct store_key *k, const struct store_param_put *in,
		    int64_t *ret_version, struct berth_err *err);
/* NAME at VERSION (0: the latest).  -ENOENT no such parameter, -ENODATA
 * no such version.  DECRYPT: plaintext of a SecureString too. */
int store_param_get(struct store *s, const struct store_key *k, const char *name,
		    int64_t version, bool decrypt, struct store_param **ret, struct berth_err *err);
int store_param_delete(struct store *s, const char *name, struct berth_err *err);

struct store_param_filter {
	const char *path;           /* under this path ("/a": "/a/x"); NULL: any */
	bool recursive;             /* path: any depth, not only one level */
	const char *name_equals, *name_begins, *type;  /* NULL: any */
	bool values, decrypt;       /* read the latest values too */
};
/* Parameters matching F in name order, a page at a time (page->next_token
 * from the previous answer; max_results 0 = 50). */
int store_param_list(struct store *s, const struct store_key *k, const struct store_param_filter *f,
		     const struct store_page *page, struct store_param **ret, size_t *ret_n,
		     char **ret_next, struct berth_err *err);

/* ---- Secrets Manager secrets ---- */

#define STORE_STAGE_CURRENT "AWSCURRENT"
#define STORE_STAGE_PREVIOUS "AWSPREVIOUS"

struct store_secret_version {
	char *version_id;
	char **stages;
	size_t n_stages;
	int64_t created_at;
};

struct store_secret {
	char *name, *arn;
	char *description, *kms_key_id;   /* NULL: none */
	int64_t created_at, changed_at;
	int64_t deleted_at, deletion_date;  /* 0: not scheduled for deletion */
	struct store_secret_version *versions;  /* the versions with a stage */
	size_t n_versions;
};
void store_secret_free(struct store_secret *v);
DEFINE_CLEANUP_FUNC(struct store_secret, store_secret_free)

/* A version's value: string, or bytes (binary). */
struct store_secret_value {
	char *version_id;
	bool binary;
	unsigned char *data;        /* NUL-terminated after len for a string */
	size_t len;
	char **stages;
	size_t n_stages;
	int64_t created_at;
};
void store_secret_value_free(struct store_secret_value *v);
DEFINE_CLEANUP_FUNC(struct store_secret_value, store_secret_value_free)

struct store_secret_create {
	const char *name, *arn, *description, *kms_key_id;
	const char *version_id;     /* NULL: created without a value */
	bool binary;
	const unsigned char *data;
	size_t len;
	int64_t now_ms;
};
/* -EEXIST when a secret of that name exists (also one scheduled for
 * deletion: the caller tells them apart with store_secret_get()).
 * Secrets whose deletion date has passed are removed first. */
int store_secret_create(struct store *s, const struct store_key *k,
			const struct store_secret_create *in, struct berth_err *err);
/* By ARN, or by name.  Secrets scheduled for deletion are found too;
 * those whose deletion date is before now_ms are not. */
int store_secret_get(struct store *s, const char *id, int64_t now_ms, struct store_secret **ret,
		     struct berth_err *err);

struct store_secret_put {
	const char *arn, *version_id;
	bool binary;
	const unsigned char *data;
	size_t len;
	const char *const *stages;  /* NULL: AWSCURRENT */
	size_t n_stages;
	int64_t now_ms;
};
/* A new version with STAGES (moved from the versions that had them;
 * AWSCURRENT moving makes the version that had it AWSPREVIOUS).  The
 * same version id with the same value again changes nothing
 * (*ret_existed); with another value -EEXIST.  Versions left without a
 * stage are dropped. */
int store_secret_put_value(struct store *s, const struct store_key *k,
			   const struct store_secret_put *in, bool *ret_existed,
			   struct berth_err *err);
/* The value of ARN's version VERSION_ID, or of the version STAGE is on
 * (either may be NULL, not both; both: they must agree).  -ENOENT when
 * there is no such version. */
int store_secret_get_value(struct store *s, const struct store_key *k, const char *arn,
			   const char *version_id, const char *stage,
			   struct store_secret_value **ret, struct berth_err *err);

/* Secret ARNs in name order (descending when DESC), those scheduled for
 * deletion only when INCLUDE_DELETED, names starting with NAME_BEGINS
 * (NULL: all). */
int store_secret_list(struct store *s, bool include_deleted, const char *name_begins, bool desc,
		      int64_t now_ms, const struct store_page *page, struct store_list *ret,
		      struct berth_err *err);
/* Schedules ARN's deletion at DELETION_DATE, or removes it now with every
 * version when deletion_date is 0. */
int store_secret_delete(struct store *s, const char *arn, int64_t now_ms, int64_t deletion_date,
			struct berth_err *err);

#endif
