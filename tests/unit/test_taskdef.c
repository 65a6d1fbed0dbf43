/* daemon/taskdef: the task cpu/memory strings ECS accepts and Fargate's
 * size table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/ecs/taskdef.h"

static void cpu_strings(void **state)
{
	(void)state;
	static const struct { const char *s; int64_t v; } ok[] = {
		{ "256", 256 }, { "1 vcpu", 1024 }, { "0.5 vCPU", 512 }, { "2vCPU", 2048 },
		{ ".25 vcpu", 256 }, { " 1024 ", 1024 }, { "16 VCPU", 16384 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		int64_t v = 0;
		assert_int_equal(units_parse_cpu(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	static const char *const bad[] = {
		"", "vcpu", "0", "-256", "1.5", "0.0001 vcpu", "1 cpu", "1e3", "0x100", "1.", "1 vcpus",
		"9999999999",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t v = 0;
		assert_int_equal(units_parse_cpu(bad[i], &v), -EINVAL);
	}
}

static void memory_strings(void **state)
{
	(void)state;
	static const struct { const char *s; int64_t v; } ok[] = {
		{ "512", 512 }, { "1GB", 1024 }, { "1 GB", 1024 }, { "0.5 GiB", 512 },
		{ "512 MiB", 512 }, { "2048mb", 2048 }, { "120 gb", 122880 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		int64_t v = 0;
		assert_int_equal(units_parse_memory(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	static const char *const bad[] = { "", "GB", "1TB", "0", "1.5", "0.0001 GB", "1 G" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t v = 0;
		assert_int_equal(units_parse_memory(bad[i], &v), -EINVAL);
	}
}

static void fargate_table(void **state)
{
	(void)state;
	/* Every row's edges and one step past them. */
	assert_true(units_fargate_fits(256, 512));
	assert_true(units_fargate_fits(256, 2048));
	assert_false(units_fargate_fits(256, 1536));
	assert_false(units_fargate_fits(256, 3072));
	assert_true(units_fargate_fits(512, 1024));
	assert_true(units_fargate_fits(512, 4096));
	assert_false(units_fargate_fits(512, 5120));
	assert_true(units_fargate_fits(1024, 2048));
	assert_true(units_fargate_fits(1024, 8192));
	assert_false(units_fargate_fits(1024, 1024));
	assert_true(units_fargate_fits(2048, 16384));
	assert_false(units_fargate_fits(2048, 4608));
	assert_true(units_fargate_fits(4096, 30720));
	assert_false(units_fargate_fits(4096, 31744));
	assert_true(units_fargate_fits(8192, 20480));
	assert_false(units_fargate_fits(8192, 17408));
	assert_true(units_fargate_fits(16384, 122880));
	assert_false(units_fargate_fits(16384, 36864));
	assert_false(units_fargate_fits(128, 512));
	assert_false(units_fargate_fits(3072, 8192));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cpu_strings),
		cmocka_unit_test(memory_strings),
		cmocka_unit_test(fargate_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
