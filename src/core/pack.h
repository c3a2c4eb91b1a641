/* pack.h: sequence packing, documents' tokens concatenated and cut into rows of seq_len.
 *
 * The documents of one epoch, in epoch order, form one stream of tokens: document 0's
 * tokens, then document 1's, and so on (empty documents contribute nothing). Packed row g
 * is tokens [g * seq_len, (g + 1) * seq_len) of that stream; the last row of the stream is
 * padded with a pad value when the stream's length is not a multiple of seq_len. A batch is
 * any run of consecutive packed rows, so ranks and workers can each take their own rows and
 * the packed-row order never depends on how many of them there are.
 *
 * A segment is a maximal run of one document's tokens inside one row, or a row's padding.
 * For every batch the packer writes, besides the (rows, seq_len) tokens:
 *   - position_ids (int64, rows x seq_len): 0, 1, 2, ... restarting at every segment (so at
 *     every document and at every row start; padding counts from 0 too);
 *   - cu_seqlens (int32): 0 followed by the end of every segment in the flattened batch
 *     (rows * seq_len tokens, row-major), so its last entry is rows * seq_len, as
 *     variable-length attention (flash-attn's varlen functions) expects.
 *
 * A cursor (document, token offset inside it) names a position of the stream.
 * `cum` arrays are the epoch's cumulative token counts: cum[0] = 0, cum[d + 1] =
 * cum[d] + tokens of document d (n + 1 entries for n documents); they turn a global row
 * number into a cursor in O(log n) (idt_pack_seek), so resuming never walks the rows. */
#ifndef IDT_PACK_H
#define IDT_PACK_H

#include <stdint.h>

#include "error.h"
#include "view.h"

typedef struct idt_pack_cursor {
    int64_t doc; /* document index; == number of documents at the end of the stream */
    int64_t off; /* tokens of that document already taken (0 <= off < its length, or 0) */
} idt_pack_cursor;

/* Where a packed batch goes: caller-owned buffers for `rows` rows of `seq_len` tokens.
 * tokens: rows * seq_len elements of the documents' itemsize; position_ids: rows *
 * seq_len; cu_seqlens: cu_cap entries (idt_pack_cu_bound gives enough). On return *ncu is
 * the number of cu_seqlens entries written and *ntokens the tokens taken from documents
 * (rows * seq_len minus padding). */
typedef struct idt_pack_out {
    void *tokens;
    int64_t *position_ids;
    int32_t *cu_seqlens;
    int64_t cu_cap;
    int64_t ncu;
    int64_t ntokens;
} idt_pack_out;

/* Fill out with `rows` packed rows of `seq_len` tokens starting at cursor *cur over the
 * documents given as values + offsets: document d is elements [offsets[d], offsets[d + 1])
 * of `values` (elements of `itemsize` bytes; offsets non-decreasing, n + 1 of them, which
 * the caller vouches for). Once the documents run out the rest is `pad` (itemsize bytes)
 * with segments of their own. Advances *cur past the tokens taken.
 * Errors (nothing written to *cur): IDT_EVALUE (rows < 0, seq_len < 1, itemsize < 1, a
 * cursor outside the documents, rows * seq_len beyond what int32 cu_seqlens can count,
 * cu_cap too small for the segments). */
int idt_pack_fill(const void *values, int64_t itemsize, const int64_t *offsets, int64_t n,
                  idt_pack_cursor *cur, int64_t rows, int64_t seq_len, const void *pad,
                  idt_pack_out *out, idt_error *err);

/* The cursor at token `token` of the stream whose cumulative counts are cum[0..n]:
 * the document d with cum[d] <= token < cum[d + 1] (never an empty one), offset token -
 * cum[d]; {n, 0} for token >= cum[n]. token < 0 counts as 0. O(log n). */
idt_pack_cursor idt_pack_seek(const int64_t *cum, int64_t n, int64_t token);

/* Enough cu_seqlens entries for `rows` rows of `seq_len` starting at packed row `row0` of
 * the stream of cum[0..n]: one per document the rows touch plus one per row plus one,
 * never more than rows * seq_len + 1. O(log n). */
int64_t idt_pack_cu_bound(const int64_t *cum, int64_t n, int64_t row0, int64_t rows,
                          int64_t seq_len);

/* Cumulative lengths of list column j of `v` in view order into cum[0..len(v)]: cum[0] = 0,
 * cum[i + 1] = cum[i] + the length of row i's value. A string column (no row shape) counts
 * its bytes. O(rows) with no row data read, only offsets. Errors: IDT_ETYPE (a fixed-width
 * column, or a string column with a row shape), IDT_EINDEX (no column j). */
int idt_pack_cumlen(const idt_view *v, int64_t j, int64_t *cum, idt_error *err);

/* idt_pack_fill reading the documents straight from list column j of `v` (view row d is
 * document d; cum from idt_pack_cumlen over the same view): `rows` packed rows starting at
 * global packed row `row0`, each document's tokens copied from its store, never gathered
 * whole (a document longer than a batch costs only the part the batch takes). A string
 * column packs its bytes as 1-byte tokens. cum must hold len(v) + 1 entries (the caller
 * vouches for that much); a document whose length in cum is not its row's is refused, so a
 * wrong cum can never make the copy read outside a row. Errors: those of idt_pack_fill and
 * idt_pack_cumlen, IDT_EVALUE (row0 < 0, pad_size not the value itemsize, cum not matching
 * the view). */
int idt_pack_view(const idt_view *v, int64_t j, const int64_t *cum, int64_t row0, int64_t rows,
                  int64_t seq_len, const void *pad, int64_t pad_size, idt_pack_out *out,
                  idt_error *err);

/* Several batches in one call: block k is rows blocks[2k + 1] packed rows from packed row
 * blocks[2k] (as idt_pack_view), written one after another: block k's rows follow block
 * k - 1's in out->tokens and out->position_ids, and its cu_seqlens (starting at 0, relative
 * to the block, as a batch of its own) are out->cu_seqlens[cu_start[k] .. cu_start[k + 1]),
 * cu_start having nblocks + 1 entries. out->cu_cap must hold them all
 * (idt_pack_blocks_cu_bound); out->ncu and out->ntokens are totals. Each block obeys
 * idt_pack_view's limits. Errors: those of idt_pack_view (naming the block's first row). */
int idt_pack_view_blocks(const idt_view *v, int64_t j, const int64_t *cum, const int64_t *blocks,
                         int64_t nblocks, int64_t seq_len, const void *pad, int64_t pad_size,
                         idt_pack_out *out, int64_t *cu_start, idt_error *err);
/* Sum of idt_pack_cu_bound over the blocks (saturating at INT64_MAX). */
int64_t idt_pack_blocks_cu_bound(const int64_t *cum, int64_t n, const int64_t *blocks,
                                 int64_t nblocks, int64_t seq_len);

#endif
