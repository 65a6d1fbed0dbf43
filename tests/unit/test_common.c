/* common/: the error convention and the filesystem helpers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/sha256.h"

static void test_err_wrap_reads_outermost_first(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	assert_int_equal(berth_errf(&err, EBADMSG, "digest mismatch"), -EBADMSG);
	assert_int_equal(berth_err_wrap(&err, "layer %s", "sha256:ab12"), -EBADMSG);
	assert_int_equal(berth_err_wrap(&err, "pull %s", "127.0.0.1:5000/app:1"), -EBADMSG);
	assert_string_equal(err.msg, "pull 127.0.0.1:5000/app:1: layer sha256:ab12: digest mismatch");
}

static void test_err_errno_and_zero_code(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	assert_int_equal(berth_errnof(&err, ENOENT, "open %s", "/x"), -ENOENT);
	assert_string_equal(err.msg, "open /x: No such file or directory");
	assert_int_equal(berth_errf(&err, 0, "odd"), -EIO);
	assert_int_equal(berth_errf(NULL, -EPERM, "no err object"), -EPERM);
}

static void test_err_wrap_truncates_long_messages(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	berth_errf(&err, EINVAL, "%s", big);
	berth_err_wrap(&err, "%s", big);
	assert_int_equal(strlen(err.msg), BERTH_ERR_MAX - 1);
}

static void test_sha256_known_vector(void **state)
{
	(void)state;
	char out[SHA256_DIGEST_STRLEN];
	assert_int_equal(sha256_buf("abc", 3, out), 0);
	assert_string_equal(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_fs_atomic_write_read_rm(void **state)
{
	(void)state;
	char dir[] = "/tmp/berth-test-common-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct berth_err err = { 0 };
	char sub[4096];
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(berth_mkdir_p(sub, 0700, &err), 0);
	assert_int_equal(berth_mkdir_p(sub, 0700, &err), 0);
	_cleanup_close_ int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(berth_write_atomic_at(dfd, "f", "one", 3, 0600, &err), 0);
	assert_int_equal(berth_write_atomic_at(dfd, "f", "two!", 4, 0600, &err), 0);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	assert_int_equal(berth_read_file_at(dfd, "f", 100, &buf, &len, &err), 0);
	assert_int_equal(len, 4);
	assert_string_equal(buf, "two!");
	char *small = NULL;
	assert_int_equal(berth_read_file_at(dfd, "f", 2, &small, &len, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "over the 2 byte limit"));
	assert_int_equal(symlinkat("/etc", dfd, "link"), 0);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, dir, &err), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(stat("/etc/passwd", &st), 0); /* the symlink was not followed */
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, dir, &err), 0);
}

static void test_fs_mkdir_p_over_file_fails(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	assert_int_equal(berth_mkdir_p("/etc/passwd", 0700, &err), -ENOTDIR);
	assert_non_null(strstr(err.msg, "/etc/passwd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_wrap_reads_outermost_first),
		cmocka_unit_test(test_err_errno_and_zero_code),
		cmocka_unit_test(test_err_wrap_truncates_long_messages),
		cmocka_unit_test(test_sha256_known_vector),
		cmocka_unit_test(test_fs_atomic_write_read_rm),
		cmocka_unit_test(test_fs_mkdir_p_over_file_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
