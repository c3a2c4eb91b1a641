/* group.h: inside the core only: what view.c and group.c share about column groups (the
 * public side, idt_view_zip and idt_view_rename, is in view.h). */
#ifndef IDT_GROUP_H
#define IDT_GROUP_H

#include "view.h"

/* From view.c: a view with room for nseg segments (alloc_view), setting segment k (taking a
 * reference to its store or refs), and computing cum once the segments are set. */
idt_view *idt_view_parts_alloc(idt_schema *schema, const int64_t *cols, int64_t ncols, int uniform,
                               int64_t nseg);
void idt_view_parts_set_seg(idt_view *v, int64_t k, const idt_segment *s);
void idt_view_parts_finish(idt_view *v, int64_t nseg);

/* The view showing column j as column gcol[j] of gs[grp[j]] (j < ncols). The gs are plain
 * views of one length (references taken for what is kept; the caller keeps its own), every
 * column of every group shown exactly once, no name twice. Groups over the same segments
 * are merged, one group left gives a plain view, groups wider than IDT_GROUP_MAX_COLS are
 * split. Errors: IDT_ENOMEM. */
int idt_group_make(idt_view *const *gs, int64_t ng, const int64_t *grp, const int64_t *gcol,
                   int64_t ncols, idt_view **out, idt_error *err);
/* Release what a grouped view holds of its groups (nothing for a plain view). */
void idt_group_release(idt_view *v);

/* The grouped forms of idt_view_slice (arguments already checked), idt_view_select (cols:
 * schema indexes of the shown columns to keep, checked) and idt_view_concat (columns
 * checked; some view grouped). */
int idt_group_slice(idt_view *v, int64_t start, int64_t step, int64_t count, idt_view **out,
                    idt_error *err);
int idt_group_select(idt_view *v, const int64_t *cols, int64_t n, idt_view **out, idt_error *err);
int idt_group_concat(idt_view *const *views, int64_t n, idt_view **out, idt_error *err);

/* An alias of store st showing its columns cols[0..n) under names[0..n) (its schema sorts
 * them): the same buffers and blob, base the store st is or aliases. Errors: IDT_EVALUE (a
 * column index out of range, a name twice), IDT_ENOMEM. */
int idt_store_alias(idt_store *st, const int64_t *cols, const char *const *names, int64_t n,
                    idt_store **out, idt_error *err);

/* The grouped forms of the gather entry points of gather.c (same contracts). */
int idt_group_str_widths(const idt_view *v, const idt_rowsel *sel, int64_t *widths, idt_error *err);
void idt_group_gather(const idt_view *v, const idt_rowsel *sel, void *const *outs,
                      const int64_t *widths);

#endif
