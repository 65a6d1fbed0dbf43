#include "images/pull.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "images/digest.h"

/* State shared by the layer workers of one pull. */
struct puller {
	struct img_store *store;
	struct img_registry *reg;
	const struct img_pull_opts *opts;
	const struct img_manifest *manifest;
	const struct img_config *config;
	struct img_pull_limits limits;     /* resolved: no zeros */
	int64_t deadline_ms;               /* the pull's (CLOCK_MONOTONIC) */
	char (*chain_ids)[SHA256_DIGEST_STRLEN];
	pthread_mutex_t lock;              /* guards everything below */
	struct img_layer_progress *layers;
	size_t next;                       /* next layer to hand out */
	atomic_bool failed;                /* read by transfers to abort early */
	struct berth_err err;              /* the first failure */
};

/* One blob transfer: which layer it is for (SIZE_MAX: not a layer). */
struct transfer {
	struct puller *p;
	size_t idx;
	const char *digest;
	int64_t deadline_ms;     /* a layer's own; 0: the pull's */
	struct img_ingest *w;
};

static void notify_locked(struct puller *p)
{
	if (p->opts->progress)
		p->opts->progress(p->opts->opaque, p->layers, p->manifest->n_layers);
}

static void set_layer(struct puller *p, size_t idx, enum img_layer_state st, int64_t done)
{
	if (idx == SIZE_MAX)
		return;
	pthread_mutex_lock(&p->lock);
	p->layers[idx].state = st;
	if (done >= 0)
		p->layers[idx].done = done;
	notify_locked(p);
	pthread_mutex_unlock(&p->lock);
}

static int transfer_sink(void *opaque, const void *buf, size_t len, struct berth_err *err)
{
	struct transfer *t = opaque;
	if (atomic_load(&t->p->failed))
		return berth_errf(err, ECANCELED, "cancelled: another layer failed");
	int r = img_ingest_write(t->w, buf, len, err);
	if (r < 0 || t->idx == SIZE_MAX)
		return r;
	pthread_mutex_lock(&t->p->lock);
	t->p->layers[t->idx].done += (int64_t)len;
	notify_locked(t->p);
	pthread_mutex_unlock(&t->p->lock);
	return 0;
}

static int transfer_restart(void *opaque, struct berth_err *err)
{
	struct transfer *t = opaque;
	int r = img_ingest_restart(t->w, err);
	if (r == 0)
		set_layer(t->p, t->idx, IMG_LAYER_DOWNLOADING, 0);
	return r;
}

static int transfer_fetch(void *opaque, struct img_ingest *w, int64_t offset, struct berth_err *err)
{
	struct transfer *t = opaque;
	t->w = w;
	set_layer(t->p, t->idx, IMG_LAYER_DOWNLOADING, offset);
	return img_registry_get_blob(t->p->reg, t->digest, offset, t->deadline_ms, transfer_sink,
				     transfer_restart, t, err);
}

static int fetch_blob(struct puller *p, size_t idx, const struct img_descriptor *d,
		      int64_t deadline_ms, struct berth_err *err)
{
	struct transfer t = { .p = p, .idx = idx, .digest = d->digest, .deadline_ms = deadline_ms };
	return img_store_ingest(p->store, d->digest, d->size, transfer_fetch, &t, NULL, err);
}

static void format_ms(int64_t ms, char buf[32])
{
	if (ms % 1000)
		snprintf(buf, 32, "%lldms", (long long)ms);
	else
		snprintf(buf, 32, "%llds", (long long)(ms / 1000));
}

/* A layer's download, bounded by its own deadline as well as the pull's;
 * the message says which one ended it. */
static int download_layer(struct puller *p, size_t idx, const struct img_descriptor *d,
			  struct berth_err *err)
{
	int64_t deadline = berth_mono_ms() + p->limits.layer_timeout_ms;
	bool own = deadline < p->deadline_ms;
	int r = fetch_blob(p, idx, d, own ? deadline : 0, err);
	if (r == -ETIMEDOUT && own && berth_mono_ms() >= deadline) {
		char t[32];
		format_ms(p->limits.layer_timeout_ms, t);
		berth_err_wrap(err, "not downloaded within the layer deadline of %s "
			       "(--layer-timeout)", t);
	}
	return r;
}

/* Uncompressed bytes a layer of `size` compressed bytes may unpack to. */
static int64_t unpacked_cap(const struct puller *p, int64_t size)
{
	int64_t ratio = p->limits.max_layer_ratio;
	int64_t cap = size > INT64_MAX / ratio ? INT64_MAX : size * ratio;
	return cap < IMG_LAYER_UNPACKED_FLOOR ? IMG_LAYER_UNPACKED_FLOOR : cap;
}

static bool layer_present(struct puller *p, size_t idx)
{
	char path[4096];
	struct stat st;
	if (img_store_layer_path(p->store, p->chain_ids[idx], path, sizeof(path), NULL) < 0)
		return false;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int pull_layer(struct puller *p, size_t idx, struct berth_err *err)
{
	const struct img_descriptor *d = &p->manifest->layers[idx];
	if (layer_present(p, idx)) {
		set_layer(p, idx, IMG_LAYER_EXISTS, d->size);
		return 0;
	}
	int r = download_layer(p, idx, d, err);
	if (r < 0)
		return berth_err_wrap(err, "layer %s", d->digest);
	set_layer(p, idx, IMG_LAYER_UNPACKING, d->size);
	r = img_store_ensure_layer(p->store, p->chain_ids[idx], p->config->diff_ids[idx],
				   d->digest, d->compression, unpacked_cap(p, d->size), NULL, err);
	if (r == -EFBIG && err) {
		char cause[BERTH_ERR_MAX];
		snprintf(cause, sizeof(cause), "%s", err->msg);
		berth_errf(err, EFBIG, "%s (the limit is %lld × its %lld compressed bytes, at "
			   "least 64 MiB: --max-layer-ratio)", cause,
			   (long long)p->limits.max_layer_ratio, (long long)d->size);
	}
	if (r < 0)
		return berth_err_wrap(err, "layer %s", d->digest);
	set_layer(p, idx, IMG_LAYER_DONE, -1);
	return 0;
}

static void *layer_worker(void *arg)
{
	struct puller *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (atomic_load(&p->failed) || p->next >= p->manifest->n_layers) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		size_t idx = p->next++;
		pthread_mutex_unlock(&p->lock);

		struct berth_err e = { 0 };
		if (pull_layer(p, idx, &e) < 0) {
			pthread_mutex_lock(&p->lock);
			/* Only the first failure is the cause; later ones are
			 * mostly "cancelled" because of it. */
			if (!atomic_exchange(&p->failed, true))
				p->err = e;
			p->layers[idx].state = IMG_LAYER_FAILED;
			notify_locked(p);
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
	}
}

/* Runs up to max_parallel workers over the layers. */
static int pull_layers(struct puller *p, struct berth_err *err)
{
	size_t n = p->manifest->n_layers;
	unsigned want = p->opts->max_parallel ? p->opts->max_parallel : 4;
	size_t nthreads = n < want ? n : want;
	pthread_t threads[nthreads ? nthreads : 1];
	size_t started = 0;

	pthread_mutex_lock(&p->lock);
	notify_locked(p);
	pthread_mutex_unlock(&p->lock);
	for (; started < nthreads; started++) {
		int r = pthread_create(&threads[started], NULL, layer_worker, p);
		if (r != 0) {
			if (started > 0)
				break; /* the running workers take the remaining layers */
			return berth_errf(err, r, "start layer download: %s", strerror(r));
		}
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (atomic_load(&p->failed)) {
		*err = p->err;
		return -err->code;
	}
	return 0;
}

/* Fetches a manifest and checks its bytes: against expect_digest/size
 * when the caller knows them (pull by digest, index entry), else against
 * the registry's Docker-Content-Digest when it sent one.  Stores it. */
static int fetch_manifest(struct puller *p, const char *reference, const char *expect_digest,
			  int64_t expect_size, struct img_manifest *ret,
			  char ret_digest[SHA256_DIGEST_STRLEN], struct berth_err *err)
{
	_cleanup_free_ char *body = NULL, *ctype = NULL, *hdr = NULL;
	size_t len = 0;
	int r = img_registry_get_manifest(p->reg, reference, &body, &len, &ctype, &hdr, err);
	if (r < 0)
		return r;
	char got[SHA256_DIGEST_STRLEN];
	if (sha256_buf(body, len, got) < 0)
		return berth_errf(err, ENOMEM, "manifest %s: out of memory", reference);
	if (expect_digest && strcmp(expect_digest, got) != 0)
		return berth_errf(err, EBADMSG, "manifest %s: digest mismatch: got %s", expect_digest, got);
	if (expect_size >= 0 && (int64_t)len != expect_size)
		return berth_errf(err, EBADMSG, "manifest %s: size mismatch: expected %lld bytes, got %zu",
				  reference, (long long)expect_size, len);
	if (!expect_digest && hdr[0] && strcmp(hdr, got) != 0)
		return berth_errf(err, EBADMSG,
				  "manifest %s: digest mismatch: registry says %s, content is %s",
				  reference, hdr, got);
	r = img_manifest_parse(body, len, ctype, ret, err);
	if (r < 0)
		return r;
	r = img_store_put_blob(p->store, got, body, len, NULL, err);
	if (r < 0) {
		img_manifest_done(ret);
		return r;
	}
	memcpy(ret_digest, got, SHA256_DIGEST_STRLEN);
	return 0;
}

/* Resolves the reference to an image manifest, through an index if it
 * names one.  ret_top is what the reference pointed at. */
static int resolve(struct puller *p, const struct img_ref *ref, struct img_manifest *ret,
		   struct img_record *rec, struct berth_err *err)
{
	const char *expect = ref->digest[0] ? ref->digest : NULL;
	int r = fetch_manifest(p, img_ref_reference(ref), expect, -1, ret, rec->digest, err);
	if (r < 0 || ret->kind == IMG_MANIFEST_IMAGE) {
		if (r == 0)
			memcpy(rec->manifest_digest, rec->digest, sizeof(rec->digest));
		return r;
	}
	struct img_platform host;
	const struct img_platform *want = p->opts->platform;
	if (!want) {
		img_host_platform(&host);
		want = &host;
	}
	const struct img_descriptor *d;
	r = img_index_select(ret, want, &d, err);
	if (r < 0) {
		img_manifest_done(ret);
		return r;
	}
	struct img_descriptor child = *d;
	img_manifest_done(ret);
	r = fetch_manifest(p, child.digest, child.digest, child.size, ret, rec->manifest_digest, err);
	if (r == 0 && ret->kind != IMG_MANIFEST_IMAGE) {
		img_manifest_done(ret);
		return berth_errf(err, EBADMSG, "manifest %s: an index inside an index is not supported",
				  child.digest);
	}
	return r;
}

static int load_config(struct puller *p, const struct img_manifest *m, struct img_config *ret,
		       struct berth_err *err)
{
	const struct img_descriptor *d = &m->config;
	if (d->size > (int64_t)IMG_MANIFEST_MAX)
		return berth_errf(err, EFBIG, "config %s: %lld bytes is over the %u byte limit",
				  d->digest, (long long)d->size, IMG_MANIFEST_MAX);
	int r = fetch_blob(p, SIZE_MAX, d, 0, err);
	if (r < 0)
		return berth_err_wrap(err, "config %s", d->digest);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	r = img_store_read_blob(p->store, d->digest, IMG_MANIFEST_MAX, &buf, &len, err);
	if (r == 0)
		r = img_config_parse(buf, len, ret, err);
	if (r < 0)
		return berth_err_wrap(err, "config %s", d->digest);
	if (ret->n_diff_ids != m->n_layers) {
		img_config_done(ret);
		return berth_errf(err, EBADMSG, "config %s: %zu diff ids for %zu layers",
				  d->digest, ret->n_diff_ids, m->n_layers);
	}
	return 0;
}

static int prepare_layers(struct puller *p, struct berth_err *err)
{
	size_t n = p->manifest->n_layers;
	p->layers = calloc(n ? n : 1, sizeof(*p->layers));
	p->chain_ids = calloc(n ? n : 1, sizeof(*p->chain_ids));
	if (!p->layers || !p->chain_ids)
		return berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct img_descriptor *d = &p->manifest->layers[i];
		/* Before any layer is fetched: the store then refuses any
		 * byte past this size while downloading. */
		if (d->size > p->limits.max_layer_size)
			return berth_errf(err, EFBIG, "layer %s: %lld bytes is over the %lld byte "
					  "limit (--max-layer-size)", d->digest, (long long)d->size,
					  (long long)p->limits.max_layer_size);
		memcpy(p->layers[i].digest, d->digest, sizeof(d->digest));
		p->layers[i].size = d->size;
		if (img_chain_id(i ? p->chain_ids[i - 1] : NULL, p->config->diff_ids[i],
				 p->chain_ids[i]) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
	}
	return 0;
}

static bool same_record(struct img_store *s, const struct img_record *rec)
{
	struct img_record old;
	return img_store_find(s, rec->ref, &old, NULL) == 0 && strcmp(old.ref, rec->ref) == 0 &&
	       strcmp(old.digest, rec->digest) == 0 &&
	       strcmp(old.manifest_digest, rec->manifest_digest) == 0 &&
	       strcmp(old.config_digest, rec->config_digest) == 0 && old.size == rec->size;
}

static int pull_image(struct puller *p, const struct img_ref *ref, struct img_record *rec,
		      struct berth_err *err)
{
	struct img_manifest m = { 0 };
	struct img_config cfg = { 0 };
	int r = resolve(p, ref, &m, rec, err);
	if (r < 0)
		return r;
	p->manifest = &m;
	r = load_config(p, &m, &cfg, err);
	if (r == 0) {
		p->config = &cfg;
		memcpy(rec->config_digest, m.config.digest, sizeof(m.config.digest));
		r = prepare_layers(p, err);
	}
	if (r == 0)
		r = pull_layers(p, err);
	if (r == 0) {
		for (size_t i = 0; i < m.n_layers; i++)
			rec->size += m.layers[i].size;
		rec->pulled_at = time(NULL);
		if (!p->opts->keep_same_record || !same_record(p->store, rec))
			r = img_store_record(p->store, rec, err);
	}
	if (p->config)
		img_config_done(&cfg);
	img_manifest_done(&m);
	return r;
}

int img_pull(struct img_store *s, const char *refstr, const struct img_pull_opts *opts,
	     struct img_record *ret, struct berth_err *err)
{
	struct img_ref ref;
	int r = img_ref_parse(refstr, &ref, err);
	if (r < 0)
		return r;
	struct img_record rec = { 0 };
	img_ref_format(&ref, rec.ref);

	struct puller p = { .store = s, .opts = opts, .limits = img_limits_resolve(&opts->limits) };
	p.deadline_ms = berth_mono_ms() + p.limits.pull_timeout_ms;
	pthread_mutex_init(&p.lock, NULL);
	int lockfd = img_store_lock_shared(s, err);
	if (lockfd < 0) {
		r = lockfd;
	} else {
		r = img_registry_open(&ref, &opts->registry, &p.reg, err);
		if (r == 0) {
			img_registry_set_deadline(p.reg, p.deadline_ms);
			r = pull_image(&p, &ref, &rec, err);
		}
		if (r == -ETIMEDOUT && berth_mono_ms() >= p.deadline_ms) {
			char t[32];
			format_ms(p.limits.pull_timeout_ms, t);
			berth_err_wrap(err, "not pulled within the pull deadline of %s "
				       "(--pull-timeout)", t);
		}
		img_registry_free(p.reg);
		img_store_unlock(lockfd);
	}
	free(p.layers);
	free(p.chain_ids);
	pthread_mutex_destroy(&p.lock);
	if (r < 0)
		return berth_err_wrap(err, "pull %s", rec.ref);
	if (ret)
		*ret = rec;
	return 0;
}
