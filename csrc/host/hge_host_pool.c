/*
 * hge_host_pool.c - see hge_host_pool.h.
 *
 * Hand-off, per worker w (one caller at a time, serialised by hge_pool_lock); seq
 * counts modulo 2^31, and w->claim holds the posted seq, with HGE_TAKEN set once someone
 * has claimed that task:
 *   caller: under w->mu, writes w->fn and w->arg, publishes w->claim = seq and then
 *           w->seq = seq (release) and signals w->cv. After its own task it claims the
 *           posted one itself if the worker has not (compare-and-swap seq -> seq |
 *           HGE_TAKEN: a worker that did not get a core, e.g. on a loaded machine, costs
 *           no more than running on one thread), else waits until w->done == seq.
 *   worker: waits until w->seq (acquire) differs from the last seq it saw (spinning,
 *           then under w->mu on w->cv: the caller publishes under the same mutex, so a
 *           wake-up cannot be lost), claims it by the same compare-and-swap, and only
 *           if that succeeds reads fn and arg, runs the task and publishes w->done =
 *           seq (release). A claim of a stale seq fails, so no task runs twice or on
 *           another call's arguments.
 * The release/acquire pairs order the task's inputs before it runs and its results
 * before the caller reads them. The atomics are the GCC/clang __atomic builtins (the
 * code is C99; ThreadSanitizer understands them).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "hge_host_pool.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HGE_PAUSE() __builtin_ia32_pause()
#else
#define HGE_PAUSE() ((void)0)
#endif

/* Polls between clock reads (and sched_yield calls) while spinning. */
#define HGE_POOL_POLLS 64
/* The claim bit of w->claim; sequence numbers use the other 31 bits. */
#define HGE_TAKEN 0x80000000u

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hge_pool_task_fn fn; /* the posted task; written by the caller under mu before seq */
    const void *arg;
    uint32_t seq;        /* the last task posted, modulo 2^31 (written by the caller only) */
    uint32_t claim;      /* seq when posted; seq | HGE_TAKEN once the worker or the caller took it */
    uint32_t done;       /* seq of the last task the worker finished (written by the worker only) */
} hge_worker_t;

static hge_worker_t hge_workers[HGE_POOL_MAX_TASKS - 1u];
static uint32_t hge_n_workers; /* workers 0 .. hge_n_workers - 1 are running; under hge_pool_lock */
static pthread_mutex_t hge_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t hge_pool_once = PTHREAD_ONCE_INIT;

static long hge_elapsed_ns(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)(t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Spin until *word != seen (returns it) or for about `ns` (returns seen). A clock read
 * and a sched_yield every HGE_POOL_POLLS polls: on a busy machine a spinning thread lets
 * the runnable ones (perhaps the very thread it waits for) go first. */
static uint32_t hge_spin_while(const uint32_t *word, uint32_t seen, long ns)
{
    struct timespec t0;
    int i;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (i = 0; i < HGE_POOL_POLLS; ++i) {
            uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
            if (v != seen) {
                return v;
            }
            HGE_PAUSE();
        }
        if (ns >= 0 && hge_elapsed_ns(&t0) >= ns) {
            return seen;
        }
        sched_yield();
    }
}

/* Take task seq of w for this thread: 1 if it was still unclaimed (then this thread runs
 * it, and sees the caller's fn and arg), 0 if someone else has it or it is stale. */
static int hge_claim(hge_worker_t *w, uint32_t seq)
{
    uint32_t expect = seq;
    return __atomic_compare_exchange_n(&w->claim, &expect, seq | HGE_TAKEN, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void *hge_worker_main(void *p)
{
    hge_worker_t *w = (hge_worker_t *)p;
    uint32_t seen = 0;
    for (;;) {
        uint32_t seq = hge_spin_while(&w->seq, seen, HGE_POOL_SPIN_NS);
        if (seq == seen) {
            pthread_mutex_lock(&w->mu);
            while ((seq = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE)) == seen) {
                pthread_cond_wait(&w->cv, &w->mu);
            }
            pthread_mutex_unlock(&w->mu);
        }
        seen = seq;
        if (hge_claim(w, seq)) {
            w->fn(w->arg);
            __atomic_store_n(&w->done, seq, __ATOMIC_RELEASE);
        }
    }
    return 0;
}

/* Start worker w (detached: nothing to join at exit). 1 on success, 0 if not. */
static int hge_worker_start(hge_worker_t *w)
{
    pthread_attr_t attr;
    pthread_t tid;
    int ok;
    if (pthread_mutex_init(&w->mu, 0) != 0) {
        return 0;
    }
    if (pthread_cond_init(&w->cv, 0) != 0) {
        pthread_mutex_destroy(&w->mu);
        return 0;
    }
    w->seq = 0u;
    w->claim = HGE_TAKEN;
    w->done = 0u;
    ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
             pthread_create(&tid, &attr, hge_worker_main, w) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!ok) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    return ok;
}

/* fork(): the prepare handler holds hge_pool_lock across the fork, so the pool is not in
 * use at that moment; the child has none of the parent's workers (only the forking thread
 * is copied), so it forgets them (their mutexes are initialised afresh when it starts its
 * own) and releases the lock its only thread holds. */
static void hge_pool_prepare(void)
{
    pthread_mutex_lock(&hge_pool_lock);
}

static void hge_pool_parent(void)
{
    pthread_mutex_unlock(&hge_pool_lock);
}

static void hge_pool_child(void)
{
    hge_n_workers = 0u;
    pthread_mutex_unlock(&hge_pool_lock);
}

static int hge_pool_forkable; /* the fork handlers are registered (set once, under hge_pool_once) */

static void hge_pool_setup(void)
{
    hge_pool_forkable = pthread_atfork(hge_pool_prepare, hge_pool_parent, hge_pool_child) == 0;
}

typedef struct {
    hge_pool_task_fn fn;
    const void *arg;
} hge_spawned_t;

static void *hge_spawned_main(void *p)
{
    const hge_spawned_t *t = (const hge_spawned_t *)p;
    t->fn(t->arg);
    return 0;
}

/* Tasks 1.. on threads started here, task 0 (and any task whose thread cannot start) on
 * this one. A failed join leaves nothing to wait for (the thread is gone or never ran). */
static void hge_run_spawned(hge_pool_task_fn fn, const void *const *args, uint32_t n)
{
    pthread_t tid[HGE_POOL_MAX_TASKS];
    hge_spawned_t tasks[HGE_POOL_MAX_TASKS];
    uint32_t started = 0;
    uint32_t k;
    for (k = 1; k < n; ++k) {
        tasks[k].fn = fn;
        tasks[k].arg = args[k];
        if (pthread_create(&tid[k], 0, hge_spawned_main, &tasks[k]) != 0) {
            break;
        }
        started = k;
    }
    for (k = started + 1u; k < n; ++k) {
        fn(args[k]);
    }
    fn(args[0]);
    for (k = 1; k <= started; ++k) {
        (void)pthread_join(tid[k], 0);
    }
}

/* The pool's run; the caller holds hge_pool_lock. */
static void hge_run_pooled(hge_pool_task_fn fn, const void *const *args, uint32_t n)
{
    uint32_t posted = 0; /* tasks 1 .. posted went to workers 0 .. posted - 1 */
    uint32_t k;
    while (posted + 1u < n) {
        hge_worker_t *w = &hge_workers[posted];
        uint32_t seq;
        if (posted == hge_n_workers) {
            if (!hge_worker_start(w)) {
                break;
            }
            hge_n_workers = posted + 1u;
        }
        pthread_mutex_lock(&w->mu);
        w->fn = fn;
        w->arg = args[posted + 1u];
        seq = (__atomic_load_n(&w->seq, __ATOMIC_RELAXED) + 1u) & ~HGE_TAKEN;
        __atomic_store_n(&w->claim, seq, __ATOMIC_RELEASE);
        __atomic_store_n(&w->seq, seq, __ATOMIC_RELEASE);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        ++posted;
    }
    for (k = posted + 1u; k < n; ++k) {
        fn(args[k]); /* no worker for these */
    }
    fn(args[0]);
    for (k = 0; k < posted; ++k) {
        hge_worker_t *w = &hge_workers[k];
        uint32_t seq = __atomic_load_n(&w->seq, __ATOMIC_RELAXED);
        uint32_t d;
        if (hge_claim(w, seq)) {
            fn(args[k + 1u]); /* the worker has not started it: run it here */
            continue;
        }
        while ((d = __atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) != seq) {
            (void)hge_spin_while(&w->done, d, HGE_POOL_SPIN_NS);
        }
    }
}

uint32_t hge_pool_run(hge_pool_task_fn fn, const void *const *args, uint32_t n, uint32_t mode)
{
    if (fn == 0 || args == 0 || n == 0u || n > HGE_POOL_MAX_TASKS) {
        return 0u;
    }
    if (n == 1u) {
        fn(args[0]);
        return n;
    }
    if (mode == HGE_POOL_WORKERS) {
        (void)pthread_once(&hge_pool_once, hge_pool_setup);
        /* Without fork handlers a child could inherit a pool it does not have: spawn. */
        if (hge_pool_forkable && pthread_mutex_trylock(&hge_pool_lock) == 0) {
            hge_run_pooled(fn, args, n);
            pthread_mutex_unlock(&hge_pool_lock);
            return n;
        }
    }
    hge_run_spawned(fn, args, n);
    return n;
}
