/*
 * A container's life through the C API, as a ported Windows program would
 * do it (the Tutorial's flow): one operation reused for create, start,
 * get properties, a process, terminate; an enumeration completed through a
 * callback that closes its own operation; handle checks. Every HRESULT is
 * checked. Run by tests/c_programs.rs under valgrind.
 *
 *   container_lifecycle <namespace> <rootfs>
 */
#include "sample_common.h"

#include <unistd.h>

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int finished;
    HRESULT hr;
    HCS_OPERATION_TYPE type;
    char *doc;
    pthread_t caller;
    int on_other_thread;
};

static void CALLBACK enumerate_done(HCS_OPERATION op, void *context) {
    struct done *d = (struct done *)context;
    PWSTR doc = NULL;
    HRESULT hr = HcsGetOperationResult(op, &doc);
    HCS_OPERATION_TYPE type = HcsGetOperationType(op);
    /* Closing the operation inside its own callback is allowed. */
    HcsCloseOperation(op);
    pthread_mutex_lock(&d->mu);
    d->hr = hr;
    d->type = type;
    d->doc = narrow_and_free(doc);
    d->on_other_thread = !pthread_equal(pthread_self(), d->caller);
    d->finished = 1;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <namespace> <rootfs>\n", argv[0]);
        return 2;
    }
    char doc8[4096];
    snprintf(doc8, sizeof doc8,
             "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Owner\":\"capi-test\","
             "\"ShouldTerminateOnLastHandleClosed\":true,"
             "\"Container\":{\"Storage\":{\"Layers\":[{\"Id\":\"0a9d0f6e-0000-4000-8000-000000000001\","
             "\"Path\":\"%s\"}]}}}",
             argv[2]);
    char16_t *ns = widen(argv[1]);
    char16_t *doc = widen(doc8);
    PWSTR result = NULL;

    /* A fresh operation: not started. */
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    CHECK(op != NULL);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeNone);
    CHECK(HcsGetOperationId(op) != HCS_INVALID_OPERATION_ID);
    CHECK_HR(HcsGetOperationResult(op, &result), HCS_E_OPERATION_NOT_STARTED);
    CHECK(result == NULL);
    CHECK(HcsGetComputeSystemFromOperation(op) == NULL);

    /* Create. */
    HCS_SYSTEM system = NULL;
    CHECK_HR(HcsCreateComputeSystemInNamespace(ns, u"capi-lifecycle", doc, op, NULL, &system), S_OK);
    CHECK(system != NULL);
    CHECK_HR(HcsWaitForOperationResult(op, INFINITE, &result), S_OK);
    free(narrow_and_free(result));
    result = NULL;
    CHECK(HcsGetOperationType(op) == HcsOperationTypeCreate);
    CHECK(HcsGetComputeSystemFromOperation(op) == system);

    /* The same id again fails, and the failure is on the operation too. */
    HCS_SYSTEM dup = NULL;
    HRESULT dup_hr = HcsCreateComputeSystemInNamespace(ns, u"capi-lifecycle", doc, op, NULL, &dup);
    HRESULT dup_result = HcsWaitForOperationResult(op, INFINITE, &result);
    CHECK(dup_hr == HCS_E_SYSTEM_ALREADY_EXISTS || dup_result == HCS_E_SYSTEM_ALREADY_EXISTS);
    if (dup) HcsCloseComputeSystem(dup);
    free(narrow_and_free(result));
    result = NULL;

    /* Start, reusing the completed operation. */
    CHECK_HR(HcsStartComputeSystem(system, op, NULL), S_OK);
    CHECK_HR(HcsWaitForOperationResult(op, INFINITE, NULL), S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeStart);

    /* Properties. */
    CHECK_HR(HcsGetComputeSystemProperties(system, op, NULL), S_OK);
    CHECK_HR(HcsWaitForOperationResult(op, INFINITE, &result), S_OK);
    char *props = narrow_and_free(result);
    result = NULL;
    CHECK(props && strstr(props, "\"Running\"") && strstr(props, "capi-lifecycle"));
    free(props);

    /* The process-info variant on a GetProperties operation is refused. */
    HCS_PROCESS_INFORMATION pi;
    CHECK_HR(HcsGetOperationResultAndProcessInfo(op, &pi, NULL), E_INVALIDARG);

    /* A process with its stdout piped back. */
    HCS_PROCESS process = NULL;
    CHECK_HR(HcsCreateProcess(system,
                              u"{\"CommandArgs\":[\"sh\",\"-c\",\"echo hello-from-c; exit 3\"],"
                              u"\"CreateStdOutPipe\":true}",
                              op, NULL, &process),
             S_OK);
    memset(&pi, 0, sizeof pi);
    CHECK_HR(HcsWaitForOperationResultAndProcessInfo(op, INFINITE, &pi, NULL), S_OK);
    CHECK(HcsGetProcessFromOperation(op) == process);
    CHECK(pi.ProcessId != 0);
    CHECK(pi.StdInput == -1 && pi.StdError == -1 && pi.StdOutput >= 0);
    if (pi.StdOutput >= 0) {
        char buf[256];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1 && (n = read(pi.StdOutput, buf + got, sizeof buf - 1 - got)) > 0)
            got += (size_t)n;
        buf[got] = 0;
        CHECK(strstr(buf, "hello-from-c") != NULL);
        close(pi.StdOutput);
    }
    CHECK_HR(HcsWaitForProcessExit(process, 30000, &result), S_OK);
    char *status = narrow_and_free(result);
    result = NULL;
    CHECK(status && strstr(status, "\"ExitCode\":3"));
    free(status);
    HcsCloseProcess(process);
    /* A closed handle is refused, not a crash. */
    CHECK_HR(HcsGetProcessProperties(process, op, NULL), E_HANDLE);

    /* Enumerate through a callback that closes its own operation. */
    struct done d;
    memset(&d, 0, sizeof d);
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cond, NULL);
    d.caller = pthread_self();
    HCS_OPERATION eop = HcsCreateOperation(&d, enumerate_done);
    CHECK(HcsGetOperationContext(eop) == &d);
    CHECK_HR(HcsEnumerateComputeSystemsInNamespace(ns, NULL, eop), S_OK);
    pthread_mutex_lock(&d.mu);
    while (!d.finished) pthread_cond_wait(&d.cond, &d.mu);
    pthread_mutex_unlock(&d.mu);
    CHECK_HR(d.hr, S_OK);
    CHECK(d.type == HcsOperationTypeEnumerate);
    CHECK(d.on_other_thread);
    CHECK(d.doc && strstr(d.doc, "capi-lifecycle"));
    free(d.doc);
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cond);

    /* Bad handles. */
    CHECK_HR(HcsStartComputeSystem(NULL, op, NULL), E_INVALIDARG);
    CHECK_HR(HcsStartComputeSystem((HCS_SYSTEM)op, op, NULL), E_HANDLE);
    CHECK_HR(HcsStartComputeSystem(system, (HCS_OPERATION)system, NULL), E_HANDLE);
    CHECK_HR(HcsCancelOperation(op), E_NOTIMPL);

    /* Terminate and wait for the exit. */
    CHECK_HR(HcsTerminateComputeSystem(system, op, NULL), S_OK);
    CHECK_HR(HcsWaitForOperationResult(op, INFINITE, NULL), S_OK);
    CHECK_HR(HcsWaitForComputeSystemExit(system, 30000, &result), S_OK);
    char *exit_status = narrow_and_free(result);
    result = NULL;
    CHECK(exit_status && strstr(exit_status, "ExitType"));
    free(exit_status);

    /* Service properties. */
    CHECK_HR(HcsGetServiceProperties(NULL, &result), S_OK);
    char *svc = narrow_and_free(result);
    result = NULL;
    CHECK(svc && strstr(svc, "SupportedSchemaVersions"));
    free(svc);

    HcsCloseComputeSystem(system);
    CHECK_HR(HcsStartComputeSystem(system, op, NULL), E_HANDLE);
    HcsCloseOperation(op);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeNone);
    CHECK(HcsGetOperationId(op) == HCS_INVALID_OPERATION_ID);

    free(ns);
    free(doc);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("container_lifecycle: all checks passed\n");
    return 0;
}
