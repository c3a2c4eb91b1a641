/* writer.c: _Writer, the binding of the core writer (src/core/writer.h). The Python class
 * infinidata.TableWriter wraps it (context manager, warnings, a lock, the bar). */
#include "module.h"

#include <unistd.h>

#include "../core/writer.h"

typedef struct WriterObject {
    PyObject_HEAD
    idt_writer *w;      /* NULL once finished or aborted */
    PyObject *names;    /* tuple: display order of the columns, or NULL before the schema */
    pid_t pid;          /* the process that made it */
    int busy;           /* a call is running with the GIL released */
} WriterObject;

/* One schema entry (dtype-like, shape) into a column description (name borrowed); a shape of
 * "list" (as TableView.schema gives for a list column) makes a list column of that dtype. */
static int parse_entry(PyObject *name, PyObject *spec, idt_column *c) {
    memset(c, 0, sizeof *c);
    c->name = (char *)PyUnicode_AsUTF8(name);
    if (!c->name) return -1;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2) {
        PyErr_Format(PyExc_TypeError, "schema['%s'] must be a (dtype, row_shape) tuple, as "
                     "TableView.schema gives, not %R", c->name, spec);
        return -1;
    }
    PyArray_Descr *d = NULL;
    if (!PyArray_DescrConverter(PyTuple_GET_ITEM(spec, 0), &d)) return -1;
    PyObject *sh = PyTuple_GET_ITEM(spec, 1);
    int is_list = PyUnicode_Check(sh) && PyUnicode_CompareWithASCIIString(sh, "list") == 0;
    char kind = d->kind;
    int ok = 0;
    if (is_list && !strchr("biufc", kind)) {
        PyErr_Format(PyExc_TypeError, "schema['%s']: list values must be bool, integers, floats or "
                     "complex, not %R", c->name, (PyObject *)d);
    } else if (PyDataType_HASFIELDS(d) || PyDataType_HASSUBARRAY(d) || kind == 'V') {
        PyErr_Format(PyExc_TypeError, "schema['%s']: structured/void dtype %R is not supported",
                     c->name, (PyObject *)d);
    } else if (kind == 'U' || kind == 'T') {
        c->kind = IDT_COL_UTF8;
        strcpy(c->dtype, "U");
        ok = 1;
    } else if (kind == 'S') {
        c->kind = IDT_COL_BYTES;
        strcpy(c->dtype, "S");
        ok = 1;
    } else if (kind == 'O') {
        PyErr_Format(PyExc_ValueError, "schema['%s']: object dtype is ambiguous; use 'U' (str) "
                     "or 'S' (bytes)", c->name);
    } else if (strchr("biufcmM", kind)) {
        PyArray_Descr *n = PyArray_DescrNewByteorder(d, NPY_NATIVE);
        PyObject *s = n ? PyObject_GetAttrString((PyObject *)n, "str") : NULL;
        const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
        if (u && strlen(u) < IDT_DTYPE_MAX) {
            strcpy(c->dtype, u);
            c->kind = is_list ? IDT_COL_LIST : IDT_COL_FIXED;
            c->itemsize = PyDataType_ELSIZE(n);
            ok = 1;
        } else if (u) {
            PyErr_Format(PyExc_TypeError, "dtype %s is not supported", u);
        }
        Py_XDECREF(s);
        Py_XDECREF(n);
    } else {
        PyErr_Format(PyExc_TypeError, "schema['%s']: unsupported dtype %R", c->name, (PyObject *)d);
    }
    Py_DECREF(d);
    if (!ok) return -1;
    if (is_list) return 0; /* ndim 0 */
    PyObject *shape = PySequence_Tuple(PyTuple_GET_ITEM(spec, 1));
    if (!shape) {
        PyErr_Format(PyExc_TypeError, "schema['%s']: the row shape must be a tuple of ints", c->name);
        return -1;
    }
    Py_ssize_t nd = PyTuple_GET_SIZE(shape);
    if (nd > NPY_MAXDIMS - 1) {
        PyErr_Format(PyExc_ValueError, "schema['%s']: %zd row dimensions (at most %d)", c->name, nd,
                     NPY_MAXDIMS - 1);
        Py_DECREF(shape);
        return -1;
    }
    c->ndim = (int32_t)nd;
    c->shape = nd ? PyMem_Malloc((size_t)nd * sizeof(int64_t)) : NULL;
    if (nd && !c->shape) {
        Py_DECREF(shape);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t q = 0; q < nd; q++) {
        PyObject *x = PyTuple_GET_ITEM(shape, q);
        long long v = PyIndex_Check(x) && !PyBool_Check(x) ? PyLong_AsLongLong(x) : -2;
        if (v < 0) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "schema['%s']: bad row shape %R", c->name, shape);
            }
            Py_DECREF(shape);
            return -1;
        }
        c->shape[q] = v;
    }
    Py_DECREF(shape);
    return 0;
}

/* Make the core writer from a schema dict; sets self->names. */
static int writer_from_schema(WriterObject *self, idt_module_state *st, PyObject *schema) {
    if (!PyDict_Check(schema)) {
        PyErr_Format(PyExc_TypeError, "schema must be a dict of name -> (dtype, row_shape), not %s",
                     Py_TYPE(schema)->tp_name);
        return -1;
    }
    PyObject *items = PyDict_Items(schema);
    if (!items) return -1;
    Py_ssize_t n = PyList_GET_SIZE(items);
    idt_column *cd = PyMem_Calloc((size_t)(n ? n : 1), sizeof *cd);
    PyObject *names = PyTuple_New(n);
    int rc = -1;
    if (!cd || !names) {
        if (names) PyErr_NoMemory();
        goto done;
    }
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "a schema needs at least one column");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *k = PyTuple_GET_ITEM(kv, 0);
        if (!PyUnicode_Check(k)) {
            PyErr_Format(PyExc_TypeError, "column names must be str, not %s", Py_TYPE(k)->tp_name);
            goto done;
        }
        Py_INCREF(k);
        PyTuple_SET_ITEM(names, i, k);
        if (parse_entry(k, PyTuple_GET_ITEM(kv, 1), &cd[i])) goto done;
    }
    idt_schema *s;
    idt_error err;
    if (idt_schema_new(cd, n, &s, &err)) {
        idt_py_raise(st, &err);
        goto done;
    }
    int r = idt_writer_new(s, &self->w, &err);
    idt_schema_decref(s);
    if (r) {
        idt_py_raise(st, &err);
        goto done;
    }
    self->names = names;
    names = NULL;
    rc = 0;
done:
    if (cd)
        for (Py_ssize_t i = 0; i < n; i++) PyMem_Free(cd[i].shape);
    PyMem_Free(cd);
    Py_XDECREF(names);
    Py_DECREF(items);
    return rc;
}

static PyObject *wr_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"schema", NULL};
    PyObject *schema = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:_Writer", kwlist, &schema)) return NULL;
    WriterObject *self = (WriterObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->pid = getpid();
    if (schema != Py_None && writer_from_schema(self, idt_py_state_of_type(type), schema)) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void wr_dealloc(PyObject *o) {
    WriterObject *self = (WriterObject *)o;
    PyTypeObject *tp = Py_TYPE(o);
    if (self->w) {
        idt_writer *w = self->w;
        self->w = NULL;
        Py_BEGIN_ALLOW_THREADS
        idt_writer_free(w); /* in a forked child this only unmaps: files are the parent's */
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->names);
    tp->tp_free(o);
    Py_DECREF(tp);
}

/* Refuse calls on a finished writer, from another process, or while another call runs. */
static int usable(WriterObject *self, int need_writer) {
    if (self->pid != getpid()) {
        PyErr_Format(PyExc_RuntimeError, "this TableWriter belongs to process %d; a forked child "
                     "cannot use it", (int)self->pid);
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this TableWriter is in use by another thread");
        return 0;
    }
    if (need_writer && !self->w && self->names) {
        PyErr_SetString(PyExc_ValueError, "this TableWriter is finished or aborted");
        return 0;
    }
    return 1;
}

static PyObject *wr_append(PyObject *o, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"batch", NULL};
    WriterObject *self = (WriterObject *)o;
    PyObject *batch;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:append", kwlist, &batch)) return NULL;
    if (!usable(self, 1)) return NULL;
    idt_module_state *st = idt_py_state_of(o);
    idt_store *piece = NULL;
    PyObject *names = NULL;
    self->busy = 1;
    int first = self->w == NULL;
    int r = idt_py_build_store(st, batch, "TableWriter.append()", first ? NULL : idt_writer_schema(self->w),
                               first ? NULL : idt_writer_pool(self->w), Py_False, &piece,
                               first ? &names : NULL, NULL);
    self->busy = 0;
    if (r) return NULL;
    idt_error err;
    int rc = 0;
    if (first) { /* the first batch gives the schema */
        rc = idt_writer_new(piece->schema, &self->w, &err);
        if (rc) {
            idt_store_decref(piece);
            Py_DECREF(names);
            return idt_py_raise(st, &err);
        }
        self->names = names;
    }
    if (piece) {
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        rc = idt_writer_add(self->w, piece, NULL, &err);
        idt_store_decref(piece);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (rc) return idt_py_raise(st, &err);
    }
    Py_RETURN_NONE;
}

static PyObject *wr_finish(PyObject *o, PyObject *unused) {
    (void)unused;
    WriterObject *self = (WriterObject *)o;
    if (!usable(self, 1)) return NULL;
    if (!self->w) {
        PyErr_SetString(PyExc_ValueError, "a TableWriter with no schema and no batch cannot "
                        "finish: pass schema= to make an empty table");
        return NULL;
    }
    idt_module_state *st = idt_py_state_of(o);
    Py_ssize_t nc = PyTuple_GET_SIZE(self->names);
    int64_t *cols = PyMem_Malloc((size_t)nc * sizeof *cols);
    if (!cols) return PyErr_NoMemory();
    idt_schema *s = idt_writer_schema(self->w);
    for (Py_ssize_t j = 0; j < nc; j++)
        cols[j] = idt_schema_find(s, PyUnicode_AsUTF8(PyTuple_GET_ITEM(self->names, j)));
    idt_writer *w = self->w;
    self->w = NULL;
    idt_view *v;
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_writer_finish(w, cols, nc, &v, &err);
    Py_END_ALLOW_THREADS
    PyMem_Free(cols);
    if (rc) return idt_py_raise(st, &err);
    return idt_py_wrap_view(st, v);
}

static PyObject *wr_abort(PyObject *o, PyObject *unused) {
    (void)unused;
    WriterObject *self = (WriterObject *)o;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this TableWriter is in use by another thread");
        return NULL;
    }
    if (!self->names) self->names = PyTuple_New(0); /* marks it closed */
    if (self->w) {
        idt_writer *w = self->w;
        self->w = NULL;
        Py_BEGIN_ALLOW_THREADS
        idt_writer_free(w);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *wr_get_rows(PyObject *o, void *c) {
    (void)c;
    WriterObject *self = (WriterObject *)o;
    return PyLong_FromLongLong(self->w ? idt_writer_rows(self->w) : 0);
}

static PyObject *wr_get_pieces(PyObject *o, void *c) {
    (void)c;
    WriterObject *self = (WriterObject *)o;
    return PyLong_FromLongLong(self->w ? idt_writer_pieces(self->w) : 0);
}

static PyObject *wr_get_open(PyObject *o, void *c) {
    (void)c;
    WriterObject *self = (WriterObject *)o;
    return PyBool_FromLong(self->w != NULL || self->names == NULL);
}

static PyMethodDef wr_methods[] = {
    {"append", (PyCFunction)(void (*)(void))wr_append, METH_VARARGS | METH_KEYWORDS,
     "append(batch): add the rows of a dict of arrays."},
    {"finish", wr_finish, METH_NOARGS, "finish() -> TableView."},
    {"abort", wr_abort, METH_NOARGS, "abort(): drop everything written (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef wr_getset[] = {
    {"rows", wr_get_rows, NULL, "rows appended so far", NULL},
    {"pieces", wr_get_pieces, NULL, "stores held so far (after merging small ones)", NULL},
    {"open", wr_get_open, NULL, "neither finished nor aborted", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wr_slots[] = {
    {Py_tp_new, wr_new},
    {Py_tp_dealloc, wr_dealloc},
    {Py_tp_methods, wr_methods},
    {Py_tp_getset, wr_getset},
    {Py_tp_doc, "_Writer(schema=None): the engine of infinidata.TableWriter."},
    {0, NULL},
};

PyType_Spec idt_writer_spec = {
    "infinidata._Writer", sizeof(WriterObject), 0, Py_TPFLAGS_DEFAULT, wr_slots,
};
