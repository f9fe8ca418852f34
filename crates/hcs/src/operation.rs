//! Operations (`HCS_OPERATION`): how every asynchronous call reports back.
//!
//! An operation is *not started* until a call binds it, *pending* while the
//! call runs and *complete* when the call's HRESULT and result document are
//! in. A complete operation may be bound to the next call, which resets it.
//! Dropping the last [`Operation`] value is `HcsCloseOperation`: allowed at
//! any time, even while pending or from inside its own callback, because the
//! call in flight holds its own reference and simply discards the result.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hcs_errors::{HResult, HcsError, HcsResult};

use crate::callback::{self, lock};
use crate::handle::HandleCore;
use crate::process::{Process, ProcessInner};
use crate::system::{System, SystemInner};

/// `HCS_INVALID_OPERATION_ID`.
pub const HCS_INVALID_OPERATION_ID: u64 = u64::MAX;

/// `HCS_OPERATION_TYPE`, with Microsoft's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OperationType {
    /// Not used by any call yet.
    None = -1,
    /// HcsEnumerateComputeSystems.
    Enumerate = 0,
    /// HcsCreateComputeSystem.
    Create = 1,
    /// HcsStartComputeSystem.
    Start = 2,
    /// HcsShutDownComputeSystem.
    Shutdown = 3,
    /// HcsPauseComputeSystem.
    Pause = 4,
    /// HcsResumeComputeSystem.
    Resume = 5,
    /// HcsSaveComputeSystem.
    Save = 6,
    /// HcsTerminateComputeSystem.
    Terminate = 7,
    /// HcsModifyComputeSystem.
    Modify = 8,
    /// HcsGetComputeSystemProperties.
    GetProperties = 9,
    /// HcsCreateProcess.
    CreateProcess = 10,
    /// HcsSignalProcess (and HcsTerminateProcess, which the enumeration lacks).
    SignalProcess = 11,
    /// HcsGetProcessInfo.
    GetProcessInfo = 12,
    /// HcsGetProcessProperties.
    GetProcessProperties = 13,
    /// HcsModifyProcess.
    ModifyProcess = 14,
    /// HcsCrashComputeSystem.
    Crash = 15,
    /// Live migration calls.
    LiveMigration = 19,
}

/// `HCS_PROCESS_INFORMATION`: the pid inside the system and the caller's
/// ends of the standard pipes (or of the console, for `EmulateConsole`).
#[derive(Debug)]
pub struct ProcessInformation {
    /// Pid inside the compute system.
    pub process_id: u32,
    /// Write end of the process's stdin, if `CreateStdInPipe`.
    pub std_input: Option<OwnedFd>,
    /// Read end of its stdout, if `CreateStdOutPipe` (the console with `EmulateConsole`).
    pub std_output: Option<OwnedFd>,
    /// Read end of its stderr, if `CreateStdErrPipe` and no console.
    pub std_error: Option<OwnedFd>,
}

/// The completion callback type.
pub(crate) type OperationCallback = Arc<dyn Fn(&Operation) + Send + Sync + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Pending,
    Complete,
}

/// What an operation is tracking.
#[derive(Clone, Default)]
pub(crate) enum Target {
    #[default]
    None,
    System(Weak<SystemInner>),
    Process(Weak<ProcessInner>),
}

struct State {
    phase: Phase,
    op_type: OperationType,
    target: Target,
    core: Option<Arc<HandleCore>>,
    generation: u64,
    hresult: HResult,
    document: Option<String>,
    process_info: Option<ProcessInformation>,
    /// The result was seen by the caller (waited for or read), or handed to a callback.
    observed: bool,
}

pub(crate) struct Inner {
    id: u64,
    state: Mutex<State>,
    done: Condvar,
    callback: Mutex<Option<OperationCallback>>,
}

/// An `HCS_OPERATION`. Clones are the same operation.
#[derive(Clone)]
pub struct Operation {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Operation")
            .field("id", &self.inner.id)
            .field("type", &st.op_type)
            .field("phase", &st.phase)
            .finish()
    }
}

impl Default for Operation {
    fn default() -> Self {
        Operation::new()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Operation {
    /// `HcsCreateOperation(NULL, NULL)`: an operation without a callback.
    pub fn new() -> Operation {
        Operation {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(State {
                    phase: Phase::NotStarted,
                    op_type: OperationType::None,
                    target: Target::None,
                    core: None,
                    generation: 0,
                    hresult: HResult::HCS_E_OPERATION_NOT_STARTED,
                    document: None,
                    process_info: None,
                    observed: false,
                }),
                done: Condvar::new(),
                callback: Mutex::new(None),
            }),
        }
    }

    /// `HcsCreateOperation(context, callback)`: the callback runs once on a
    /// library thread each time a call this operation tracks completes.
    pub fn with_callback<F>(callback: F) -> Operation
    where
        F: Fn(&Operation) + Send + Sync + 'static,
    {
        let op = Operation::new();
        *lock(&op.inner.callback) = Some(Arc::new(callback));
        op
    }

    /// `HcsSetOperationCallback`: attach or replace (or, with `None`, remove) the callback.
    pub fn set_callback(&self, callback: Option<OperationCallback>) {
        *lock(&self.inner.callback) = callback;
    }

    /// True if the operation has its own completion callback.
    pub fn has_callback(&self) -> bool {
        lock(&self.inner.callback).is_some()
    }

    /// `HcsGetOperationId`: unique for the life of the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// `HcsGetOperationType`: the call being (or last) tracked; `None` before any.
    pub fn operation_type(&self) -> OperationType {
        lock(&self.inner.state).op_type
    }

    /// `HcsGetComputeSystemFromOperation`: the system the tracked call is about,
    /// if the operation is bound and the handle is still open.
    pub fn system(&self) -> Option<System> {
        match &lock(&self.inner.state).target {
            Target::System(w) => w.upgrade().map(System::from_inner),
            _ => None,
        }
    }

    /// `HcsGetProcessFromOperation`.
    pub fn process(&self) -> Option<Process> {
        match &lock(&self.inner.state).target {
            Target::Process(w) => w.upgrade().map(Process::from_inner),
            _ => None,
        }
    }

    /// `HcsGetOperationResult`, as the raw HRESULT and document: S_OK,
    /// `HCS_E_OPERATION_NOT_STARTED`, `HCS_E_OPERATION_PENDING`, or the call's failure.
    pub fn result_raw(&self) -> (HResult, Option<String>) {
        let mut st = lock(&self.inner.state);
        match st.phase {
            Phase::NotStarted => (HResult::HCS_E_OPERATION_NOT_STARTED, None),
            Phase::Pending => (HResult::HCS_E_OPERATION_PENDING, None),
            Phase::Complete => {
                st.observed = true;
                (st.hresult, st.document.clone())
            }
        }
    }

    /// `HcsGetOperationResult` as a `Result`: the document on success.
    pub fn result(&self) -> HcsResult<Option<String>> {
        let (hr, doc) = self.result_raw();
        to_result(hr, doc)
    }

    /// `HcsWaitForOperationResult`: block up to `timeout_ms` ([`crate::INFINITE`]
    /// for no limit). A timeout gives `HCS_E_OPERATION_TIMEOUT`; the call goes on.
    pub fn wait_raw(&self, timeout_ms: u32) -> (HResult, Option<String>) {
        let (mut st, waited) = self.wait_locked(lock(&self.inner.state), timeout_ms);
        match waited {
            Err(hr) => (hr, None),
            Ok(()) => {
                st.observed = true;
                (st.hresult, st.document.clone())
            }
        }
    }

    /// `HcsWaitForOperationResult` as a `Result`.
    pub fn wait(&self, timeout_ms: u32) -> HcsResult<Option<String>> {
        let (hr, doc) = self.wait_raw(timeout_ms);
        to_result(hr, doc)
    }

    /// `HcsGetOperationResultAndProcessInfo`. `E_INVALIDARG` unless the
    /// operation tracks HcsCreateProcess or HcsGetProcessInfo. The descriptors
    /// are handed over once: a second call returns the pid without them.
    pub fn result_and_process_info_raw(
        &self,
    ) -> (HResult, Option<ProcessInformation>, Option<String>) {
        let mut st = lock(&self.inner.state);
        match st.phase {
            Phase::NotStarted => return (HResult::HCS_E_OPERATION_NOT_STARTED, None, None),
            Phase::Pending => return (HResult::HCS_E_OPERATION_PENDING, None, None),
            Phase::Complete => {}
        }
        Self::take_process_info(&mut st)
    }

    /// `HcsWaitForOperationResultAndProcessInfo`.
    pub fn wait_process_info_raw(
        &self,
        timeout_ms: u32,
    ) -> (HResult, Option<ProcessInformation>, Option<String>) {
        let st = lock(&self.inner.state);
        if !matches!(
            st.op_type,
            OperationType::CreateProcess | OperationType::GetProcessInfo
        ) {
            return (HResult::E_INVALIDARG, None, None);
        }
        let (mut st, waited) = self.wait_locked(st, timeout_ms);
        if let Err(hr) = waited {
            return (hr, None, None);
        }
        Self::take_process_info(&mut st)
    }

    /// Wait for a CreateProcess or GetProcessInfo call and take its process information.
    pub fn wait_process_info(&self, timeout_ms: u32) -> HcsResult<ProcessInformation> {
        let (hr, info, doc) = self.wait_process_info_raw(timeout_ms);
        to_result(hr, doc)?;
        info.ok_or_else(|| {
            HcsError::new(
                HResult::HCS_E_PROCESS_INFO_NOT_AVAILABLE,
                "the process information of this operation was already taken",
            )
        })
    }

    fn take_process_info(st: &mut State) -> (HResult, Option<ProcessInformation>, Option<String>) {
        if !matches!(
            st.op_type,
            OperationType::CreateProcess | OperationType::GetProcessInfo
        ) {
            return (HResult::E_INVALIDARG, None, None);
        }
        st.observed = true;
        let doc = st.document.clone();
        if st.hresult.is_failure() {
            return (st.hresult, None, doc);
        }
        let info = match st.process_info.as_mut() {
            Some(info) => Some(ProcessInformation {
                process_id: info.process_id,
                std_input: info.std_input.take(),
                std_output: info.std_output.take(),
                std_error: info.std_error.take(),
            }),
            None => None,
        };
        (st.hresult, info, doc)
    }

    /// Wait (guard held) until the operation is complete or the time is up.
    fn wait_locked<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        timeout_ms: u32,
    ) -> (MutexGuard<'a, State>, Result<(), HResult>) {
        if st.phase == Phase::NotStarted {
            return (st, Err(HResult::HCS_E_OPERATION_NOT_STARTED));
        }
        let deadline = (timeout_ms != crate::INFINITE)
            .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
        while st.phase == Phase::Pending {
            st = match deadline {
                None => self.inner.done.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (st, Err(HResult::HCS_E_OPERATION_TIMEOUT));
                    }
                    self.inner
                        .done
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        (st, Ok(()))
    }

    /// `HcsCancelOperation`: like Microsoft's, not implemented.
    pub fn cancel(&self) -> HcsResult<()> {
        Err(HcsError::from_code(HResult::E_NOTIMPL))
    }

    /// Bind the operation to a call. Fails if it is already tracking one, or if
    /// it has a callback while the handle routes completions to its event
    /// callback.
    pub(crate) fn begin(
        &self,
        op_type: OperationType,
        target: Target,
        core: Option<Arc<HandleCore>>,
    ) -> HcsResult<u64> {
        if let Some(core) = &core {
            if core.routes_operation_callbacks() && self.has_callback() {
                return Err(HcsError::new(
                    HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET,
                    "the handle's event callback receives operation completions \
                     (HcsEventOptionEnableOperationCallbacks), so an operation with its own \
                     completion callback cannot be used with it",
                ));
            }
        }
        let mut st = lock(&self.inner.state);
        if st.phase == Phase::Pending {
            return Err(HcsError::new(
                HResult::HCS_E_OPERATION_ALREADY_STARTED,
                "the operation is still tracking an earlier call",
            ));
        }
        st.phase = Phase::Pending;
        st.op_type = op_type;
        st.target = target;
        st.core = core;
        st.generation += 1;
        st.hresult = HResult::HCS_E_OPERATION_PENDING;
        st.document = None;
        st.process_info = None;
        st.observed = false;
        Ok(st.generation)
    }

    /// Point a pending operation at the handle its call produced (create).
    pub(crate) fn rebind_target(&self, generation: u64, target: Target, core: Arc<HandleCore>) {
        let mut st = lock(&self.inner.state);
        if st.generation == generation {
            st.target = target;
            st.core = Some(core);
        }
    }

    /// Record the outcome of call `generation` and deliver the completion.
    pub(crate) fn complete(
        &self,
        generation: u64,
        hresult: HResult,
        document: Option<String>,
        process_info: Option<ProcessInformation>,
    ) {
        let core = {
            let mut st = lock(&self.inner.state);
            if st.generation != generation || st.phase != Phase::Pending {
                return;
            }
            st.phase = Phase::Complete;
            st.hresult = hresult;
            st.document = document;
            st.process_info = process_info;
            self.inner.done.notify_all();
            st.core.clone()
        };
        let callback = lock(&self.inner.callback).clone();
        match (callback, core) {
            (Some(cb), core) => {
                let op = self.clone();
                let job = Box::new(move || cb(&op));
                let posted = match core {
                    Some(core) => core.post_operation_callback(job),
                    None => callback::global().post(job),
                };
                if !posted {
                    tracing::debug!("operation {} completed after its handle closed", self.id());
                }
            }
            (None, Some(core)) => core.operation_completed(self.clone()),
            (None, None) => {}
        }
    }

    /// Complete at once with an error (the request never reached the monitor).
    pub(crate) fn fail(&self, generation: u64, err: &HcsError) {
        self.complete(
            generation,
            err.hresult,
            Some(hcs_protocol::result_error_json(err)),
            None,
        );
    }

    pub(crate) fn is_observed_or_idle(&self) -> bool {
        let st = lock(&self.inner.state);
        st.observed || st.phase != Phase::Complete
    }

    pub(crate) fn mark_observed(&self) {
        lock(&self.inner.state).observed = true;
    }

    pub(crate) fn same(&self, other: &Operation) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Turn a raw HRESULT + document into a `Result`, recovering the message of a
/// `ResultError` document.
pub(crate) fn to_result(hr: HResult, doc: Option<String>) -> HcsResult<Option<String>> {
    if hr.is_success() {
        return Ok(doc);
    }
    let message = doc
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| {
            v.get("ErrorMessage")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| hr.message().to_string());
    Err(HcsError::new(hr, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventOptions, EventType};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn not_started_then_pending_then_complete() {
        let op = Operation::new();
        assert_eq!(op.operation_type(), OperationType::None);
        assert_eq!(op.result_raw().0, HResult::HCS_E_OPERATION_NOT_STARTED);
        assert_eq!(op.wait_raw(0).0, HResult::HCS_E_OPERATION_NOT_STARTED);
        let g = op.begin(OperationType::Start, Target::None, None).unwrap();
        assert_eq!(op.operation_type(), OperationType::Start);
        assert_eq!(op.result_raw().0, HResult::HCS_E_OPERATION_PENDING);
        op.complete(g, HResult::S_OK, Some("{}".into()), None);
        assert_eq!(op.result_raw(), (HResult::S_OK, Some("{}".to_string())));
        assert_eq!(op.wait(crate::INFINITE).unwrap(), Some("{}".to_string()));
    }

    #[test]
    fn wait_times_out_and_the_work_goes_on() {
        let op = Operation::new();
        let g = op
            .begin(OperationType::Shutdown, Target::None, None)
            .unwrap();
        let t = Instant::now();
        assert_eq!(op.wait_raw(50).0, HResult::HCS_E_OPERATION_TIMEOUT);
        assert!(t.elapsed() >= Duration::from_millis(50));
        let late = op.clone();
        let h = std::thread::spawn(move || late.complete(g, HResult::S_OK, None, None));
        assert_eq!(op.wait_raw(crate::INFINITE).0, HResult::S_OK);
        h.join().unwrap();
    }

    #[test]
    fn a_pending_operation_cannot_be_reused_but_a_complete_one_can() {
        let op = Operation::new();
        let g = op.begin(OperationType::Create, Target::None, None).unwrap();
        let e = op
            .begin(OperationType::Start, Target::None, None)
            .unwrap_err();
        assert_eq!(e.hresult, HResult::HCS_E_OPERATION_ALREADY_STARTED);
        op.complete(
            g,
            HResult::HCS_E_INVALID_JSON,
            Some(r#"{"Error":-2143878899,"ErrorMessage":"bad"}"#.into()),
            None,
        );
        let err = op.wait(0).unwrap_err();
        assert_eq!(err.hresult, HResult::HCS_E_INVALID_JSON);
        assert_eq!(err.message, "bad");
        let g2 = op.begin(OperationType::Start, Target::None, None).unwrap();
        assert_eq!(
            op.result_raw().0,
            HResult::HCS_E_OPERATION_PENDING,
            "reuse resets the result"
        );
        op.complete(g2, HResult::S_OK, None, None);
        assert_eq!(op.operation_type(), OperationType::Start);
        op.wait(0).unwrap();
        // A stale completion of the first call must not touch the second.
        op.complete(g, HResult::E_FAIL, None, None);
        op.wait(0).unwrap();
    }

    #[test]
    fn ids_are_unique_and_stable() {
        let a = Operation::new();
        let b = Operation::new();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), HCS_INVALID_OPERATION_ID);
        let id = a.id();
        let g = a.begin(OperationType::Start, Target::None, None).unwrap();
        a.complete(g, HResult::S_OK, None, None);
        assert_eq!(a.id(), id);
    }

    #[test]
    fn the_callback_runs_once_on_a_library_thread_and_may_close_the_operation() {
        let (tx, rx) = mpsc::channel();
        let me = std::thread::current().id();
        let op = Operation::with_callback(move |op| {
            let (hr, _) = op.result_raw();
            tx.send((hr, op.operation_type(), std::thread::current().id() != me))
                .unwrap();
            // Closing the operation inside its own callback: dropping every
            // handle the caller had is allowed; the library holds its own.
        });
        let g = op.begin(OperationType::Create, Target::None, None).unwrap();
        let weak = Arc::downgrade(&op.inner);
        let inner = op.clone();
        drop(op); // the caller closed it while pending
        inner.complete(g, HResult::S_OK, None, None);
        drop(inner);
        let got = rx.recv_timeout(LONG).unwrap();
        assert_eq!(got, (HResult::S_OK, OperationType::Create, true));
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "exactly one callback"
        );
        // Once the callback returned, nothing holds the operation any more.
        let deadline = Instant::now() + LONG;
        while weak.strong_count() > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(weak.strong_count(), 0, "the operation leaked");
    }

    #[test]
    fn process_info_variants_refuse_other_operation_types() {
        let op = Operation::new();
        let g = op.begin(OperationType::Start, Target::None, None).unwrap();
        op.complete(g, HResult::S_OK, None, None);
        assert_eq!(op.result_and_process_info_raw().0, HResult::E_INVALIDARG);
        assert_eq!(op.wait_process_info_raw(0).0, HResult::E_INVALIDARG);
    }

    #[test]
    fn completions_go_to_the_event_callback_when_the_handle_asks_for_them() {
        // The operation-completion sample's pattern C: the create's operation
        // has no callback and completes before the system callback exists.
        let core = HandleCore::new();
        let op = Operation::new();
        let g = op
            .begin(OperationType::Create, Target::None, Some(core.clone()))
            .unwrap();
        op.complete(g, HResult::S_OK, None, None);
        drop(op);
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        core.set_callback(
            EventOptions::ENABLE_OPERATION_CALLBACKS,
            Arc::new(move |ev: &crate::Event| {
                s.fetch_add(1, Ordering::SeqCst);
                let op = ev
                    .operation
                    .clone()
                    .expect("OperationCallback carries the operation");
                tx.send((ev.event_type, op.operation_type(), op.result_raw().0))
                    .unwrap();
            }),
        )
        .unwrap();
        assert_eq!(
            rx.recv_timeout(LONG).unwrap(),
            (
                EventType::OperationCallback,
                OperationType::Create,
                HResult::S_OK
            )
        );
        // An operation with its own callback is refused on such a handle.
        let with_cb = Operation::with_callback(|_| {});
        let e = with_cb
            .begin(OperationType::Start, Target::None, Some(core.clone()))
            .unwrap_err();
        assert_eq!(
            e.hresult,
            HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET
        );
        // A second registration is refused as well.
        let e = core
            .set_callback(EventOptions::NONE, Arc::new(|_: &crate::Event| {}))
            .unwrap_err();
        assert_eq!(
            e.hresult,
            HResult::HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET
        );
        // A later callback-less operation is delivered live.
        let op2 = Operation::new();
        let g2 = op2
            .begin(OperationType::Start, Target::None, Some(core.clone()))
            .unwrap();
        op2.complete(g2, HResult::S_OK, None, None);
        assert_eq!(rx.recv_timeout(LONG).unwrap().1, OperationType::Start);
        core.close();
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn without_operation_callbacks_the_event_callback_sees_no_completions() {
        let core = HandleCore::new();
        let (tx, rx) = mpsc::channel();
        core.set_callback(
            EventOptions::NONE,
            Arc::new(move |ev: &crate::Event| tx.send(ev.event_type).unwrap()),
        )
        .unwrap();
        let op = Operation::new();
        let g = op
            .begin(OperationType::Start, Target::None, Some(core.clone()))
            .unwrap();
        op.complete(g, HResult::S_OK, None, None);
        rx.recv_timeout(Duration::from_millis(200)).unwrap_err();
        // An operation with its own callback is fine here and its callback runs.
        let (tx2, rx2) = mpsc::channel();
        let op = Operation::with_callback(move |o| tx2.send(o.operation_type()).unwrap());
        let g = op
            .begin(OperationType::Pause, Target::None, Some(core.clone()))
            .unwrap();
        op.complete(g, HResult::S_OK, None, None);
        assert_eq!(rx2.recv_timeout(LONG).unwrap(), OperationType::Pause);
    }
}
