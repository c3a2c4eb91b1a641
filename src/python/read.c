/* read.c: Python keys to core row selections, column names to C strings, and reads of
 * selected rows into a dict of new NumPy arrays (the gather runs without the GIL). */
#include "module.h"

#include <string.h>

#include "../core/view.h"

/* ---- names ---- */

const char *idt_py_name_utf8(PyObject *name) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(name, &n);
    if (u && strlen(u) != (size_t)n) {
        PyErr_Format(PyExc_ValueError, "column name %R contains a NUL character", name);
        return NULL;
    }
    return u;
}

/* ---- keys ---- */

void idt_key_clear(idt_key *k) {
    PyMem_Free(k->owned);
    k->owned = NULL;
    k->idx = NULL;
    Py_CLEAR(k->shape_src);
}

/* Parse a row key against a view of `len` rows. */
int idt_parse_key(idt_module_state *st, PyObject *key, int64_t len, idt_key *k, int allow_int) {
    memset(k, 0, sizeof *k);
    if (PyBool_Check(key) || PyArray_IsScalar(key, Bool)) {
        PyErr_SetString(PyExc_TypeError, "a bool is not a row index; use a bool array as a mask");
        return -1;
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) return -1;
        Py_ssize_t n = PySlice_AdjustIndices((Py_ssize_t)len, &start, &stop, step);
        k->kind = KEY_RANGE;
        k->sel.start = start;
        k->sel.step = step;
        k->sel.count = n;
        return 0;
    }
    if (PyLong_Check(key) || (PyIndex_Check(key) && !PyArray_Check(key) && !PyList_Check(key))) {
        if (!allow_int) {
            PyErr_SetString(PyExc_TypeError, "an int is not accepted here; use a slice or an index array");
            return -1;
        }
        PyObject *o = PyNumber_Index(key);
        if (!o) return -1;
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        Py_DECREF(o);
        if (x == -1 && PyErr_Occurred()) return -1;
        if (overflow || x < -len || x >= len) {
            PyErr_Format(PyExc_IndexError, "index %R is out of range for %lld rows", key, (long long)len);
            return -1;
        }
        k->kind = KEY_INT;
        k->sel.start = x < 0 ? x + len : x;
        k->sel.step = 1;
        k->sel.count = 1;
        return 0;
    }
    if (!PyArray_Check(key) && !PyList_Check(key)) {
        PyErr_Format(PyExc_TypeError, "rows are selected by an int, a slice, an int array or list, "
                     "or a bool mask, not %s", Py_TYPE(key)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(key, NULL, 0, 0, 0, NULL);
    if (!a) return -1;
    int tn = PyArray_TYPE(a);
    /* [] is an empty index list; so is an empty 1-D bool array, as NumPy takes it */
    if (PyArray_SIZE(a) == 0 && (PyList_Check(key) || (tn == NPY_BOOL && PyArray_NDIM(a) == 1))) tn = NPY_INTP;
    if (tn == NPY_BOOL) {
        if (PyArray_NDIM(a) != 1) {
            PyErr_Format(PyExc_IndexError, "boolean mask must be 1-dimensional, not %d-dimensional",
                         PyArray_NDIM(a));
            Py_DECREF(a);
            return -1;
        }
        PyArrayObject *c = (PyArrayObject *)PyArray_FromAny((PyObject *)a, PyArray_DescrFromType(NPY_BOOL),
                                                            1, 1, NPY_ARRAY_C_CONTIGUOUS, NULL);
        Py_DECREF(a);
        if (!c) return -1;
        const uint8_t *m = PyArray_DATA(c);
        int64_t cnt, n = PyArray_DIM(c, 0);
        idt_error err;
        if (idt_mask_count(m, n, len, &cnt, &err)) { /* the core decides: IDT_EINDEX on length */
            Py_DECREF(c);
            idt_py_raise(st, &err);
            return -1;
        }
        k->owned = PyMem_Malloc((size_t)(cnt ? cnt : 1) * sizeof(int64_t));
        if (!k->owned) {
            Py_DECREF(c);
            PyErr_NoMemory();
            return -1;
        }
        idt_mask_rows(m, n, k->owned);
        Py_DECREF(c);
        k->kind = KEY_INDEX;
        k->idx = k->owned;
        k->sel.count = cnt;
        k->sel.idx = k->owned;
        return 0;
    }
    if (!PyTypeNum_ISINTEGER(tn)) {
        PyErr_Format(PyExc_TypeError, "index arrays must hold integers or bools, not %R",
                     (PyObject *)PyArray_DESCR(a));
        Py_DECREF(a);
        return -1;
    }
    if (tn == NPY_UINT64 || tn == NPY_ULONGLONG || tn == NPY_ULONG) {
        /* values above INT64_MAX would wrap when cast */
        PyObject *mx = PyArray_SIZE(a) ? PyArray_Max(a, NPY_RAVEL_AXIS, NULL) : NULL;
        if (mx) {
            /* the max is a NumPy scalar, not a Python int: convert through __index__ */
            PyObject *mi = PyNumber_Index(mx);
            Py_DECREF(mx);
            unsigned long long v = mi ? PyLong_AsUnsignedLongLong(mi) : (unsigned long long)-1;
            Py_XDECREF(mi);
            if (PyErr_Occurred()) {
                Py_DECREF(a);
                return -1;
            }
            if (v > (unsigned long long)INT64_MAX) {
                PyErr_Format(PyExc_IndexError, "index %llu is out of range for %lld rows", v, (long long)len);
                Py_DECREF(a);
                return -1;
            }
        } else if (PyErr_Occurred()) {
            Py_DECREF(a);
            return -1;
        }
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FromAny((PyObject *)a, PyArray_DescrFromType(NPY_INT64),
                                                        0, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                                                        NPY_ARRAY_FORCECAST, NULL);
    if (!c) {
        Py_DECREF(a);
        return -1;
    }
    int64_t n = PyArray_SIZE(c);
    k->owned = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (!k->owned) {
        Py_DECREF(a);
        Py_DECREF(c);
        PyErr_NoMemory();
        return -1;
    }
    idt_error err;
    if (idt_index_normalize(PyArray_DATA(c), k->owned, n, len, &err)) {
        idt_py_raise(st, &err);
        Py_DECREF(a);
        Py_DECREF(c);
        PyMem_Free(k->owned);
        k->owned = NULL;
        return -1;
    }
    Py_DECREF(c);
    k->shape_src = (PyObject *)a; /* output leading dims come from the key's shape */
    k->kind = KEY_INDEX;
    k->idx = k->owned;
    k->sel.count = n;
    k->sel.idx = k->owned;
    return 0;
}

/* ---- reads ---- */

/* Read the selected rows into a new dict. lead/nlead give the leading output dims (the
 * selection's count must equal their product). A list column gives a Ragged (its values and
 * int64 offsets gathered by the core), or for one row (nlead 0) that row's 1-D array. */
PyObject *idt_py_read(TableViewObject *self, const idt_rowsel *sel, const npy_intp *lead,
                      int nlead, int scalarize) {
    idt_module_state *st = idt_py_state_of((PyObject *)self);
    const idt_view *v = self->v;
    int64_t nc = v->ncols;
    int64_t *widths = PyMem_Malloc((size_t)nc * sizeof *widths);
    void **outs = PyMem_Calloc((size_t)nc, sizeof *outs);
    PyObject **arrs = PyMem_Calloc((size_t)nc, sizeof *arrs);
    PyObject **offs = PyMem_Calloc((size_t)nc, sizeof *offs); /* list columns' offsets */
    PyObject *dict = NULL;
    idt_error err;
    int nlists = 0;
    if (!widths || !outs || !arrs || !offs) {
        PyErr_NoMemory();
        goto done;
    }
    int rc;
    /* Releasing the GIL costs more than copying a few rows: keep it for tiny reads. */
    int release = sel->count > 64;
    for (int64_t j = 0; j < nc; j++) nlists += idt_column_is_list(idt_view_column(v, j));
    if (nlists && nlead > 1) {
        PyErr_SetString(PyExc_IndexError, "a table with list columns is read with a 1-D index "
                        "(a Ragged has one row axis); flatten the index array");
        goto done;
    }
    if (release) {
        Py_BEGIN_ALLOW_THREADS
        rc = idt_view_str_widths(v, sel, widths, &err);
        for (int64_t j = 0; !rc && j < nc; j++) /* list columns: their total values */
            if (idt_column_is_list(idt_view_column(v, j))) widths[j] = idt_view_str_bytes(v, sel, j);
        Py_END_ALLOW_THREADS
    } else {
        rc = idt_view_str_widths(v, sel, widths, &err);
        for (int64_t j = 0; !rc && j < nc; j++)
            if (idt_column_is_list(idt_view_column(v, j))) widths[j] = idt_view_str_bytes(v, sel, j);
    }
    if (rc) {
        idt_py_raise(st, &err);
        goto done;
    }
    for (int64_t j = 0; j < nc; j++) {
        const idt_column *c = idt_view_column(v, j);
        PyArray_Descr *d;
        if (idt_column_is_list(c)) {
            d = (PyArray_Descr *)PyTuple_GET_ITEM(self->descrs, j);
            Py_INCREF(d);
            npy_intp nv = (npy_intp)widths[j], no = (npy_intp)sel->count + 1;
            arrs[j] = PyArray_NewFromDescr(&PyArray_Type, d, 1, &nv, NULL, NULL, 0, NULL);
            if (!arrs[j]) goto done;
            offs[j] = PyArray_SimpleNew(1, &no, NPY_INT64);
            if (!offs[j]) goto done;
            continue;
        }
        if (!idt_column_is_str(c)) {
            d = (PyArray_Descr *)PyTuple_GET_ITEM(self->descrs, j);
            Py_INCREF(d);
        } else {
            d = PyArray_DescrNewFromType(idt_column_out_char(c) == 'U' ? NPY_UNICODE : NPY_STRING);
            if (!d) goto done;
            PyDataType_SET_ELSIZE(d, (npy_intp)(widths[j] * idt_column_char_bytes(c)));
        }
        npy_intp dims[NPY_MAXDIMS];
        int nd = 0;
        for (int q = 0; q < nlead; q++) dims[nd++] = lead[q];
        if (nlead + c->ndim > NPY_MAXDIMS) {
            Py_DECREF(d);
            PyErr_SetString(PyExc_ValueError, "result would have too many dimensions");
            goto done;
        }
        for (int32_t q = 0; q < c->ndim; q++) dims[nd++] = (npy_intp)c->shape[q];
        arrs[j] = PyArray_NewFromDescr(&PyArray_Type, d, nd, dims, NULL, NULL, 0, NULL);
        if (!arrs[j]) goto done;
        outs[j] = PyArray_DATA((PyArrayObject *)arrs[j]);
    }
    if (release) {
        Py_BEGIN_ALLOW_THREADS
        idt_view_gather(v, sel, outs, widths);
        for (int64_t j = 0; j < nc; j++)
            if (offs[j])
                idt_view_gather_packed(v, sel, j, PyArray_DATA((PyArrayObject *)offs[j]),
                                       PyArray_DATA((PyArrayObject *)arrs[j]));
        Py_END_ALLOW_THREADS
    } else {
        idt_view_gather(v, sel, outs, widths);
        for (int64_t j = 0; j < nc; j++)
            if (offs[j])
                idt_view_gather_packed(v, sel, j, PyArray_DATA((PyArrayObject *)offs[j]),
                                       PyArray_DATA((PyArrayObject *)arrs[j]));
    }
    dict = PyDict_New();
    if (!dict) goto done;
    for (int64_t j = 0; j < nc; j++) {
        PyObject *val = arrs[j];
        if (offs[j] && nlead > 0) { /* rows: a Ragged */
            val = idt_py_ragged_new(st, arrs[j], offs[j]);
            arrs[j] = offs[j] = NULL;
            if (!val) goto fail;
        } else if (offs[j]) { /* one row: its values */
            Py_INCREF(val);
        } else if (scalarize && PyArray_NDIM((PyArrayObject *)val) == 0) {
            val = PyArray_Return((PyArrayObject *)val); /* steals; 0-d -> NumPy scalar */
            arrs[j] = NULL;
            if (!val) goto fail;
        } else {
            Py_INCREF(val);
        }
        int r = PyDict_SetItem(dict, PyTuple_GET_ITEM(self->names, j), val);
        Py_DECREF(val);
        if (r) goto fail;
    }
    goto done;
fail:
    Py_CLEAR(dict);
done:
    if (arrs)
        for (int64_t j = 0; j < nc; j++) Py_XDECREF(arrs[j]);
    if (offs)
        for (int64_t j = 0; j < nc; j++) Py_XDECREF(offs[j]);
    PyMem_Free(arrs);
    PyMem_Free(offs);
    PyMem_Free(outs);
    PyMem_Free(widths);
    return dict;
}
