/* module.h: the extension's shared private header (as CPython's Modules/_io/_iomodule.h):
 * the module state, the TableView object, and what each file offers the others. One file per
 * Python type (tableview.c, batchiter.c, writer.c) owns its spec, slots and methods;
 * module.c is the module alone; the helper files below them never call upward. The include
 * and call graph is drawn in docs/architecture.md. */
#ifndef IDT_PY_MODULE_H
#define IDT_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL idt_ARRAY_API
#ifndef IDT_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <numpy/npy_2_compat.h>

#include "../core/error.h"
#include "../core/progress.h"
#include "../core/view.h"

typedef struct idt_module_state {
    PyObject *TableView_Type;
    PyObject *BatchIter_Type;
    PyObject *Writer_Type;
    PyObject *CorruptDataError;
    PyObject *Ragged;          /* infinidata._ragged.Ragged, imported on first need */
    PyObject *as_list_column;  /* infinidata._ragged._as_list_column, likewise */
} idt_module_state;

typedef struct TableViewObject {
    PyObject_HEAD
    idt_view *v;
    PyObject *descrs;      /* tuple: NumPy dtype per fixed column, None for strings */
    PyObject *names;       /* tuple: column names (str), the keys of every read's dict */
    PyObject *weakreflist;
} TableViewObject;

enum { KEY_INT = 1, KEY_RANGE = 2, KEY_INDEX = 3 };

typedef struct idt_key {
    int kind;
    idt_rowsel sel;        /* normalized selection */
    int64_t *owned;        /* index buffer owned by the key */
    const int64_t *idx;
    PyObject *shape_src;   /* index array whose shape leads the output, or NULL */
} idt_key;

/* Progress and Ctrl-C for a long call (progress.c). `p` goes to core calls (taking the GIL
 * at most every 0.1 s to check signals and update the bar); with the GIL held, call
 * idt_py_prog_step between chunks instead. */
typedef struct idt_py_prog {
    idt_progress p;
    PyObject *bar;         /* infinidata._progress bar, or NULL */
    int64_t shown;         /* work already passed to the bar */
    int64_t total;         /* total work as last reported (< 0: unknown) */
    int64_t bar_total;     /* total the bar was given */
    double last;           /* when the callback last took the GIL */
} idt_py_prog;
/* Start: `progress` is the user's keyword (None, True, False); total in `unit`s. -1 with an
 * exception set (bad value, progress=True without tqdm). */
int idt_py_prog_init(idt_py_prog *pp, PyObject *progress, int64_t total, const char *desc,
                     const char *unit);
/* With the GIL: check signals and update the bar to `done`. -1 with an exception set. */
int idt_py_prog_step(idt_py_prog *pp, int64_t done);
/* _test_cancel_after(n): make the n-th progress check from now raise KeyboardInterrupt. */
PyObject *idt_py_test_cancel_after(PyObject *m, PyObject *arg);
/* Close the bar (keeps any exception being raised). */
void idt_py_prog_close(idt_py_prog *pp);

/* ---- state.c (the bottom: calls nothing in the extension) ---- */
/* Module state of an object of, or a subclass of, one of the module's types (NULL with an
 * exception set otherwise). module.c registers its def once, at PyInit, before any type. */
void idt_py_state_set_def(PyModuleDef *def);
idt_module_state *idt_py_state_of(PyObject *self);
idt_module_state *idt_py_state_of_type(PyTypeObject *tp);

/* ---- ragged.c (calls nothing in the extension) ---- */
/* Import infinidata._ragged into st->Ragged / st->as_list_column once. 0, or -1 with an
 * exception set. */
int idt_py_ragged_load(idt_module_state *st);
/* A Ragged over `values` (1-D) and `offsets` (int64, n + 1) made by the library (not checked
 * again); both references are consumed. NULL with an exception set. */
PyObject *idt_py_ragged_new(idt_module_state *st, PyObject *values, PyObject *offsets);

/* ---- errors.c: the one IDT_E* -> exception rule ---- */
/* Raise the Python exception the rule gives for core error `e` (message: e->msg); returns
 * NULL. IDT_ECANCELLED keeps an exception already set (Ctrl-C, a failing bar). */
PyObject *idt_py_raise(idt_module_state *st, const idt_error *e);
/* The same, with the message prefixed by the printf-style (PyUnicode_FromFormat) context. */
PyObject *idt_py_raise_in(idt_module_state *st, const idt_error *e, const char *fmt, ...);
/* Test hooks: the rule as a dict {"IDT_E...": (code, exception class)}, and raising for a
 * code as the core would (NULL, with the exception set). */
PyObject *idt_py_error_rules(idt_module_state *st);
PyObject *idt_py_raise_code(idt_module_state *st, int code, int sys_errno, const char *msg);

/* ---- read.c: keys, names, reads ---- */
/* The UTF-8 of column name `name` (a str), or NULL with ValueError when it holds a NUL (the
 * core's names are C strings: "a\0b" would silently become "a"). */
const char *idt_py_name_utf8(PyObject *name);
/* Parse a row key (int, slice, int array or list, bool mask) against a view of `len` rows
 * into `k` (release with idt_key_clear). Which rows a mask or index list selects, and whether
 * it fits the view, is the core's decision (idt_mask_count, idt_index_normalize: IndexError
 * through the one rule). 0, or -1 with an exception set. */
int idt_parse_key(idt_module_state *st, PyObject *key, int64_t len, idt_key *k, int allow_int);
void idt_key_clear(idt_key *k);
/* Read the selected rows of `self` into a new dict of arrays; lead/nlead give the leading
 * output dims (their product is sel->count); scalarize: 0-d results become NumPy scalars. */
PyObject *idt_py_read(TableViewObject *self, const idt_rowsel *sel, const npy_intp *lead,
                      int nlead, int scalarize);

/* ---- build.c ---- */
/* Build one store from a dict of columns (a table's or a batch's): bounded chunk copies,
 * Ctrl-C checked between chunks, a bar per `progress`. With `expect` (a writer's schema)
 * the columns must match it (ValueError naming the column and both types) and a batch of
 * no rows makes no store (*out NULL). The store's blob comes from `pool` (a writer's; NULL
 * for any other store). *names_out (a tuple of the dict's keys, in order) and
 * *order_out (PyMem: store column of each key) are optional. 0, or -1 with an exception. */
int idt_py_build_store(idt_module_state *st, PyObject *columns, const char *what,
                       const idt_schema *expect, idt_blob_pool *pool, PyObject *progress,
                       idt_store **out, PyObject **names_out, int64_t **order_out);

/* ---- tableview.c ---- */
/* A new TableView owning `v` (the reference is consumed, also on failure); checks each fixed
 * column's dtype against its itemsize (CorruptDataError). NULL with an exception set. */
PyObject *idt_py_wrap_view(idt_module_state *st, idt_view *v);
/* The views of a sequence `seq` (a PySequence_Fast) of TableViews of type `tvtype`, as a
 * PyMem array of borrowed pointers, *n of them; NULL with TypeError (naming the first other
 * object) or MemoryError set. */
idt_view **idt_py_views_of(PyObject *tvtype, PyObject *seq, Py_ssize_t *n);

/* ---- the types' specs (module.c makes the types from them) ---- */
extern PyType_Spec idt_tableview_spec; /* tableview.c */
extern PyType_Spec idt_batchiter_spec; /* batchiter.c */
extern PyType_Spec idt_writer_spec;    /* writer.c */

/* batchiter.c: start a batch iterator over `v` (a reference is taken by the iterator), with
 * the column descriptions `descrs` (a TableView's). NULL with an exception set. */
PyObject *idt_py_batchiter_start(idt_module_state *st, idt_view *v, PyObject *descrs, int64_t bs,
                                 int drop, int64_t threads, int64_t readahead, PyObject *pad);

/* io.c: _from_parts(columns, nrows), the module-level function (listed in module.c). */
PyObject *idt_py_from_parts(PyObject *m, PyObject *args);

#endif
