/* writer.h: a table built from batches of rows whose number is not known up front.
 *
 * A writer collects finished stores ("pieces", one per appended batch, each sized when its
 * batch is known) for one schema and, when finished, makes one view showing all their rows
 * in order. Nothing needs the final size: each piece is written to the temp area as it
 * comes (its own file, an arena range, or past IDT_WRITER_OWN_FILES large pieces a range of
 * the writer's pool extents), so memory stays bounded by one batch whatever the total.
 * Pieces of small batches are merged as they accumulate (every IDT_WRITER_MERGE_COUNT
 * consecutive pieces below IDT_ARENA_MAX bytes become one store), so a writer fed a
 * million one-row batches ends with a few thousand stores, not a million.
 *
 * A writer is used from one thread at a time (the binding serializes). Freeing an
 * unfinished writer drops every piece, and with them the files (only in the process that
 * made them: a forked child never removes its parent's files). */
#ifndef IDT_WRITER_H
#define IDT_WRITER_H

#include <stdint.h>

#include "error.h"
#include "progress.h"
#include "store.h"
#include "view.h"

#define IDT_WRITER_MERGE_COUNT 256
/* Pieces over IDT_ARENA_MAX bytes that get a file (and mapping) of their own; later ones
 * (and merged runs of small ones) go to the writer's blob pool (tmp.h), whose extent files
 * of up to IDT_POOL_EXTENT_MAX bytes are shared, so a writer of many batches holds about
 * IDT_WRITER_OWN_FILES + total bytes / IDT_POOL_EXTENT_MAX files and mappings, however
 * many batches it took, far below vm.max_map_count and the open-file limit (the files are
 * not kept open: an extent keeps one descriptor while it lives). */
#define IDT_WRITER_OWN_FILES 64

typedef struct idt_writer idt_writer;

/* Begin a writer for `schema` (a reference is taken). Errors: IDT_ENOMEM. */
int idt_writer_new(idt_schema *schema, idt_writer **out, idt_error *err);
/* The writer's schema (borrowed). */
idt_schema *idt_writer_schema(const idt_writer *w);
/* Rows appended so far. */
int64_t idt_writer_rows(const idt_writer *w);
/* Pieces held now (after merging). */
int64_t idt_writer_pieces(const idt_writer *w);

/* Merge every `count` (>= 2) consecutive small pieces instead of IDT_WRITER_MERGE_COUNT
 * (tests use a small count to reach merging quickly). */
void idt_writer_set_merge_count(idt_writer *w, int64_t count);
/* Give `count` (>= 0) pieces files of their own instead of IDT_WRITER_OWN_FILES (tests). */
void idt_writer_set_own_files(idt_writer *w, int64_t count);

/* Where the next piece should be built (idt_store_builder_new_in): NULL (as any store) while
 * the writer has fewer than its own-file count of large pieces, then the writer's pool
 * (borrowed; it lives as long as the writer). Before the first piece a writer may not
 * exist yet: its first piece is always built as any store. */
idt_blob_pool *idt_writer_pool(idt_writer *w);

/* Append the rows of `piece` (a reference is taken on success). Its columns must match the
 * writer's schema exactly (names, kinds, dtypes, row shapes). May merge small pieces
 * (reporting to `prog`, which may cancel). Errors: IDT_EVALUE (schema mismatch, naming the
 * column; too many rows), IDT_ENOMEM, IDT_EIO, IDT_ECANCELLED; on error the writer is
 * unchanged and still usable. */
int idt_writer_add(idt_writer *w, idt_store *piece, const idt_progress *prog, idt_error *err);

/* Finish: a view of every appended row in order, showing schema columns cols[0..ncols).
 * The writer is consumed either way (do not free it after). Errors: IDT_EVALUE, IDT_ENOMEM. */
int idt_writer_finish(idt_writer *w, const int64_t *cols, int64_t ncols, idt_view **out,
                      idt_error *err);
/* Abandon a writer: every piece and its file goes. NULL is a no-op. */
void idt_writer_free(idt_writer *w);

#endif
