/* ptrmap.h: a small open-addressing map from pointer to int64 (internal to the core). */
#ifndef IDT_PTRMAP_H
#define IDT_PTRMAP_H

#include <stdint.h>

#include "sys.h"

/* Open-addressing map from pointer to int64, for store -> slot and refs -> translation. */
typedef struct ptrmap {
    const void **keys;
    int64_t *vals;
    int64_t cap, n;
} ptrmap;

static inline int ptrmap_init(ptrmap *m, int64_t cap) {
    m->cap = 16;
    while (m->cap < cap * 2) m->cap *= 2;
    m->n = 0;
    m->keys = idt_calloc((size_t)m->cap, sizeof *m->keys);
    m->vals = idt_malloc((size_t)m->cap * sizeof *m->vals);
    return m->keys && m->vals ? 0 : -1;
}

static inline void ptrmap_free(ptrmap *m) {
    idt_free(m->keys);
    idt_free(m->vals);
}

static inline int64_t ptr_hash(const void *p, int64_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return (int64_t)(x & (uint64_t)(cap - 1));
}

/* Value for key, or -1. */
static inline int64_t ptrmap_get(const ptrmap *m, const void *key) {
    for (int64_t h = ptr_hash(key, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (!m->keys[h]) return -1;
        if (m->keys[h] == key) return m->vals[h];
    }
}

static inline int ptrmap_put(ptrmap *m, const void *key, int64_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        ptrmap g;
        if (ptrmap_init(&g, m->n + 1) != 0) {
            ptrmap_free(&g);
            return -1;
        }
        for (int64_t i = 0; i < m->cap; i++)
            if (m->keys[i]) ptrmap_put(&g, m->keys[i], m->vals[i]);
        ptrmap_free(m);
        *m = g;
    }
    int64_t h = ptr_hash(key, m->cap);
    while (m->keys[h] && m->keys[h] != key) h = (h + 1) & (m->cap - 1);
    if (!m->keys[h]) m->n++;
    m->keys[h] = key;
    m->vals[h] = val;
    return 0;
}

#endif
