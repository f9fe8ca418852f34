/*
 * The three completion patterns of Microsoft's OperationCompletionSample,
 * on a container instead of the sample's empty VM:
 *   A. wait: HcsWaitForOperationResult;
 *   B. the operation's own completion callback, which checks the type,
 *      reads the result and closes the operation;
 *   C. the system's event callback with HcsEventOptionEnableOperationCallbacks,
 *      registered after the create returned, and the
 *      HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET check.
 * Also: a system handle closed inside its own event callback. Run by
 * tests/c_programs.rs under valgrind.
 *
 *   operation_completion <namespace> <rootfs>
 */
#include "sample_common.h"

/* What a completion reported, and a way to wait for it. */
struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int set;
    int count;
    HRESULT hr;
    HCS_OPERATION_TYPE type;
    HCS_EVENT_TYPE event_type;
    int exited;     /* HcsEventSystemExited seen (with EventData) */
    int terminated; /* the Terminate's completion seen */
};

static void outcome_init(struct outcome *e) {
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cond, NULL);
}

static void outcome_destroy(struct outcome *e) {
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cond);
}

static void outcome_wait(struct outcome *e) {
    pthread_mutex_lock(&e->mu);
    while (!e->set) pthread_cond_wait(&e->cond, &e->mu);
    e->set = 0;
    pthread_mutex_unlock(&e->mu);
}

static void outcome_signal(struct outcome *e, HRESULT hr, HCS_OPERATION_TYPE type, HCS_EVENT_TYPE et) {
    pthread_mutex_lock(&e->mu);
    e->hr = hr;
    e->type = type;
    e->event_type = et;
    e->count++;
    e->set = 1;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

/* Pattern B's callback. */
static void CALLBACK create_done(HCS_OPERATION operation, void *context) {
    PWSTR doc = NULL;
    HCS_OPERATION_TYPE type = HcsGetOperationType(operation);
    HRESULT hr = HcsGetOperationResult(operation, &doc);
    if (doc) LocalFree(doc);
    HcsCloseOperation(operation);
    outcome_signal((struct outcome *)context, hr, type, HcsEventInvalid);
}

/* Pattern C's event callback. */
static void CALLBACK system_event(HCS_EVENT *event, void *context) {
    if (event->Type == HcsEventOperationCallback) {
        PWSTR doc = NULL;
        HCS_OPERATION_TYPE type = HcsGetOperationType(event->Operation);
        HRESULT hr = HcsGetOperationResult(event->Operation, &doc);
        if (doc) CoTaskMemFree(doc);
        HcsCloseOperation(event->Operation);
        struct outcome *e = (struct outcome *)context;
        if (type == HcsOperationTypeTerminate && hr == S_OK) {
            pthread_mutex_lock(&e->mu);
            e->terminated = 1;
            pthread_mutex_unlock(&e->mu);
        }
        outcome_signal(e, hr, type, event->Type);
    } else if (event->Type == HcsEventSystemExited) {
        struct outcome *e = (struct outcome *)context;
        pthread_mutex_lock(&e->mu);
        e->exited = event->EventData != NULL;
        pthread_mutex_unlock(&e->mu);
        outcome_signal(e, S_OK, HcsOperationTypeNone, event->Type);
    }
}

/* Closes its own system handle when the system exits. */
struct closing {
    struct outcome ev;
    HCS_SYSTEM system;
};

static void CALLBACK close_on_exit(HCS_EVENT *event, void *context) {
    struct closing *c = (struct closing *)context;
    if (event->Type == HcsEventSystemExited) {
        HcsCloseComputeSystem(c->system);
        outcome_signal(&c->ev, S_OK, HcsOperationTypeNone, event->Type);
    }
}

static void CALLBACK unused_completion(HCS_OPERATION operation, void *context) {
    (void)operation;
    (void)context;
}

static void terminate(HCS_SYSTEM system) {
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    CHECK_HR(HcsTerminateComputeSystem(system, op, NULL), S_OK);
    CHECK_HR(HcsWaitForOperationResult(op, INFINITE, NULL), S_OK);
    HcsCloseOperation(op);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <namespace> <rootfs>\n", argv[0]);
        return 2;
    }
    char doc8[4096];
    snprintf(doc8, sizeof doc8,
             "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Owner\":\"Sample\","
             "\"ShouldTerminateOnLastHandleClosed\":true,"
             "\"Container\":{\"Storage\":{\"Layers\":[{\"Id\":\"0a9d0f6e-0000-4000-8000-000000000001\","
             "\"Path\":\"%s\"}]}}}",
             argv[2]);
    char16_t *ns = widen(argv[1]);
    char16_t *doc = widen(doc8);

    /* A: wait. */
    {
        HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
        HCS_SYSTEM system = NULL;
        PWSTR result = NULL;
        CHECK_HR(HcsCreateComputeSystemInNamespace(ns, u"pattern-a", doc, op, NULL, &system), S_OK);
        CHECK_HR(HcsWaitForOperationResult(op, INFINITE, &result), S_OK);
        if (result) LocalFree(result);
        terminate(system);
        HcsCloseOperation(op);
        HcsCloseComputeSystem(system);
    }

    /* B: the operation's callback closes it; the caller does not keep it. */
    {
        struct outcome ev;
        outcome_init(&ev);
        HCS_SYSTEM system = NULL;
        CHECK_HR(HcsCreateComputeSystemInNamespace(ns, u"pattern-b", doc,
                                                   HcsCreateOperation(&ev, create_done), NULL,
                                                   &system),
                 S_OK);
        outcome_wait(&ev);
        CHECK_HR(ev.hr, S_OK);
        CHECK(ev.type == HcsOperationTypeCreate);
        terminate(system);
        HcsCloseComputeSystem(system);
        outcome_destroy(&ev);
    }

    /* C: the system's event callback, registered after the create returned. */
    {
        struct outcome ev;
        outcome_init(&ev);
        HCS_SYSTEM system = NULL;
        CHECK_HR(HcsCreateComputeSystemInNamespace(ns, u"pattern-c", doc,
                                                   HcsCreateOperation(NULL, NULL), NULL, &system),
                 S_OK);
        CHECK_HR(HcsSetComputeSystemCallback(system, HcsEventOptionEnableOperationCallbacks, &ev,
                                             system_event),
                 S_OK);
        outcome_wait(&ev);
        CHECK_HR(ev.hr, S_OK);
        CHECK(ev.type == HcsOperationTypeCreate);
        CHECK(ev.event_type == HcsEventOperationCallback);

        /* An operation with its own callback is refused on this handle. */
        HCS_OPERATION with_cb = HcsCreateOperation(NULL, unused_completion);
        CHECK_HR(HcsStartComputeSystem(system, with_cb, NULL),
                 HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET);
        HcsCloseOperation(with_cb);

        /* A callback-less one completes through the event callback. */
        CHECK_HR(HcsStartComputeSystem(system, HcsCreateOperation(NULL, NULL), NULL), S_OK);
        outcome_wait(&ev);
        CHECK_HR(ev.hr, S_OK);
        CHECK(ev.type == HcsOperationTypeStart);

        /* Terminate: the operation completion and the exit both arrive. */
        CHECK_HR(HcsTerminateComputeSystem(system, HcsCreateOperation(NULL, NULL), NULL), S_OK);
        pthread_mutex_lock(&ev.mu);
        while (!(ev.exited && ev.terminated)) pthread_cond_wait(&ev.cond, &ev.mu);
        pthread_mutex_unlock(&ev.mu);
        HcsCloseComputeSystem(system);
        outcome_destroy(&ev);
    }

    /* A system handle closed inside its own event callback. */
    {
        struct closing c;
        outcome_init(&c.ev);
        HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
        c.system = NULL;
        CHECK_HR(HcsCreateComputeSystemInNamespace(ns, u"close-in-callback", doc, op, NULL, &c.system),
                 S_OK);
        CHECK_HR(HcsWaitForOperationResult(op, INFINITE, NULL), S_OK);
        CHECK_HR(HcsSetComputeSystemCallback(c.system, HcsEventOptionNone, &c, close_on_exit), S_OK);
        CHECK_HR(HcsStartComputeSystem(c.system, op, NULL), S_OK);
        CHECK_HR(HcsWaitForOperationResult(op, INFINITE, NULL), S_OK);
        CHECK_HR(HcsTerminateComputeSystem(c.system, op, NULL), S_OK);
        outcome_wait(&c.ev);
        /* The callback closed the handle. */
        CHECK_HR(HcsStartComputeSystem(c.system, op, NULL), E_HANDLE);
        HcsCloseOperation(op);
        outcome_destroy(&c.ev);
    }

    free(ns);
    free(doc);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("operation_completion: all checks passed\n");
    return 0;
}
