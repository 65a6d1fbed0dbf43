/* common/fdpass: descriptors over a unix socket, one message at a time. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fdpass.h"

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static void seqpacket(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_message_and_fds_arrive_cloexec(void **state)
{
	(void)state;
	int sv[2], p[2], got[2];
	seqpacket(sv);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(berth_send_fds(sv[0], "ref", 3, p, 2, 0), 0);
	char buf[16];
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 2, 0), 3);
	assert_memory_equal(buf, "ref", 3);
	assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	/* The received pair is the same pipe. */
	assert_int_equal(write(got[1], "x", 1), 1);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	for (int i = 0; i < 2; i++)
		close(got[i]), close(p[i]), close(sv[i]);
}

/* What the receiver did not ask for is refused, and nothing leaks. */
static void test_wrong_messages_are_refused_and_closed(void **state)
{
	(void)state;
	int before = open_fds();
	int sv[2], p[2], got[3];
	seqpacket(sv);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char buf[4];
	/* Two descriptors where three are expected. */
	assert_int_equal(berth_send_fds(sv[0], "ref", 3, p, 2, 0), 0);
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 3, 0), -EBADMSG);
	/* A message longer than the buffer. */
	assert_int_equal(berth_send_fds(sv[0], "too long", 8, p, 2, 0), 0);
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 2, 0), -EBADMSG);
	/* None at all where one is expected. */
	assert_int_equal(berth_send_fds(sv[0], "ok", 2, NULL, 0, 0), 0);
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 1, 0), -EBADMSG);
	/* Nothing waiting: MSG_DONTWAIT says so. */
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 0, MSG_DONTWAIT), -EAGAIN);
	for (int i = 0; i < 2; i++)
		close(p[i]);
	/* The peer gone: end of file. */
	close(sv[0]);
	assert_int_equal(berth_recv_fds(sv[1], buf, sizeof(buf), got, 0, 0), 0);
	close(sv[1]);
	assert_int_equal(open_fds(), before);
	assert_int_equal(berth_send_fds(-1, "x", 1, NULL, 0, 0), -EBADF);
	assert_int_equal(berth_send_fds(0, "", 0, NULL, 0, 0), -EINVAL);
}

/* Up to MAX: any count from none to MAX arrives; more is refused, and
 * every descriptor of a refused message is closed. */
static void test_upto_takes_any_count_up_to_max(void **state)
{
	(void)state;
	int before = open_fds();
	int sv[2], p[2], got[3];
	size_t n = 9;
	seqpacket(sv);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char buf[8];
	assert_int_equal(berth_send_fds(sv[0], "none", 4, NULL, 0, 0), 0);
	assert_int_equal(berth_recv_fds_upto(sv[1], buf, sizeof(buf), got, 3, &n, 0), 4);
	assert_int_equal(n, 0);
	const int three[] = { p[0], p[1], p[1] };
	assert_int_equal(berth_send_fds(sv[0], "three", 5, three, 3, 0), 0);
	assert_int_equal(berth_recv_fds_upto(sv[1], buf, sizeof(buf), got, 3, &n, 0), 5);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		close(got[i]);
	}
	const int four[] = { p[0], p[1], p[1], p[0] };
	assert_int_equal(berth_send_fds(sv[0], "four", 4, four, 4, 0), 0);
	assert_int_equal(berth_recv_fds_upto(sv[1], buf, sizeof(buf), got, 3, &n, 0), -EBADMSG);
	assert_int_equal(n, 0);
	for (int i = 0; i < 2; i++)
		close(p[i]), close(sv[i]);
	assert_int_equal(open_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_and_fds_arrive_cloexec),
		cmocka_unit_test(test_wrong_messages_are_refused_and_closed),
		cmocka_unit_test(test_upto_takes_any_count_up_to_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
