//! Compute system handles (`HCS_SYSTEM`).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::{ConnectionKind, Outcome, Request, PROTOCOL_VERSION};
use hcs_schema::ComputeSystem;

use crate::callback::lock;
use crate::connection::{Connection, Interest};
use crate::event::{Event, EventOptions};
use crate::handle::HandleCore;
use crate::operation::{Operation, OperationType, Target};
use crate::process::Process;

/// How long a synchronous call (open) waits for a monitor to answer.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct SystemInner {
    id: String,
    namespace: String,
    pub(crate) conn: Arc<Connection>,
    pub(crate) core: Arc<HandleCore>,
    closed: AtomicBool,
    /// Why the handle is unusable, if its create failed.
    failed: Mutex<Option<HcsError>>,
}

impl Drop for SystemInner {
    fn drop(&mut self) {
        self.close();
    }
}

impl SystemInner {
    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.core.close();
        if self.conn.users() > 1 {
            // Process handles still use the connection: only the system
            // handle goes away.
            let _ = self.conn.request(
                Request::ReleaseSystemHandle,
                Vec::new(),
                Box::new(|_, _| {}),
            );
        }
        self.conn.release_user();
    }
}

/// An `HCS_SYSTEM` handle. Clones are the same handle; it closes when the last
/// clone is dropped or [`System::close`] is called.
#[derive(Clone)]
pub struct System {
    pub(crate) inner: Arc<SystemInner>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("id", &self.inner.id)
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

impl System {
    pub(crate) fn from_inner(inner: Arc<SystemInner>) -> System {
        System { inner }
    }

    fn new(id: &str, namespace: &str, conn: Arc<Connection>) -> System {
        let core = HandleCore::new();
        conn.listen(Interest::System, &core);
        System {
            inner: Arc::new(SystemInner {
                id: id.to_string(),
                namespace: namespace.to_string(),
                conn,
                core,
                closed: AtomicBool::new(false),
                failed: Mutex::new(None),
            }),
        }
    }

    /// `HcsCreateComputeSystem` in the default namespace.
    pub fn create(id: &str, configuration: &str, operation: &Operation) -> HcsResult<System> {
        Self::create_in_namespace(crate::DEFAULT_NAMESPACE, id, configuration, operation)
    }

    /// `HcsCreateComputeSystemInNamespace`. Returns the handle at once; the
    /// operation completes when the system exists (state `Created`) or
    /// creation failed. A malformed id or document is refused at once:
    /// the call fails and the operation completes with the same error and its
    /// `ResultError` document.
    pub fn create_in_namespace(
        namespace: &str,
        id: &str,
        configuration: &str,
        operation: &Operation,
    ) -> HcsResult<System> {
        let generation = operation.begin(OperationType::Create, Target::None, None)?;
        let checked = hcs_rundir::validate_name("namespace", namespace)
            .and_then(|_| hcs_rundir::validate_name("compute system id", id))
            .and_then(|_| hcs_schema::from_json::<ComputeSystem>(configuration, "ComputeSystem"))
            .and_then(|doc| doc.validate().and_then(|_| doc.check_supported()));
        if let Err(e) = checked {
            operation.fail(generation, &e);
            return Err(e);
        }
        let conn = match crate::launch::spawn_monitor().and_then(Connection::start) {
            Ok(c) => c,
            Err(e) => {
                operation.fail(generation, &e);
                return Err(e);
            }
        };
        let system = System::new(id, namespace, conn);
        operation.rebind_target(
            generation,
            Target::System(Arc::downgrade(&system.inner)),
            system.inner.core.clone(),
        );
        let op = operation.clone();
        let weak = Arc::downgrade(&system.inner);
        let sent = system.inner.conn.request(
            Request::Create {
                version: PROTOCOL_VERSION,
                namespace: namespace.to_string(),
                id: id.to_string(),
                document: configuration.to_string(),
                client_pid: std::process::id(),
            },
            Vec::new(),
            Box::new(move |outcome: Outcome, _| {
                if outcome.hresult.is_failure() {
                    if let Some(inner) = weak.upgrade() {
                        *lock(&inner.failed) = Some(
                            crate::operation::to_result(outcome.hresult, outcome.document.clone())
                                .err()
                                .unwrap_or_else(|| HcsError::from_code(outcome.hresult)),
                        );
                    }
                }
                op.complete(generation, outcome.hresult, outcome.document, None);
            }),
        );
        if let Err(e) = sent {
            operation.fail(generation, &e);
            return Err(e);
        }
        Ok(system)
    }

    /// `HcsOpenComputeSystem` in the default namespace.
    pub fn open(id: &str, requested_access: u32) -> HcsResult<System> {
        Self::open_in_namespace(crate::DEFAULT_NAMESPACE, id, requested_access)
    }

    /// `HcsOpenComputeSystemInNamespace`: a new handle to an existing system.
    /// `HCS_E_SYSTEM_NOT_FOUND` if no live system has that id.
    pub fn open_in_namespace(
        namespace: &str,
        id: &str,
        requested_access: u32,
    ) -> HcsResult<System> {
        if requested_access != crate::GENERIC_ALL {
            return Err(HcsError::invalid_arg(format!(
                "requested access 0x{requested_access:08X} is not GENERIC_ALL (0x10000000)"
            )));
        }
        hcs_rundir::validate_name("namespace", namespace)?;
        hcs_rundir::validate_name("compute system id", id)?;
        let conn = connect(namespace, id, ConnectionKind::Handle)?;
        Ok(System::new(id, namespace, conn))
    }

    /// The compute system id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The id namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// `HcsCloseComputeSystem`: release this handle (every clone of it). The
    /// system keeps running unless it was created with
    /// `ShouldTerminateOnLastHandleClosed` and this was the last handle. No
    /// callback of the handle runs after this returns.
    pub fn close(&self) {
        self.inner.close();
    }

    fn check_usable(&self) -> HcsResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the compute system handle is closed",
            ));
        }
        if let Some(e) = lock(&self.inner.failed).clone() {
            return Err(HcsError::new(
                HResult::HCS_E_SYSTEM_NOT_FOUND,
                format!(
                    "the compute system {:?} was never created: {}",
                    self.inner.id, e.message
                ),
            ));
        }
        Ok(())
    }

    /// Bind `operation` and send `request`; the operation completes with the
    /// monitor's answer.
    fn call(
        &self,
        op_type: OperationType,
        operation: &Operation,
        request: Request,
    ) -> HcsResult<()> {
        self.check_usable()?;
        let generation = operation.begin(
            op_type,
            Target::System(Arc::downgrade(&self.inner)),
            Some(self.inner.core.clone()),
        )?;
        let op = operation.clone();
        let sent = self.inner.conn.request(
            request,
            Vec::new(),
            Box::new(move |outcome, _| {
                op.complete(generation, outcome.hresult, outcome.document, None)
            }),
        );
        if let Err(e) = sent {
            operation.fail(generation, &e);
            return Err(e);
        }
        Ok(())
    }

    /// `HcsStartComputeSystem`.
    pub fn start(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Start,
            operation,
            Request::Start {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsShutDownComputeSystem`: ask the system to stop; it is terminated
    /// if it has not stopped when `ShutdownOptions.TimeoutInMs` runs out.
    pub fn shutdown(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Shutdown,
            operation,
            Request::Shutdown {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsTerminateComputeSystem`.
    pub fn terminate(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Terminate,
            operation,
            Request::Terminate {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsCrashComputeSystem`.
    pub fn crash(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Crash,
            operation,
            Request::Crash {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsPauseComputeSystem`.
    pub fn pause(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Pause,
            operation,
            Request::Pause {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsResumeComputeSystem`.
    pub fn resume(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Resume,
            operation,
            Request::Resume {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsSaveComputeSystem`.
    pub fn save(&self, operation: &Operation, options: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::Save,
            operation,
            Request::Save {
                options: options.map(str::to_owned),
            },
        )
    }

    /// `HcsGetComputeSystemProperties`: the result document is `Properties`.
    pub fn get_properties(&self, operation: &Operation, query: Option<&str>) -> HcsResult<()> {
        self.call(
            OperationType::GetProperties,
            operation,
            Request::GetProperties {
                query: query.map(str::to_owned),
            },
        )
    }

    /// `HcsModifyComputeSystem` with a `ModifySettingRequest` document.
    pub fn modify(&self, operation: &Operation, configuration: &str) -> HcsResult<()> {
        self.call(
            OperationType::Modify,
            operation,
            Request::Modify {
                settings: configuration.to_owned(),
            },
        )
    }

    /// `HcsWaitForComputeSystemExit`: the `SystemExitStatus` document once
    /// the system stopped; `HCS_E_OPERATION_TIMEOUT` if it runs on.
    pub fn wait_for_exit(&self, timeout_ms: u32) -> HcsResult<String> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the compute system handle is closed",
            ));
        }
        self.inner.conn.wait_exit(timeout_ms)
    }

    /// The exit status if the system has stopped.
    pub fn exit_status(&self) -> Option<String> {
        self.inner.conn.exit_status()
    }

    /// `HcsSetComputeSystemCallback`: events of this handle go to `callback`,
    /// on a library thread, in order.
    pub fn set_callback<F>(&self, options: EventOptions, callback: F) -> HcsResult<()>
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.check_open()?;
        self.inner.core.set_callback(options, Arc::new(callback))?;
        // An exit that happened before registration is still reported.
        self.inner
            .conn
            .replay_exit(Interest::System, &self.inner.core);
        Ok(())
    }

    fn check_open(&self) -> HcsResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(HcsError::new(
                HResult::ERROR_INVALID_HANDLE,
                "the compute system handle is closed",
            ));
        }
        Ok(())
    }

    /// `HcsCreateProcess` with a `ProcessParameters` document. The process
    /// handle is returned at once; read its pid and stdio from the
    /// operation with [`Operation::wait_process_info`].
    pub fn create_process(&self, parameters: &str, operation: &Operation) -> HcsResult<Process> {
        self.check_usable()?;
        let process = Process::pending(self.inner.id.clone(), self.inner.conn.clone());
        let generation = operation.begin(
            OperationType::CreateProcess,
            Target::Process(Arc::downgrade(&process.inner)),
            Some(process.inner.core.clone()),
        )?;
        let parsed =
            hcs_schema::from_json::<hcs_schema::ProcessParameters>(parameters, "ProcessParameters")
                .and_then(|p| p.validate());
        if let Err(e) = parsed {
            operation.fail(generation, &e);
            process.close();
            return Err(e);
        }
        let op = operation.clone();
        let weak = Arc::downgrade(&process.inner);
        let sent = self.inner.conn.request(
            Request::CreateProcess {
                parameters: parameters.to_owned(),
            },
            Vec::new(),
            Box::new(move |outcome, fds| {
                let info = Process::take_info(&weak, &outcome, fds);
                op.complete(generation, outcome.hresult, outcome.document, info);
            }),
        );
        if let Err(e) = sent {
            operation.fail(generation, &e);
            process.close();
            return Err(e);
        }
        Ok(process)
    }

    /// `HcsOpenProcess`: a handle to a process HCS started in this system.
    pub fn open_process(&self, pid: u32, requested_access: u32) -> HcsResult<Process> {
        self.check_usable()?;
        if requested_access != crate::GENERIC_ALL {
            return Err(HcsError::invalid_arg(format!(
                "requested access 0x{requested_access:08X} is not GENERIC_ALL (0x10000000)"
            )));
        }
        let (outcome, _fds) = self
            .inner
            .conn
            .request_sync(Request::OpenProcess { pid }, SYNC_TIMEOUT)?;
        crate::operation::to_result(outcome.hresult, outcome.document.clone())?;
        let info = outcome.process.ok_or_else(|| {
            HcsError::new(
                HResult::HCS_E_PROTOCOL_ERROR,
                "the monitor answered OpenProcess without a process",
            )
        })?;
        if let Some(status) = outcome.document.filter(|d| d.contains("\"Exited\":true")) {
            self.inner.conn.note_process_exit(info.process, status);
        }
        Ok(Process::opened(
            info.process,
            self.inner.id.clone(),
            self.inner.conn.clone(),
        ))
    }
}

/// Connect to a live system's monitor and say hello.
pub(crate) fn connect(
    namespace: &str,
    id: &str,
    kind: ConnectionKind,
) -> HcsResult<Arc<Connection>> {
    let dir = hcs_rundir::system_dir(&hcs_rundir::root(), namespace, id);
    let not_found = || {
        HcsError::new(
            HResult::HCS_E_SYSTEM_NOT_FOUND,
            format!("a compute system with id {id:?} does not exist in namespace {namespace:?}"),
        )
    };
    let sock = match hcs_protocol::wire::connect(&dir.join(hcs_protocol::CONTROL_SOCKET)) {
        Ok(s) => s,
        Err(e) => {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                // Its monitor died: have a reaping monitor tidy up after it.
                if let Err(e) = crate::launch::reap(namespace, Some(id)) {
                    tracing::warn!("cleaning up after {namespace}/{id}: {e}");
                }
            }
            return Err(not_found());
        }
    };
    let conn = Connection::start(sock)?;
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
        kind,
        client_pid: std::process::id(),
    };
    let (outcome, _): (Outcome, Vec<OwnedFd>) = match conn.request_sync(hello, SYNC_TIMEOUT) {
        Ok(r) => r,
        Err(e) if e.hresult == HResult::HCS_E_SERVICE_DISCONNECT => {
            conn.release_user();
            return Err(not_found());
        }
        Err(e) => {
            conn.release_user();
            return Err(e);
        }
    };
    if let Err(e) = crate::operation::to_result(outcome.hresult, outcome.document) {
        conn.release_user();
        return Err(e);
    }
    Ok(conn)
}
