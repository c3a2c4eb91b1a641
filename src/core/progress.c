/* progress.c: the thread's ambient progress (see progress.h). */
#include "progress.h"

#include <stddef.h>

static _Thread_local const idt_progress *cur;
static _Thread_local int64_t cur_done;

void idt_progress_begin(const idt_progress *p) {
    cur = p;
    cur_done = 0;
}

void idt_progress_end(void) { cur = NULL; }

int idt_progress_step(int64_t n, idt_error *err) {
    cur_done += n;
    return idt_progress_report(cur, cur_done, -1, err);
}
