/* utf8.c: generalized UTF-8 encode, count and decode for UTF8 string columns. */
#include "utf8.h"

#include <string.h>

size_t idt_utf8_encode(const uint32_t *src, size_t n, char *dst) {
    unsigned char *o = (unsigned char *)dst;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = src[i];
        if (c < 0x80) {
            *o++ = (unsigned char)c;
            continue;
        }
        int len = idt_utf8_cp_len(c);
        static const unsigned char lead[8] = {0, 0, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE};
        for (int k = len - 1; k > 0; k--) {
            o[k] = (unsigned char)(0x80 | (c & 0x3F));
            c >>= 6;
        }
        o[0] = (unsigned char)(lead[len] | c);
        o += len;
    }
    return (size_t)(o - (unsigned char *)dst);
}

/* idt_ucs4_narrow: four vectors of eight code points become 32 bytes with two saturating
 * packs (exact for code points below 0x80, which is all the result promises), while the OR
 * of the inputs says whether they all were. */
static uint32_t narrow_scalar(const uint32_t *src, size_t n, char *dst) {
    uint32_t any = 0;
    for (size_t k = 0; k < n; k++) {
        any |= src[k];
        dst[k] = (char)src[k];
    }
    return any;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static uint32_t narrow_avx2(const uint32_t *src, size_t n, char *dst) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i acc = _mm256_setzero_si256();
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const __m256i *p = (const __m256i *)(src + k);
        __m256i a = _mm256_loadu_si256(p), b = _mm256_loadu_si256(p + 1);
        __m256i c = _mm256_loadu_si256(p + 2), d = _mm256_loadu_si256(p + 3);
        acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d)));
        __m256i x = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
        _mm256_storeu_si256((__m256i *)(dst + k), _mm256_permutevar8x32_epi32(x, order));
    }
    __m128i h = _mm_or_si128(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    h = _mm_or_si128(h, _mm_srli_si128(h, 8));
    h = _mm_or_si128(h, _mm_srli_si128(h, 4));
    return (uint32_t)_mm_cvtsi128_si32(h) | narrow_scalar(src + k, n - k, dst + k);
}

static uint32_t (*narrow_pick(void))(const uint32_t *, size_t, char *) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? narrow_avx2 : narrow_scalar;
}
#else
static uint32_t (*narrow_pick(void))(const uint32_t *, size_t, char *) { return narrow_scalar; }
#endif

uint32_t idt_ucs4_narrow(const uint32_t *src, size_t n, char *dst) {
    static uint32_t (*_Atomic fn)(const uint32_t *, size_t, char *);
    uint32_t (*f)(const uint32_t *, size_t, char *) = fn;
    if (!f) fn = f = narrow_pick(); /* a race picks the same function twice */
    return f(src, n, dst);
}

int64_t idt_utf8_count(const char *src, size_t n) {
    int64_t k = 0;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < n; i++) k += (s[i] & 0xC0) != 0x80;
    return k;
}

void idt_utf8_decode(const char *src, size_t n, uint32_t *dst, int64_t width) {
    const unsigned char *s = (const unsigned char *)src, *end = s + n;
    int64_t k = 0;
    while (s < end && k < width) {
        unsigned char b = *s++;
        if (b < 0x80) {
            dst[k++] = b;
            continue;
        }
        int extra = b >= 0xFE ? 6 : b >= 0xFC ? 5 : b >= 0xF8 ? 4 : b >= 0xF0 ? 3
                  : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
        uint32_t c = extra == 6 ? 0 : (uint32_t)(b & (0x7F >> (extra + 1)));
        if (extra == 0) c = b; /* stray continuation byte: keep its value */
        while (extra-- > 0 && s < end && (*s & 0xC0) == 0x80) c = (c << 6) | (*s++ & 0x3F);
        dst[k++] = c;
    }
    if (k < width) memset(dst + k, 0, (size_t)(width - k) * sizeof *dst);
}

int idt_utf8_valid(const char *src, size_t n, int ascii) {
    const unsigned char *s = (const unsigned char *)src, *end = s + n;
    while (s < end) {
        unsigned char b = *s++;
        if (b < 0x80) continue;
        if (ascii || b < 0xC0) return 0;
        int extra = b >= 0xFE ? 6 : b >= 0xFC ? 5 : b >= 0xF8 ? 4 : b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
        if (end - s < extra) return 0;
        for (int k = 0; k < extra; k++)
            if ((*s++ & 0xC0) != 0x80) return 0;
    }
    return 1;
}

int idt_utf8_strict(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0) return 0;
        uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1F : k == 2 ? c & 0x0F : c & 0x07;
        for (int i = 1; i <= k; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        s += k + 1;
    }
    return 1;
}
