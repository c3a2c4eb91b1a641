/* build.c: building one store from a dict of NumPy arrays (a TableView's columns or a
 * writer's batch): classify each column, measure strings, copy bounded chunks into the
 * core's store builder. A list column comes as an infinidata.Ragged, or a list or object
 * array of 1-D arrays (infinidata._ragged._as_list_column decides and joins them). Used by
 * tableview.c and writer.c. */
#include "module.h"

#include <string.h>

#include "../core/store.h"
#include "../core/sys.h"

enum { CHUNK_BYTES = 32 << 20 };

typedef struct srccol {
    PyObject *name;          /* borrowed key */
    PyArrayObject *arr;      /* owned (a list column: its values, 1-D) */
    PyArrayObject *loffs;    /* owned: a list column's offsets (int64, rows + 1, a copy) */
    PyArray_Descr *native;   /* owned: native-order descr for chunk copies (fixed, U, S) */
    idt_col_kind kind;
    int source;              /* 'F' fixed, 'U', 'S', 'O' object, 'T' numpy StringDType, 'L' list */
    int64_t row_elems;
    int64_t row_bytes;       /* bytes per row in the source dtype, for chunking */
    int64_t str_bytes;
    int64_t str_max;         /* >= 0: an open column of at most this many bytes (not measured) */
} srccol;

/* Rows [a, b) of column sc as a C-contiguous native-order array (new reference). Object
 * and StringDType sources come back as object arrays. */
static PyArrayObject *chunk_of(srccol *sc, int64_t a, int64_t b) {
    PyObject *sl = PySlice_New(NULL, NULL, NULL);
    PyObject *start = PyLong_FromLongLong(a), *stop = PyLong_FromLongLong(b);
    Py_XDECREF(sl);
    sl = (start && stop) ? PySlice_New(start, stop, NULL) : NULL;
    Py_XDECREF(start);
    Py_XDECREF(stop);
    if (!sl) return NULL;
    PyObject *part = PyObject_GetItem((PyObject *)sc->arr, sl);
    Py_DECREF(sl);
    if (!part) return NULL;
    PyArray_Descr *d;
    if (sc->source == 'O' || sc->source == 'T') d = PyArray_DescrFromType(NPY_OBJECT);
    else {
        d = sc->native;
        Py_INCREF(d);
    }
    PyObject *out = PyArray_FromAny(part, d, 0, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                                    NPY_ARRAY_ENSUREARRAY | NPY_ARRAY_FORCECAST, NULL);
    Py_DECREF(part);
    return (PyArrayObject *)out;
}

static int64_t chunk_rows(const srccol *sc) {
    int64_t rb = sc->row_bytes > 0 ? sc->row_bytes : 1;
    int64_t r = CHUNK_BYTES / rb;
    if (sc->source == 'L' && r > ((int64_t)1 << 20)) r = (int64_t)1 << 20; /* offsets staged */
    return r > 0 ? r : 1;
}

/* A list column's rows [a, e): its values as a C-contiguous native-order array (new
 * reference) and the rows' offsets rebased to 0 into `offs` (e - a + 1 entries). */
static PyArrayObject *list_chunk(srccol *sc, int64_t a, int64_t e, int64_t *offs) {
    const int64_t *o = PyArray_DATA(sc->loffs);
    for (int64_t i = a; i <= e; i++) offs[i - a] = o[i] - o[a];
    PyObject *start = PyLong_FromLongLong(o[a]), *stop = PyLong_FromLongLong(o[e]);
    PyObject *sl = (start && stop) ? PySlice_New(start, stop, NULL) : NULL;
    Py_XDECREF(start);
    Py_XDECREF(stop);
    if (!sl) return NULL;
    PyObject *part = PyObject_GetItem((PyObject *)sc->arr, sl);
    Py_DECREF(sl);
    if (!part) return NULL;
    Py_INCREF(sc->native);
    PyObject *out = PyArray_FromAny(part, sc->native, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                                    NPY_ARRAY_ENSUREARRAY | NPY_ARRAY_FORCECAST, NULL);
    Py_DECREF(part);
    return (PyArrayObject *)out;
}

/* Take a Ragged `rag` as list column `name`: its values (a base-class view) and a private copy
 * of its offsets, checked again (the arrays may have changed since the Ragged was made). */
static int list_column(idt_module_state *st, PyObject *name, PyObject *rag, srccol *sc) {
    const char *cname = idt_py_name_utf8(name);
    if (!cname) return -1;
    PyObject *vals = PyObject_GetAttrString(rag, "values");
    PyObject *offs = vals ? PyObject_GetAttrString(rag, "offsets") : NULL;
    if (!offs) {
        Py_XDECREF(vals);
        return -1;
    }
    int rc = -1;
    if (!PyArray_Check(vals) || PyArray_NDIM((PyArrayObject *)vals) != 1) {
        PyErr_Format(PyExc_ValueError, "column '%s': a Ragged's values must be a 1-D array", cname);
        goto out;
    }
    sc->arr = (PyArrayObject *)PyArray_View((PyArrayObject *)vals, NULL, &PyArray_Type);
    if (!sc->arr) goto out;
    sc->loffs = (PyArrayObject *)PyArray_FromAny(offs, PyArray_DescrFromType(NPY_INT64), 1, 1,
                                                 NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                                                 NPY_ARRAY_ENSURECOPY | NPY_ARRAY_ENSUREARRAY, NULL);
    if (!sc->loffs) goto out;
    int64_t n = PyArray_DIM(sc->loffs, 0) - 1, nv = PyArray_DIM(sc->arr, 0);
    idt_error err;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "column '%s': a Ragged needs n + 1 offsets", cname);
        goto out;
    }
    if (idt_packed_check(PyArray_DATA(sc->loffs), 1, n, nv, &err)) {
        idt_py_raise_in(st, &err, "column '%s': ", cname);
        goto out;
    }
    PyArray_Descr *d = PyArray_DESCR(sc->arr);
    sc->native = PyArray_DescrNewByteorder(d, NPY_NATIVE);
    if (!sc->native) goto out;
    sc->kind = IDT_COL_LIST;
    sc->source = 'L';
    sc->row_elems = 1;
    const int64_t *o = PyArray_DATA(sc->loffs);
    sc->str_bytes = o[n] - o[0];
    int64_t vb = sc->str_bytes * (int64_t)PyDataType_ELSIZE(d);
    sc->row_bytes = n > 0 && vb / n > 0 ? vb / n : 1;
    rc = 0;
out:
    Py_DECREF(vals);
    Py_DECREF(offs);
    return rc;
}

/* Rows of column sc. */
static int64_t col_rows(const srccol *sc) {
    return sc->source == 'L' ? PyArray_DIM(sc->loffs, 0) - 1 : PyArray_DIM(sc->arr, 0);
}

/* Encoded bytes of a str or bytes object: sets *p and *n (valid while `keep` lives). */
static int encode_obj(PyObject *o, idt_col_kind kind, const char *colname, const char **p,
                      int64_t *n, PyObject **keep) {
    *keep = NULL;
    if (kind == IDT_COL_UTF8) {
        if (!PyUnicode_Check(o)) goto wrong;
        if (PyUnicode_IS_ASCII(o)) {
            *p = (const char *)PyUnicode_DATA(o);
            *n = PyUnicode_GET_LENGTH(o);
            return 0;
        }
        PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        if (!b) return -1;
        *keep = b;
        *p = PyBytes_AS_STRING(b);
        *n = PyBytes_GET_SIZE(b);
        return 0;
    }
    if (!PyBytes_Check(o)) goto wrong;
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
wrong:
    PyErr_Format(PyExc_TypeError,
                 "column '%s' is an object array mixing %s with %s; object columns must hold "
                 "only str or only bytes", colname, kind == IDT_COL_UTF8 ? "str" : "bytes",
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* Pass 1: measure string bytes (and check object element types). */
static int measure_strings(srccol *sc, int64_t nrows, const char *colname) {
    int64_t total = 0, step = chunk_rows(sc);
    for (int64_t a = 0; a < nrows; a += step) {
        if (PyErr_CheckSignals()) return -1;
        int64_t b = a + step < nrows ? a + step : nrows;
        PyArrayObject *ch = chunk_of(sc, a, b);
        if (!ch) return -1;
        int64_t n = (b - a) * sc->row_elems;
        if (sc->source == 'U') {
            int64_t w = PyArray_ITEMSIZE(ch) / 4, len;
            const uint32_t *src = PyArray_DATA(ch);
            Py_BEGIN_ALLOW_THREADS
            len = idt_ucs4_utf8_len(src, n, w, NULL); /* on threads when large */
            Py_END_ALLOW_THREADS
            total += len;
        } else if (sc->source == 'S') {
            total += idt_fixed_bytes_len(PyArray_DATA(ch), n, PyArray_ITEMSIZE(ch));
        } else {
            PyObject **objs = (PyObject **)PyArray_DATA(ch);
            for (int64_t i = 0; i < n; i++) {
                const char *p;
                int64_t len;
                PyObject *keep;
                if (encode_obj(objs[i], sc->kind, colname, &p, &len, &keep)) {
                    Py_DECREF(ch);
                    return -1;
                }
                Py_XDECREF(keep);
                total += idt_str_strip(p, len);
            }
        }
        Py_DECREF(ch);
    }
    sc->str_bytes = total;
    return 0;
}

/* The construction's progress for a core call that reports its own work done (units of
 * source bytes) from `base` on. */
typedef struct prog_from {
    idt_progress p;
    idt_py_prog *pp;
    int64_t base;
} prog_from;

static int prog_from_fn(void *ctx, int64_t done, int64_t total) {
    prog_from *f = ctx;
    (void)total;
    return f->pp->p.fn(f->pp->p.ctx, f->base + done, f->pp->total);
}

/* Pass 2: write column c of the store. A NumPy unicode column already in native order and
 * C order goes in one call (its encoding pipeline then never drains between chunks; the
 * core reports progress and takes Ctrl-C between its parts); others in chunks of
 * CHUNK_BYTES, converted one at a time. */
static int write_column(idt_module_state *st, srccol *sc, idt_store_builder *b, int64_t c,
                        int64_t nrows, const char *colname, idt_py_prog *pp, int64_t *done) {
    int whole = sc->source == 'U' && PyArray_ISCARRAY_RO(sc->arr) && PyArray_ISNOTSWAPPED(sc->arr);
    int64_t step = whole ? (nrows > 0 ? nrows : 1) : chunk_rows(sc);
    idt_error err;
    for (int64_t a = 0; a < nrows; a += step) {
        int64_t e = a + step < nrows ? a + step : nrows;
        if (idt_py_prog_step(pp, *done)) return -1; /* Ctrl-C between chunks */
        *done += (e - a) * sc->row_bytes;
        PyArrayObject *ch = sc->source == 'L' ? (PyArrayObject *)Py_NewRef(sc->arr) : chunk_of(sc, a, e);
        if (!ch) return -1;
        int64_t n = (e - a) * sc->row_elems;
        int rc = 0;
        if (sc->source == 'L') {
            int64_t *offs = PyMem_Malloc((size_t)(e - a + 1) * sizeof *offs);
            PyArrayObject *vals = offs ? list_chunk(sc, a, e, offs) : NULL;
            if (!offs) PyErr_NoMemory();
            if (!vals) {
                PyMem_Free(offs);
                Py_DECREF(ch);
                return -1;
            }
            const char *src = PyArray_DATA(vals);
            Py_BEGIN_ALLOW_THREADS
            rc = idt_store_builder_append_packed(b, c, e - a, offs, 1, src, &err);
            Py_END_ALLOW_THREADS
            Py_DECREF(vals);
            PyMem_Free(offs);
        } else if (sc->source == 'F') {
            const void *src = PyArray_DATA(ch);
            Py_BEGIN_ALLOW_THREADS
            rc = idt_store_builder_write_fixed(b, c, a, e - a, src, &err);
            Py_END_ALLOW_THREADS
        } else if (sc->source == 'U') {
            const uint32_t *src = PyArray_DATA(ch);
            int64_t w = PyArray_ITEMSIZE(ch) / 4;
            prog_from pf = {{prog_from_fn, &pf}, pp, *done - (e - a) * sc->row_bytes};
            Py_BEGIN_ALLOW_THREADS
            if (whole) idt_progress_begin(&pf.p);
            rc = idt_store_builder_append_ucs4(b, c, n, src, w, &err);
            if (whole) idt_progress_end();
            Py_END_ALLOW_THREADS
        } else if (sc->source == 'S') {
            const char *src = PyArray_DATA(ch);
            int64_t w = PyArray_ITEMSIZE(ch);
            Py_BEGIN_ALLOW_THREADS
            rc = idt_store_builder_append_fixed_bytes(b, c, n, src, w, &err);
            Py_END_ALLOW_THREADS
        } else {
            PyObject **objs = (PyObject **)PyArray_DATA(ch);
            const char **ptrs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ptrs);
            int64_t *lens = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *lens);
            PyObject **keep = PyMem_Calloc((size_t)(n ? n : 1), sizeof *keep);
            if (!ptrs || !lens || !keep) {
                PyErr_NoMemory();
                rc = -1;
            }
            int64_t got = 0;
            for (; !rc && got < n; got++) {
                if (encode_obj(objs[got], sc->kind, colname, &ptrs[got], &lens[got], &keep[got])) {
                    rc = -1;
                    continue;
                }
                /* trailing NULs are padding, not stored (as measure_strings counted them) */
                lens[got] = idt_str_strip(ptrs[got], lens[got]);
            }
            if (!rc) rc = idt_store_builder_append_pieces(b, c, n, ptrs, lens, &err);
            else got--;
            for (int64_t i = 0; keep && i < got; i++) Py_XDECREF(keep[i]);
            PyMem_Free(ptrs);
            PyMem_Free(lens);
            PyMem_Free(keep);
            if (rc == -1 && PyErr_Occurred()) {
                Py_DECREF(ch);
                return -1;
            }
        }
        Py_DECREF(ch);
        if (rc) {
            idt_py_raise(st, &err);
            return -1;
        }
    }
    return 0;
}

static int classify(PyObject *name, PyArrayObject *arr, srccol *sc) {
    PyArray_Descr *d = PyArray_DESCR(arr);
    const char *cname = idt_py_name_utf8(name);
    if (!cname) return -1;
    char kind = d->kind;
    sc->row_elems = 1;
    for (int i = 1; i < PyArray_NDIM(arr); i++) sc->row_elems *= PyArray_DIM(arr, i);
    if (PyDataType_HASFIELDS(d) || kind == 'V') {
        PyErr_Format(PyExc_TypeError, "column '%s' has structured/void dtype %R, which is not "
                     "supported; store each field as its own column", cname, (PyObject *)d);
        return -1;
    }
    if (strchr("biufcmM", kind)) {
        sc->kind = IDT_COL_FIXED;
        sc->source = 'F';
    } else if (kind == 'U') {
        sc->kind = IDT_COL_UTF8;
        sc->source = 'U';
    } else if (kind == 'S') {
        sc->kind = IDT_COL_BYTES;
        sc->source = 'S';
    } else if (kind == 'O') {
        sc->source = 'O';
        sc->kind = IDT_COL_UTF8;
        /* The first element decides str or bytes; measure_strings checks all of them. */
        if (PyArray_SIZE(arr) > 0) {
            PyObject *flat = PyArray_Ravel(arr, NPY_CORDER);
            if (!flat) return -1;
            PyObject *first = PySequence_GetItem(flat, 0);
            Py_DECREF(flat);
            if (!first) return -1;
            if (PyBytes_Check(first)) sc->kind = IDT_COL_BYTES;
            else if (!PyUnicode_Check(first)) {
                PyErr_Format(PyExc_TypeError, "column '%s' is an object array holding %s; object "
                             "columns must hold only str or only bytes", cname,
                             Py_TYPE(first)->tp_name);
                Py_DECREF(first);
                return -1;
            }
            Py_DECREF(first);
        }
    } else if (kind == 'T') {
        sc->kind = IDT_COL_UTF8;
        sc->source = 'T';
    } else {
        PyErr_Format(PyExc_TypeError, "column '%s' has unsupported dtype %R", cname, (PyObject *)d);
        return -1;
    }
    if (sc->source == 'F' || sc->source == 'U' || sc->source == 'S') {
        sc->native = PyArray_DescrNewByteorder(d, NPY_NATIVE);
        if (!sc->native) return -1;
    }
    int64_t isz = sc->source == 'O' || sc->source == 'T' ? (int64_t)sizeof(PyObject *) : PyDataType_ELSIZE(d);
    sc->row_bytes = isz * sc->row_elems;
    return 0;
}

static int fill_column_desc(const srccol *sc, PyObject *name, idt_column *c) {
    memset(c, 0, sizeof *c);
    c->name = (char *)PyUnicode_AsUTF8(name);
    if (!c->name) return -1;
    c->kind = sc->kind;
    c->ndim = PyArray_NDIM(sc->arr) - 1;
    c->shape = c->ndim ? (int64_t *)PyMem_Malloc((size_t)c->ndim * sizeof(int64_t)) : NULL;
    if (c->ndim && !c->shape) {
        PyErr_NoMemory();
        return -1;
    }
    if (sc->source == 'L') c->ndim = 0; /* each row a 1-D array: no row shape */
    for (int i = 0; i < c->ndim; i++) c->shape[i] = PyArray_DIM(sc->arr, i + 1);
    if (!idt_column_is_str(c)) { /* fixed, or a list column's values */
        PyObject *s = PyObject_GetAttrString((PyObject *)sc->native, "str");
        if (!s) return -1;
        const char *u = PyUnicode_AsUTF8(s);
        if (!u || strlen(u) >= IDT_DTYPE_MAX) {
            if (u) PyErr_Format(PyExc_TypeError, "dtype %s is not supported", u);
            Py_DECREF(s);
            return -1;
        }
        strcpy(c->dtype, u);
        Py_DECREF(s);
        c->itemsize = PyDataType_ELSIZE(sc->native);
        if (!idt_dtype_allowed(c->kind, c->dtype, c->itemsize)) { /* the core's allow-list */
            if (c->kind == IDT_COL_LIST)
                PyErr_Format(PyExc_TypeError, "column '%s': list values must be bool, integers, "
                             "float16/32/64 or complex64/128, not %R", c->name, (PyObject *)sc->native);
            else
                PyErr_Format(PyExc_TypeError, "column '%s' has unsupported dtype %R", c->name,
                             (PyObject *)sc->native);
            return -1;
        }
    } else {
        strcpy(c->dtype, sc->kind == IDT_COL_UTF8 ? "U" : "S");
    }
    return 0;
}

/* "float32 with row shape (3,)" for a column description (new reference). */
static PyObject *col_type_str(const idt_column *c) {
    PyObject *dt;
    if (!idt_column_is_str(c)) {
        PyArray_Descr *d = NULL;
        PyObject *s = PyUnicode_FromString(c->dtype);
        if (!s) return NULL;
        int ok = PyArray_DescrConverter(s, &d);
        Py_DECREF(s);
        if (!ok) return NULL;
        dt = idt_column_is_list(c) ? PyUnicode_FromFormat("list of %S", (PyObject *)d)
                                   : PyObject_Str((PyObject *)d);
        Py_DECREF(d);
        if (dt && idt_column_is_list(c)) return dt;
    } else {
        dt = PyUnicode_FromString(c->kind == IDT_COL_UTF8 ? "str (U)" : "bytes (S)");
    }
    if (!dt) return NULL;
    PyObject *shape = PyTuple_New(c->ndim);
    for (int32_t q = 0; shape && q < c->ndim; q++) {
        PyObject *x = PyLong_FromLongLong(c->shape[q]);
        if (!x) Py_CLEAR(shape);
        else PyTuple_SET_ITEM(shape, q, x);
    }
    PyObject *r = shape ? PyUnicode_FromFormat("%U with row shape %R", dt, shape) : NULL;
    Py_DECREF(dt);
    Py_XDECREF(shape);
    return r;
}

/* Check a batch's column descriptions cd[0..nc) against a writer's schema: ValueError
 * naming the column and both types. */
static int check_schema(const idt_column *cd, Py_ssize_t nc, const idt_schema *expect) {
    for (Py_ssize_t i = 0; i < nc; i++) {
        int64_t k = idt_schema_find(expect, cd[i].name);
        if (k < 0) {
            PyObject *a = col_type_str(&cd[i]);
            if (a)
                PyErr_Format(PyExc_ValueError, "the batch has column '%s' (%U), which the writer's "
                             "schema does not have", cd[i].name, a);
            Py_XDECREF(a);
            return -1;
        }
        if (!idt_column_same(&cd[i], &expect->cols[k])) {
            PyObject *a = col_type_str(&cd[i]), *b = a ? col_type_str(&expect->cols[k]) : NULL;
            if (b)
                PyErr_Format(PyExc_ValueError, "column '%s': the batch has %U, the writer's schema "
                             "has %U", cd[i].name, a, b);
            Py_XDECREF(a);
            Py_XDECREF(b);
            return -1;
        }
    }
    for (int64_t k = 0; k < expect->ncols; k++) {
        Py_ssize_t i = 0;
        while (i < nc && strcmp(cd[i].name, expect->cols[k].name)) i++;
        if (i == nc) {
            PyObject *b = col_type_str(&expect->cols[k]);
            if (b)
                PyErr_Format(PyExc_ValueError, "the batch is missing column '%s' (%U)",
                             expect->cols[k].name, b);
            Py_XDECREF(b);
            return -1;
        }
    }
    return 0;
}

/* For a DataFrame, an Arrow table or a Hugging Face dataset passed where a dict of arrays is
 * expected: the sentence naming the TableView.from_* method to use (else ""). */
static const char *from_hint(PyObject *o) {
    PyObject *mod = PyObject_GetAttrString((PyObject *)Py_TYPE(o), "__module__");
    const char *m = mod && PyUnicode_Check(mod) ? PyUnicode_AsUTF8(mod) : NULL;
    const char *hint = "";
    if (!m) PyErr_Clear();
    else if (!strncmp(m, "pandas", 6)) hint = "; for a DataFrame use TableView.from_pandas(df)";
    else if (!strncmp(m, "datasets", 8))
        hint = "; for a Hugging Face dataset use TableView.from_hf(dataset)";
    else if (!strncmp(m, "pyarrow", 7) || PyObject_HasAttrString(o, "__arrow_c_stream__"))
        hint = "; for Arrow data (pyarrow, polars, DuckDB) use TableView.from_arrow(obj)";
    Py_XDECREF(mod);
    return hint;
}

/* Every column of a dict has the table's row count: the first column (`key`, `n` rows) sets
 * *nrows and *first; a later one with another count is a ValueError naming both. */
static int same_rows(int64_t *nrows, PyObject **first, PyObject *key, int64_t n) {
    if (*nrows < 0) {
        *nrows = n;
        *first = key;
    } else if (n != *nrows) {
        PyErr_Format(PyExc_ValueError, "columns differ in length: %R has %lld rows, %R has %lld",
                     *first, (long long)*nrows, key, (long long)n);
        return -1;
    }
    return 0;
}

int idt_py_build_store(idt_module_state *st, PyObject *columns, const char *what,
                       const idt_schema *expect, idt_blob_pool *pool, PyObject *progress,
                       idt_store **out, PyObject **names_out, int64_t **order_out) {
    *out = NULL;
    if (names_out) *names_out = NULL;
    if (order_out) *order_out = NULL;
    if (!PyDict_Check(columns)) {
        PyErr_Format(PyExc_TypeError, "%s takes a dict of column name -> array, not %s%s", what,
                     Py_TYPE(columns)->tp_name, from_hint(columns));
        return -1;
    }
    /* A snapshot holding strong references: code run while reading the arrays (a
     * column's __array__) may change the dict; names come from the dict as it was. */
    PyObject *items = PyDict_Items(columns);
    if (!items) return -1;
    Py_ssize_t nc = PyList_GET_SIZE(items);
    if (nc == 0) {
        Py_DECREF(items);
        PyErr_Format(PyExc_ValueError, "%s needs at least one column", what);
        return -1;
    }
    srccol *sc = PyMem_Calloc((size_t)nc, sizeof *sc);
    idt_column *cd = PyMem_Calloc((size_t)nc, sizeof *cd);
    int64_t *sbytes = PyMem_Calloc((size_t)nc, sizeof *sbytes);
    int64_t *order = PyMem_Calloc((size_t)nc, sizeof *order);
    int64_t *smax = PyMem_Calloc((size_t)nc, sizeof *smax);
    PyObject *names = PyTuple_New(nc);
    int result = -1;
    idt_schema *schema = NULL;
    idt_store_builder *builder = NULL;
    idt_py_prog pp = {0};
    idt_error err;
    int rc;
    if (!sc || !cd || !sbytes || !order || !smax || !names) {
        if (names) PyErr_NoMemory();
        goto done;
    }
    int64_t nrows = -1;
    PyObject *first_name = NULL;
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *key = PyTuple_GET_ITEM(kv, 0), *val = PyTuple_GET_ITEM(kv, 1);
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "column names must be str, not %s", Py_TYPE(key)->tp_name);
            goto done;
        }
        Py_INCREF(key);
        PyTuple_SET_ITEM(names, i, key);
        sc[i].name = key;
        const char *kname = expect ? PyUnicode_AsUTF8(key) : NULL;
        if (expect && !kname) goto done;
        int64_t ek = expect ? idt_schema_find(expect, kname) : -1;
        int want_list = ek >= 0 && idt_column_is_list(&expect->cols[ek]);
        if (want_list || !PyArray_Check(val) || PyArray_TYPE((PyArrayObject *)val) == NPY_OBJECT) {
            /* maybe a list column: a Ragged, or a list or object array of 1-D arrays (for a
             * writer whose schema has a list column here, rows of equal length too) */
            if (idt_py_ragged_load(st)) goto done;
            PyObject *rag = PyObject_CallFunctionObjArgs(st->as_list_column, val, key,
                                                         want_list ? Py_True : Py_False, NULL);
            if (!rag) goto done;
            if (rag != Py_None) {
                int r = list_column(st, key, rag, &sc[i]);
                Py_DECREF(rag);
                if (r) goto done;
                if (same_rows(&nrows, &first_name, key, col_rows(&sc[i]))) goto done;
                continue;
            }
            Py_DECREF(rag);
        }
        PyObject *got = PyArray_FromAny(val, NULL, 0, 0, 0, NULL);
        if (!got) goto done;
        /* Our own base-class view: Python code that runs later (another column's
         * __array__) may reshape or retype this very array object in place, and a
         * subclass's __getitem__ or __len__ may say anything; the view keeps the shape and
         * dtype that are checked here. */
        sc[i].arr = (PyArrayObject *)PyArray_View((PyArrayObject *)got, NULL, &PyArray_Type);
        Py_DECREF(got);
        if (!sc[i].arr) goto done;
        if (PyArray_NDIM(sc[i].arr) == 0) {
            PyErr_Format(PyExc_ValueError, "column %R is 0-dimensional; a column needs a row axis",
                         key);
            goto done;
        }
        if (same_rows(&nrows, &first_name, key, PyArray_DIM(sc[i].arr, 0))) goto done;
        if (classify(key, sc[i].arr, &sc[i])) goto done;
    }
    for (Py_ssize_t i = 0; i < nc; i++)
        if (fill_column_desc(&sc[i], sc[i].name, &cd[i])) goto done;
    if (expect && check_schema(cd, nc, expect)) goto done;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < nc; i++) total += nrows * sc[i].row_bytes;
    if (idt_py_prog_init(&pp, progress, total, what, "B")) goto done;
    /* Strings are measured first (the store's layout needs their sizes), except large NumPy
     * unicode columns: those are open columns, read once, their size found as they are
     * encoded (idt_store_builder_new_open). */
    for (Py_ssize_t i = 0; i < nc; i++) {
        sc[i].str_max = -1;
        if (!idt_column_is_str(&cd[i])) continue;
        if (sc[i].source == 'U')
            sc[i].str_max = idt_ucs4_open_bound(nrows * sc[i].row_elems, PyDataType_ELSIZE(sc[i].native) / 4);
        if (sc[i].str_max < 0 && measure_strings(&sc[i], nrows, PyUnicode_AsUTF8(sc[i].name)))
            goto done;
    }
    rc = idt_schema_new(cd, nc, &schema, &err);
    if (rc) {
        idt_py_raise(st, &err);
        goto done;
    }
    for (Py_ssize_t i = 0; i < nc; i++) order[i] = idt_schema_find(schema, cd[i].name);
    if (!(expect && nrows == 0)) { /* an empty batch adds nothing to a writer */
    build:
        for (Py_ssize_t i = 0; i < nc; i++) {
            sbytes[order[i]] = sc[i].str_bytes;
            smax[order[i]] = sc[i].str_max;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = idt_store_builder_new_open(schema, nrows, sbytes, smax, pool, &builder, &err);
        Py_END_ALLOW_THREADS
        if (rc) {
            idt_py_raise(st, &err);
            goto done;
        }
        int64_t done_bytes = 0;
        /* in the store's layout order (fixed columns by name, then strings), so the
         * builder sees fixed bytes in file order and hashes them as they come */
        for (int pass = 0; pass < 2; pass++)
            for (Py_ssize_t c = 0; c < nc; c++) {
                Py_ssize_t i = 0;
                while (order[i] != c) i++;
                if ((sc[i].kind == IDT_COL_FIXED) != (pass == 0)) continue;
                if (!write_column(st, &sc[i], builder, order[i], nrows, cd[i].name, &pp, &done_bytes))
                    continue;
                if (!idt_store_builder_overflowed(builder)) goto done;
                /* code points past U+1FFFFF (no Unicode text has them) took more than 4 bytes
                 * each: measure the open columns and build again */
                PyErr_Clear();
                Py_BEGIN_ALLOW_THREADS
                idt_store_builder_free(builder);
                Py_END_ALLOW_THREADS
                builder = NULL;
                for (Py_ssize_t k = 0; k < nc; k++)
                    if (sc[k].str_max >= 0) {
                        sc[k].str_max = -1;
                        if (measure_strings(&sc[k], nrows, PyUnicode_AsUTF8(sc[k].name))) goto done;
                    }
                goto build;
            }
        idt_store_builder *b = builder;
        builder = NULL;
        Py_BEGIN_ALLOW_THREADS
        rc = idt_store_builder_finish(b, out, &err);
        Py_END_ALLOW_THREADS
        if (rc) {
            idt_py_raise(st, &err);
            goto done;
        }
        if (idt_py_prog_step(&pp, total)) {
            idt_store_decref(*out);
            *out = NULL;
            goto done;
        }
    }
    if (names_out) {
        *names_out = names;
        names = NULL;
    }
    if (order_out) {
        *order_out = order;
        order = NULL;
    }
    result = 0;
done:
    idt_py_prog_close(&pp);
    if (builder) {
        Py_BEGIN_ALLOW_THREADS
        idt_store_builder_free(builder);
        Py_END_ALLOW_THREADS
    }
    idt_schema_decref(schema);
    if (sc)
        for (Py_ssize_t i = 0; i < nc; i++) {
            Py_XDECREF(sc[i].arr);
            Py_XDECREF(sc[i].loffs);
            Py_XDECREF(sc[i].native);
        }
    if (cd)
        for (Py_ssize_t i = 0; i < nc; i++) PyMem_Free(cd[i].shape);
    PyMem_Free(sc);
    PyMem_Free(cd);
    PyMem_Free(sbytes);
    PyMem_Free(order);
    PyMem_Free(smax);
    Py_XDECREF(names);
    Py_DECREF(items);
    return result;
}
