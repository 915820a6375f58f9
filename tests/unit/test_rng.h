/* test_rng.h — the randomized unit tests' generator (xorshift64), seeded
 * per test and printed, so that a failure can be replayed:
 * CASFS_TEST_SEED=<n> uses that seed.  One state per test program; not
 * thread-safe. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t test_rng_state = 1;

static inline uint64_t rng(void)
{
	test_rng_state ^= test_rng_state << 13;
	test_rng_state ^= test_rng_state >> 7;
	test_rng_state ^= test_rng_state << 17;
	return test_rng_state;
}

/* Seeds the generator for `test` from CASFS_TEST_SEED or the clock and
 * prints the seed.  Returns it. */
static inline uint64_t seed_rng(const char *test)
{
	const char *env = getenv("CASFS_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
	if (!seed)
		seed = 1;
	printf("%s: seed %llu (CASFS_TEST_SEED=%llu replays it)\n", test, (unsigned long long)seed,
	       (unsigned long long)seed);
	test_rng_state = seed;
	return seed;
}
