/* tableview.c: the TableView type: its spec, slots, methods and properties. Each method
 * parses its arguments, calls the core with the GIL released where it is long, and maps
 * the result (a new view, arrays, or an error) back to Python. No engine logic. */
#include "module.h"

#include <string.h>
#include <structmember.h>
#include <unistd.h>

#include "../core/batch.h"
#include "../core/pack.h"
#include "../core/persist.h"
#include "../core/sort.h"
#include "../core/store.h"
#include "../core/sys.h"
#include "../core/tmp.h"
#include "../core/view.h"

/* ---- the object ---- */


/* Make a new TableView owning `v` (the reference is consumed). Validates that each fixed
 * column's dtype string is one NumPy understands with the stored itemsize. */
PyObject *idt_py_wrap_view(idt_module_state *st, idt_view *v) {
    TableViewObject *self = PyObject_GC_New(TableViewObject, (PyTypeObject *)st->TableView_Type);
    if (!self) {
        idt_view_decref(v);
        return NULL;
    }
    self->v = v;
    self->descrs = NULL;
    self->names = NULL;
    self->weakreflist = NULL;
    PyObject *descrs = PyTuple_New(v->ncols);
    if (!descrs) goto fail;
    self->descrs = descrs;
    self->names = PyTuple_New(v->ncols);
    if (!self->names) goto fail;
    for (int64_t j = 0; j < v->ncols; j++) {
        PyObject *nm = PyUnicode_FromString(idt_view_column(v, j)->name);
        if (!nm) goto fail;
        PyTuple_SET_ITEM(self->names, j, nm);
    }
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        PyObject *d = Py_None;
        if (!idt_column_is_str(c)) { /* fixed rows, or a list column's values */
            PyArray_Descr *descr = NULL;
            PyObject *s = PyUnicode_FromString(c->dtype);
            if (!s) goto fail;
            int ok = PyArray_DescrConverter(s, &descr);
            Py_DECREF(s);
            /* the core let only its allow-list through (idt_dtype_allowed); this is a
             * second line: never hand NumPy a dtype holding references */
            if (!ok || !descr || PyDataType_ELSIZE(descr) != c->itemsize ||
                PyDataType_HASFIELDS(descr) || PyDataType_HASSUBARRAY(descr) ||
                PyDataType_REFCHK(descr) || !strchr("biufcmM", descr->kind)) {
                Py_XDECREF(descr);
                PyErr_Clear();
                PyErr_Format(st->CorruptDataError, "column '%s': dtype '%s' does not match its itemsize %lld",
                             c->name, c->dtype, (long long)c->itemsize);
                goto fail;
            }
            d = (PyObject *)descr;
        } else {
            Py_INCREF(d);
        }
        PyTuple_SET_ITEM(descrs, j, d);
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
fail:
    PyObject_GC_Track(self);
    Py_DECREF(self);
    return NULL;
}

static int idt_tv_traverse(PyObject *o, visitproc visit, void *arg) {
    TableViewObject *self = (TableViewObject *)o;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->descrs);
    Py_VISIT(self->names);
    return 0;
}

static void idt_tv_dealloc(PyObject *o) {
    TableViewObject *self = (TableViewObject *)o;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    Py_CLEAR(self->descrs);
    Py_CLEAR(self->names);
    if (self->v) {
        idt_view *v = self->v;
        self->v = NULL;
        Py_BEGIN_ALLOW_THREADS
        idt_view_decref(v);
        Py_END_ALLOW_THREADS
    }
    tp->tp_free(self);
    Py_DECREF(tp);
}

static Py_ssize_t idt_tv_len(PyObject *self) { return (Py_ssize_t)idt_view_len(((TableViewObject *)self)->v); }


/* ---- construction and reads ---- */

static PyObject *idt_tv_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"columns", "progress", NULL};
    PyObject *columns, *progress = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$O:TableView", kwlist, &columns, &progress))
        return NULL;
    idt_module_state *st = idt_py_state_of_type(type);
    idt_store *store;
    int64_t *order;
    if (idt_py_build_store(st, columns, "TableView()", NULL, NULL, progress, &store, NULL, &order))
        return NULL;
    idt_view *v;
    idt_error err;
    int rc = idt_view_from_store(store, order, store->schema->ncols, &v, &err);
    idt_store_decref(store);
    PyMem_Free(order);
    if (rc) return idt_py_raise(st, &err);
    return idt_py_wrap_view(st, v);
}
static PyObject *idt_tv_getitem(PyObject *o, PyObject *key) {
    TableViewObject *self = (TableViewObject *)o;
    idt_key k;
    if (idt_parse_key(idt_py_state_of(o), key, idt_view_len(self->v), &k, 1)) return NULL;
    PyObject *r;
    if (k.kind == KEY_INT) {
        r = idt_py_read(self, &k.sel, NULL, 0, 1);
    } else if (k.kind == KEY_RANGE) {
        npy_intp lead = (npy_intp)k.sel.count;
        r = idt_py_read(self, &k.sel, &lead, 1, 0);
    } else {
        npy_intp lead[NPY_MAXDIMS];
        int nlead = 1;
        lead[0] = (npy_intp)k.sel.count;
        if (k.shape_src) {
            nlead = PyArray_NDIM((PyArrayObject *)k.shape_src);
            for (int q = 0; q < nlead; q++) lead[q] = PyArray_DIM((PyArrayObject *)k.shape_src, q);
        }
        r = idt_py_read(self, &k.sel, lead, nlead, nlead == 0);
    }
    idt_key_clear(&k);
    return r;
}

/* ---- methods that make views, and properties ---- */

#define TV(o) ((TableViewObject *)(o))

static PyObject *finish(PyObject *self, int rc, idt_view *out, idt_error *err) {
    idt_module_state *st = idt_py_state_of(self);
    if (rc) return idt_py_raise(st, err);
    return idt_py_wrap_view(st, out);
}

static PyObject *tv_uuid(PyObject *self, PyObject *unused) {
    (void)unused;
    return PyUnicode_FromString(TV(self)->v->uuid);
}

static PyObject *tv_new_view(PyObject *self, PyObject *key) {
    idt_view *v = TV(self)->v, *out = NULL;
    idt_key k;
    if (idt_parse_key(idt_py_state_of(self), key, idt_view_len(v), &k, 1)) return NULL;
    idt_error err;
    int rc;
    idt_py_prog pp;
    idt_py_prog_init(&pp, Py_False, -1, NULL, NULL); /* Ctrl-C only */
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    if (k.kind == KEY_INDEX) rc = idt_view_take(v, k.sel.idx, k.sel.count, &out, &err);
    else rc = idt_view_slice(v, k.sel.start, k.sel.step, k.sel.count, &out, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    idt_key_clear(&k);
    return finish(self, rc, out, &err);
}

static PyObject *tv_shuffle(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"seed", NULL};
    PyObject *seedobj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:shuffle", kwlist, &seedobj)) return NULL;
    uint64_t seed;
    if (seedobj == Py_None) {
        idt_random_bytes(&seed, sizeof seed);
    } else {
        if (PyBool_Check(seedobj) || !PyIndex_Check(seedobj)) {
            PyErr_Format(PyExc_TypeError, "seed must be an int or None, not %s", Py_TYPE(seedobj)->tp_name);
            return NULL;
        }
        PyObject *o = PyNumber_Index(seedobj);
        if (!o) return NULL;
        PyObject *zero = PyLong_FromLong(0);
        int neg = zero ? PyObject_RichCompareBool(o, zero, Py_LT) : -1;
        Py_XDECREF(zero);
        if (neg < 0) {
            Py_DECREF(o);
            return NULL;
        }
        unsigned long long s = neg ? 0 : PyLong_AsUnsignedLongLong(o);
        Py_DECREF(o);
        if (neg || (s == (unsigned long long)-1 && PyErr_Occurred())) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "seed must be between 0 and 2**64 - 1");
            return NULL;
        }
        seed = s;
    }
    idt_view *v = TV(self)->v, *out = NULL;
    idt_error err;
    int rc;
    idt_py_prog pp;
    idt_py_prog_init(&pp, Py_False, -1, NULL, NULL); /* Ctrl-C only */
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    rc = idt_view_shuffle(v, seed, &out, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    return finish(self, rc, out, &err);
}

/* A threads= keyword: None -> 0 (the core's default), else an int >= 1. -1 on error. */
static int parse_threads(PyObject *o, int64_t *out) {
    *out = 0;
    if (o == Py_None) return 0;
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "threads must be an int or None, not %s", Py_TYPE(o)->tp_name);
        return -1;
    }
    long long t = PyLong_AsLongLong(o);
    if (t == -1 && PyErr_Occurred()) return -1;
    if (t < 1) {
        PyErr_Format(PyExc_ValueError, "threads must be at least 1, not %lld", t);
        return -1;
    }
    *out = t > 64 ? 64 : t;
    return 0;
}

static PyObject *tv_flatten(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"threads", "progress", NULL};
    PyObject *thr = Py_None, *progress = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OO:flatten", kwlist, &thr, &progress)) return NULL;
    int64_t threads;
    if (parse_threads(thr, &threads)) return NULL;
    idt_view *v = TV(self)->v, *out = NULL;
    idt_py_prog pp;
    if (idt_py_prog_init(&pp, progress, -1, "flatten", "col-rows")) return NULL;
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_view_flatten(v, threads, &pp.p, &out, &err);
    Py_END_ALLOW_THREADS
    int pyerr = !rc && idt_py_prog_step(&pp, pp.total > 0 ? pp.total : 0);
    if (pyerr) idt_view_decref(out);
    idt_py_prog_close(&pp);
    if (pyerr) return NULL;
    return finish(self, rc, out, &err);
}

/* Names from a str, or an iterable of str, as a list (new reference). */
static PyObject *name_list(PyObject *names) {
    if (PyUnicode_Check(names)) return Py_BuildValue("[O]", names);
    PyObject *l = PySequence_List(names);
    if (!l) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "column names must be a set or list of str, not %s",
                         Py_TYPE(names)->tp_name);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); i++)
        if (!PyUnicode_Check(PyList_GET_ITEM(l, i))) {
            PyErr_Format(PyExc_TypeError, "column names must be str, not %s",
                         Py_TYPE(PyList_GET_ITEM(l, i))->tp_name);
            Py_DECREF(l);
            return NULL;
        }
    return l;
}

static PyObject *tv_select_columns(PyObject *self, PyObject *names) {
    idt_view *v = TV(self)->v, *out = NULL;
    PyObject *l = name_list(names);
    if (!l) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(l);
    /* A set has no order: keep the view's own column order for it. */
    if (PyAnySet_Check(names) && n > 1) {
        PyObject *ordered = PyList_New(0);
        for (int64_t j = 0; ordered && j < v->ncols; j++) {
            PyObject *nm = PyUnicode_FromString(idt_view_column(v, j)->name);
            int has = nm ? PySet_Contains(names, nm) : -1;
            if (has < 0 || (has && PyList_Append(ordered, nm))) Py_CLEAR(ordered);
            Py_XDECREF(nm);
        }
        if (!ordered) {
            Py_DECREF(l);
            return NULL;
        }
        if (PyList_GET_SIZE(ordered) == n) {
            Py_DECREF(l);
            l = ordered;
        } else {
            Py_DECREF(ordered); /* an unknown name: let the core report it */
        }
    }
    const char **cn = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *cn);
    if (!cn) {
        Py_DECREF(l);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(cn[i] = idt_py_name_utf8(PyList_GET_ITEM(l, i)))) {
            PyMem_Free(cn);
            Py_DECREF(l);
            return NULL;
        }
    idt_error err;
    int rc = idt_view_select(v, cn, n, &out, &err);
    PyMem_Free(cn);
    Py_DECREF(l);
    return finish(self, rc, out, &err);
}

static PyObject *tv_remove_matching_strings(PyObject *self, PyObject *args) {
    PyObject *colname, *strings;
    if (!PyArg_ParseTuple(args, "OO:remove_matching_strings", &colname, &strings)) return NULL;
    if (!PyUnicode_Check(colname)) {
        PyErr_Format(PyExc_TypeError, "column name must be str, not %s", Py_TYPE(colname)->tp_name);
        return NULL;
    }
    idt_view *v = TV(self)->v, *out = NULL;
    const char *name = idt_py_name_utf8(colname);
    if (!name) return NULL;
    idt_error err;
    int64_t j = idt_view_find_column(v, name, &err);
    if (j < 0) return idt_py_raise(idt_py_state_of(self), &err);
    const idt_column *c = idt_view_column(v, j);
    if (!idt_column_is_str(c)) {
        PyErr_Format(PyExc_TypeError, "column '%s' holds %s%s, not strings", name,
                     idt_column_is_list(c) ? "lists of " : "", c->dtype);
        return NULL;
    }
    if (PyUnicode_Check(strings) || PyBytes_Check(strings)) {
        PyErr_SetString(PyExc_TypeError, "strings must be a set or list of strings, not a single string");
        return NULL;
    }
    PyObject *l = PySequence_List(strings);
    if (!l) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(l);
    const char **ptrs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ptrs);
    int64_t *lens = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *lens);
    PyObject *keep = PyList_New(0);
    PyObject *res = NULL;
    if (!ptrs || !lens || !keep) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyList_GET_ITEM(l, i), *b;
        if (c->kind == IDT_COL_UTF8 && PyUnicode_Check(o)) {
            b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        } else if (c->kind == IDT_COL_BYTES && PyBytes_Check(o)) {
            b = o;
            Py_INCREF(b);
        } else {
            PyErr_Format(PyExc_TypeError, "column '%s' holds %s; cannot match %s", name,
                         c->kind == IDT_COL_UTF8 ? "str" : "bytes", Py_TYPE(o)->tp_name);
            goto done;
        }
        if (!b) goto done;
        int r = PyList_Append(keep, b);
        Py_DECREF(b);
        if (r) goto done;
        ptrs[i] = PyBytes_AS_STRING(b);
        lens[i] = PyBytes_GET_SIZE(b);
    }
    int rc;
    idt_py_prog pp;
    idt_py_prog_init(&pp, Py_False, -1, NULL, NULL); /* Ctrl-C only */
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    rc = idt_view_remove_strings(v, name, ptrs, lens, n, &out, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    res = finish(self, rc, out, &err);
done:
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    Py_XDECREF(keep);
    Py_DECREF(l);
    return res;
}

static PyObject *tv_filter(PyObject *self, PyObject *maskobj) {
    idt_view *v = TV(self)->v, *out = NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(maskobj, NULL, 0, 0, 0, NULL);
    if (!a) return NULL;
    if (PyArray_TYPE(a) != NPY_BOOL) {
        PyErr_Format(PyExc_TypeError, "filter() needs a bool mask, not %R", (PyObject *)PyArray_DESCR(a));
        Py_DECREF(a);
        return NULL;
    }
    if (PyArray_NDIM(a) != 1) { /* its length is the core's to judge (IDT_EVALUE) */
        PyErr_Format(PyExc_ValueError, "filter() mask must be 1-dimensional (one bool per row), "
                     "not %d-dimensional with %lld elements", PyArray_NDIM(a), (long long)PyArray_SIZE(a));
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FromAny((PyObject *)a, PyArray_DescrFromType(NPY_BOOL), 1, 1,
                                                        NPY_ARRAY_C_CONTIGUOUS, NULL);
    Py_DECREF(a);
    if (!c) return NULL;
    const uint8_t *m = PyArray_DATA(c);
    int64_t n = PyArray_DIM(c, 0);
    idt_error err;
    int rc;
    idt_py_prog pp;
    idt_py_prog_init(&pp, Py_False, -1, NULL, NULL); /* Ctrl-C only */
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    rc = idt_view_filter(v, m, n, &out, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    Py_DECREF(c);
    return finish(self, rc, out, &err);
}

/* Index of the shown column named by str `name`, or -1 with the core's KeyError listing the
 * columns (ValueError for a name holding a NUL). */
static int64_t shown_col(PyObject *self, PyObject *name) {
    const char *s = idt_py_name_utf8(name);
    if (!s) return -1;
    idt_error err;
    int64_t j = idt_view_find_column(TV(self)->v, s, &err);
    if (j < 0) idt_py_raise(idt_py_state_of(self), &err);
    return j < 0 ? -1 : j;
}

/* A positive int argument, or `dflt` for None. Returns -1 with an exception on error. */
static int64_t positive_arg(PyObject *o, const char *what, int64_t dflt) {
    if (o == Py_None) return dflt;
    if (PyBool_Check(o) || !PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int or None, not %s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    long long x = PyLong_AsLongLong(o);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (x < 1) {
        PyErr_Format(PyExc_ValueError, "%s must be at least 1, not %lld", what, x);
        return -1;
    }
    return (int64_t)x;
}

static PyObject *tv_sort(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"columns", "descending", "threads", "memory_budget", "progress", NULL};
    PyObject *cols, *desc = Py_False, *thr = Py_None, *budget = Py_None, *progress = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$OOO:sort", kwlist, &cols, &desc, &thr, &budget,
                                     &progress))
        return NULL;
    PyObject *l = name_list(cols);
    if (!l) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(l);
    idt_sort_key *keys = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *keys);
    PyObject *res = NULL, *dl = NULL;
    if (!keys) {
        PyErr_NoMemory();
        goto done;
    }
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "sort() needs at least one column");
        goto done;
    }
    if (!PyBool_Check(desc)) {
        if (PyUnicode_Check(desc) || !(dl = PySequence_List(desc))) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "descending must be a bool or a list of bools (one per "
                         "column), not %s", Py_TYPE(desc)->tp_name);
            goto done;
        }
        if (PyList_GET_SIZE(dl) != n) {
            PyErr_Format(PyExc_ValueError, "descending has %zd entries for %zd sort columns",
                         PyList_GET_SIZE(dl), n);
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t j = shown_col(self, PyList_GET_ITEM(l, i));
        if (j < 0) goto done;
        for (Py_ssize_t q = 0; q < i; q++)
            if (keys[q].col == j) {
                PyErr_Format(PyExc_ValueError, "sort column %R given twice", PyList_GET_ITEM(l, i));
                goto done;
            }
        PyObject *d = dl ? PyList_GET_ITEM(dl, i) : desc;
        if (!PyBool_Check(d) && !PyArray_IsScalar(d, Bool)) {
            PyErr_Format(PyExc_TypeError, "descending entries must be bools, not %s", Py_TYPE(d)->tp_name);
            goto done;
        }
        keys[i].col = j;
        keys[i].descending = PyObject_IsTrue(d);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    idt_sort_opts o = {0};
    o.threads = positive_arg(thr, "threads", cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
    if (o.threads < 0) goto done;
    if (budget == Py_None) {
        const char *env = getenv("INFINIDATA_SORT_MEMORY");
        if (env && *env) {
            char *end;
            long long b = strtoll(env, &end, 10);
            if (*end || b < 1) {
                PyErr_Format(PyExc_ValueError, "INFINIDATA_SORT_MEMORY must be a positive number "
                             "of bytes, not '%s'", env);
                goto done;
            }
            o.memory_budget = b;
        }
    } else if ((o.memory_budget = positive_arg(budget, "memory_budget", 0)) < 0) {
        goto done;
    }
    idt_view *v = TV(self)->v, *out = NULL;
    idt_py_prog pp;
    /* the sort's own units: rows x (passes per key + 1) per key, + 1 */
    int64_t total = idt_view_len(v) * ((int64_t)n * 7 + 1);
    if (idt_py_prog_init(&pp, progress, total, "sort", "rows")) goto done;
    o.progress = &pp.p;
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_view_sort(v, keys, n, &o, &out, &err);
    Py_END_ALLOW_THREADS
    int pyerr = (rc == IDT_ECANCELLED && PyErr_Occurred()) || (!rc && idt_py_prog_step(&pp, total));
    if (pyerr && !rc) idt_view_decref(out);
    idt_py_prog_close(&pp);
    if (!pyerr) res = finish(self, rc, out, &err);
done:
    PyMem_Free(keys);
    Py_XDECREF(dl);
    Py_DECREF(l);
    return res;
}

/* _adopt_files(): this process takes over the loaded files of the view that lie in its temp
 * directory (parts a parallel map's workers saved there), so dropping the view removes them. */
static PyObject *tv_adopt_files(PyObject *self, PyObject *unused) {
    (void)unused;
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_view_adopt_files(TV(self)->v, &err);
    Py_END_ALLOW_THREADS
    if (rc) return idt_py_raise(idt_py_state_of(self), &err);
    Py_RETURN_NONE;
}

/* The idt_views of a sequence of TableViews (borrowed, valid while `seq` lives). */
idt_view **idt_py_views_of(PyObject *tvtype, PyObject *seq, Py_ssize_t *n) {
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    idt_view **vs = PyMem_Malloc((size_t)(k ? k : 1) * sizeof *vs);
    if (!vs) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyObject_TypeCheck(o, (PyTypeObject *)tvtype)) {
            PyErr_Format(PyExc_TypeError, "expected TableView objects, got %s at position %zd",
                         Py_TYPE(o)->tp_name, i);
            PyMem_Free(vs);
            return NULL;
        }
        vs[i] = TV(o)->v;
    }
    *n = k;
    return vs;
}

typedef int (*views_combiner)(idt_view *const *views, int64_t n, idt_view **out, idt_error *err);

/* `combine` (idt_view_concat or idt_view_zip, GIL released) over `views` (a sequence of
 * TableViews; `what` is the TypeError for anything else): one new view. *descrs (optional)
 * gets a new reference to the first view's column descriptions. NULL with an exception set. */
static idt_view *combine_views(idt_module_state *st, PyObject *views, views_combiner combine,
                               const char *what, PyObject **descrs) {
    PyObject *seq = PySequence_Fast(views, what);
    if (!seq) return NULL;
    Py_ssize_t n;
    idt_view **vs = idt_py_views_of(st->TableView_Type, seq, &n);
    idt_view *out = NULL;
    if (vs) {
        idt_error err;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = combine(vs, n, &out, &err);
        Py_END_ALLOW_THREADS
        if (rc) {
            out = NULL;
            idt_py_raise(st, &err);
        } else if (descrs) {
            *descrs = Py_NewRef(TV(PySequence_Fast_GET_ITEM(seq, 0))->descrs);
        }
        PyMem_Free(vs);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *tv_concat(PyObject *cls, PyObject *views) {
    idt_module_state *st = idt_py_state_of_type((PyTypeObject *)cls);
    idt_view *out = combine_views(st, views, idt_view_concat, "concat() takes a list of TableView objects",
                                  NULL);
    return out ? idt_py_wrap_view(st, out) : NULL;
}

static PyObject *tv_zip(PyObject *cls, PyObject *views) {
    idt_module_state *st = idt_py_state_of_type((PyTypeObject *)cls);
    idt_view *out = combine_views(st, views, idt_view_zip, "zip() takes a list of TableView objects", NULL);
    return out ? idt_py_wrap_view(st, out) : NULL;
}

/* tv._rename(olds, news): two lists of str of one length (checked by the caller). */
static PyObject *tv_rename(PyObject *self, PyObject *args) {
    PyObject *olds, *news;
    if (!PyArg_ParseTuple(args, "O!O!:_rename", &PyList_Type, &olds, &PyList_Type, &news)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(olds);
    if (PyList_GET_SIZE(news) != n) {
        PyErr_SetString(PyExc_ValueError, "_rename takes two lists of one length");
        return NULL;
    }
    const char **cn = PyMem_Malloc((size_t)(n ? 2 * n : 1) * sizeof *cn);
    if (!cn) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < 2 * n; i++)
        if (!(cn[i] = idt_py_name_utf8(PyList_GET_ITEM(i < n ? olds : news, i % n)))) {
            PyMem_Free(cn);
            return NULL;
        }
    idt_view *out = NULL;
    idt_error err;
    int rc = idt_view_rename(TV(self)->v, cn, cn + n, n, &out, &err);
    PyMem_Free(cn);
    return finish(self, rc, out, &err);
}

static PyObject *dtype_of(TableViewObject *self, int64_t j) {
    const idt_column *c = idt_view_column(self->v, j);
    PyObject *d = PyTuple_GET_ITEM(self->descrs, j);
    if (d != Py_None) {
        Py_INCREF(d);
        return d;
    }
    return (PyObject *)PyArray_DescrFromType(idt_column_out_char(c) == 'U' ? NPY_UNICODE : NPY_STRING);
}

/* A column's row shape as `schema` gives it: a tuple, or the string "list" for a list column. */
static PyObject *shape_of(const idt_column *c) {
    if (idt_column_is_list(c)) return PyUnicode_FromString("list");
    PyObject *t = PyTuple_New(c->ndim);
    for (int32_t q = 0; t && q < c->ndim; q++) {
        PyObject *x = PyLong_FromLongLong(c->shape[q]);
        if (!x) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, q, x);
    }
    return t;
}

static PyObject *tv_column_names(PyObject *self, void *closure) {
    (void)closure;
    idt_view *v = TV(self)->v;
    PyObject *l = PyList_New(v->ncols);
    for (int64_t j = 0; l && j < v->ncols; j++) {
        PyObject *s = PyUnicode_FromString(idt_view_column(v, j)->name);
        if (!s) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, j, s);
    }
    return l;
}

static PyObject *tv_schema(PyObject *self, void *closure) {
    (void)closure;
    idt_view *v = TV(self)->v;
    PyObject *d = PyDict_New();
    for (int64_t j = 0; d && j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        PyObject *dt = dtype_of(TV(self), j), *sh = shape_of(c);
        PyObject *t = (dt && sh) ? PyTuple_Pack(2, dt, sh) : NULL;
        Py_XDECREF(dt);
        Py_XDECREF(sh);
        if (!t || PyDict_SetItemString(d, c->name, t)) Py_CLEAR(d);
        Py_XDECREF(t);
    }
    return d;
}

static PyObject *idt_tv_repr(PyObject *self) {
    idt_view *v = TV(self)->v;
    PyObject *parts = PyList_New(0);
    for (int64_t j = 0; parts && j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        PyObject *dt = dtype_of(TV(self), j), *sh = shape_of(c), *s = NULL;
        if (dt && sh) {
            PyObject *dts = idt_column_is_list(c) ? PyUnicode_FromFormat("list<%S>", dt)
                            : !idt_column_is_str(c) ? PyObject_Str(dt)
                            : PyUnicode_FromString(idt_column_kind_name(c->kind));
            if (dts) s = PyUnicode_FromFormat("%s: %U%s%S", c->name, dts, c->ndim ? " " : "",
                                              c->ndim ? sh : (PyObject *)Py_None);
            if (s && !c->ndim) {
                Py_DECREF(s);
                s = PyUnicode_FromFormat("%s: %U", c->name, dts);
            }
            Py_XDECREF(dts);
        }
        Py_XDECREF(dt);
        Py_XDECREF(sh);
        if (!s || PyList_Append(parts, s)) Py_CLEAR(parts);
        Py_XDECREF(s);
    }
    if (!parts) return NULL;
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    if (!joined) return NULL;
    PyObject *r = PyUnicode_FromFormat("<TableView %lld rows x %lld columns {%U}>",
                                       (long long)idt_view_len(v), (long long)v->ncols, joined);
    Py_DECREF(joined);
    return r;
}

/* ---- save, load, pickling ---- */

static PyObject *idt_tv_save_to_disk(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"dir", "name", "overwrite", "progress", NULL};
    PyObject *dir = NULL, *name = NULL, *nameobj = Py_None, *progress = Py_None;
    int overwrite = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|Op$O:save_to_disk", kw, PyUnicode_FSConverter, &dir,
                                     &nameobj, &overwrite, &progress))
        return NULL;
    idt_view *v = ((TableViewObject *)self)->v;
    /* no name: the view's uuid, as the original Infinidata names an unnamed save */
    PyObject *shown = nameobj == Py_None ? PyUnicode_FromString(v->uuid) : Py_NewRef(nameobj);
    if (!shown || !PyUnicode_FSConverter(shown, &name)) {
        Py_XDECREF(shown);
        Py_DECREF(dir);
        return NULL;
    }
    idt_py_prog pp;
    if (idt_py_prog_init(&pp, progress, -1, "save_to_disk (copied)", "B")) {
        Py_DECREF(shown);
        Py_DECREF(dir);
        Py_DECREF(name);
        return NULL;
    }
    idt_error err;
    int rc;
    const char *d = PyBytes_AS_STRING(dir), *n = PyBytes_AS_STRING(name);
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    rc = idt_view_save(v, d, n, overwrite, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    idt_py_prog_close(&pp);
    Py_DECREF(dir);
    Py_DECREF(name);
    if (rc) {
        Py_DECREF(shown);
        return idt_py_raise(idt_py_state_of(self), &err);
    }
    if (!PyUnicode_Check(shown)) { /* a bytes or path-like name: give back the str form */
        PyObject *p = PyOS_FSPath(shown);
        Py_DECREF(shown);
        if (!p) return NULL;
        shown = PyBytes_Check(p) ? PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(p),
                                                                     PyBytes_GET_SIZE(p)) : p;
        if (shown != p) Py_DECREF(p);
    }
    return shown;
}

static PyObject *idt_tv_load_from_disk(PyObject *cls, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"dir", "name", "verify", "progress", NULL};
    PyObject *dir = NULL, *name = NULL, *progress = Py_None;
    int verify = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|p$O:load_from_disk", kw, PyUnicode_FSConverter, &dir,
                                     PyUnicode_FSConverter, &name, &verify, &progress)) {
        Py_XDECREF(dir);
        return NULL;
    }
    idt_py_prog pp;
    if (idt_py_prog_init(&pp, verify ? progress : Py_False, -1, "load_from_disk (verified)", "B")) {
        Py_DECREF(dir);
        Py_DECREF(name);
        return NULL;
    }
    idt_module_state *st = idt_py_state_of_type((PyTypeObject *)cls);
    idt_error err;
    idt_view *v = NULL;
    int rc;
    const char *d = PyBytes_AS_STRING(dir), *n = PyBytes_AS_STRING(name);
    Py_BEGIN_ALLOW_THREADS
    idt_progress_begin(&pp.p);
    rc = idt_view_load_ex(d, n, verify, &v, &err);
    idt_progress_end();
    Py_END_ALLOW_THREADS
    idt_py_prog_close(&pp);
    Py_DECREF(dir);
    Py_DECREF(name);
    if (rc) return idt_py_raise(st, &err);
    return idt_py_wrap_view(st, v);
}

/* Pickling writes the view's description (schema, segments, the paths of the files it
 * reads), never its rows: the unpickling process maps the same files, which this process
 * keeps alive for as long as it holds the view. */
static PyObject *idt_tv_reduce(PyObject *self, PyObject *unused) {
    (void)unused;
    char *buf;
    size_t len;
    idt_error err;
    if (idt_view_describe(((TableViewObject *)self)->v, &buf, &len, &err))
        return idt_py_raise(idt_py_state_of(self), &err);
    PyObject *bytes = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    idt_free(buf);
    if (!bytes) return NULL;
    PyObject *mod = PyImport_ImportModule("infinidata._infinidata");
    PyObject *fn = mod ? PyObject_GetAttrString(mod, "_from_description") : NULL;
    Py_XDECREF(mod);
    PyObject *r = fn ? Py_BuildValue("(O(O))", fn, bytes) : NULL;
    Py_XDECREF(fn);
    Py_DECREF(bytes);
    return r;
}

/* ---- buffers out (Arrow's layout) and the files a view reads ---- */

/* tv._packed_strings(start, count, j) -> (offsets, data): the strings of string column j
 * over rows [start, start+count), in Arrow's layout: int64 offsets (count * row_elems + 1,
 * from 0) and uint8 data, as stored (UTF-8 or raw bytes). For a list column: int64 offsets
 * (count + 1, from 0, in values) and the values (an array of the column's dtype). */
static PyObject *idt_tv_packed_strings(PyObject *self, PyObject *args) {
    long long start, count, j;
    if (!PyArg_ParseTuple(args, "LLL:_packed_strings", &start, &count, &j)) return NULL;
    const idt_view *v = ((TableViewObject *)self)->v;
    int64_t len = idt_view_len(v);
    if (j < 0 || j >= v->ncols || !idt_column_is_var(idt_view_column(v, j))) {
        PyErr_Format(PyExc_ValueError, "column %lld is not a string or list column", j);
        return NULL;
    }
    if (start < 0 || count < 0 || start > len || count > len - start) {
        PyErr_Format(PyExc_IndexError, "rows %lld..%lld out of range for %lld rows", start,
                     start + count, (long long)len);
        return NULL;
    }
    idt_rowsel sel = {start, 1, count, NULL};
    int64_t per = idt_view_column(v, j)->row_elems, total;
    Py_BEGIN_ALLOW_THREADS
    total = idt_view_str_bytes(v, &sel, j);
    Py_END_ALLOW_THREADS
    npy_intp no = (npy_intp)(count * per + 1), nd = (npy_intp)total;
    PyObject *offs = PyArray_SimpleNew(1, &no, NPY_INT64);
    PyObject *data = NULL;
    if (offs && idt_column_is_list(idt_view_column(v, j))) {
        PyObject *dt = PyTuple_GET_ITEM(((TableViewObject *)self)->descrs, j);
        data = PyArray_NewFromDescr(&PyArray_Type, (PyArray_Descr *)Py_NewRef(dt), 1, &nd, NULL, NULL, 0, NULL);
    } else if (offs) {
        data = PyArray_SimpleNew(1, &nd, NPY_UINT8);
    }
    if (!data) {
        Py_XDECREF(offs);
        return NULL;
    }
    int64_t *po = PyArray_DATA((PyArrayObject *)offs);
    char *pd = PyArray_DATA((PyArrayObject *)data);
    Py_BEGIN_ALLOW_THREADS
    idt_view_gather_packed(v, &sel, j, po, pd);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(NN)", offs, data);
}

/* tv._files() -> list of (path, offset, size): the file ranges holding the rows this view
 * reads (its stores and ref arrays, and the stores those ref arrays point into), each once,
 * in first-use order. */
static PyObject *idt_tv_files(PyObject *self, PyObject *unused) {
    (void)unused;
    const idt_view *v = ((TableViewObject *)self)->v;
    PyObject *seen = PySet_New(NULL), *out = PyList_New(0);
    if (!seen || !out) goto fail;
    for (int64_t s = 0, gi = 0; gi < (v->ngroups ? v->ngroups : 1); s = 0, gi++)
    for (const idt_view *gv = v->ngroups ? v->groups[gi] : v; s < gv->nseg; s++) {
        const idt_segment *g = &gv->segs[s];
        int64_t nb = g->kind == IDT_SEG_RUN ? 1 : 1 + g->refs->nstores;
        for (int64_t k = 0; k < nb; k++) {
            const idt_blob *b = g->kind == IDT_SEG_RUN ? g->store->blob
                                : k == 0 ? g->refs->blob : g->refs->stores[k - 1]->blob;
            PyObject *key = PyLong_FromVoidPtr((void *)b);
            if (!key) goto fail;
            int has = PySet_Contains(seen, key);
            if (has == 0) has = PySet_Add(seen, key) < 0 ? -1 : 0;
            else if (has == 1) {
                Py_DECREF(key);
                continue;
            }
            Py_DECREF(key);
            if (has < 0) goto fail;
            PyObject *t = Py_BuildValue("(NLK)", PyUnicode_DecodeFSDefault(b->path ? b->path : ""),
                                        (long long)b->offset, (unsigned long long)b->size);
            if (!t || PyList_Append(out, t) < 0) {
                Py_XDECREF(t);
                goto fail;
            }
            Py_DECREF(t);
        }
    }
    Py_DECREF(seen);
    return out;
fail:
    Py_XDECREF(seen);
    Py_XDECREF(out);
    return NULL;
}

/* ---- batch iterators over views ---- */

static char *iter_kw[] = {"batch_size", "drop_last_batch", "threads", "readahead", "pad", NULL};

static PyObject *idt_tv_batch_iter(PyObject *self, PyObject *args, PyObject *kwds) {
    long long bs, threads = 1, readahead = 0;
    int drop = 0;
    PyObject *pad = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L|pLL$O:batch_iter", iter_kw, &bs, &drop, &threads,
                                     &readahead, &pad))
        return NULL;
    TableViewObject *tv = (TableViewObject *)self;
    return idt_py_batchiter_start(idt_py_state_of(self), tv->v, tv->descrs, bs, drop, threads, readahead,
                                  pad);
}

static PyObject *idt_tv_batch_iter_concat(PyObject *cls, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"views", "batch_size", "drop_last_batch", "threads", "readahead", "pad", NULL};
    PyObject *views, *pad = Py_None;
    long long bs, threads = 1, readahead = 0;
    int drop = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OL|pLL$O:batch_iter_concat", kw, &views, &bs, &drop,
                                     &threads, &readahead, &pad))
        return NULL;
    idt_module_state *st = idt_py_state_of_type((PyTypeObject *)cls);
    PyObject *descrs = NULL;
    idt_view *cat = combine_views(st, views, idt_view_concat,
                                 "batch_iter_concat() takes a list of TableView objects", &descrs);
    if (!cat) return NULL;
    PyObject *res = idt_py_batchiter_start(st, cat, descrs, bs, drop, threads, readahead, pad);
    idt_view_decref(cat);
    Py_DECREF(descrs);
    return res;
}

/* ---- the type ---- */

/* ---- sequence packing (core: pack.c); infinidata/torch.py plans the batches ---- */

/* The view column j, or NULL with IndexError. */
static const idt_column *pack_column(const idt_view *v, long long j) {
    if (j < 0 || j >= v->ncols) {
        PyErr_Format(PyExc_IndexError, "column %lld out of range for %lld columns", j, (long long)v->ncols);
        return NULL;
    }
    return idt_view_column(v, j);
}

/* tv._pack_cumlen(j) -> int64 array of len(tv) + 1: the cumulative lengths of list column j
 * in view order (idt_pack_cumlen). */
static PyObject *idt_tv_pack_cumlen(PyObject *self, PyObject *args) {
    long long j;
    if (!PyArg_ParseTuple(args, "L:_pack_cumlen", &j)) return NULL;
    const idt_view *v = ((TableViewObject *)self)->v;
    if (!pack_column(v, j)) return NULL;
    npy_intp n = (npy_intp)idt_view_len(v) + 1;
    PyObject *cum = PyArray_SimpleNew(1, &n, NPY_INT64);
    if (!cum) return NULL;
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_pack_cumlen(v, j, PyArray_DATA((PyArrayObject *)cum), &err);
    Py_END_ALLOW_THREADS
    if (rc) {
        Py_DECREF(cum);
        return idt_py_raise(idt_py_state_of(self), &err);
    }
    return cum;
}

/* tv._pack(j, cum, blocks, seq_len, pad) -> (tokens, position_ids, cu_seqlens, cu_start):
 * packed rows of list column j for several batches at once (idt_pack_view_blocks): blocks is
 * an int64 array of (first packed row, rows) pairs; tokens (total rows, seq_len) of the
 * column's value dtype and position_ids int64 hold the blocks one after another, block k's
 * cu_seqlens (int32, relative to the block) are cu_seqlens[cu_start[k]:cu_start[k + 1]].
 * cum is _pack_cumlen(j)'s array; pad the pad value's bytes in the value dtype. */
static PyObject *idt_tv_pack(PyObject *self, PyObject *args) {
    long long j, seq_len;
    PyObject *cumobj, *blkobj;
    Py_buffer pad;
    if (!PyArg_ParseTuple(args, "LOOLy*:_pack", &j, &cumobj, &blkobj, &seq_len, &pad)) return NULL;
    PyObject *res = NULL, *tok = NULL, *pos = NULL, *cu = NULL, *cs = NULL;
    const idt_view *v = ((TableViewObject *)self)->v;
    const idt_column *c = pack_column(v, j);
    if (!c) goto done;
    PyArrayObject *cum = (PyArrayObject *)cumobj, *blk = (PyArrayObject *)blkobj;
    int64_t n = idt_view_len(v);
    if (!PyArray_Check(cumobj) || PyArray_TYPE(cum) != NPY_INT64 || PyArray_NDIM(cum) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(cum) || PyArray_DIM(cum, 0) != n + 1) {
        PyErr_Format(PyExc_ValueError, "cum must be a contiguous int64 array of %lld entries "
                     "(from _pack_cumlen)", (long long)n + 1);
        goto done;
    }
    if (!PyArray_Check(blkobj) || PyArray_TYPE(blk) != NPY_INT64 || PyArray_NDIM(blk) != 2 ||
        PyArray_DIM(blk, 1) != 2 || !PyArray_IS_C_CONTIGUOUS(blk)) {
        PyErr_SetString(PyExc_ValueError, "blocks must be a contiguous int64 array of "
                        "(first row, rows) pairs");
        goto done;
    }
    if (seq_len < 1) {
        PyErr_Format(PyExc_ValueError, "seq_len must be >= 1, got %lld", seq_len);
        goto done;
    }
    int64_t nb = PyArray_DIM(blk, 0), total = 0;
    const int64_t *bp = PyArray_DATA(blk);
    for (int64_t k = 0; k < nb; k++) {
        if (bp[2 * k] < 0 || bp[2 * k + 1] < 0 || bp[2 * k + 1] > INT32_MAX / seq_len ||
            __builtin_add_overflow(total, bp[2 * k + 1], &total) || total > PY_SSIZE_T_MAX / seq_len / 8) {
            PyErr_Format(PyExc_ValueError, "block %lld (%lld rows from row %lld) x seq_len %lld is not a "
                         "valid batch (rows >= 0, at most %d tokens a batch)", (long long)k,
                         (long long)bp[2 * k + 1], (long long)bp[2 * k], seq_len, INT32_MAX);
            goto done;
        }
    }
    /* the tokens' dtype: the list column's value dtype (bytes of a string column: uint8) */
    PyObject *descr = PyTuple_GET_ITEM(((TableViewObject *)self)->descrs, j);
    PyArray_Descr *dt;
    if (descr != Py_None) {
        dt = (PyArray_Descr *)descr;
        Py_INCREF(dt);
    } else {
        dt = PyArray_DescrFromType(NPY_UINT8);
    }
    npy_intp shape[2] = {(npy_intp)total, (npy_intp)seq_len}, nstart = (npy_intp)nb + 1;
    const int64_t *cump = PyArray_DATA(cum);
    int64_t bound = idt_pack_blocks_cu_bound(cump, n, bp, nb, seq_len);
    if (bound > PY_SSIZE_T_MAX / 4) {
        Py_DECREF(dt);
        PyErr_NoMemory();
        goto done;
    }
    npy_intp ncap = (npy_intp)bound;
    tok = PyArray_NewFromDescr(&PyArray_Type, dt, 2, shape, NULL, NULL, 0, NULL);
    pos = tok ? PyArray_SimpleNew(2, shape, NPY_INT64) : NULL;
    cu = pos ? PyArray_SimpleNew(1, &ncap, NPY_INT32) : NULL;
    cs = cu ? PyArray_SimpleNew(1, &nstart, NPY_INT64) : NULL;
    if (!cs) goto done;
    idt_pack_out out = {PyArray_DATA((PyArrayObject *)tok), PyArray_DATA((PyArrayObject *)pos),
                        PyArray_DATA((PyArrayObject *)cu), (int64_t)ncap, 0, 0};
    idt_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_pack_view_blocks(v, j, cump, bp, nb, seq_len, pad.buf, (int64_t)pad.len, &out,
                              PyArray_DATA((PyArrayObject *)cs), &err);
    Py_END_ALLOW_THREADS
    if (rc) {
        idt_py_raise(idt_py_state_of(self), &err);
        goto done;
    }
    /* cu_seqlens as long as the segments: a slice of the bound-sized buffer */
    PyObject *used = PySequence_GetSlice(cu, 0, (Py_ssize_t)out.ncu);
    if (used) res = Py_BuildValue("(OONO)", tok, pos, used, cs);
done:
    Py_XDECREF(tok);
    Py_XDECREF(pos);
    Py_XDECREF(cu);
    Py_XDECREF(cs);
    PyBuffer_Release(&pad);
    return res;
}

static PyMethodDef idt_tv_methods[] = {
    {"uuid", tv_uuid, METH_NOARGS, "uuid($self, /)\n--\n\nuuid() -> str: a random UUID4 identifying this view."},
    {"new_view", tv_new_view, METH_O,
     "new_view($self, key, /)\n--\n\nnew_view(key) -> TableView: the rows tv[key] would read (slice, int array or list, bool "
     "mask), as a view that copies no row data."},
    {"shuffle", (PyCFunction)(void (*)(void))tv_shuffle, METH_VARARGS | METH_KEYWORDS,
     "shuffle($self, /, seed=None)\n--\n\nshuffle(seed=None) -> TableView: a uniformly random permutation of the rows. The same seed "
     "gives the same order on every run and machine."},
    {"select_columns", tv_select_columns, METH_O,
     "select_columns($self, names, /)\n--\n\nselect_columns(names) -> TableView: a view with just these columns (a set keeps the view's "
     "column order, a list gives its own)."},
    {"remove_matching_strings", tv_remove_matching_strings, METH_VARARGS,
     "remove_matching_strings($self, column, strings, /)\n--\n\nremove_matching_strings(column, strings) -> TableView: the rows whose string column value "
     "is not in `strings`."},
    {"flatten", (PyCFunction)(void (*)(void))tv_flatten, METH_VARARGS | METH_KEYWORDS,
     "flatten($self, /, *, threads=None, progress=None)\n--\n\n"
     "flatten(*, threads=None, progress=None) -> TableView: a new table holding this view's "
     "rows contiguously in view order (one store, gathered on threads, bounded memory)."},
    {"_adopt_files", tv_adopt_files, METH_NOARGS,
     "_adopt_files(): take over the loaded files of this view that lie in this process's temp "
     "directory (they go when the last view using them goes)."},
    {"_filter_mask", tv_filter, METH_O, "_filter_mask($self, mask, /)\n--\n\n_filter_mask(mask) -> TableView: the rows where the bool mask is True."},
    {"sort", (PyCFunction)(void (*)(void))tv_sort, METH_VARARGS | METH_KEYWORDS,
     "sort($self, /, columns, descending=False, *, threads=None, memory_budget=None)\n--\n\n"
     "sort(columns, descending=False, *, threads=None, memory_budget=None) -> TableView: the rows "
     "ordered by one or several columns (a name or a list of names), stable: ties keep the view's "
     "order. descending is a bool or one bool per column; NaN and NaT sort last either way. "
     "threads=None uses up to 8 CPUs. Keys are sorted in RAM up to memory_budget bytes (default "
     "$INFINIDATA_SORT_MEMORY, else 1 GiB), beyond it in sorted runs on disk merged at the end. "
     "progress: a bar (None: when tqdm is installed and stderr is a terminal). Ctrl-C stops it."},
    {"_zip", tv_zip, METH_O | METH_CLASS,
     "_zip($type, views, /)\n--\n\nThe columns of same-length views side by side (see TableView.zip)."},
    {"_rename", tv_rename, METH_VARARGS,
     "_rename($self, olds, news, /)\n--\n\nColumns olds[i] renamed news[i] (see rename_columns)."},
    {"concat", tv_concat, METH_O | METH_CLASS,
     "concat($type, views, /)\n--\n\nTableView.concat(views) -> TableView: the rows of each view in order. Columns must match."},
    {"batch_iter", (PyCFunction)(void (*)(void))idt_tv_batch_iter, METH_VARARGS | METH_KEYWORDS,
     "batch_iter($self, /, batch_size, drop_last_batch=False, threads=1, readahead=0, *, pad=None)\n--\n\n"
     "batch_iter(batch_size, drop_last_batch=False, threads=1, readahead=0, *, pad=None): iterate "
     "over the rows in batches, each a dict of column -> array as tv[i:i+batch_size] gives (a list "
     "column: a Ragged). pad={name: (pad_value, length)} gives list column `name` as a "
     "(batch, length) array instead (longer rows cut), plus \"<name>_lengths\" (int64)."},
    {"batch_iter_concat", (PyCFunction)(void (*)(void))idt_tv_batch_iter_concat,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "batch_iter_concat($type, /, views, batch_size, drop_last_batch=False, threads=1, readahead=0, *, "
     "pad=None)\n--\n\nTableView.batch_iter_concat(views, batch_size, drop_last_batch=False, threads=1, "
     "readahead=0, *, pad=None): batches over several views as if concatenated (pad= as batch_iter)."},
    {"save_to_disk", (PyCFunction)(void (*)(void))idt_tv_save_to_disk, METH_VARARGS | METH_KEYWORDS,
     "save_to_disk($self, /, dir, name=None, overwrite=False, *, progress=None)\n--\n\n"
     "save_to_disk(dir, name=None, overwrite=False, *, progress=None) -> str: save the view under `name` in `dir` "
     "(name None: the view's uuid(), as the original Infinidata does) and return the name. An "
     "existing name is FileExistsError unless overwrite."},
    {"load_from_disk", (PyCFunction)(void (*)(void))idt_tv_load_from_disk,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "load_from_disk($type, /, dir, name, verify=True, *, progress=None)\n--\n\n"
     "TableView.load_from_disk(dir, name, verify=True) -> TableView: load a view saved by "
     "save_to_disk. Everything memory safety depends on is always checked; verify=True (the "
     "default) also checks a content checksum of every data file, reading all of it once: "
     "verify=False skips that for huge trusted caches. A damaged file raises CorruptDataError, a "
     "missing one FileNotFoundError."},
    {"__reduce__", idt_tv_reduce, METH_NOARGS, "__reduce__($self, /)\n--\n\nPickle as a description of the files (never the rows)."},
    {"_packed_strings", idt_tv_packed_strings, METH_VARARGS,
     "_packed_strings($self, start, count, j, /)\n--\n\n_packed_strings(start, count, j) -> (offsets, data): string column j in Arrow's layout."},
    {"_pack_cumlen", idt_tv_pack_cumlen, METH_VARARGS,
     "_pack_cumlen($self, j, /)\n--\n\n_pack_cumlen(j) -> int64 array: cumulative lengths of list column j (sequence packing)."},
    {"_pack", idt_tv_pack, METH_VARARGS,
     "_pack($self, j, cum, blocks, seq_len, pad, /)\n--\n\n_pack(j, cum, blocks, seq_len, pad) -> (tokens, position_ids, cu_seqlens, cu_start): packed rows of list column j for batches given as (first row, rows) pairs."},
    {"_files", idt_tv_files, METH_NOARGS,
     "_files($self, /)\n--\n\n_files() -> list of (path, offset, size): the file ranges this view reads."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef idt_tv_getset[] = {
    {"column_names", tv_column_names, NULL, "The column names, in order.", NULL},
    {"schema", tv_schema, NULL, "dict of column name -> (dtype, row shape).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef tv_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TableViewObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tv_slots[] = {
    {Py_tp_new, idt_tv_new},
    {Py_tp_dealloc, idt_tv_dealloc},
    {Py_tp_traverse, idt_tv_traverse},
    {Py_tp_repr, idt_tv_repr},
    {Py_mp_length, idt_tv_len},
    {Py_sq_length, idt_tv_len},
    {Py_mp_subscript, idt_tv_getitem},
    {Py_tp_methods, idt_tv_methods},
    {Py_tp_getset, idt_tv_getset},
    {Py_tp_members, tv_members},
    {Py_tp_doc,
     "TableView(columns, *, progress=None)\n--\n\n"
     "TableView(columns): a table of named columns stored in memory-mapped temp files.\n\n"
     "`columns` is a dict of str -> NumPy array, all of the same length (the first axis is the "
     "row axis; further axes are each row's shape). Reads (tv[key]) return a dict of arrays."},
    {0, NULL},
};

PyType_Spec idt_tableview_spec = {
    "infinidata.TableView", sizeof(TableViewObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE, tv_slots,
};
