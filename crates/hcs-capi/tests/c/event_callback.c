/*
 * Microsoft's EventCallbackSample, on a container: a system event callback
 * registered with HcsEventOptionNone after the create, and a process event
 * callback. Checked, as the sample documents per event type:
 *   - HcsEventSystemExited arrives once, with a SystemExitStatus document;
 *   - HcsEventProcessExited arrives on the process callback only, with a
 *     ProcessStatus document (the process's id and exit code);
 *   - HcsEventOperationCallback never arrives without
 *     HcsEventOptionEnableOperationCallbacks, HcsEventInvalid never;
 *   - a second registration on a handle is refused;
 *   - no callback comes after the handle is closed.
 * The process waits on its stdin, closed through HcsModifyProcess
 * (CloseHandle StdIn) after its callback is registered.
 * Every HRESULT is checked. Run by tests/c_programs.rs under valgrind.
 *
 *   event_callback <namespace> <rootfs>
 */
#include "sample_common.h"

#include <unistd.h>

#define MAX_EVENTS 16

/* What one callback saw. */
struct seen {
    pthread_mutex_t mu;
    struct event ev; /* set on every event */
    int count;
    HCS_EVENT_TYPE types[MAX_EVENTS];
    char *data[MAX_EVENTS]; /* narrowed EventData, NULL if none */
    pthread_t caller;
    int on_caller_thread;
};

static void seen_init(struct seen *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    event_init(&s->ev);
    s->caller = pthread_self();
}

static void seen_destroy(struct seen *s) {
    for (int i = 0; i < s->count && i < MAX_EVENTS; i++) free(s->data[i]);
    pthread_mutex_destroy(&s->mu);
    event_destroy(&s->ev);
}

static int seen_count(struct seen *s, HCS_EVENT_TYPE type) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->count && i < MAX_EVENTS; i++) n += s->types[i] == type;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The EventData of the first event of `type` (owned by `s`), or NULL. */
static const char *seen_data(struct seen *s, HCS_EVENT_TYPE type) {
    pthread_mutex_lock(&s->mu);
    const char *d = NULL;
    for (int i = 0; i < s->count && i < MAX_EVENTS; i++)
        if (s->types[i] == type) {
            d = s->data[i];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return d;
}

static int total(struct seen *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait until `type` was seen (up to 60 s). */
static int wait_for(struct seen *s, HCS_EVENT_TYPE type) {
    for (int i = 0; i < 60; i++) {
        if (seen_count(s, type) > 0) return 1;
        event_wait(&s->ev, 1);
    }
    return seen_count(s, type) > 0;
}

static void CALLBACK record_event(HCS_EVENT *event, void *context) {
    struct seen *s = (struct seen *)context;
    pthread_mutex_lock(&s->mu);
    if (pthread_equal(pthread_self(), s->caller)) s->on_caller_thread = 1;
    if (s->count < MAX_EVENTS) {
        s->types[s->count] = event->Type;
        s->data[s->count] = narrow(event->EventData);
    }
    s->count++;
    pthread_mutex_unlock(&s->mu);
    /* An operation delivered here would belong to us: close it. */
    if (event->Type == HcsEventOperationCallback && event->Operation)
        HcsCloseOperation(event->Operation);
    event_set(&s->ev);
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
    struct seen sys_seen, proc_seen;
    seen_init(&sys_seen);
    seen_init(&proc_seen);

    /* Create and wait, then register the system callback (no options). */
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    HCS_SYSTEM system = NULL;
    CHECK_HR(finish(HcsCreateComputeSystemInNamespace(ns, u"event-sample", doc, op, NULL, &system), op,
                    NULL),
             S_OK);
    CHECK(system != NULL);
    if (!system) {
        fprintf(stderr, "no system: giving up\n");
        return 1;
    }
    CHECK_HR(HcsSetComputeSystemCallback(system, HcsEventOptionNone, &sys_seen, record_event), S_OK);
    /* One registration per handle. */
    CHECK_HR(HcsSetComputeSystemCallback(system, HcsEventOptionNone, &sys_seen, record_event),
             HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET);

    CHECK_HR(finish(HcsStartComputeSystem(system, op, NULL), op, NULL), S_OK);

    /* A process that exits with 7 once its stdin closes, so its callback is
     * registered before it can exit. */
    HCS_PROCESS process = NULL;
    HCS_PROCESS_INFORMATION pi;
    memset(&pi, 0, sizeof pi);
    HRESULT hr = HcsCreateProcess(system,
                                  u"{\"CommandArgs\":[\"sh\",\"-c\",\"read x; exit 7\"],"
                                  u"\"CreateStdInPipe\":true}",
                                  op, NULL, &process);
    CHECK_HR(hr, S_OK);
    CHECK_HR(HcsWaitForOperationResultAndProcessInfo(op, INFINITE, &pi, NULL), S_OK);
    CHECK(process != NULL && pi.ProcessId != 0 && pi.StdInput >= 0);
    if (process) {
        CHECK_HR(HcsSetProcessCallback(process, HcsEventOptionNone, &proc_seen, record_event), S_OK);
        /* As on Windows, HCS keeps its own copy of the stdin pipe: EOF
         * needs our end closed and HcsModifyProcess CloseHandle. */
        if (pi.StdInput >= 0) close(pi.StdInput);
        CHECK_HR(finish(HcsModifyProcess(process, op,
                                         u"{\"Operation\":\"CloseHandle\",\"CloseHandle\":{\"Handle\":\"StdIn\"}}"),
                        op, NULL),
                 S_OK);
        CHECK(HcsGetOperationType(op) == HcsOperationTypeModifyProcess);
        CHECK(wait_for(&proc_seen, HcsEventProcessExited));
        const char *status = seen_data(&proc_seen, HcsEventProcessExited);
        printf("ProcessExited EventData: %s\n", status ? status : "(none)");
        char want_pid[64];
        snprintf(want_pid, sizeof want_pid, "\"ProcessId\":%u", (unsigned)pi.ProcessId);
        CHECK(status && strstr(status, want_pid));
        CHECK(status && strstr(status, "\"Exited\":true"));
        CHECK(status && strstr(status, "\"ExitCode\":7"));
        CHECK(seen_count(&proc_seen, HcsEventProcessExited) == 1);
        HcsCloseProcess(process);
    }

    /* A process's exit never reaches the system callback; nor do operation
     * completions without HcsEventOptionEnableOperationCallbacks. */
    CHECK(seen_count(&sys_seen, HcsEventProcessExited) == 0);
    CHECK(seen_count(&sys_seen, HcsEventOperationCallback) == 0);
    CHECK(seen_count(&proc_seen, HcsEventOperationCallback) == 0);

    /* Terminate: SystemExited with a SystemExitStatus. */
    CHECK_HR(finish(HcsTerminateComputeSystem(system, op, NULL), op, NULL), S_OK);
    CHECK(wait_for(&sys_seen, HcsEventSystemExited));
    const char *exit_status = seen_data(&sys_seen, HcsEventSystemExited);
    printf("SystemExited EventData: %s\n", exit_status ? exit_status : "(none)");
    CHECK(exit_status && strstr(exit_status, "\"Status\""));
    CHECK(exit_status && strstr(exit_status, "\"ExitType\":\"ForcedExit\""));
    CHECK(seen_count(&sys_seen, HcsEventSystemExited) == 1);

    HcsCloseComputeSystem(system);
    int after_close = total(&sys_seen);
    sleep_ms(200);
    CHECK(total(&sys_seen) == after_close);

    /* Nothing else: no Invalid, no operation or process events on the system. */
    CHECK(seen_count(&sys_seen, HcsEventInvalid) == 0);
    CHECK(seen_count(&proc_seen, HcsEventInvalid) == 0);
    CHECK(seen_count(&sys_seen, HcsEventOperationCallback) == 0);
    CHECK(seen_count(&sys_seen, HcsEventProcessExited) == 0);
    CHECK(!sys_seen.on_caller_thread && !proc_seen.on_caller_thread);
    printf("system callback events: %d, process callback events: %d\n", total(&sys_seen),
           total(&proc_seen));

    HcsCloseOperation(op);
    seen_destroy(&sys_seen);
    seen_destroy(&proc_seen);
    free(ns);
    free(doc);
    return report("event_callback");
}
