/* io.c: _from_parts(), the extension's entry point for data from other formats (Arrow's
 * layout: fixed-width buffers, strings as offsets + bytes, lists as offsets + values). The
 * Python package
 * (infinidata/_arrow.py) does the format work; this file only moves buffers. */
#include "module.h"

#include "../core/store.h"
#include "../core/sys.h"

/* One string or list piece of a column: n strings or lists in Arrow's layout. */
typedef struct strpart {
    const void *offsets;
    int off64;
    int64_t n;
    const char *data;
    Py_buffer buf;          /* the data's buffer (released at the end) */
    int has_buf;
} strpart;

typedef struct partcol {
    char kind;              /* 'F', 'U', 'S', 'L' (list) */
    PyArray_Descr *descr;   /* fixed: native-order dtype; list: the values' (owned) */
    PyObject *chunks;       /* PySequence_Fast of the chunks (owned) */
    strpart *sp;            /* strings and lists: one per chunk */
    idt_column cd;
    int64_t str_bytes;
} partcol;

/* Parse chunk list `chunks` of column pc: checks every piece (types, layouts, offsets) and
 * counts its rows. */
static int parse_chunks(idt_module_state *st, partcol *pc, const char *name, int64_t nrows) {
    Py_ssize_t nch = PySequence_Fast_GET_SIZE(pc->chunks);
    int64_t rows = 0, per = pc->cd.row_elems;
    if (pc->kind != 'F') {
        pc->sp = PyMem_Calloc((size_t)(nch ? nch : 1), sizeof *pc->sp);
        if (!pc->sp) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < nch; i++) {
        PyObject *ch = PySequence_Fast_GET_ITEM(pc->chunks, i);
        if (pc->kind == 'F') {
            if (!PyArray_Check(ch) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)ch) ||
                !PyArray_ISALIGNED((PyArrayObject *)ch) ||
                !PyArray_EquivTypes(PyArray_DESCR((PyArrayObject *)ch), pc->descr) ||
                PyArray_NDIM((PyArrayObject *)ch) < 1) {
                PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd is not a C-contiguous "
                             "array of %R", name, i, (PyObject *)pc->descr);
                return -1;
            }
            int64_t n = PyArray_DIM((PyArrayObject *)ch, 0);
            if (PyArray_SIZE((PyArrayObject *)ch) != n * per) {
                PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd does not hold whole rows", name, i);
                return -1;
            }
            rows += n;
            continue;
        }
        strpart *sp = &pc->sp[i];
        PyObject *offs, *data;
        if (!PyTuple_Check(ch) || !PyArg_ParseTuple(ch, "OO", &offs, &data)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd is not an (offsets, data) pair", name, i);
            return -1;
        }
        PyArrayObject *oa = (PyArrayObject *)offs;
        if (!PyArray_Check(offs) || PyArray_NDIM(oa) != 1 || !PyArray_IS_C_CONTIGUOUS(oa) ||
            !PyArray_ISALIGNED(oa) || PyArray_DIM(oa, 0) < 1 ||
            (PyArray_TYPE(oa) != NPY_INT32 && PyArray_TYPE(oa) != NPY_INT64) ||
            !PyArray_ISNOTSWAPPED(oa)) {
            PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd offsets must be a non-empty "
                         "contiguous 1-d int32 or int64 array", name, i);
            return -1;
        }
        sp->offsets = PyArray_DATA(oa);
        sp->off64 = PyArray_TYPE(oa) == NPY_INT64;
        sp->n = PyArray_DIM(oa, 0) - 1;
        int64_t dlen = 0;
        if (pc->kind == 'L') { /* the values: an array the chunk tuple keeps alive */
            PyArrayObject *va = (PyArrayObject *)data;
            if (!PyArray_Check(data) || PyArray_NDIM(va) != 1 || !PyArray_IS_C_CONTIGUOUS(va) ||
                !PyArray_ISALIGNED(va) || !PyArray_EquivTypes(PyArray_DESCR(va), pc->descr)) {
                PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd values must be a contiguous "
                             "1-d array of %R", name, i, (PyObject *)pc->descr);
                return -1;
            }
            sp->data = PyArray_DATA(va);
            dlen = PyArray_DIM(va, 0);
        } else if (data != Py_None) {
            if (PyObject_GetBuffer(data, &sp->buf, PyBUF_SIMPLE) < 0) return -1;
            sp->has_buf = 1;
            sp->data = sp->buf.buf;
            dlen = sp->buf.len;
        }
        idt_error err;
        if (idt_packed_check(sp->offsets, sp->off64, sp->n, dlen, &err)) {
            idt_py_raise_in(st, &err, "column '%s': chunk %zd: ", name, i);
            return -1;
        }
        if (per == 0 ? sp->n != 0 : sp->n % per) {
            PyErr_Format(PyExc_ValueError, "column '%s': chunk %zd does not hold whole rows", name, i);
            return -1;
        }
        rows += per ? sp->n / per : 0;
        if (pc->kind == 'L') /* values, all kept (no trailing-NUL rule) */
            pc->str_bytes += sp->off64 ? ((const int64_t *)sp->offsets)[sp->n] - ((const int64_t *)sp->offsets)[0]
                                       : ((const int32_t *)sp->offsets)[sp->n] - ((const int32_t *)sp->offsets)[0];
        else
            pc->str_bytes += sp->data ? idt_packed_len(sp->offsets, sp->off64, sp->n, sp->data) : 0;
    }
    if (per != 0 && rows != nrows) {
        PyErr_Format(PyExc_ValueError, "column '%s' has %lld rows, not %lld", name, (long long)rows,
                     (long long)nrows);
        return -1;
    }
    return 0;
}

/* Write every chunk of every column into the builder (GIL released by the caller). */
static int write_parts(partcol *pcs, int64_t nc, const int64_t *order, idt_store_builder *b,
                       PyArrayObject **fixed_data, idt_error *err) {
    int64_t fi = 0;
    for (int64_t c = 0; c < nc; c++) {
        partcol *pc = &pcs[c];
        Py_ssize_t nch = PySequence_Fast_GET_SIZE(pc->chunks);
        int64_t row = 0;
        for (Py_ssize_t i = 0; i < nch; i++) {
            int rc;
            if (pc->kind == 'F') {
                PyArrayObject *a = fixed_data[fi++];
                int64_t n = PyArray_DIM(a, 0);
                rc = idt_store_builder_write_fixed(b, order[c], row, n, PyArray_DATA(a), err);
                row += n;
            } else {
                strpart *sp = &pc->sp[i];
                rc = idt_store_builder_append_packed(b, order[c], sp->n, sp->offsets, sp->off64,
                                                     sp->data ? sp->data : "", err);
            }
            if (rc) return rc;
        }
    }
    return 0;
}

/* _from_parts(columns, nrows) -> TableView: one stored table of nrows rows from buffers.
 * columns: a list of (name, kind, dtype, row_shape, chunks) with kind 'F' (chunks: C-contiguous
 * arrays of `dtype`, native order, leading axis rows), 'U' / 'S' (chunks: (offsets, data)
 * pairs in Arrow's layout, offsets an int32 or int64 array, data any buffer or None; each
 * row holds prod(row_shape) strings) or 'L' (a list column of `dtype` values, row_shape ();
 * chunks: (offsets, values) pairs, offsets as for strings but counting values, values a
 * contiguous 1-d array of `dtype`). Columns keep the list's order. */
PyObject *idt_py_from_parts(PyObject *m, PyObject *args) {
    PyObject *cols;
    long long nrows;
    if (!PyArg_ParseTuple(args, "OL:_from_parts", &cols, &nrows)) return NULL;
    idt_module_state *st = PyModule_GetState(m);
    PyObject *seq = PySequence_Fast(cols, "_from_parts() takes a list of column tuples");
    if (!seq) return NULL;
    Py_ssize_t nc = PySequence_Fast_GET_SIZE(seq);
    partcol *pcs = PyMem_Calloc((size_t)(nc ? nc : 1), sizeof *pcs);
    int64_t *order = PyMem_Calloc((size_t)(nc ? nc : 1), sizeof *order);
    int64_t *sbytes = PyMem_Calloc((size_t)(nc ? nc : 1), sizeof *sbytes);
    PyArrayObject **fixed = NULL;
    idt_schema *schema = NULL;
    idt_store_builder *builder = NULL;
    PyObject *result = NULL;
    idt_error err;
    int rc;
    if (!pcs || !order || !sbytes) {
        PyErr_NoMemory();
        goto done;
    }
    if (nc == 0 || nrows < 0) {
        PyErr_SetString(PyExc_ValueError, "_from_parts() needs at least one column and nrows >= 0");
        goto done;
    }
    Py_ssize_t nfixed = 0;
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i), *name, *dt, *shape, *chunks;
        const char *kind;
        partcol *pc = &pcs[i];
        if (!PyTuple_Check(t) ||
            !PyArg_ParseTuple(t, "UsOOO", &name, &kind, &dt, &shape, &chunks))
            goto bad_tuple;
        if (strlen(kind) != 1 || !strchr("FUSL", kind[0]) || !PyTuple_Check(shape)) goto bad_tuple;
        if (kind[0] == 'L' && PyTuple_GET_SIZE(shape) != 0) goto bad_tuple;
        pc->kind = kind[0];
        pc->cd.name = (char *)PyUnicode_AsUTF8(name);
        if (!pc->cd.name) goto done;
        pc->cd.ndim = (int32_t)PyTuple_GET_SIZE(shape);
        if (pc->cd.ndim > IDT_MAXDIMS) goto bad_tuple;
        pc->cd.shape = PyMem_Calloc((size_t)(pc->cd.ndim ? pc->cd.ndim : 1), sizeof(int64_t));
        if (!pc->cd.shape) {
            PyErr_NoMemory();
            goto done;
        }
        pc->cd.row_elems = 1;
        for (int32_t q = 0; q < pc->cd.ndim; q++) {
            long long d = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, q));
            if (d == -1 && PyErr_Occurred()) goto done;
            if (d < 0) goto bad_tuple;
            pc->cd.shape[q] = d;
            pc->cd.row_elems *= d;
        }
        if (pc->kind == 'F' || pc->kind == 'L') {
            PyArray_Descr *d = NULL;
            if (!PyArray_DescrConverter(dt, &d)) goto done;
            pc->descr = PyArray_DescrNewByteorder(d, NPY_NATIVE);
            Py_DECREF(d);
            if (!pc->descr) goto done;
            if (!strchr("biufcmM", pc->descr->kind) || PyDataType_HASSUBARRAY(pc->descr)) {
                PyErr_Format(PyExc_TypeError, "column '%s': dtype %R is not fixed-width",
                             pc->cd.name, (PyObject *)pc->descr);
                goto done;
            }
            PyObject *s = PyObject_GetAttrString((PyObject *)pc->descr, "str");
            const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
            if (!u || strlen(u) >= IDT_DTYPE_MAX) {
                Py_XDECREF(s);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "dtype not supported");
                goto done;
            }
            strcpy(pc->cd.dtype, u);
            Py_DECREF(s);
            pc->cd.kind = pc->kind == 'L' ? IDT_COL_LIST : IDT_COL_FIXED;
            pc->cd.itemsize = PyDataType_ELSIZE(pc->descr);
        } else {
            pc->cd.kind = pc->kind == 'U' ? IDT_COL_UTF8 : IDT_COL_BYTES;
            strcpy(pc->cd.dtype, pc->kind == 'U' ? "U" : "S");
        }
        pc->chunks = PySequence_Fast(chunks, "chunks must be a list");
        if (!pc->chunks) goto done;
        if (pc->kind == 'F') nfixed += PySequence_Fast_GET_SIZE(pc->chunks);
        if (parse_chunks(st, pc, pc->cd.name, nrows)) goto done;
    }
    fixed = PyMem_Calloc((size_t)(nfixed ? nfixed : 1), sizeof *fixed);
    if (!fixed) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0, k = 0; i < nc; i++)
        if (pcs[i].kind == 'F')
            for (Py_ssize_t q = 0; q < PySequence_Fast_GET_SIZE(pcs[i].chunks); q++)
                fixed[k++] = (PyArrayObject *)PySequence_Fast_GET_ITEM(pcs[i].chunks, q);
    idt_column *cds = PyMem_Calloc((size_t)nc, sizeof *cds);
    if (!cds) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nc; i++) cds[i] = pcs[i].cd;
    rc = idt_schema_new(cds, nc, &schema, &err);
    PyMem_Free(cds);
    if (rc) {
        idt_py_raise(st, &err);
        goto done;
    }
    for (Py_ssize_t i = 0; i < nc; i++) {
        order[i] = idt_schema_find(schema, pcs[i].cd.name);
        sbytes[order[i]] = pcs[i].str_bytes;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = idt_store_builder_new(schema, nrows, sbytes, &builder, &err);
    if (!rc) rc = write_parts(pcs, nc, order, builder, fixed, &err);
    if (!rc) {
        idt_store *store;
        rc = idt_store_builder_finish(builder, &store, &err);
        builder = NULL;
        idt_view *v = NULL;
        if (!rc) {
            rc = idt_view_from_store(store, order, nc, &v, &err);
            idt_store_decref(store);
        }
        Py_BLOCK_THREADS
        if (!rc) result = idt_py_wrap_view(st, v);
        Py_UNBLOCK_THREADS
    }
    Py_END_ALLOW_THREADS
    if (rc) idt_py_raise(st, &err);
    goto done;
bad_tuple:
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "_from_parts(): each column is (name, 'F'|'U'|'S'|'L', "
                        "dtype, row_shape tuple (() for 'L'), chunks)");
    }
done:
    if (builder) {
        Py_BEGIN_ALLOW_THREADS
        idt_store_builder_free(builder);
        Py_END_ALLOW_THREADS
    }
    idt_schema_decref(schema);
    if (pcs)
        for (Py_ssize_t i = 0; i < nc; i++) {
            partcol *pc = &pcs[i];
            if (pc->sp) {
                Py_ssize_t nch = pc->chunks ? PySequence_Fast_GET_SIZE(pc->chunks) : 0;
                for (Py_ssize_t q = 0; q < nch; q++)
                    if (pc->sp[q].has_buf) PyBuffer_Release(&pc->sp[q].buf);
                PyMem_Free(pc->sp);
            }
            Py_XDECREF(pc->chunks);
            Py_XDECREF(pc->descr);
            PyMem_Free(pc->cd.shape);
        }
    PyMem_Free(pcs);
    PyMem_Free(order);
    PyMem_Free(sbytes);
    PyMem_Free(fixed);
    Py_DECREF(seq);
    return result;
}
