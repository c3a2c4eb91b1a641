/* progress.h: progress reports and cancellation of long core operations.
 *
 * Long operations (construction helpers, flatten, shuffle, composition of index arrays,
 * saving by copy, verified loads, the writer) take an optional `const idt_progress *`
 * (NULL: no reports). They call fn(ctx, done, total) between chunks of work, from the
 * calling thread only, at least every few tens of milliseconds of work; `done` grows
 * towards `total` in the operation's own unit (rows or bytes). A nonzero return cancels:
 * the operation stops at that point, removes what it created and returns IDT_ECANCELLED.
 * The callback decides how often to do anything costly (the Python binding checks the
 * clock and takes the GIL at most every 0.1 s to check signals and draw a bar). */
#ifndef IDT_PROGRESS_H
#define IDT_PROGRESS_H

#include <stdint.h>

#include "error.h"

typedef struct idt_progress {
    int (*fn)(void *ctx, int64_t done, int64_t total);
    void *ctx;
} idt_progress;

/* Report progress; returns 0 to go on, or IDT_ECANCELLED (with a message in err) when the
 * callback asked to stop. NULL `p` (or fn) is always 0. */
static inline int idt_progress_report(const idt_progress *p, int64_t done, int64_t total,
                                      idt_error *err) {
    if (!p || !p->fn || !p->fn(p->ctx, done, total)) return 0;
    return idt_error_set(err, IDT_ECANCELLED, "cancelled");
}

/* The thread's ambient progress, for operations whose signature predates progress
 * (shuffle, take, filter and remove_strings composition, save, load): the caller sets it
 * around the call; those operations report units of work done with idt_progress_step.
 * idt_progress_begin also resets the thread's count of work done. NULL: none. */
void idt_progress_begin(const idt_progress *p);
void idt_progress_end(void);
/* Add n units of work done and report the running count to the thread's progress (total
 * unknown: -1). 0 to go on, or IDT_ECANCELLED with a message in err. */
int idt_progress_step(int64_t n, idt_error *err);

#endif
