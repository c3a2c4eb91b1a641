/* module.c: the module alone: its def, multi-phase init (the types from the specs of
 * tableview.c, batchiter.c and writer.c, and the CorruptDataError exception, all kept in
 * module state), and the module-level functions. */
#define IDT_IMPORT_ARRAY
#include "module.h"

#include "../core/batch.h"
#include "../core/persist.h"
#include "../core/prefetch.h"
#include "../core/sys.h"
#include "../core/tmp.h"

static PyModuleDef idt_moduledef;

/* ---- test and maintenance entry points ---- */

static PyObject *m_fault_arm(PyObject *m, PyObject *args) {
    (void)m;
    int kind, err = 0, sticky = 0;
    long long nth;
    if (!PyArg_ParseTuple(args, "iL|ip:_fault_arm", &kind, &nth, &err, &sticky)) return NULL;
    if (kind < 0 || kind > IDT_FAULT_ANY) {
        PyErr_SetString(PyExc_ValueError, "unknown fault kind");
        return NULL;
    }
    idt_fault_arm((idt_fault_kind)kind, nth, err, sticky);
    Py_RETURN_NONE;
}

static PyObject *m_fault_reset(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    int64_t fired = idt_fault_fired();
    idt_fault_reset();
    return PyLong_FromLongLong(fired);
}

static PyObject *m_sys_stats(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    idt_sys_stats s;
    idt_tmp_stats t;
    idt_sys_stats_get(&s);
    idt_tmp_stats_get(&t);
    return Py_BuildValue("{sLsLsLsLsLsLsL}", "allocs", (long long)s.allocs, "maps", (long long)s.maps,
                         "fds", (long long)s.fds, "blobs", (long long)t.live_blobs, "arena_chunks",
                         (long long)t.arena_chunks, "file_blobs", (long long)t.file_blobs,
                         "arena_bytes", (long long)t.arena_bytes);
}

static PyObject *m_prefetch_mode(PyObject *m, PyObject *args) {
    (void)m;
    int mode = -1;
    if (!PyArg_ParseTuple(args, "|i:_prefetch_mode", &mode)) return NULL;
    if (mode != -1 && (mode < IDT_PREFETCH_AUTO || mode > IDT_PREFETCH_OFF)) {
        PyErr_Format(PyExc_ValueError, "prefetch mode must be 0 (auto), 1 (always) or 2 (off), not %d", mode);
        return NULL;
    }
    return PyLong_FromLong(idt_prefetch_mode(mode));
}

static PyObject *m_advise_calls(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    return PyLong_FromLongLong(idt_sys_calls(IDT_FAULT_ADVISE));
}

static PyObject *m_tmp_dir(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    const char *p;
    idt_error err;
    if (idt_tmp_procdir(&p, &err)) return idt_py_raise(PyModule_GetState(m), &err);
    return PyUnicode_DecodeFSDefault(p);
}

static PyObject *m_gc(PyObject *m, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"root", "dry_run", NULL};
    PyObject *root = Py_None, *bytes = NULL;
    int dry = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Op:gc", kw, &root, &dry)) return NULL;
    if (root != Py_None && !PyUnicode_FSConverter(root, &bytes)) return NULL;
    idt_gc_report rep;
    idt_error err;
    int rc;
    const char *r = bytes ? PyBytes_AS_STRING(bytes) : NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = idt_tmp_gc(r, dry, &rep, &err);
    Py_END_ALLOW_THREADS
    Py_XDECREF(bytes);
    if (rc) return idt_py_raise(PyModule_GetState(m), &err);
    return Py_BuildValue("{sLsLsL}", "dirs", (long long)rep.dirs, "files", (long long)rep.files,
                         "bytes", (long long)rep.bytes);
}

static PyObject *m_error_rules(PyObject *m, PyObject *unused) {
    (void)unused;
    return idt_py_error_rules(PyModule_GetState(m));
}

static PyObject *m_raise_error(PyObject *m, PyObject *args) {
    int code, sys_errno;
    const char *msg;
    if (!PyArg_ParseTuple(args, "iis:_raise_error", &code, &sys_errno, &msg)) return NULL;
    return idt_py_raise_code(PyModule_GetState(m), code, sys_errno, msg);
}

static PyObject *m_stop_iterators(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    idt_batcher_stop_all();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *m_batch_max_bytes(PyObject *m, PyObject *arg) {
    (void)m;
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    idt_batcher_set_max_bytes(n);
    Py_RETURN_NONE;
}

static PyObject *m_shutdown(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    idt_batcher_stop_all();
    idt_tmp_shutdown();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *idt_py_from_description(PyObject *m, PyObject *arg) {
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

static PyObject *idt_py_gc_saved(PyObject *m, PyObject *args, PyObject *kwds) {
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

/* memory_stats() -> dict: what the library holds now in this process. */
static PyObject *idt_py_memory_stats(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    idt_sys_stats s;
    int64_t files, bytes;
    idt_sys_stats_get(&s);
    Py_BEGIN_ALLOW_THREADS
    idt_tmp_usage(&files, &bytes);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{sLsLsLsLsL}", "files", (long long)files, "bytes_on_disk", (long long)bytes,
                         "mappings", (long long)s.maps, "descriptors", (long long)s.fds, "threads",
                         (long long)idt_batcher_threads());
}

static PyMethodDef module_methods[] = {
    {"_from_description", idt_py_from_description, METH_O,
     "_from_description($module, description, /)\n--\n\n_from_description(bytes) -> TableView: unpickle a view (maps the files it names)."},
    {"gc_saved", (PyCFunction)(void (*)(void))idt_py_gc_saved, METH_VARARGS | METH_KEYWORDS,
     "gc_saved($module, /, dir, *, dry_run=False)\n--\n\n"
     "gc_saved(dir, *, dry_run=False) -> dict: sweep a saved directory: remove temporary files\n"
     "of saves that died and data files no manifest names (only names the library writes).\n"
     "Returns {'files': [(name, bytes)], 'tmp_files', 'data_files', 'bytes',\n"
     "'manifests_unreadable'}; with an unreadable manifest no data file is removed. Raises\n"
     "OSError while a save into dir is running."},
    {"_fault_arm", m_fault_arm, METH_VARARGS,
     "_fault_arm($module, kind, nth, errno=0, sticky=False, /)\n--\n\n_fault_arm(kind, nth, errno=0, sticky=False): test only: make the nth call of a kind fail."},
    {"_test_cancel_after", idt_py_test_cancel_after, METH_O,
     "_test_cancel_after($module, n, /)\n--\n\n_test_cancel_after(n): the n-th progress check from now raises KeyboardInterrupt (0: off)."},
    {"_fault_reset", m_fault_reset, METH_NOARGS, "_fault_reset($module, /)\n--\n\n_fault_reset() -> int: disarm; returns faults fired."},
    {"_sys_stats", m_sys_stats, METH_NOARGS, "_sys_stats($module, /)\n--\n\n_sys_stats() -> dict: live allocations, mappings, fds, blobs."},
    {"_prefetch_mode", m_prefetch_mode, METH_VARARGS,
     "_prefetch_mode($module, mode=-1, /)\n--\n\n_prefetch_mode([mode]) -> int: set how batch iterators read ahead "
     "from disk (0 auto, 1 always, 2 off) for tests and benchmarks; returns the previous mode (the current one "
     "without an argument)."},
    {"_advise_calls", m_advise_calls, METH_NOARGS,
     "_advise_calls($module, /)\n--\n\n_advise_calls() -> int: madvise and mincore calls so far."},
    {"_tmp_dir", m_tmp_dir, METH_NOARGS, "_tmp_dir($module, /)\n--\n\n_tmp_dir() -> str: this process's temp directory (made if needed)."},
    {"_batch_max_bytes", m_batch_max_bytes, METH_O,
     "_batch_max_bytes($module, n, /)\n--\n\n_batch_max_bytes(n): test only: byte cap of batch iterators made from now on (0: the default)."},
    {"gc", (PyCFunction)(void (*)(void))m_gc, METH_VARARGS | METH_KEYWORDS,
     "gc($module, /, root=None, dry_run=False)\n--\n\ngc(root=None, dry_run=False) -> dict: remove dead processes' temp files; counts dirs, files, bytes."},
    {"_from_parts", idt_py_from_parts, METH_VARARGS,
     "_from_parts($module, columns, nrows, /)\n--\n\n_from_parts(columns, nrows) -> TableView: one stored table from buffers (see io.c)."},
    {"memory_stats", idt_py_memory_stats, METH_NOARGS,
     "memory_stats($module, /)\n--\n\n"
     "What the library holds now in this process, as a dict: 'files' (temp files), "
     "'bytes_on_disk' (their allocated blocks), 'mappings', 'descriptors' and 'threads' "
     "(batch iterator workers)."},
    {"_error_rules", m_error_rules, METH_NOARGS,
     "_error_rules($module, /)\n--\n\n_error_rules() -> dict: test only: the rule mapping core error codes to "
     "exceptions, {'IDT_E...': (code, exception class)}."},
    {"_raise_error", m_raise_error, METH_VARARGS,
     "_raise_error($module, code, errno, message, /)\n--\n\n_raise_error(code, errno, message): test only: "
     "raise what a core failure with this code, errno and message raises."},
    {"_stop_iterators", m_stop_iterators, METH_NOARGS, "_stop_iterators($module, /)\n--\n\nStop and join every batch iterator's workers."},
    {"_shutdown", m_shutdown, METH_NOARGS, "_shutdown($module, /)\n--\n\nStop iterators and remove this process's temp files."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *m) {
    if (PyArray_ImportNumPyAPI() < 0) return -1;
    idt_module_state *st = PyModule_GetState(m);
    st->TableView_Type = PyType_FromModuleAndSpec(m, &idt_tableview_spec, NULL);
    if (!st->TableView_Type) return -1;
    if (PyObject_SetAttrString(st->TableView_Type, "__module__", PyUnicode_FromString("infinidata")) < 0)
        PyErr_Clear();
    st->BatchIter_Type = PyType_FromModuleAndSpec(m, &idt_batchiter_spec, NULL);
    if (!st->BatchIter_Type) return -1;
    st->Writer_Type = PyType_FromModuleAndSpec(m, &idt_writer_spec, NULL);
    if (!st->Writer_Type) return -1;
    st->CorruptDataError = PyErr_NewExceptionWithDoc(
        "infinidata.CorruptDataError",
        "A saved file is damaged, truncated, foreign or of another format version.",
        PyExc_ValueError, NULL);
    if (!st->CorruptDataError) return -1;
    if (PyModule_AddObjectRef(m, "TableView", st->TableView_Type) < 0 ||
        PyModule_AddObjectRef(m, "BatchIter", st->BatchIter_Type) < 0 ||
        PyModule_AddObjectRef(m, "_Writer", st->Writer_Type) < 0 ||
        PyModule_AddObjectRef(m, "CorruptDataError", st->CorruptDataError) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT_VERSION", IDT_FORMAT_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_ALLOC", IDT_FAULT_ALLOC) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_OPEN", IDT_FAULT_OPEN) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_FALLOCATE", IDT_FAULT_FALLOCATE) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_MMAP", IDT_FAULT_MMAP) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_WRITE", IDT_FAULT_WRITE) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_RENAME", IDT_FAULT_RENAME) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_LINK", IDT_FAULT_LINK) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_MKDIR", IDT_FAULT_MKDIR) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_ADVISE", IDT_FAULT_ADVISE) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_PUNCH", IDT_FAULT_PUNCH) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_SYNC", IDT_FAULT_SYNC) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_TRUNCATE", IDT_FAULT_TRUNCATE) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_STAT", IDT_FAULT_STAT) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_LOCK", IDT_FAULT_LOCK) < 0 ||
        PyModule_AddStringConstant(m, "_TMP_MARKER", IDT_TMP_MARKER) < 0 ||
        PyModule_AddIntConstant(m, "FAULT_ANY", IDT_FAULT_ANY) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    idt_module_state *st = PyModule_GetState(m);
    Py_VISIT(st->TableView_Type);
    Py_VISIT(st->BatchIter_Type);
    Py_VISIT(st->Writer_Type);
    Py_VISIT(st->CorruptDataError);
    Py_VISIT(st->Ragged);
    Py_VISIT(st->as_list_column);
    return 0;
}

static int module_clear(PyObject *m) {
    idt_module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->TableView_Type);
    Py_CLEAR(st->BatchIter_Type);
    Py_CLEAR(st->Writer_Type);
    Py_CLEAR(st->CorruptDataError);
    Py_CLEAR(st->Ragged);
    Py_CLEAR(st->as_list_column);
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static PyModuleDef idt_moduledef = {
    PyModuleDef_HEAD_INIT, "infinidata._infinidata",
    "The C engine of infinidata (see the infinidata package).", sizeof(idt_module_state),
    module_methods, module_slots, module_traverse, module_clear, NULL,
};

PyMODINIT_FUNC PyInit__infinidata(void) {
    idt_py_state_set_def(&idt_moduledef);
    return PyModuleDef_Init(&idt_moduledef);
}
