/* Compiled as C and as C++ with -Wall -Wextra -Werror by tests/header.rs:
 * the headers must be clean in both, and the layouts must match the Rust
 * definitions (the sizes come in as -D flags from the test). */
#include "computecore.h"

#ifdef __cplusplus
#define STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
#include <stddef.h>

STATIC_ASSERT(sizeof(HRESULT) == 4, "HRESULT is 32-bit");
STATIC_ASSERT(sizeof(WCHAR) == 2, "WCHAR is UTF-16");
STATIC_ASSERT(sizeof(HCS_PROCESS_INFORMATION) == RUST_SIZEOF_PROCESS_INFORMATION, "HCS_PROCESS_INFORMATION layout");
STATIC_ASSERT(offsetof(HCS_PROCESS_INFORMATION, StdError) == RUST_OFFSETOF_STDERROR, "StdError offset");
STATIC_ASSERT(sizeof(HCS_EVENT) == RUST_SIZEOF_EVENT, "HCS_EVENT layout");
STATIC_ASSERT(offsetof(HCS_EVENT, Operation) == RUST_OFFSETOF_OPERATION, "HCS_EVENT.Operation offset");
STATIC_ASSERT(sizeof(HCS_CREATE_OPTIONS_1) == RUST_SIZEOF_CREATE_OPTIONS, "HCS_CREATE_OPTIONS_1 layout");
STATIC_ASSERT(sizeof(HCS_OPERATION_TYPE) == 4, "enum size");
STATIC_ASSERT(sizeof(HCS_EVENT_TYPE) == 4, "enum size");
STATIC_ASSERT(HcsOperationTypeNone == -1, "None is -1");

static void CALLBACK on_done(HCS_OPERATION op, void *ctx) { (void)op; (void)ctx; }
static void CALLBACK on_event(HCS_EVENT *ev, void *ctx) { (void)ev; (void)ctx; }

#ifdef USE_L_LITERALS
/* -fshort-wchar -DHCS_WCHAR_IS_WCHAR_T: Windows-style L"..." literals. */
#define TXT(s) L##s
#else
/* The default: u"..." literals are PCWSTR. */
#define TXT(s) u##s
#endif

int main(void) {
    PCWSTR id = TXT("header-check");
    HCS_OPERATION op = HcsCreateOperation(NULL, on_done);
    HCS_SYSTEM system = NULL;
    HRESULT hr = HcsOpenComputeSystem(id, GENERIC_ALL, &system);
    HCS_EVENT_OPTIONS opts = HcsEventOptionEnableOperationCallbacks;
    (void)HcsSetComputeSystemCallback(system, opts, NULL, on_event);
    (void)HcsWaitForOperationResult(op, INFINITE, NULL);
    HcsCloseOperation(op);
    return FAILED(hr) && hr != HCS_E_SYSTEM_NOT_FOUND && hr != E_INVALIDARG
           && hr != HRESULT_FROM_WIN32(ERROR_NOT_FOUND) && hr != E_HANDLE;
}
