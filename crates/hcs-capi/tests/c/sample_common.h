/*
 * Helpers shared by the C test programs (container_lifecycle.c,
 * operation_completion.c, event_callback.c, compute_system.c, tutorial.c): checks that count failures, UTF-8 <->
 * UTF-16 conversion (ASCII), a Win32-like event object, and waiting on an
 * operation with the result document narrowed for printing.
 */
#ifndef HCS_CAPI_SAMPLE_COMMON_H
#define HCS_CAPI_SAMPLE_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, fork/exec under -std=c11 */
#endif

#include "computecore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

#define CHECK_HR(expr, want)                                                                 \
    do {                                                                                     \
        HRESULT hr_ = (expr);                                                                \
        if (hr_ != (HRESULT)(want)) {                                                        \
            fprintf(stderr, "%s:%d: %s = 0x%08X, want 0x%08X\n", __FILE__, __LINE__, #expr, \
                    (unsigned)hr_, (unsigned)(want));                                        \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                              \
        }                                                                            \
    } while (0)

/* ASCII to a malloc'ed UTF-16 string. */
static inline char16_t *widen(const char *s) {
    size_t n = strlen(s);
    char16_t *w = malloc((n + 1) * sizeof(char16_t));
    for (size_t i = 0; i <= n; i++) w[i] = (unsigned char)s[i];
    return w;
}

/* A UTF-16 string (not freed) narrowed to a malloc'ed ASCII copy; NULL stays NULL. */
static inline char *narrow(PCWSTR w) {
    if (!w) return NULL;
    size_t n = 0;
    while (w[n]) n++;
    char *s = malloc(n + 1);
    for (size_t i = 0; i <= n; i++) s[i] = w[i] < 128 ? (char)w[i] : '?';
    return s;
}

/* A UTF-16 string the API returned, narrowed; frees it with LocalFree. */
static inline char *narrow_and_free(PWSTR w) {
    char *s = narrow(w);
    if (w) LocalFree(w);
    return s;
}

/* Wait for `op`; *doc (if doc) gets the narrowed result document or NULL. */
static inline HRESULT wait_op(HCS_OPERATION op, char **doc) {
    PWSTR result = NULL;
    HRESULT hr = HcsWaitForOperationResult(op, INFINITE, &result);
    char *s = narrow_and_free(result);
    if (doc)
        *doc = s;
    else
        free(s);
    return hr;
}

/*
 * Run an asynchronous call's outcome to its final HRESULT: a synchronous
 * rejection, or the operation's result. *doc as in wait_op (also on a
 * synchronous rejection, which may leave a result on the operation).
 */
static inline HRESULT finish(HRESULT call_hr, HCS_OPERATION op, char **doc) {
    HRESULT hr = wait_op(op, doc);
    return FAILED(call_hr) ? call_hr : hr;
}

/* A Win32-like auto-reset event. */
struct event {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int set;
};

static inline void event_init(struct event *e) {
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cond, NULL);
}

static inline void event_destroy(struct event *e) {
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cond);
}

static inline void event_set(struct event *e) {
    pthread_mutex_lock(&e->mu);
    e->set = 1;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

/* Wait up to timeout_s seconds; 1 if the event was set (and resets it). */
static inline int event_wait(struct event *e, int timeout_s) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    while (!e->set && rc == 0) rc = pthread_cond_timedwait(&e->cond, &e->mu, &deadline);
    int was_set = e->set;
    e->set = 0;
    pthread_mutex_unlock(&e->mu);
    return was_set;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline int report(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
