/* progress.c: progress bars and Ctrl-C for long calls. The bar itself is Python
 * (infinidata._progress); this file calls it and runs the core's progress callback, which
 * takes the GIL at most every PROGRESS_EVERY seconds to check signals and draw. */
#include "module.h"

#include <stdatomic.h>
#include <time.h>

#define PROGRESS_EVERY 0.1

/* Test hook (_test_cancel_after): when > 0, every progress check counts it down, ignoring
 * the rate limit, and the one that reaches 0 raises KeyboardInterrupt, as Ctrl-C would. */
static _Atomic int64_t cancel_after;

PyObject *idt_py_test_cancel_after(PyObject *m, PyObject *arg) {
    (void)m;
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    atomic_store(&cancel_after, n > 0 ? n : 0);
    Py_RETURN_NONE;
}

static double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The core callback: called without the GIL from the thread that started the operation. */
static int prog_fn(void *ctx, int64_t done, int64_t total) {
    idt_py_prog *pp = ctx;
    pp->total = total;
    double now = mono_now();
    if (now - pp->last < PROGRESS_EVERY && atomic_load(&cancel_after) == 0) return 0;
    pp->last = now;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = idt_py_prog_step(pp, done) != 0;
    PyGILState_Release(g);
    return stop;
}

int idt_py_prog_init(idt_py_prog *pp, PyObject *progress, int64_t total, const char *desc,
                     const char *unit) {
    pp->p.fn = prog_fn;
    pp->p.ctx = pp;
    pp->bar = NULL;
    pp->shown = 0;
    pp->total = total;
    pp->bar_total = total;
    pp->last = mono_now();
    if (progress == Py_False) return 0; /* signals only: no Python to call */
    PyObject *mod = PyImport_ImportModule("infinidata._progress");
    if (!mod) return -1;
    PyObject *bar = PyObject_CallMethod(mod, "start", "OLss", progress ? progress : Py_None,
                                        (long long)total, desc, unit);
    Py_DECREF(mod);
    if (!bar) return -1;
    if (bar == Py_None) Py_DECREF(bar);
    else pp->bar = bar;
    return 0;
}

int idt_py_prog_step(idt_py_prog *pp, int64_t done) {
    if (PyErr_CheckSignals()) return -1;
    if (atomic_load(&cancel_after) > 0 && atomic_fetch_sub(&cancel_after, 1) == 1) {
        PyErr_SetString(PyExc_KeyboardInterrupt, "_test_cancel_after");
        return -1;
    }
    if (pp->bar && pp->total > 0 && pp->total != pp->bar_total) { /* the core knows it now */
        PyObject *t = PyLong_FromLongLong((long long)pp->total);
        if (!t || PyObject_SetAttrString(pp->bar, "total", t) < 0) {
            Py_XDECREF(t);
            return -1;
        }
        Py_DECREF(t);
        pp->bar_total = pp->total;
    }
    if (pp->bar && done > pp->shown) {
        PyObject *r = PyObject_CallMethod(pp->bar, "update", "L", (long long)(done - pp->shown));
        if (!r) return -1;
        Py_DECREF(r);
        pp->shown = done;
    }
    return 0;
}

void idt_py_prog_close(idt_py_prog *pp) {
    if (!pp->bar) return;
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r = PyObject_CallMethod(pp->bar, "close", NULL);
    if (!r) PyErr_WriteUnraisable(pp->bar);
    Py_XDECREF(r);
    Py_CLEAR(pp->bar);
    PyErr_Restore(et, ev, tb);
}
