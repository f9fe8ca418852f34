/*
 * Microsoft's ComputeSystemSample, on a container, in two processes:
 *
 *   compute_system create <id> <rootfs>
 *       creates and starts the container "<id>" in the default namespace
 *       with ShouldTerminateOnLastHandleClosed false, closes its handle and
 *       exits: the container outlives its creator;
 *   compute_system use <id> <save-file>
 *       (a second process) HcsOpenComputeSystem by id, checks it is still
 *       running, HcsEnumerateComputeSystems (the id is listed), Pause with
 *       {"SuspensionLevel":"Suspend","HostedNotification":{"Reason":"Save"}},
 *       Resume with NULL, Save with {"SaveType":"ToFile",...}: a container
 *       cannot be saved, so that fails with
 *       HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED) (and, while it runs, with
 *       HCS_E_INVALID_STATE: a save needs a paused system), then terminates
 *       and closes.
 *
 * Every HRESULT is checked. Run by tests/c_programs.rs under valgrind.
 */
#include "sample_common.h"

#include <unistd.h>

/* The State of a GetProperties document, checked against `want`. */
static void check_state(HCS_SYSTEM system, HCS_OPERATION op, const char *want) {
    char *props = NULL;
    CHECK_HR(finish(HcsGetComputeSystemProperties(system, op, NULL), op, &props), S_OK);
    char needle[64];
    snprintf(needle, sizeof needle, "\"State\":\"%s\"", want);
    if (!props || !strstr(props, needle)) {
        fprintf(stderr, "properties %s lack %s\n", props ? props : "(none)", needle);
        failures++;
    } else {
        printf("state: %s\n", want);
    }
    free(props);
}

static int create(const char *id8, const char *rootfs) {
    char doc8[4096];
    snprintf(doc8, sizeof doc8,
             "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Owner\":\"Sample\","
             "\"ShouldTerminateOnLastHandleClosed\":false,"
             "\"Container\":{\"Storage\":{\"Layers\":[{\"Id\":\"0a9d0f6e-0000-4000-8000-000000000001\","
             "\"Path\":\"%s\"}]}}}",
             rootfs);
    char16_t *id = widen(id8);
    char16_t *doc = widen(doc8);
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    HCS_SYSTEM system = NULL;
    char *err = NULL;
    CHECK_HR(finish(HcsCreateComputeSystem(id, doc, op, NULL, &system), op, &err), S_OK);
    if (failures && err) fprintf(stderr, "create: %s\n", err);
    free(err);
    if (system) {
        CHECK_HR(finish(HcsStartComputeSystem(system, op, NULL), op, NULL), S_OK);
        check_state(system, op, "Running");
        HcsCloseComputeSystem(system);
    }
    CHECK(system != NULL);
    HcsCloseOperation(op);
    free(id);
    free(doc);
    if (!failures) printf("created %s (survives this process)\n", id8);
    return report("compute_system create");
}

static int use(const char *id8, const char *save_file) {
    char16_t *id = widen(id8);
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    HCS_SYSTEM system = NULL;

    /* An unknown id is not found; a wrong access mask is refused. */
    HCS_SYSTEM none = NULL;
    CHECK_HR(HcsOpenComputeSystem(u"compute-system-sample-no-such-id", GENERIC_ALL, &none),
             HCS_E_SYSTEM_NOT_FOUND);
    CHECK(none == NULL);

    CHECK_HR(HcsOpenComputeSystem(id, GENERIC_ALL, &system), S_OK);
    if (!system) {
        fprintf(stderr, "cannot open %s: giving up\n", id8);
        HcsCloseOperation(op);
        free(id);
        return report("compute_system use");
    }
    printf("opened %s\n", id8);
    check_state(system, op, "Running");

    /* Enumerate: the JSON array lists the system. */
    char *list = NULL;
    CHECK_HR(finish(HcsEnumerateComputeSystems(NULL, op), op, &list), S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeEnumerate);
    char needle[256];
    snprintf(needle, sizeof needle, "\"Id\":\"%s\"", id8);
    CHECK(list && list[0] == '[');
    CHECK(list && strstr(list, needle));
    if (list && strstr(list, needle)) printf("enumerated: %s is listed\n", id8);
    free(list);

    /* Pause, as the sample does, and resume with no options. */
    CHECK_HR(finish(HcsPauseComputeSystem(
                        system, op,
                        u"{\"SuspensionLevel\":\"Suspend\",\"HostedNotification\":{\"Reason\":\"Save\"}}"),
                    op, NULL),
             S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypePause);
    check_state(system, op, "Paused");
    CHECK_HR(finish(HcsResumeComputeSystem(system, op, NULL), op, NULL), S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeResume);
    check_state(system, op, "Running");

    char save8[1024];
    snprintf(save8, sizeof save8, "{\"SaveType\":\"ToFile\",\"SaveStateFilePath\":\"%s\"}", save_file);
    char16_t *save = widen(save8);

    /* Save while running: a save needs a paused system. */
    char *err = NULL;
    CHECK_HR(finish(HcsSaveComputeSystem(system, op, save), op, &err), HCS_E_INVALID_STATE);
    printf("save while running: %s\n", err ? err : "(no result document)");
    free(err);

    /* Save while paused: containers cannot be saved. */
    CHECK_HR(finish(HcsPauseComputeSystem(system, op, NULL), op, NULL), S_OK);
    err = NULL;
    HRESULT save_hr = finish(HcsSaveComputeSystem(system, op, save), op, &err);
    CHECK_HR(save_hr, HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED));
    CHECK(err && strstr(err, "not supported"));
    printf("save: 0x%08X %s\n", (unsigned)save_hr, err ? err : "(no result document)");
    if (save_hr == HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED))
        printf("save refused with ERROR_NOT_SUPPORTED: containers cannot be saved\n");
    free(err);
    CHECK(access(save_file, F_OK) != 0);
    free(save);
    /* Still usable after the refused save. */
    CHECK_HR(finish(HcsResumeComputeSystem(system, op, NULL), op, NULL), S_OK);
    check_state(system, op, "Running");

    /* Terminate and close. */
    CHECK_HR(finish(HcsTerminateComputeSystem(system, op, NULL), op, NULL), S_OK);
    PWSTR exit_doc = NULL;
    CHECK_HR(HcsWaitForComputeSystemExit(system, 30000, &exit_doc), S_OK);
    char *exit_status = narrow_and_free(exit_doc);
    CHECK(exit_status && strstr(exit_status, "ExitType"));
    printf("terminated: %s\n", exit_status ? exit_status : "(none)");
    free(exit_status);
    HcsCloseComputeSystem(system);
    HcsCloseOperation(op);
    free(id);
    return report("compute_system use");
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "create") == 0) return create(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "use") == 0) return use(argv[2], argv[3]);
    fprintf(stderr, "usage: %s create <id> <rootfs> | use <id> <save-file>\n", argv[0]);
    return 2;
}
