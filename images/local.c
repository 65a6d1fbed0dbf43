/* images/local: a pinned image from the store alone (local.h). */
#include "images/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "images/digest.h"
#include "images/manifest.h"
#include "images/ref.h"

void img_local_done(struct img_local *l)
{
	free(l->config);
	for (size_t i = 0; i < l->n_layers; i++)
		free(l->layers[i]);
	free(l->layers);
	*l = (struct img_local){ 0 };
}

/* The record of DIGEST: any reference pulled to it (a service's first
 * task pulled the image by tag; its digest is the same content). */
static int find_record(struct img_store *s, const char *digest, struct img_record *ret,
		       struct berth_err *err)
{
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0;
	int r = img_store_list(s, &recs, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (strcmp(recs[i].digest, digest) == 0) {
			*ret = recs[i];
			return 0;
		}
	return berth_errf(err, ENOENT, "image %s: not in the store", digest);
}

/* The record's image manifest, re-hashed and parsed; its index too. */
static int read_manifest(struct img_store *s, const struct img_record *rec,
			 struct img_manifest *ret, struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;
	if (strcmp(rec->digest, rec->manifest_digest) != 0 &&
	    (r = img_store_read_blob(s, rec->digest, IMG_MANIFEST_MAX, &buf, &len, err)) < 0)
		return r;
	free(TAKE_PTR(buf));
	if ((r = img_store_read_blob(s, rec->manifest_digest, IMG_MANIFEST_MAX, &buf, &len,
				     err)) < 0 ||
	    (r = img_manifest_parse(buf, len, NULL, ret, err)) < 0)
		return r;
	if (ret->kind != IMG_MANIFEST_IMAGE || strcmp(ret->config.digest, rec->config_digest)) {
		img_manifest_done(ret);
		return berth_errf(err, EBADMSG, "manifest %s: not the record's image",
				  rec->manifest_digest);
	}
	return 0;
}

/* The unpacked layer directories of CFG, each checked present. */
static int layer_dirs(struct img_store *s, const struct img_config *cfg, struct img_local *l,
		      struct berth_err *err)
{
	if (!(l->layers = calloc(cfg->n_diff_ids + 1, sizeof(*l->layers))))
		return berth_errf(err, ENOMEM, "out of memory");
	char chain[72] = "", path[4096];
	for (size_t i = 0; i < cfg->n_diff_ids; i++) {
		int r;
		if (img_chain_id(i ? chain : NULL, cfg->diff_ids[i], chain) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
		if ((r = img_store_layer_path(s, chain, path, sizeof(path), err)) < 0)
			return r;
		if (!img_store_has_layer(s, chain))
			return berth_errf(err, ENOENT, "layer %s: not unpacked", chain);
		if (!(l->layers[l->n_layers++] = strdup(path)))
			return berth_errf(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int resolve(struct img_store *s, const char *digest, struct img_local *l,
		   struct berth_err *err)
{
	struct img_record rec;
	struct img_manifest m = { 0 };
	struct img_config cfg = { 0 };
	size_t len;
	int r = find_record(s, digest, &rec, err);
	if (r < 0 || (r = read_manifest(s, &rec, &m, err)) < 0)
		return r;
	r = img_store_read_blob(s, rec.config_digest, IMG_MANIFEST_MAX, &l->config, &len, err);
	if (r == 0)
		r = img_config_parse(l->config, len, &cfg, err);
	if (r == 0 && cfg.n_diff_ids != m.n_layers)
		r = berth_errf(err, EBADMSG, "config %s: %zu diff ids for %zu layers",
			       rec.config_digest, cfg.n_diff_ids, m.n_layers);
	else if (r == 0)
		r = layer_dirs(s, &cfg, l, err);
	img_config_done(&cfg);
	img_manifest_done(&m);
	return r;
}

int img_local_image(struct img_store *s, const char *ref, struct img_local *ret,
		    struct berth_err *err)
{
	struct img_ref r;
	int rc = img_ref_parse(ref, &r, err);
	if (rc < 0)
		return rc;
	if (!r.digest[0])
		return berth_errf(err, EINVAL, "image %s: not pinned by digest", ref);
	/* Shared, as a pull holds it: garbage collection waits meanwhile. */
	int lockfd = img_store_lock_shared(s, err);
	if (lockfd < 0)
		return lockfd;
	struct img_local l = { 0 };
	rc = resolve(s, r.digest, &l, err);
	img_store_unlock(lockfd);
	if (rc < 0) {
		img_local_done(&l);
		return berth_err_wrap(err, "image %s", ref);
	}
	memcpy(l.digest, r.digest, sizeof(l.digest));
	*ret = l;
	return 0;
}
