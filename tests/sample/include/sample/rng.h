#ifndef SAMPLE_RNG_H
#define SAMPLE_RNG_H
#include <stdint.h>

struct rng {
	uint64_t s;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
uint32_t rng_below(struct rng *r, uint32_t bound);
#endif
