//! Process handles (`HCS_PROCESS`).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::{Outcome, ProcessRef, Request};

use crate::callback::lock;
use crate::connection::{Connection, Interest};
use crate::event::{Event, EventOptions};
use crate::handle::HandleCore;
use crate::operation::{Operation, OperationType, ProcessInformation, Target};

pub(crate) struct ProcessInner {
    system_id: String,
    /// Known once the create completed.
    process: Mutex<Option<ProcessRef>>,
    conn: Arc<Connection>,
    pub(crate) core: Arc<HandleCore>,
    closed: AtomicBool,
}

impl Drop for ProcessInner {
    fn drop(&mut self) {
        self.close();
    }
}

impl ProcessInner {
    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.core.close();
        self.conn.release_user();
    }
}

/// An `HCS_PROCESS` handle. Clones are the same handle. Closing it does not
/// stop the process.
#[derive(Clone)]
pub struct Process {
    pub(crate) inner: Arc<ProcessInner>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("system", &self.inner.system_id)
            .field("process", &*lock(&self.inner.process))
            .finish()
    }
}

impl Process {
    pub(crate) fn from_inner(inner: Arc<ProcessInner>) -> Process {
        Process { inner }
    }

    fn build(system_id: String, conn: Arc<Connection>, process: Option<ProcessRef>) -> Process {
        conn.add_user();
        let core = HandleCore::new();
        if let Some(p) = process {
            conn.listen(Interest::Process(p), &core);
        }
        Process {
            inner: Arc::new(ProcessInner {
                system_id,
                process: Mutex::new(process),
                conn,
                core,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// A handle whose process is still being created.
    pub(crate) fn pending(system_id: String, conn: Arc<Connection>) -> Process {
        Self::build(system_id, conn, None)
    }

    /// A handle to a known process.
    pub(crate) fn opened(process: ProcessRef, system_id: String, conn: Arc<Connection>) -> Process {
        Self::build(system_id, conn, Some(process))
    }

    /// Turn a CreateProcess/GetProcessInfo response into process information,
    /// and point a pending handle at its process.
    pub(crate) fn take_info(
        weak: &Weak<ProcessInner>,
        outcome: &Outcome,
        fds: Vec<OwnedFd>,
    ) -> Option<ProcessInformation> {
        let info = outcome.process?;
        if let Some(inner) = weak.upgrade() {
            let mut slot = lock(&inner.process);
            if slot.is_none() {
                *slot = Some(info.process);
                drop(slot);
                inner
                    .conn
                    .listen(Interest::Process(info.process), &inner.core);
            }
        }
        let mut fds = fds.into_iter();
        let mut next = |present: bool| if present { fds.next() } else { None };
        Some(ProcessInformation {
            process_id: info.process.pid,
            std_input: next(info.stdio.stdin),
            std_output: next(info.stdio.stdout),
            std_error: next(info.stdio.stderr),
        })
    }

    /// The process id inside the compute system, once known.
    pub fn process_id(&self) -> Option<u32> {
        lock(&self.inner.process).map(|p| p.pid)
    }

    /// The id of the compute system the process runs in.
    pub fn system_id(&self) -> &str {
        &self.inner.system_id
    }

    /// `HcsCloseProcess`: the process keeps running; no callback of this
    /// handle runs after this returns.
    pub fn close(&self) {
        self.inner.close();
    }

    fn target(&self) -> HcsResult<ProcessRef> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the process handle is closed",
            ));
        }
        lock(&self.inner.process).ok_or_else(|| {
            HcsError::new(
                HResult::HCS_E_INVALID_STATE,
                "the process has not been created (its HcsCreateProcess has not completed successfully)",
            )
        })
    }

    fn call(
        &self,
        op_type: OperationType,
        operation: &Operation,
        request: impl FnOnce(ProcessRef) -> Request,
    ) -> HcsResult<()> {
        let process = self.target()?;
        let generation = operation.begin(
            op_type,
            Target::Process(Arc::downgrade(&self.inner)),
            Some(self.inner.core.clone()),
        )?;
        let op = operation.clone();
        let weak = Arc::downgrade(&self.inner);
        let wants_info = op_type == OperationType::GetProcessInfo;
        let sent = self.inner.conn.request(
            request(process),
            Vec::new(),
            Box::new(move |outcome, fds| {
                let info = if wants_info {
                    Process::take_info(&weak, &outcome, fds)
                } else {
                    None
                };
                op.complete(generation, outcome.hresult, outcome.document, info);
            }),
        );
        if let Err(e) = sent {
            operation.fail(generation, &e);
            return Err(e);
        }
        Ok(())
    }

    /// `HcsTerminateProcess` (SIGKILL). `HCS_E_PROCESS_ALREADY_STOPPED` once it exited.
    pub fn terminate(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        let options = options.map(str::to_owned);
        self.call(OperationType::SignalProcess, operation, |process| {
            Request::TerminateProcess { process, options }
        })
    }

    /// `HcsSignalProcess` with `SignalProcessOptions`.
    pub fn signal(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        let options = options.map(str::to_owned);
        self.call(OperationType::SignalProcess, operation, |process| {
            Request::SignalProcess { process, options }
        })
    }

    /// `HcsGetProcessInfo`: fresh descriptors for the same pipes.
    pub fn get_info(&self, operation: &Operation) -> HcsResult<()> {
        self.call(OperationType::GetProcessInfo, operation, |process| {
            Request::GetProcessInfo { process }
        })
    }

    /// `HcsGetProcessProperties`: the result is a `ProcessStatus`.
    pub fn get_properties(&self, operation: &Operation, query: Option<&str>) -> HcsResult<()> {
        let query = query.map(str::to_owned);
        self.call(OperationType::GetProcessProperties, operation, |process| {
            Request::GetProcessProperties { process, query }
        })
    }

    /// `HcsModifyProcess` with a `ProcessModifyRequest` (console size, close a std handle).
    pub fn modify(&self, operation: &Operation, settings: &str) -> HcsResult<()> {
        let settings = settings.to_owned();
        self.call(OperationType::ModifyProcess, operation, |process| {
            Request::ModifyProcess { process, settings }
        })
    }

    /// `HcsSetProcessCallback`.
    pub fn set_callback<F>(&self, options: EventOptions, callback: F) -> HcsResult<()>
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the process handle is closed",
            ));
        }
        self.inner.core.set_callback(options, Arc::new(callback))?;
        // An exit that happened before registration is still reported.
        if let Some(p) = *lock(&self.inner.process) {
            self.inner
                .conn
                .replay_exit(Interest::Process(p), &self.inner.core);
        }
        Ok(())
    }

    /// `HcsWaitForProcessExit`: the `ProcessStatus` once it exited.
    pub fn wait_for_exit(&self, timeout_ms: u32) -> HcsResult<String> {
        let process = self.target()?;
        self.inner.conn.wait_process_exit(process, timeout_ms)
    }
}
