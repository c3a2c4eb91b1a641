/* persist.c: save_to_disk, load_from_disk and pickling, over the core's persist.h. */
#include "module.h"

#include "../core/persist.h"
#include "../core/sys.h"

PyObject *idt_tv_save_to_disk(PyObject *self, PyObject *args, PyObject *kwds) {
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

PyObject *idt_tv_load_from_disk(PyObject *cls, PyObject *args, PyObject *kwds) {
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
PyObject *idt_tv_reduce(PyObject *self, PyObject *unused) {
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

PyObject *idt_py_from_description(PyObject *m, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    idt_module_state *st = PyModule_GetState(m);
    idt_error err;
    idt_view *v = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_view_from_description(b.buf, (size_t)b.len, &v, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (rc) return idt_py_raise(st, &err);
    return idt_py_wrap_view(st, v);
}

/* Names idt_saved_gc removed, gathered without the GIL. */
typedef struct swept {
    char **names;
    int64_t *bytes;
    Py_ssize_t n, cap;
    int oom;
} swept;

static void note_swept(void *ctx, const char *name, int64_t bytes) {
    swept *s = ctx;
    if (s->oom) return;
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 16;
        char **n = PyMem_RawRealloc(s->names, (size_t)cap * sizeof *n);
        if (n) s->names = n;
        int64_t *b = PyMem_RawRealloc(s->bytes, (size_t)cap * sizeof *b);
        if (b) s->bytes = b;
        if (!n || !b) {
            s->oom = 1;
            return;
        }
        s->cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = PyMem_RawMalloc(len);
    if (!copy) {
        s->oom = 1;
        return;
    }
    memcpy(copy, name, len);
    s->names[s->n] = copy;
    s->bytes[s->n++] = bytes;
}

PyObject *idt_py_gc_saved(PyObject *m, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"dir", "dry_run", NULL};
    PyObject *dir = NULL;
    int dry = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|$p:gc_saved", kw, PyUnicode_FSConverter, &dir, &dry))
        return NULL;
    swept s = {NULL, NULL, 0, 0, 0};
    idt_saved_gc_report rep;
    memset(&rep, 0, sizeof rep);
    rep.each = note_swept;
    rep.ctx = &s;
    idt_error err;
    int rc;
    const char *d = PyBytes_AS_STRING(dir);
    Py_BEGIN_ALLOW_THREADS
    rc = idt_saved_gc(d, dry, &rep, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(dir);
    PyObject *res = NULL, *files = NULL;
    if (rc) {
        idt_py_raise(PyModule_GetState(m), &err);
        goto done;
    }
    files = PyList_New(0);
    for (Py_ssize_t i = 0; files && i < s.n; i++) {
        PyObject *t = Py_BuildValue("(NL)", PyUnicode_DecodeFSDefault(s.names[i]), (long long)s.bytes[i]);
        if (!t || PyList_Append(files, t) < 0) Py_CLEAR(files);
        Py_XDECREF(t);
    }
    if (files)
        res = Py_BuildValue("{sOsLsLsLsO}", "files", files, "tmp_files", (long long)rep.tmp_files,
                            "data_files", (long long)rep.data_files, "bytes", (long long)rep.bytes,
                            "manifests_unreadable", rep.manifests_unreadable ? Py_True : Py_False);
done:
    Py_XDECREF(files);
    for (Py_ssize_t i = 0; i < s.n; i++) PyMem_RawFree(s.names[i]);
    PyMem_RawFree(s.names);
    PyMem_RawFree(s.bytes);
    return res;
}
