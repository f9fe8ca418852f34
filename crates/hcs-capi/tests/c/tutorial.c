/*
 * The Tutorial's flow with one operation reused for every call: create,
 * start, get the Memory properties, modify, terminate. On a container and
 * on a virtual machine running the HCS test guest:
 *
 *   tutorial container <namespace> <rootfs>
 *       modify sets the memory limit (Container/Memory/SizeInMB) to 256 MB,
 *       which must succeed and show in the Memory properties;
 *   tutorial vm <namespace> <test-guest-elf>
 *       a LinuxKernelDirect VM (64 MiB, 1 vCPU, COM1); modify asks for a
 *       memory resize, which this VMM refuses: the call must fail with
 *       HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED) and a ResultError, which the
 *       program reports, and the VM keeps its 64 MiB.
 *
 * Every HRESULT is checked. Run by tests/c_programs.rs under valgrind.
 */
#include "sample_common.h"

/* GetProperties with the Memory type; returns the narrowed document. */
static char *memory_properties(HCS_SYSTEM system, HCS_OPERATION op) {
    char *props = NULL;
    CHECK_HR(finish(HcsGetComputeSystemProperties(system, op, u"{\"PropertyTypes\":[\"Memory\"]}"), op,
                    &props),
             S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeGetProperties);
    CHECK(props && strstr(props, "\"Memory\"") && strstr(props, "\"AssignedMemory\""));
    printf("memory properties: %s\n", props ? props : "(none)");
    return props;
}

int main(int argc, char **argv) {
    int vm = argc == 4 && strcmp(argv[1], "vm") == 0;
    if (argc != 4 || (!vm && strcmp(argv[1], "container") != 0)) {
        fprintf(stderr, "usage: %s container <namespace> <rootfs> | vm <namespace> <elf>\n", argv[0]);
        return 2;
    }
    const char *name = vm ? "tutorial vm" : "tutorial container";
    char doc8[4096];
    if (vm)
        snprintf(doc8, sizeof doc8,
                 "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Owner\":\"Sample\","
                 "\"ShouldTerminateOnLastHandleClosed\":true,"
                 "\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelFilePath\":\"%s\","
                 "\"KernelCmdLine\":\"console=ttyS0\"}},"
                 "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":64},\"Processor\":{\"Count\":1}},"
                 "\"Devices\":{\"ComPorts\":{\"0\":{\"NamedPipe\":\"\"}}}}}",
                 argv[3]);
    else
        snprintf(doc8, sizeof doc8,
                 "{\"SchemaVersion\":{\"Major\":2,\"Minor\":1},\"Owner\":\"Sample\","
                 "\"ShouldTerminateOnLastHandleClosed\":true,"
                 "\"Container\":{\"Storage\":{\"Layers\":[{\"Id\":\"0a9d0f6e-0000-4000-8000-000000000001\","
                 "\"Path\":\"%s\"}]}}}",
                 argv[3]);
    char16_t *ns = widen(argv[2]);
    char16_t *doc = widen(doc8);
    char *err = NULL;

    /* Create. */
    HCS_OPERATION op = HcsCreateOperation(NULL, NULL);
    HCS_SYSTEM system = NULL;
    HRESULT hr = finish(HcsCreateComputeSystemInNamespace(ns, u"tutorial", doc, op, NULL, &system), op, &err);
    CHECK_HR(hr, S_OK);
    if (FAILED(hr) || !system) {
        fprintf(stderr, "create failed: %s\n", err ? err : "(no result document)");
        free(err);
        if (system) HcsCloseComputeSystem(system);
        HcsCloseOperation(op);
        free(ns);
        free(doc);
        return report(name);
    }
    free(err);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeCreate);
    printf("created\n");

    /* Start. */
    err = NULL;
    CHECK_HR(finish(HcsStartComputeSystem(system, op, NULL), op, &err), S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeStart);
    if (failures) fprintf(stderr, "start: %s\n", err ? err : "(no result document)");
    free(err);
    printf("started\n");

    /* Memory properties. */
    char *props = memory_properties(system, op);
    if (vm) CHECK(props && strstr(props, "\"AssignedMemory\":64"));
    free(props);

    /* Modify. */
    err = NULL;
    if (vm) {
        hr = finish(HcsModifyComputeSystem(system, op,
                                           u"{\"ResourcePath\":\"VirtualMachine/ComputeTopology/Memory/SizeInMB\","
                                           u"\"RequestType\":\"Update\",\"Settings\":128}",
                                           NULL),
                    op, &err);
        CHECK_HR(hr, HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED));
        CHECK(err && strstr(err, "SizeInMB"));
        printf("modify (memory resize) refused: 0x%08X %s\n", (unsigned)hr, err ? err : "(no result document)");
        free(err);
        /* The refusal changed nothing. */
        props = memory_properties(system, op);
        CHECK(props && strstr(props, "\"AssignedMemory\":64"));
        free(props);
    } else {
        hr = finish(HcsModifyComputeSystem(system, op,
                                           u"{\"ResourcePath\":\"Container/Memory/SizeInMB\","
                                           u"\"RequestType\":\"Update\",\"Settings\":256}",
                                           NULL),
                    op, &err);
        CHECK_HR(hr, S_OK);
        if (FAILED(hr)) fprintf(stderr, "modify: %s\n", err ? err : "(no result document)");
        free(err);
        printf("modify (memory limit 256 MB): 0x%08X\n", (unsigned)hr);
        props = memory_properties(system, op);
        CHECK(props && strstr(props, "\"AssignedMemory\":256"));
        free(props);
    }
    CHECK(HcsGetOperationType(op) == HcsOperationTypeGetProperties);

    /* An unsupported resource path fails with a clear error on both. */
    err = NULL;
    hr = finish(HcsModifyComputeSystem(system, op, u"{\"ResourcePath\":\"No/Such/Resource\",\"Settings\":1}",
                                       NULL),
                op, &err);
    CHECK_HR(hr, HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED));
    CHECK(err && strstr(err, "No/Such/Resource"));
    free(err);

    /* Terminate. */
    CHECK_HR(finish(HcsTerminateComputeSystem(system, op, NULL), op, NULL), S_OK);
    CHECK(HcsGetOperationType(op) == HcsOperationTypeTerminate);
    PWSTR exit_doc = NULL;
    CHECK_HR(HcsWaitForComputeSystemExit(system, 60000, &exit_doc), S_OK);
    char *exit_status = narrow_and_free(exit_doc);
    CHECK(exit_status && strstr(exit_status, "ExitType"));
    printf("terminated: %s\n", exit_status ? exit_status : "(none)");
    free(exit_status);

    HcsCloseComputeSystem(system);
    HcsCloseOperation(op);
    free(ns);
    free(doc);
    return report(name);
}
