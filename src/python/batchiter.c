/* batchiter.c: the BatchIter type: the Python batch iterator over the core's idt_batcher. Batches reach NumPy
 * without a second copy: each array owns the buffer the worker gathered into. */
#include "module.h"

#include <string.h>

#include "../core/batch.h"
#include "../core/sys.h"

/* Threads: `it` is used with the GIL released (next() waiting for a batch, close() joining
 * the workers), so closing from one thread while another is inside next() must not free it
 * under that call. Every such use counts itself in `users` (changed only with the GIL held);
 * close() marks the iterator closed and stops the core iterator (which wakes a waiting
 * next()); whoever leaves last frees it. After a fork the child has none of the threads that
 * were counted: the counts are reset when the fork generation changes. */
typedef struct BatchIterObject {
    PyObject_HEAD
    idt_batcher *it;
    PyObject *descrs;   /* tuple, as TableViewObject.descrs */
    PyObject *names;    /* tuple of str */
    PyObject *lnames;   /* tuple: "<name>_lengths" for a padded list column, else None */
    int nexting;        /* a next() is running */
    int users;          /* calls using `it` with the GIL released */
    int closed;         /* close asked: `it` goes when the last user leaves */
    uint64_t gen;       /* fork generation the counts belong to */
    int64_t nbatches;   /* batches in total (kept after the iterator is closed) */
} BatchIterObject;

static void free_buffer(PyObject *cap) {
    idt_batch_buffer_release(PyCapsule_GetPointer(cap, "infinidata.buffer"));
}

/* Free the core iterator when it is closed and nobody uses it. */
static void free_if_unused(BatchIterObject *self) {
    if (self->users > 0 || !self->closed || !self->it) return;
    idt_batcher *it = self->it;
    self->it = NULL; /* before the GIL goes: other threads see a finished iterator */
    Py_BEGIN_ALLOW_THREADS
    idt_batcher_free(it);
    Py_END_ALLOW_THREADS
}

/* In a forked child, forget the threads of the parent counted as users. */
static void sync_generation(BatchIterObject *self) {
    uint64_t g = idt_batcher_generation();
    if (self->gen == g) return;
    self->gen = g;
    self->users = 0;
    self->nexting = 0;
    free_if_unused(self);
}

/* Count the caller as a user of the core iterator; returns it, or NULL when closed. */
static idt_batcher *iter_enter(BatchIterObject *self) {
    sync_generation(self);
    if (!self->it || self->closed) return NULL;
    self->users++;
    return self->it;
}

static void iter_leave(BatchIterObject *self) {
    if (self->users > 0) self->users--;
    free_if_unused(self);
}

/* Close: stop the core iterator (joining its workers, waking a next() in another thread)
 * and free it now, or when the last user leaves. Idempotent. */
static void close_iter(BatchIterObject *self) {
    idt_batcher *it = iter_enter(self);
    if (!it) return;
    self->closed = 1;
    Py_BEGIN_ALLOW_THREADS
    idt_batcher_stop(it);
    Py_END_ALLOW_THREADS
    iter_leave(self);
}

static void bi_dealloc(PyObject *o) {
    BatchIterObject *self = (BatchIterObject *)o;
    PyTypeObject *tp = Py_TYPE(o);
    PyObject_GC_UnTrack(o);
    close_iter(self);
    Py_CLEAR(self->descrs);
    Py_CLEAR(self->names);
    Py_CLEAR(self->lnames);
    tp->tp_free(o);
    Py_DECREF(tp);
}

static int bi_traverse(PyObject *o, visitproc visit, void *arg) {
    BatchIterObject *self = (BatchIterObject *)o;
    Py_VISIT(Py_TYPE(o));
    Py_VISIT(self->descrs);
    Py_VISIT(self->names);
    Py_VISIT(self->lnames);
    return 0;
}

static PyObject *bi_iter(PyObject *self) { return Py_NewRef(self); }

/* An array over the batch buffer *buf (taken: *buf becomes NULL; a capsule frees it with the
 * array). `descr` is consumed. NULL with an exception set. */
static PyObject *wrap_buffer(void **buf, PyArray_Descr *descr, int nd, npy_intp *dims) {
    PyObject *cap = PyCapsule_New(*buf, "infinidata.buffer", free_buffer);
    if (!cap) {
        Py_DECREF(descr);
        return NULL;
    }
    *buf = NULL; /* the capsule owns it now */
    PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, descr, nd, dims, NULL,
                                         PyCapsule_GetPointer(cap, "infinidata.buffer"),
                                         NPY_ARRAY_CARRAY, NULL);
    if (!arr) {
        Py_DECREF(cap);
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)arr, cap) < 0) { /* steals cap */
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

/* The dict of arrays for a finished batch; takes the buffers it wraps. A list column gives a
 * Ragged (values, offsets), or padded an (n, length) array plus "<name>_lengths". */
static PyObject *batch_dict(BatchIterObject *self, idt_batch *b, const idt_view *v) {
    idt_module_state *st = idt_py_state_of((PyObject *)self);
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int64_t j = 0; j < b->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        PyArray_Descr *descr;
        PyObject *dt = PyTuple_GET_ITEM(self->descrs, j), *arr;
        if (dt != Py_None) {
            descr = (PyArray_Descr *)Py_NewRef(dt);
        } else {
            descr = PyArray_DescrNewFromType(idt_column_out_char(c) == 'U' ? NPY_UNICODE : NPY_STRING);
            if (!descr) goto fail;
            PyDataType_SET_ELSIZE(descr, (npy_intp)(b->widths[j] * idt_column_char_bytes(c)));
        }
        npy_intp dims[NPY_MAXDIMS];
        dims[0] = (npy_intp)b->nrows;
        PyObject *lname = PyTuple_GET_ITEM(self->lnames, j), *lens = NULL;
        if (idt_column_is_list(c) && lname != Py_None) { /* padded */
            dims[1] = (npy_intp)b->widths[j];
            arr = wrap_buffer(&b->bufs[j], descr, 2, dims);
            lens = arr ? wrap_buffer(&b->aux[j], PyArray_DescrFromType(NPY_INT64), 1, dims) : NULL;
            if (!lens) Py_CLEAR(arr);
        } else if (idt_column_is_list(c)) {
            npy_intp nv = (npy_intp)b->widths[j], no = (npy_intp)b->nrows + 1;
            PyObject *vals = wrap_buffer(&b->bufs[j], descr, 1, &nv);
            PyObject *offs = vals ? wrap_buffer(&b->aux[j], PyArray_DescrFromType(NPY_INT64), 1, &no) : NULL;
            if (!offs) Py_CLEAR(vals);
            arr = idt_py_ragged_new(st, vals, offs);
        } else {
            for (int32_t q = 0; q < c->ndim; q++) dims[q + 1] = (npy_intp)c->shape[q];
            arr = wrap_buffer(&b->bufs[j], descr, 1 + c->ndim, dims);
        }
        if (!arr) goto fail;
        int r = PyDict_SetItem(d, PyTuple_GET_ITEM(self->names, j), arr);
        if (!r && lens) r = PyDict_SetItem(d, lname, lens);
        Py_DECREF(arr);
        Py_XDECREF(lens);
        if (r) goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *bi_next(PyObject *o) {
    BatchIterObject *self = (BatchIterObject *)o;
    sync_generation(self);
    if (!self->it || self->closed) return NULL;
    if (self->nexting) {
        PyErr_SetString(PyExc_ValueError, "batch iterator already executing in another thread");
        return NULL;
    }
    idt_batcher *it = iter_enter(self);
    Py_INCREF(o); /* alive until this call is done, whatever other threads drop */
    self->nexting = 1;
    idt_batch *b = NULL;
    idt_error err;
    int rc;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = idt_batcher_next(it, &b, 100, &err);
        Py_END_ALLOW_THREADS
        if (rc != IDT_NEXT_TIMEOUT) break;
        if (PyErr_CheckSignals()) break; /* KeyboardInterrupt and friends: stop the workers */
    }
    self->nexting = 0;
    PyObject *d = NULL;
    if (rc == IDT_NEXT_BATCH) {
        /* the view is alive while the iterator is: take column descriptions from it */
        d = batch_dict(self, b, idt_batcher_view(it));
        idt_batch_free(b);
    } else {
        if (rc < 0) idt_py_raise(idt_py_state_of(o), &err);
        close_iter(self); /* finished or failed: join the workers now, not at garbage collection */
    }
    iter_leave(self);
    Py_DECREF(o);
    return d;
}

static PyObject *bi_close(PyObject *o, PyObject *unused) {
    (void)unused;
    close_iter((BatchIterObject *)o);
    Py_RETURN_NONE;
}

static PyObject *bi_len(PyObject *o, PyObject *unused) {
    (void)unused;
    BatchIterObject *self = (BatchIterObject *)o;
    return PyLong_FromLongLong(self->nbatches);
}

/* len(it): the total number of batches (what tqdm takes as its total). */
static Py_ssize_t bi_length(PyObject *o) { return (Py_ssize_t)((BatchIterObject *)o)->nbatches; }

static PyObject *bi_workers(PyObject *o, void *closure) {
    (void)closure;
    BatchIterObject *self = (BatchIterObject *)o;
    return PyLong_FromLongLong(self->it ? idt_batcher_workers(self->it) : 0);
}

static PyObject *bi_stats(PyObject *o, PyObject *unused) {
    (void)unused;
    BatchIterObject *self = (BatchIterObject *)o;
    idt_batcher_stats st = {0};
    idt_batcher *it = iter_enter(self);
    if (it) {
        idt_batcher_get_stats(it, &st); /* a short lock: no need to drop the GIL */
        iter_leave(self);
    }
    return Py_BuildValue("{sLsLsLsL}", "inflight_bytes", (long long)st.inflight_bytes,
                         "peak_bytes", (long long)st.peak_bytes, "max_bytes", (long long)st.max_bytes,
                         "idle_workers", (long long)st.idle_workers);
}

static PyMethodDef bi_methods[] = {
    {"close", bi_close, METH_NOARGS, "close($self, /)\n--\n\nStop the iterator now: join its worker threads and free its batches."},
    {"num_batches", bi_len, METH_NOARGS, "num_batches($self, /)\n--\n\nNumber of batches the iterator yields in total (also len(it))."},
    {"_stats", bi_stats, METH_NOARGS,
     "_stats($self, /)\n--\n\n_stats() -> dict: test only: bytes of batches made and not yet taken (inflight_bytes), "
     "their peak, the byte cap, and workers waiting for room or finished (all 0 once closed)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef bi_getset[] = {
    {"workers", bi_workers, NULL, "Worker threads this iterator runs (0: on demand in the caller, as an iterator inherited through fork does in the child).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot bi_slots[] = {
    {Py_tp_dealloc, bi_dealloc},
    {Py_tp_traverse, bi_traverse},
    {Py_tp_iter, bi_iter},
    {Py_tp_iternext, bi_next},
    {Py_sq_length, bi_length},
    {Py_tp_methods, bi_methods},
    {Py_tp_getset, bi_getset},
    {Py_tp_doc, "Iterator over batches of a TableView; made by TableView.batch_iter."},
    {0, NULL},
};

PyType_Spec idt_batchiter_spec = {
    "infinidata.BatchIter", sizeof(BatchIterObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION, bi_slots,
};

/* Parse pad= ({name: (pad_value, length)}, or None) for view `v` into pads[] (v->ncols
 * entries) and lnames (a tuple: "<name>_lengths" per padded column, else None). 0, or -1
 * with KeyError (unknown column), TypeError (not a list column, bad entry) or ValueError
 * (negative length, a "_lengths" name taken by a column) set. */
static int parse_pads(idt_module_state *st, const idt_view *v, PyObject *descrs, PyObject *pad,
                      idt_list_pad *pads, PyObject *lnames) {
    for (int64_t j = 0; j < v->ncols; j++) {
        pads[j].length = -1;
        memset(pads[j].value, 0, sizeof pads[j].value);
        PyTuple_SET_ITEM(lnames, j, Py_NewRef(Py_None));
    }
    if (pad == Py_None) return 0;
    if (!PyDict_Check(pad)) {
        PyErr_Format(PyExc_TypeError, "pad must be a dict of list column name -> (pad_value, length), "
                     "not %s", Py_TYPE(pad)->tp_name);
        return -1;
    }
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(pad, &pos, &key, &val)) {
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "pad keys must be column names (str), not %s", Py_TYPE(key)->tp_name);
            return -1;
        }
        const char *name = idt_py_name_utf8(key);
        if (!name) return -1;
        idt_error err;
        int64_t j = idt_view_find_column(v, name, &err);
        if (j < 0) {
            idt_py_raise(st, &err);
            return -1;
        }
        const idt_column *c = idt_view_column(v, j);
        if (!idt_column_is_list(c)) {
            PyErr_Format(PyExc_TypeError, "pad['%s']: only list columns are padded; this column is %s",
                         name, idt_column_kind_name(c->kind));
            return -1;
        }
        if (!PyTuple_Check(val) || PyTuple_GET_SIZE(val) != 2) {
            PyErr_Format(PyExc_TypeError, "pad['%s'] must be a (pad_value, length) tuple, not %R", name, val);
            return -1;
        }
        PyObject *lo = PyTuple_GET_ITEM(val, 1);
        if (!PyIndex_Check(lo) || PyBool_Check(lo)) {
            PyErr_Format(PyExc_TypeError, "pad['%s']: length must be an int, not %s", name, Py_TYPE(lo)->tp_name);
            return -1;
        }
        PyObject *li = PyNumber_Index(lo);
        if (!li) return -1;
        int overflow = 0;
        long long L = PyLong_AsLongLongAndOverflow(li, &overflow);
        Py_DECREF(li);
        if (L == -1 && PyErr_Occurred()) return -1;
        if (overflow || L < 0 || L > ((long long)1 << 40)) {
            PyErr_Format(PyExc_ValueError, "pad['%s']: length %lld out of range (0 to 2^40)", name, L);
            return -1;
        }
        /* the pad value in the column's dtype, as numpy.full would make it */
        PyArray_Descr *descr = (PyArray_Descr *)Py_NewRef(PyTuple_GET_ITEM(descrs, j));
        PyObject *a = PyArray_FromAny(PyTuple_GET_ITEM(val, 0), descr, 0, 0, NPY_ARRAY_CARRAY, NULL);
        if (!a) return -1;
        if (PyArray_NDIM((PyArrayObject *)a) != 0) {
            Py_DECREF(a);
            PyErr_Format(PyExc_TypeError, "pad['%s']: the pad value must be a scalar", name);
            return -1;
        }
        memcpy(pads[j].value, PyArray_DATA((PyArrayObject *)a), (size_t)c->itemsize);
        Py_DECREF(a);
        pads[j].length = L;
        PyObject *ln = PyUnicode_FromFormat("%s_lengths", name);
        if (!ln) return -1;
        if (idt_view_find(v, PyUnicode_AsUTF8(ln)) >= 0) {
            PyErr_Format(PyExc_ValueError, "pad['%s']: the batch's '%U' would replace the column of "
                         "that name", name, ln);
            Py_DECREF(ln);
            return -1;
        }
        PyObject *old = PyTuple_GET_ITEM(lnames, j);
        PyTuple_SET_ITEM(lnames, j, ln);
        Py_DECREF(old);
    }
    return 0;
}

/* Start a batch iterator over `v` (a reference is taken by the iterator), with the column
 * descriptions of `tmpl`. */
PyObject *idt_py_batchiter_start(idt_module_state *st, idt_view *v, PyObject *descrs, int64_t bs,
                            int drop, int64_t threads, int64_t readahead, PyObject *pad) {
    idt_batcher *it;
    idt_error err;
    int rc;
    PyObject *lnames = PyTuple_New(v->ncols);
    idt_list_pad *pads = PyMem_Calloc((size_t)(v->ncols ? v->ncols : 1), sizeof *pads);
    if (!lnames || !pads) {
        Py_XDECREF(lnames);
        PyMem_Free(pads);
        return PyErr_NoMemory();
    }
    if (parse_pads(st, v, descrs, pad, pads, lnames)) {
        Py_DECREF(lnames);
        PyMem_Free(pads);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = idt_batcher_new_padded(v, bs, drop, threads, readahead, pads, &it, &err);
    Py_END_ALLOW_THREADS
    PyMem_Free(pads);
    if (rc) {
        Py_DECREF(lnames);
        return idt_py_raise(st, &err);
    }
    BatchIterObject *self = PyObject_GC_New(BatchIterObject, (PyTypeObject *)st->BatchIter_Type);
    if (!self) {
        idt_batcher_free(it);
        Py_DECREF(lnames);
        return NULL;
    }
    self->it = it;
    self->lnames = lnames;
    self->nexting = 0;
    self->users = 0;
    self->closed = 0;
    self->gen = idt_batcher_generation();
    self->nbatches = idt_batcher_count(it);
    self->descrs = Py_NewRef(descrs);
    self->names = PyTuple_New(v->ncols);
    for (int64_t j = 0; self->names && j < v->ncols; j++) {
        PyObject *s = PyUnicode_FromString(idt_view_column(v, j)->name);
        if (!s) {
            Py_CLEAR(self->names);
            break;
        }
        PyTuple_SET_ITEM(self->names, j, s);
    }
    PyObject_GC_Track(self);
    if (!self->names) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}
