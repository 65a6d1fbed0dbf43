#include "daemon/server/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

struct entry {
	char *profile;
	char *akid;
	char *secret;
	char *token;
	unsigned line;            /* section header */
	unsigned akid_line, secret_line, token_line;
};

struct api_credentials {
	struct entry *v;
	size_t n, cap;
	struct api_credential *view; /* public mirror of v, built at the end */
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static void entry_done(struct entry *e)
{
	free(e->profile);
	free(e->akid);
	wipe_free(e->secret);
	wipe_free(e->token);
	memset(e, 0, sizeof(*e));
}

void api_credentials_free(struct api_credentials *creds)
{
	if (!creds)
		return;
	for (size_t i = 0; i < creds->n; i++)
		entry_done(&creds->v[i]);
	free(creds->v);
	free(creds->view);
	free(creds);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* [*s, *e) trimmed of blanks on both sides. */
static void trim(const char **s, const char **e)
{
	while (*s < *e && is_blank(**s))
		(*s)++;
	while (*e > *s && is_blank((*e)[-1]))
		(*e)--;
}

struct parser {
	const char *name;
	struct api_credentials *c;
	struct entry *cur;        /* section being read, NULL before the first */
	bool cont_ok;             /* an indented line may continue the last key */
};

/* A section with some keys must have the pair; one with none is a profile
 * for other settings (region, output) and contributes nothing. */
static int finish_section(struct parser *p, struct berth_err *err)
{
	struct entry *e = p->cur;
	if (!e)
		return 0;
	p->cur = NULL;
	if (!e->akid && !e->secret && !e->token) {
		entry_done(e);
		p->c->n--;
		return 0;
	}
	if (!e->akid)
		return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s' has %s but no aws_access_key_id",
				  p->name, e->secret ? e->secret_line : e->token_line, e->profile,
				  e->secret ? "aws_secret_access_key" : "aws_session_token");
	if (!e->secret)
		return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s': aws_access_key_id %s has no aws_secret_access_key",
				  p->name, e->akid_line, e->profile, e->akid);
	/* Two profiles with one key id would make the lookup ambiguous. */
	for (size_t i = 0; i + 1 < p->c->n; i++) {
		const struct entry *o = &p->c->v[i];
		if (strcmp(o->akid, e->akid) == 0)
			return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s': access key id %s is already defined by profile '%s' (line %u)",
					  p->name, e->akid_line, e->profile, e->akid, o->profile, o->line);
	}
	return 0;
}

static int start_section(struct parser *p, const char *s, const char *e, unsigned line,
			 struct berth_err *err)
{
	int r = finish_section(p, err);
	if (r < 0)
		return r;
	/* s points at '[': the name runs to the matching ']'. */
	const char *close = memchr(s, ']', (size_t)(e - s));
	if (!close)
		return berth_errf(err, EINVAL, "credentials %s: line %u: section header without ']'", p->name, line);
	const char *after = close + 1;
	trim(&after, &e);
	if (after != e && *after != '#' && *after != ';')
		return berth_errf(err, EINVAL, "credentials %s: line %u: text after the section header", p->name, line);
	const char *ns = s + 1, *ne = close;
	trim(&ns, &ne);
	/* ~/.aws/config spells profiles "[profile NAME]"; accept that too. */
	if (ne - ns > 8 && strncmp(ns, "profile", 7) == 0 && is_blank(ns[7])) {
		ns += 8;
		trim(&ns, &ne);
	}
	if (ns == ne)
		return berth_errf(err, EINVAL, "credentials %s: line %u: empty section name", p->name, line);
	for (size_t i = 0; i < p->c->n; i++) {
		const struct entry *o = &p->c->v[i];
		if (strlen(o->profile) == (size_t)(ne - ns) && memcmp(o->profile, ns, (size_t)(ne - ns)) == 0)
			return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s' is already defined at line %u",
					  p->name, line, o->profile, o->line);
	}
	if (p->c->n == p->c->cap) {
		size_t cap = p->c->cap ? 2 * p->c->cap : 4;
		struct entry *v = realloc(p->c->v, cap * sizeof(*v));
		if (!v)
			return berth_errf(err, ENOMEM, "credentials %s: out of memory", p->name);
		p->c->v = v;
		p->c->cap = cap;
	}
	struct entry *en = &p->c->v[p->c->n];
	memset(en, 0, sizeof(*en));
	en->profile = strndup(ns, (size_t)(ne - ns));
	if (!en->profile)
		return berth_errf(err, ENOMEM, "credentials %s: out of memory", p->name);
	en->line = line;
	p->c->n++;
	p->cur = en;
	p->cont_ok = false;
	return 0;
}

static int set_key(struct parser *p, const char *ks, const char *ke, const char *vs,
		   const char *ve, unsigned line, struct berth_err *err)
{
	static const char *const names[] = { "aws_access_key_id", "aws_secret_access_key", "aws_session_token" };
	size_t klen = (size_t)(ke - ks);
	int which = -1;
	for (int i = 0; i < 3; i++)
		if (strlen(names[i]) == klen && strncasecmp(names[i], ks, klen) == 0)
			which = i;
	/* Other settings (region, output, nested s3 blocks) belong to the
	 * client; their indented continuation lines are theirs too. */
	p->cont_ok = which < 0;
	if (which < 0)
		return 0;
	struct entry *e = p->cur;
	char **slot = which == 0 ? &e->akid : which == 1 ? &e->secret : &e->token;
	unsigned *lslot = which == 0 ? &e->akid_line : which == 1 ? &e->secret_line : &e->token_line;
	if (*slot)
		return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s': %s is already set at line %u",
				  p->name, line, e->profile, names[which], *lslot);
	if (vs == ve)
		return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s': %s is empty",
				  p->name, line, e->profile, names[which]);
	for (const char *q = vs; q < ve; q++)
		if ((unsigned char)*q < 0x21 || *q == 0x7f)
			return berth_errf(err, EINVAL, "credentials %s: line %u: profile '%s': %s contains whitespace or a control character",
					  p->name, line, e->profile, names[which]);
	*slot = strndup(vs, (size_t)(ve - vs));
	if (!*slot)
		return berth_errf(err, ENOMEM, "credentials %s: out of memory", p->name);
	*lslot = line;
	return 0;
}

static int parse_line(struct parser *p, const char *s, const char *e, unsigned line,
		      struct berth_err *err)
{
	bool indented = s < e && is_blank(*s);
	trim(&s, &e);
	if (s == e || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return start_section(p, s, e, line, err);
	if (indented && p->cur && p->cont_ok)
		return 0;
	if (!p->cur)
		return berth_errf(err, EINVAL, "credentials %s: line %u: setting outside of a [profile] section", p->name, line);
	/* Python's configparser, which the AWS CLI uses, takes '=' or ':'. */
	const char *sep = s;
	while (sep < e && *sep != '=' && *sep != ':')
		sep++;
	/* configparser reads an indented line as more of the previous value,
	 * so the AWS CLI would not see this setting either. */
	if (indented)
		return berth_errf(err, EINVAL, "credentials %s: line %u: indented line continues the previous setting; remove the leading whitespace",
				  p->name, line);
	if (sep == e)
		return berth_errf(err, EINVAL, "credentials %s: line %u: expected 'name = value', '[profile]' or a comment",
				  p->name, line);
	const char *ks = s, *ke = sep, *vs = sep + 1, *ve = e;
	trim(&ks, &ke);
	trim(&vs, &ve);
	if (ks == ke)
		return berth_errf(err, EINVAL, "credentials %s: line %u: setting without a name", p->name, line);
	return set_key(p, ks, ke, vs, ve, line, err);
}

int api_credentials_parse(const char *name, const char *text, size_t len,
			  struct api_credentials **ret, struct berth_err *err)
{
	_cleanup_(api_credentials_freep) struct api_credentials *c = calloc(1, sizeof(*c));
	if (!c)
		return berth_errf(err, ENOMEM, "credentials %s: out of memory", name);
	if (len > API_CREDENTIALS_MAX_BYTES)
		return berth_errf(err, EFBIG, "credentials %s: larger than %d bytes", name, API_CREDENTIALS_MAX_BYTES);
	if (memchr(text, '\0', len))
		return berth_errf(err, EINVAL, "credentials %s: contains a NUL byte; not a text file", name);
	struct parser p = { .name = name, .c = c };
	const char *s = text, *end = text + len;
	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) /* editors' UTF-8 BOM */
		s += 3;
	unsigned line = 1;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		if (le > s && le[-1] == '\r')
			le--;
		int r = parse_line(&p, s, le, line, err);
		if (r < 0)
			return r;
		s = nl ? nl + 1 : end;
		line++;
	}
	int r = finish_section(&p, err);
	if (r < 0)
		return r;
	if (c->n == 0)
		return berth_errf(err, ENOENT, "credentials %s: no profile with aws_access_key_id and aws_secret_access_key", name);
	c->view = calloc(c->n, sizeof(*c->view));
	if (!c->view)
		return berth_errf(err, ENOMEM, "credentials %s: out of memory", name);
	for (size_t i = 0; i < c->n; i++)
		c->view[i] = (struct api_credential) {
			.profile = c->v[i].profile,
			.access_key_id = c->v[i].akid,
			.secret_access_key = c->v[i].secret,
			.session_token = c->v[i].token,
			.line = c->v[i].line,
		};
	*ret = TAKE_PTR(c);
	return 0;
}

int api_credentials_load(const char *path, struct api_credentials **ret, struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return berth_errnof(err, errno, "credentials %s", path);
	/* fstat on the open fd: the checks apply to the bytes we then read. */
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "credentials %s: stat", path);
	if (!S_ISREG(st.st_mode))
		return berth_errf(err, EINVAL, "credentials %s: not a regular file", path);
	unsigned mode = (unsigned)st.st_mode & 07777;
	if (mode & 044)
		return berth_errf(err, EPERM, "credentials %s: mode %04o is readable by others; chmod 600 %s", path, mode, path);
	if (mode & 022)
		return berth_errf(err, EPERM, "credentials %s: mode %04o is writable by others; chmod 600 %s", path, mode, path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return berth_errf(err, EPERM, "credentials %s: owned by uid %u, not by root or uid %u; chown it",
				  path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_size > API_CREDENTIALS_MAX_BYTES)
		return berth_errf(err, EFBIG, "credentials %s: larger than %d bytes", path, API_CREDENTIALS_MAX_BYTES);
	size_t cap = (size_t)st.st_size + 1, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return berth_errf(err, ENOMEM, "credentials %s: out of memory", path);
	for (;;) {
		if (len == cap) { /* grew since fstat: a half-written file */
			OPENSSL_cleanse(buf, len);
			return berth_errf(err, EAGAIN, "credentials %s: changed while being read", path);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			OPENSSL_cleanse(buf, len);
			return berth_errnof(err, e, "credentials %s: read", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	int r = api_credentials_parse(path, buf, len, ret, err);
	OPENSSL_cleanse(buf, cap);
	return r;
}

const struct api_credential *api_credentials_find(const struct api_credentials *creds,
						  const char *id, size_t len)
{
	if (!creds || !id)
		return NULL;
	for (size_t i = 0; i < creds->n; i++)
		if (strlen(creds->v[i].akid) == len && memcmp(creds->v[i].akid, id, len) == 0)
			return &creds->view[i];
	return NULL;
}

size_t api_credentials_count(const struct api_credentials *creds)
{
	return creds ? creds->n : 0;
}

const struct api_credential *api_credentials_get(const struct api_credentials *creds, size_t i)
{
	return creds && i < creds->n ? &creds->view[i] : NULL;
}
