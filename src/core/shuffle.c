/* shuffle.c: seeded uniform random permutations, cache-friendly (Rao-Sandelius bucketing).
 *
 * Generator: xoshiro256** (Blackman and Vigna), its state seeded from the 64-bit seed by
 * splitmix64, as its authors recommend. Bounded draws use Lemire's multiply-shift method
 * with rejection, so they are exactly uniform. The permutation is the Rao-Sandelius
 * shuffle: every element goes to one of B random buckets (B a power of two depending only
 * on n), each bucket is shuffled (recursively for large buckets, Fisher-Yates below
 * 65,536 elements), and the buckets are concatenated; this gives a uniformly random
 * permutation while touching memory mostly sequentially. The top level needs no memory
 * beyond the output: bucket draws are made twice from the same stream (count, then place).
 * The result depends only on (seed, n): the same on every run and machine. */
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "progress.h"
#include "sys.h"

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03u);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform integer in [0, n), n >= 1 (Lemire). */
static inline uint64_t rng_below(rng *r, uint64_t n) {
    __uint128_t m = (__uint128_t)rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (__uint128_t)rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

enum { SMALL = 1 << 16, TARGET = 1 << 15, MAXB = 1024, PASS_BLOCK = 1 << 22 };

static void fisher_yates(int64_t *a, int64_t n, rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t k = (int64_t)rng_below(r, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[k];
        a[k] = t;
    }
}

static int64_t nbuckets(int64_t n) {
    int64_t b = 2;
    while (b < MAXB && b * 2 * TARGET <= n) b *= 2;
    return b;
}

/* Shuffle a[0..n) in place; tmp has room for n elements (used for large n). */
static void shuffle_inplace(int64_t *a, int64_t n, int64_t *tmp, rng *r, int depth) {
    if (n <= SMALL || depth > 4) {
        fisher_yates(a, n, r);
        return;
    }
    int64_t nb = nbuckets(n), count[MAXB] = {0}, pos[MAXB];
    rng save = *r;
    for (int64_t i = 0; i < n; i++) count[rng_next(r) & (uint64_t)(nb - 1)]++;
    for (int64_t b = 0, o = 0; b < nb; o += count[b++]) pos[b] = o;
    *r = save;
    for (int64_t i = 0; i < n; i++) tmp[pos[rng_next(r) & (uint64_t)(nb - 1)]++] = a[i];
    memcpy(a, tmp, (size_t)n * sizeof *a);
    for (int64_t b = 0, o = 0; b < nb; o += count[b++])
        shuffle_inplace(a + o, count[b], tmp, r, depth + 1);
}

int idt_permutation(int64_t *a, int64_t n, uint64_t seed, idt_error *err) {
    rng bucket_rng, r;
    rng_seed(&bucket_rng, seed, 1);
    rng_seed(&r, seed, 2);
    if (n <= SMALL) {
        for (int64_t i = 0; i < n; i++) a[i] = i;
        fisher_yates(a, n, &r);
        return 0;
    }
    int64_t nb = nbuckets(n), count[MAXB] = {0}, pos[MAXB], biggest = 0;
    rng save = bucket_rng;
    int rc = 0;
    /* Both passes go in blocks, reporting to the thread's progress (Ctrl-C) between them. */
    for (int64_t i0 = 0; i0 < n && !rc; i0 += PASS_BLOCK) {
        int64_t e = n - i0 < PASS_BLOCK ? n : i0 + PASS_BLOCK;
        for (int64_t i = i0; i < e; i++) count[rng_next(&bucket_rng) & (uint64_t)(nb - 1)]++;
        rc = idt_progress_step(e - i0, err);
    }
    if (rc) return rc;
    for (int64_t b = 0, o = 0; b < nb; o += count[b++]) {
        pos[b] = o;
        if (count[b] > biggest) biggest = count[b];
    }
    bucket_rng = save;
    for (int64_t i0 = 0; i0 < n && !rc; i0 += PASS_BLOCK) {
        int64_t e = n - i0 < PASS_BLOCK ? n : i0 + PASS_BLOCK;
        for (int64_t i = i0; i < e; i++) a[pos[rng_next(&bucket_rng) & (uint64_t)(nb - 1)]++] = i;
        rc = idt_progress_step(e - i0, err);
    }
    if (rc) return rc;
    int64_t *tmp = NULL;
    if (biggest > SMALL) {
        tmp = idt_malloc((size_t)biggest * sizeof *tmp);
        if (!tmp) return idt_error_set(err, IDT_ENOMEM, "out of memory shuffling %lld rows", (long long)n);
    }
    for (int64_t b = 0, o = 0; b < nb && !rc; o += count[b++]) {
        shuffle_inplace(a + o, count[b], tmp, &r, 1);
        rc = idt_progress_step(count[b], err);
    }
    idt_free(tmp);
    return rc;
}
