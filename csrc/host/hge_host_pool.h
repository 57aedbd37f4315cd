/*
 * hge_host_pool.h - the host's threads for hge_lockin_host.c: a persistent pool of
 * worker threads, started on first use and then reused by every call, so a call does
 * not pay for starting and joining threads (about 50 us each on the 2-core VM where
 * the host figures are measured, against a few hundred us of work at M = 7, N = 1e5).
 *
 * A worker that finished a task spins (with PAUSE) for up to HGE_POOL_SPIN_NS on the
 * next one, then sleeps on its condition variable: windows processed back to back
 * (a training step, a benchmark) find their workers awake, while an idle process does
 * not keep burning a core. The calling thread always runs task 0 itself.
 *
 * Never a deadlock and never a lost task: a task whose worker cannot be started runs
 * on the calling thread, and while another thread is using the pool (two host calls at
 * once, e.g. from two Python threads: cffi releases the GIL) a call falls back to
 * threads started for it alone. After fork() the child sees an empty pool (its workers
 * were not copied) and starts its own. Workers are detached and hold no resources, so
 * process exit needs no shutdown. Host only (POSIX threads); not built for a
 * microcontroller.
 */
#ifndef HGE_HOST_POOL_H
#define HGE_HOST_POOL_H

#include <stdint.h>

/* How hge_pool_run gets its threads. */
#define HGE_POOL_WORKERS 0u /* the persistent pool (falls back to HGE_POOL_SPAWN while busy) */
#define HGE_POOL_SPAWN 1u   /* threads started and joined by this call */

/* Most tasks per call (task 0 runs on the caller, so the pool holds one fewer workers). */
#define HGE_POOL_MAX_TASKS 64u

/* How long an idle worker spins before it sleeps. */
#define HGE_POOL_SPIN_NS 300000L

typedef void (*hge_pool_task_fn)(const void *arg);

/*
 * Run fn(args[k]) for every k < n (1 <= n <= HGE_POOL_MAX_TASKS, else nothing runs and
 * 0 is returned): k = 0 on the calling thread, the others on worker threads (mode as
 * above), or on the calling thread when no thread can be had. Returns when every task
 * has finished, with each task's writes visible to the caller; returns n. Tasks must
 * not call hge_pool_run themselves.
 */
uint32_t hge_pool_run(hge_pool_task_fn fn, const void *const *args, uint32_t n, uint32_t mode);

#endif /* HGE_HOST_POOL_H */
