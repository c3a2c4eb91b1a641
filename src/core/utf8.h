/* utf8.h: the string encoding of UTF8 columns.
 *
 * NumPy 'U' elements are arrays of 32-bit code points, and may hold any 32-bit value
 * (surrogates included). They are stored in a generalized UTF-8: the standard encoding for
 * 0..0x10FFFF (surrogates encoded like other code points, as WTF-8 does) and the original
 * 5- and 6-byte forms, plus a 7-byte form for the full 32-bit range, so that every value
 * round-trips. Decoding is bounded by the output width and never reads past the input. */
#ifndef IDT_UTF8_H
#define IDT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that code point `cp` encodes to (1..7). */
static inline int idt_utf8_cp_len(uint32_t cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : cp < 0x200000 ? 4
         : cp < 0x4000000 ? 5 : cp < 0x80000000u ? 6 : 7;
}

/* Encode `n` code points; returns bytes written (dst must have room: idt_utf8_cp_len sum). */
size_t idt_utf8_encode(const uint32_t *src, size_t n, char *dst);

/* Narrow `n` code points to `n` bytes at dst and return the OR of all of them. When that is
 * below 0x80 every code point was ASCII and dst holds the text; otherwise dst's bytes mean
 * nothing (encode with idt_utf8_encode). Vectorized (AVX2 where the CPU has it). */
uint32_t idt_ucs4_narrow(const uint32_t *src, size_t n, char *dst);

/* 1 if `n` bytes are well-formed generalized UTF-8 (each lead byte followed by exactly its
 * continuation bytes; with ascii set, every byte < 0x80), else 0. */
int idt_utf8_valid(const char *src, size_t n, int ascii);

/* 1 when the NUL-terminated `s` is standard UTF-8 as Python decodes it strictly (no
 * overlongs, surrogates or values past 0x10FFFF): names read from a file end up in Python
 * strings and in error messages. */
int idt_utf8_strict(const char *s);

/* Number of code points in `n` bytes (bytes that are not continuation bytes). */
int64_t idt_utf8_count(const char *src, size_t n);

/* Decode `n` bytes into at most `width` code points at dst; the rest of dst[0..width) is
 * zero-filled. Malformed input decodes to something (never out of bounds). */
void idt_utf8_decode(const char *src, size_t n, uint32_t *dst, int64_t width);

#endif
