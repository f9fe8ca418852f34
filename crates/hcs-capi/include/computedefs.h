/*
 * computedefs.h: types of the Host Compute System API, Linux edition
 * (libcomputecore.so). Source-compatible with Microsoft's ComputeDefs.h
 * except where Linux differs:
 *
 *  - PCWSTR/PWSTR are UTF-16 (char16_t), so use u"..." literals. Code that
 *    writes L"..." must be compiled with -fshort-wchar (wchar_t is 32-bit on
 *    Linux otherwise); WCHAR is then wchar_t. Define HCS_WCHAR_IS_WCHAR_T
 *    before including to make PCWSTR `const wchar_t*` in that case.
 *  - HCS_PROCESS_INFORMATION carries stdio as file descriptors (int, -1 when
 *    a pipe was not requested), owned by the caller (close() them).
 *  - Strings the API returns are released with LocalFree or CoTaskMemFree
 *    (the same allocator).
 *  - Handles are opaque: a NULL handle gives E_INVALIDARG, a closed, unknown
 *    or wrong-kind handle E_HANDLE (HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)).
 *
 * The HRESULT constants and enumeration values between the GENERATED
 * markers are rendered from the Rust definitions (crates/hcs-capi/src/header.rs);
 * a test fails if they drift.
 */
#ifndef HCS_LINUX_COMPUTEDEFS_H
#define HCS_LINUX_COMPUTEDEFS_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <uchar.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Windows base types the API uses. */
#ifndef WINAPI
#define WINAPI
#endif
#ifndef CALLBACK
#define CALLBACK
#endif
#ifndef HCS_WIN_BASE_TYPES
#define HCS_WIN_BASE_TYPES
typedef int32_t HRESULT;
typedef uint32_t DWORD;
typedef uint64_t UINT64;
typedef void *HANDLE;
typedef void *HLOCAL;
typedef struct _SECURITY_DESCRIPTOR SECURITY_DESCRIPTOR; /* opaque; pass NULL */
#if defined(HCS_WCHAR_IS_WCHAR_T)
#if defined(__SIZEOF_WCHAR_T__) && __SIZEOF_WCHAR_T__ != 2
#error "HCS_WCHAR_IS_WCHAR_T needs a 16-bit wchar_t: compile with -fshort-wchar"
#endif
typedef wchar_t WCHAR;
#else
typedef char16_t WCHAR;
#endif
typedef const WCHAR *PCWSTR;
typedef WCHAR *PWSTR;
#endif

#ifndef SUCCEEDED
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#endif
#ifndef FAILED
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#endif
#ifndef HRESULT_FROM_WIN32
#define HRESULT_FROM_WIN32(x) \
    ((HRESULT)(x) <= 0 ? ((HRESULT)(x)) : ((HRESULT)(((x) & 0x0000FFFF) | (7 << 16) | 0x80000000)))
#endif
#ifndef INFINITE
#define INFINITE 0xFFFFFFFF
#endif
#ifndef GENERIC_ALL
#define GENERIC_ALL 0x10000000
#endif

/* Handles (DECLARE_HANDLE: distinct pointer types). */
typedef struct HCS_OPERATION__ { int unused; } *HCS_OPERATION;
typedef struct HCS_SYSTEM__ { int unused; } *HCS_SYSTEM;
typedef struct HCS_PROCESS__ { int unused; } *HCS_PROCESS;
typedef struct HCS_CALLBACK__ { int unused; } *HCS_CALLBACK;

#define HCS_INVALID_OPERATION_ID ((UINT64)(-1))

/* BEGIN GENERATED: rendered from the Rust definitions by hcs-capi (src/header.rs); do not edit */

/* HRESULTs (winerror.h values). */
#ifndef S_OK
#define S_OK ((HRESULT)0x00000000)
#endif
#ifndef HCS_E_TERMINATED_DURING_START
#define HCS_E_TERMINATED_DURING_START ((HRESULT)0x80370100)
#endif
#ifndef HCS_E_IMAGE_MISMATCH
#define HCS_E_IMAGE_MISMATCH ((HRESULT)0x80370101)
#endif
#ifndef HCS_E_HYPERV_NOT_INSTALLED
#define HCS_E_HYPERV_NOT_INSTALLED ((HRESULT)0x80370102)
#endif
#ifndef HCS_E_INVALID_STATE
#define HCS_E_INVALID_STATE ((HRESULT)0x80370105)
#endif
#ifndef HCS_E_UNEXPECTED_EXIT
#define HCS_E_UNEXPECTED_EXIT ((HRESULT)0x80370106)
#endif
#ifndef HCS_E_TERMINATED
#define HCS_E_TERMINATED ((HRESULT)0x80370107)
#endif
#ifndef HCS_E_CONNECT_FAILED
#define HCS_E_CONNECT_FAILED ((HRESULT)0x80370108)
#endif
#ifndef HCS_E_CONNECTION_TIMEOUT
#define HCS_E_CONNECTION_TIMEOUT ((HRESULT)0x80370109)
#endif
#ifndef HCS_E_CONNECTION_CLOSED
#define HCS_E_CONNECTION_CLOSED ((HRESULT)0x8037010A)
#endif
#ifndef HCS_E_UNKNOWN_MESSAGE
#define HCS_E_UNKNOWN_MESSAGE ((HRESULT)0x8037010B)
#endif
#ifndef HCS_E_UNSUPPORTED_PROTOCOL_VERSION
#define HCS_E_UNSUPPORTED_PROTOCOL_VERSION ((HRESULT)0x8037010C)
#endif
#ifndef HCS_E_INVALID_JSON
#define HCS_E_INVALID_JSON ((HRESULT)0x8037010D)
#endif
#ifndef HCS_E_SYSTEM_NOT_FOUND
#define HCS_E_SYSTEM_NOT_FOUND ((HRESULT)0x8037010E)
#endif
#ifndef HCS_E_SYSTEM_ALREADY_EXISTS
#define HCS_E_SYSTEM_ALREADY_EXISTS ((HRESULT)0x8037010F)
#endif
#ifndef HCS_E_SYSTEM_ALREADY_STOPPED
#define HCS_E_SYSTEM_ALREADY_STOPPED ((HRESULT)0x80370110)
#endif
#ifndef HCS_E_PROTOCOL_ERROR
#define HCS_E_PROTOCOL_ERROR ((HRESULT)0x80370111)
#endif
#ifndef HCS_E_INVALID_LAYER
#define HCS_E_INVALID_LAYER ((HRESULT)0x80370112)
#endif
#ifndef HCS_E_WINDOWS_INSIDER_REQUIRED
#define HCS_E_WINDOWS_INSIDER_REQUIRED ((HRESULT)0x80370113)
#endif
#ifndef HCS_E_SERVICE_NOT_AVAILABLE
#define HCS_E_SERVICE_NOT_AVAILABLE ((HRESULT)0x80370114)
#endif
#ifndef HCS_E_OPERATION_NOT_STARTED
#define HCS_E_OPERATION_NOT_STARTED ((HRESULT)0x80370115)
#endif
#ifndef HCS_E_OPERATION_ALREADY_STARTED
#define HCS_E_OPERATION_ALREADY_STARTED ((HRESULT)0x80370116)
#endif
#ifndef HCS_E_OPERATION_PENDING
#define HCS_E_OPERATION_PENDING ((HRESULT)0x80370117)
#endif
#ifndef HCS_E_OPERATION_TIMEOUT
#define HCS_E_OPERATION_TIMEOUT ((HRESULT)0x80370118)
#endif
#ifndef HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET
#define HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET ((HRESULT)0x80370119)
#endif
#ifndef HCS_E_OPERATION_RESULT_ALLOCATION_FAILED
#define HCS_E_OPERATION_RESULT_ALLOCATION_FAILED ((HRESULT)0x8037011A)
#endif
#ifndef HCS_E_ACCESS_DENIED
#define HCS_E_ACCESS_DENIED ((HRESULT)0x8037011B)
#endif
#ifndef HCS_E_GUEST_CRITICAL_ERROR
#define HCS_E_GUEST_CRITICAL_ERROR ((HRESULT)0x8037011C)
#endif
#ifndef HCS_E_PROCESS_INFO_NOT_AVAILABLE
#define HCS_E_PROCESS_INFO_NOT_AVAILABLE ((HRESULT)0x8037011D)
#endif
#ifndef HCS_E_SERVICE_DISCONNECT
#define HCS_E_SERVICE_DISCONNECT ((HRESULT)0x8037011E)
#endif
#ifndef HCS_E_PROCESS_ALREADY_STOPPED
#define HCS_E_PROCESS_ALREADY_STOPPED ((HRESULT)0x8037011F)
#endif
#ifndef E_NOTIMPL
#define E_NOTIMPL ((HRESULT)0x80004001)
#endif
#ifndef E_FAIL
#define E_FAIL ((HRESULT)0x80004005)
#endif
#ifndef E_UNEXPECTED
#define E_UNEXPECTED ((HRESULT)0x8000FFFF)
#endif
#ifndef E_ACCESSDENIED
#define E_ACCESSDENIED ((HRESULT)0x80070005)
#endif
#ifndef E_INVALIDARG
#define E_INVALIDARG ((HRESULT)0x80070057)
#endif
#ifndef E_OUTOFMEMORY
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#endif
#ifndef ERROR_FILE_NOT_FOUND
#define ERROR_FILE_NOT_FOUND 2L /* HRESULT_FROM_WIN32: 0x80070002 */
#endif
#ifndef ERROR_PATH_NOT_FOUND
#define ERROR_PATH_NOT_FOUND 3L /* HRESULT_FROM_WIN32: 0x80070003 */
#endif
#ifndef ERROR_INVALID_HANDLE
#define ERROR_INVALID_HANDLE 6L /* HRESULT_FROM_WIN32: 0x80070006 */
#endif
#ifndef ERROR_INVALID_DATA
#define ERROR_INVALID_DATA 13L /* HRESULT_FROM_WIN32: 0x8007000D */
#endif
#ifndef ERROR_NOT_SUPPORTED
#define ERROR_NOT_SUPPORTED 50L /* HRESULT_FROM_WIN32: 0x80070032 */
#endif
#ifndef ERROR_BAD_PATHNAME
#define ERROR_BAD_PATHNAME 161L /* HRESULT_FROM_WIN32: 0x800700A1 */
#endif
#ifndef ERROR_NOT_FOUND
#define ERROR_NOT_FOUND 1168L /* HRESULT_FROM_WIN32: 0x80070490 */
#endif
#ifndef ERROR_TIMEOUT
#define ERROR_TIMEOUT 1460L /* HRESULT_FROM_WIN32: 0x800705B4 */
#endif
#ifndef E_HANDLE
#define E_HANDLE ((HRESULT)0x80070006)
#endif

typedef enum HCS_OPERATION_TYPE {
    HcsOperationTypeNone = -1,
    HcsOperationTypeEnumerate = 0,
    HcsOperationTypeCreate = 1,
    HcsOperationTypeStart = 2,
    HcsOperationTypeShutdown = 3,
    HcsOperationTypePause = 4,
    HcsOperationTypeResume = 5,
    HcsOperationTypeSave = 6,
    HcsOperationTypeTerminate = 7,
    HcsOperationTypeModify = 8,
    HcsOperationTypeGetProperties = 9,
    HcsOperationTypeCreateProcess = 10,
    HcsOperationTypeSignalProcess = 11,
    HcsOperationTypeGetProcessInfo = 12,
    HcsOperationTypeGetProcessProperties = 13,
    HcsOperationTypeModifyProcess = 14,
    HcsOperationTypeCrash = 15,
    HcsOperationTypeReserved1 = 16,
    HcsOperationTypeReserved2 = 17,
    HcsOperationTypeReserved3 = 18,
    HcsOperationTypeLiveMigration = 19,
} HCS_OPERATION_TYPE;

typedef enum HCS_EVENT_TYPE {
    HcsEventInvalid = 0x00000000,
    HcsEventSystemExited = 0x00000001,
    HcsEventSystemCrashInitiated = 0x00000002,
    HcsEventSystemCrashReport = 0x00000003,
    HcsEventSystemRdpEnhancedModeStateChanged = 0x00000004,
    HcsEventSystemSiloJobCreated = 0x00000005,
    HcsEventSystemGuestConnectionClosed = 0x00000006,
    HcsEventProcessExited = 0x00010000,
    HcsEventOperationCallback = 0x01000000,
    HcsEventServiceDisconnect = 0x02000000,
    HcsEventGroupVmLifecycle = 0x80000002,
    HcsEventGroupLiveMigration = 0x80000003,
    HcsEventGroupOperationInfo = 0xC0000001,
} HCS_EVENT_TYPE;

typedef enum HCS_EVENT_OPTIONS {
    HcsEventOptionNone = 0x00000000,
    HcsEventOptionEnableOperationCallbacks = 0x00000001,
    HcsEventOptionEnableVmLifecycle = 0x00000002,
    HcsEventOptionEnableLiveMigrationEvents = 0x00000004,
} HCS_EVENT_OPTIONS;

/* END GENERATED */

#ifdef __cplusplus
/* DEFINE_ENUM_FLAG_OPERATORS(HCS_EVENT_OPTIONS) */
inline HCS_EVENT_OPTIONS operator|(HCS_EVENT_OPTIONS a, HCS_EVENT_OPTIONS b) {
    return (HCS_EVENT_OPTIONS)((uint32_t)a | (uint32_t)b);
}
inline HCS_EVENT_OPTIONS operator&(HCS_EVENT_OPTIONS a, HCS_EVENT_OPTIONS b) {
    return (HCS_EVENT_OPTIONS)((uint32_t)a & (uint32_t)b);
}
#endif

typedef enum HCS_OPERATION_OPTIONS {
    HcsOperationOptionNone = 0x00000000,
    HcsOperationOptionProgressUpdate = 0x00000001,
    HcsOperationOptionReserved1 = 0x00000002
} HCS_OPERATION_OPTIONS;

typedef enum HCS_RESOURCE_TYPE {
    HcsResourceTypeNone = 0,
    HcsResourceTypeFile = 1,
    HcsResourceTypeJob = 2,
    HcsResourceTypeComObject = 3,
    HcsResourceTypeSocket = 4
} HCS_RESOURCE_TYPE;

/* An event delivered to an HCS_EVENT_CALLBACK. */
typedef struct HCS_EVENT {
    HCS_EVENT_TYPE Type;
    PCWSTR EventData;        /* JSON document or NULL; valid during the callback only */
    HCS_OPERATION Operation; /* HcsEventOperationCallback only */
} HCS_EVENT;

typedef void(CALLBACK *HCS_OPERATION_COMPLETION)(HCS_OPERATION operation, void *context);
typedef void(CALLBACK *HCS_EVENT_CALLBACK)(HCS_EVENT *event, void *context);

/* Linux: the standard handles are file descriptors (-1 when not requested). */
typedef struct HCS_PROCESS_INFORMATION {
    DWORD ProcessId; /* pid inside the compute system */
    DWORD Reserved;
    int StdInput;    /* write end of stdin if CreateStdInPipe */
    int StdOutput;   /* read end of stdout if CreateStdOutPipe */
    int StdError;    /* read end of stderr if CreateStdErrPipe */
} HCS_PROCESS_INFORMATION;

typedef enum HCS_CREATE_OPTIONS {
    HcsCreateOptions_1 = 0x00010000
} HCS_CREATE_OPTIONS;

typedef struct HCS_CREATE_OPTIONS_1 {
    HCS_CREATE_OPTIONS Version;                  /* HcsCreateOptions_1 */
    HANDLE UserToken;                            /* must be NULL on Linux */
    const SECURITY_DESCRIPTOR *SecurityDescriptor; /* ignored on Linux */
    HCS_EVENT_OPTIONS CallbackOptions;
    void *CallbackContext;
    HCS_EVENT_CALLBACK Callback; /* registered with the new handle, or NULL */
} HCS_CREATE_OPTIONS_1;

/* Release a string the API returned (both release the same allocation). */
HLOCAL WINAPI LocalFree(HLOCAL mem);
void WINAPI CoTaskMemFree(void *mem);

#ifdef __cplusplus
}
#endif

#endif /* HCS_LINUX_COMPUTEDEFS_H */
