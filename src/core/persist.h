/* persist.h: saving views to a directory, loading them back, and describing a view so that
 * another process can map the same files (pickling).
 *
 * A saved directory holds one manifest per saved name (<name>.idtview) and the data files
 * the views read: s-<uid>.idt (a store image, as in the temp area) and r-<uid>.idt (a ref
 * array). Files are named by the random 128-bit identity of what they hold, so each is
 * saved once however many views use it; a file of the temp area is hard-linked when the
 * directory is on the same file system and copied otherwise. Saving is atomic per name:
 * data files are written under temporary names and renamed, and the manifest goes last; on
 * any failure everything this save created is removed. Loading validates all it maps
 * (magic, version, checksums, sizes against file lengths, offsets, every ref) before use.
 * Saved files are never deleted by reference counting.
 *
 * The format is versioned (IDT_FORMAT_VERSION) and not promised stable across versions: a
 * file of another version is refused with a message naming the version that wrote it. */
#ifndef IDT_PERSIST_H
#define IDT_PERSIST_H

#include <stddef.h>

#include "error.h"
#include "view.h"

/* Save `v` under `name` in `dir` (created if missing). Errors: IDT_EEXIST (name taken and
 * !overwrite), IDT_EVALUE (bad name), IDT_EIO (the disk; errno kept), IDT_ENOMEM. */
int idt_view_save(const idt_view *v, const char *dir, const char *name, int overwrite,
                  idt_error *err);

/* Load the view saved as `name` in `dir`. Errors: IDT_EIO (missing files: errno ENOENT),
 * IDT_ECORRUPT (naming the file and the problem), IDT_ENOMEM. */
int idt_view_load(const char *dir, const char *name, idt_view **out, idt_error *err);
/* As idt_view_load; with verify 0 the content checksums of row data and ref arrays are not
 * checked (a load then touches only headers and refs, not every byte). Everything that
 * memory safety depends on is validated either way. */
int idt_view_load_ex(const char *dir, const char *name, int verify, idt_view **out, idt_error *err);

/* A self-contained description of `v` naming its files by absolute path and offset (the
 * caller frees *out with idt_free). Another process can map the same files with
 * idt_view_from_description while this process keeps the view alive. */
int idt_view_describe(const idt_view *v, char **out, size_t *len, idt_error *err);
int idt_view_from_description(const char *buf, size_t len, idt_view **out, idt_error *err);

#endif
