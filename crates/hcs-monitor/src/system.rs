//! One compute system as its monitor sees it: lifecycle state, backend,
//! processes, and how it stops.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::{EventMessage, Outcome, ProcessInfo, ProcessRef, StdioPresent};
use hcs_schema::enums::{
    ExitInitiator, NotificationType, OsType, StdHandle, SystemExitDetail, SystemPropertyType,
    WorkerExitDetail, WorkerExitType,
};
use hcs_schema::results::{SystemExit, WorkerExit};
use hcs_schema::{AttributionRecord, ComputeSystem, Properties, SystemExitStatus};

use crate::backend::{Backend, BackendEvent, Served, StartedProcess, StopInfo, StopKind};
use crate::lifecycle::{Request as L, SystemState};
use crate::processes::{ProcessEntry, ProcessTable};

/// Default time a graceful shutdown gets before the system is terminated.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How the system ended, as observed.
enum Ended {
    /// Terminated before it ever started.
    NeverStarted,
    /// Its init process exited (containers).
    Init(nix::sys::wait::WaitStatus, u32),
    /// Its backend reported the end (virtual machines).
    Backend(StopInfo),
}

/// Why the system is stopping, as far as a client asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Shutdown,
    ShutdownTimedOut,
    Terminate,
    LastHandleClosed,
}

/// The monitor's compute system.
pub struct System {
    pub id: String,
    pub namespace: String,
    owner: Option<String>,
    terminate_on_last_close: bool,
    runtime_id: String,
    state: SystemState,
    backend: Box<dyn Backend>,
    rundir: Option<hcs_rundir::RunDir>,
    record: hcs_rundir::Record,
    main_pid: Option<i32>,
    processes: ProcessTable,
    stop_cause: Option<StopCause>,
    shutdown_deadline: Option<Instant>,
    exit_status: Option<String>,
    /// Events for the server to broadcast.
    pub events: Vec<EventMessage>,
}

/// A fresh random GUID (version 4) for `Properties.RuntimeId`.
fn new_guid() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

impl System {
    /// Create the system described by `document`: check it, claim its
    /// runtime directory and build the backend. Nothing runs yet.
    pub fn create(
        runtime_root: &std::path::Path,
        namespace: &str,
        id: &str,
        document: &str,
    ) -> HcsResult<System> {
        let doc: ComputeSystem = hcs_schema::from_json(document, "ComputeSystem")?;
        doc.validate()?;
        doc.check_supported()?;
        let rundir = hcs_rundir::RunDir::create(runtime_root, namespace, id)?;
        let _ = std::fs::write(rundir.path().join("config.json"), document);
        crate::logging::start(rundir.path(), namespace, id);
        tracing::debug!("runtime directory ready");
        let built: HcsResult<Box<dyn Backend>> = if let Some(c) = &doc.container {
            crate::container::ContainerBackend::create(
                id,
                namespace,
                c,
                rundir.path(),
                runtime_root,
            )
            .map(|b| Box::new(b) as Box<dyn Backend>)
        } else if let Some(vm) = &doc.virtual_machine {
            crate::vm::VmBackend::create(id, namespace, vm, rundir.path())
                .map(|b| Box::new(b) as Box<dyn Backend>)
        } else {
            Err(HcsError::not_supported(
                "HostedSystem documents need a hosting utility VM, which is not available yet",
            ))
        };
        tracing::debug!("backend built");
        let backend = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = rundir.remove();
                return Err(e);
            }
        };
        let record = hcs_rundir::Record {
            id: id.to_string(),
            namespace: namespace.to_string(),
            system_type: backend.system_type().as_str().to_string(),
            owner: doc.owner.clone(),
            monitor_pid: std::process::id(),
            cgroups: backend.cgroup_paths(),
            cgroup_leaf: Some(
                backend
                    .cgroup_leaf()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|| crate::container::cgroup_leaf(namespace, id)),
            ),
            cgroup_rooted_parent: backend
                .cgroup_parent()
                .filter(|(_, rooted)| *rooted)
                .map(|(p, _)| p.to_string_lossy().into_owned()),
            cgroup_parent: backend
                .cgroup_parent()
                .filter(|(_, rooted)| !*rooted)
                .map(|(p, _)| p.to_string_lossy().into_owned()),
            main_pid: None,
            sockets: backend.owned_sockets(),
        };
        if let Err(e) = rundir.write_record(&record) {
            let mut backend = backend;
            let _ = backend.release();
            let _ = rundir.remove();
            return Err(e);
        }
        tracing::info!(id, namespace, "created");
        Ok(System {
            id: id.to_string(),
            namespace: namespace.to_string(),
            owner: doc.owner.clone(),
            terminate_on_last_close: doc.should_terminate_on_last_handle_closed.unwrap_or(false),
            runtime_id: new_guid(),
            state: SystemState::Created,
            backend,
            rundir: Some(rundir),
            record,
            main_pid: None,
            processes: ProcessTable::default(),
            stop_cause: None,
            shutdown_deadline: None,
            exit_status: None,
            events: Vec::new(),
        })
    }

    /// The runtime directory, while the system exists.
    pub fn rundir_path(&self) -> Option<PathBuf> {
        self.rundir.as_ref().map(|r| r.path().to_path_buf())
    }

    /// Current state.
    pub fn state(&self) -> SystemState {
        self.state
    }

    /// True once stopped.
    pub fn stopped(&self) -> bool {
        self.state == SystemState::Stopped
    }

    /// `ShouldTerminateOnLastHandleClosed`.
    pub fn terminate_on_last_close(&self) -> bool {
        self.terminate_on_last_close
    }

    /// The `SystemExitStatus` document once stopped.
    pub fn exit_status(&self) -> Option<&str> {
        self.exit_status.as_deref()
    }

    /// When the next timer fires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shutdown_deadline
    }

    fn check(&self, r: L) -> HcsResult<SystemState> {
        self.state.check(r)
    }

    /// The kind of system, as the fields table tells them apart.
    fn on(&self) -> hcs_schema::fields::On {
        self.backend.system_type().into()
    }

    /// HcsStartComputeSystem. Its options (hcsshim's `StartOptions`) can
    /// only ask for a live-migration destination, which is refused.
    pub fn start(&mut self, options: Option<&str>) -> HcsResult<()> {
        let opts: Option<hcs_schema::requests::StartOptions> =
            parse_options(options, "StartOptions", self.on())?;
        if opts.is_some_and(|o| o.destination_migration_options.is_some()) {
            return Err(HcsError::not_supported(
                "StartOptions.DestinationMigrationOptions: live migration is not supported on Linux",
            ));
        }
        let next = self.check(L::Start)?;
        let pid = self.backend.start()?;
        self.main_pid = pid;
        if pid.is_some() {
            self.record.main_pid = pid;
            if let Some(r) = &self.rundir {
                let _ = r.write_record(&self.record);
            }
        }
        self.state = next;
        tracing::info!(?pid, "started");
        Ok(())
    }

    /// The backend's event descriptors.
    pub fn backend_event_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.backend.event_fds()
    }

    /// One of the backend's descriptors became readable.
    pub fn on_backend_event(&mut self) {
        for event in self.backend.poll_events() {
            match event {
                BackendEvent::ProcessExited { pid, exit_code } => {
                    match self.processes.running_by_pid_mut(pid) {
                        Some(e) => Self::record_exit(&mut self.events, e, exit_code),
                        None => {
                            tracing::debug!(
                                pid,
                                exit_code,
                                "exit before the creation was recorded"
                            );
                            self.processes.exit_before_record(pid, exit_code);
                        }
                    }
                }
                BackendEvent::GuestConnectionClosed => {
                    tracing::info!("guest agent connection closed");
                    self.events.push(EventMessage::GuestConnectionClosed);
                }
            }
        }
        if let Some(info) = self.backend.poll_stop() {
            if let Some(report) = &info.crash_report {
                self.events.push(EventMessage::CrashReport {
                    report: report.clone(),
                });
            }
            self.finish(Ended::Backend(info));
        }
    }

    /// HcsPauseComputeSystem. A pause stops the vCPUs (or freezes the
    /// container's cgroup) and keeps memory as it is: `SuspensionLevel`
    /// `Suspend` is that; the `Memory*` levels, which also trim the
    /// system's memory, are refused. `HostedNotification.Reason` is logged
    /// (no guest component here listens for it).
    pub fn pause(&mut self, options: Option<&str>) -> HcsResult<()> {
        let opts: hcs_schema::requests::PauseOptions =
            parse_options(options, "PauseOptions", self.on())?.unwrap_or_default();
        if let Some(level) = opts
            .suspension_level
            .filter(|l| *l != hcs_schema::enums::PauseSuspensionLevel::Suspend)
        {
            return Err(HcsError::not_supported(format!(
                "PauseOptions.SuspensionLevel {:?}: a pause keeps the system's memory as it is; \
                 only \"Suspend\" is supported",
                level.as_str()
            )));
        }
        let next = self.check(L::Pause)?;
        if let Some(reason) = opts.hosted_notification.and_then(|n| n.reason) {
            tracing::info!(
                reason = reason.as_str(),
                "pausing (PauseOptions.HostedNotification.Reason)"
            );
        }
        self.backend.pause()?;
        self.state = next;
        Ok(())
    }

    /// HcsResumeComputeSystem; HCS defines no options for it, so anything
    /// but an empty object is refused.
    pub fn resume(&mut self, options: Option<&str>) -> HcsResult<()> {
        no_options(options, "HcsResumeComputeSystem")?;
        let next = self.check(L::Resume)?;
        self.backend.resume()?;
        self.state = next;
        Ok(())
    }

    /// HcsShutDownComputeSystem: ask for a graceful stop; terminate when the
    /// timeout (`ShutdownOptions.TimeoutInMs`, default 10 s) runs out. The
    /// caller's operation completes when the system has stopped.
    pub fn shutdown(&mut self, options: Option<&str>) -> HcsResult<()> {
        let opts: hcs_schema::requests::ShutdownOptions =
            match options.filter(|o| !o.trim().is_empty()) {
                Some(o) => {
                    let opts = hcs_schema::from_json(o, "ShutdownOptions")?;
                    hcs_schema::fields::refuse_unsupported(
                        &opts,
                        hcs_schema::fields::Context {
                            document: "ShutdownOptions",
                            on: self.backend.system_type().into(),
                        },
                    )?;
                    opts
                }
                None => Default::default(),
            };
        if let Some(t) = opts.shutdown_type.filter(|t| t.as_str() != "Shutdown") {
            return Err(HcsError::not_supported(format!(
                "ShutdownOptions.Type {:?}: only \"Shutdown\" is supported",
                t.as_str()
            )));
        }
        let next = self.check(L::Shutdown)?;
        if self.state == SystemState::ShuttingDown {
            return Ok(());
        }
        if let Some(reason) = &opts.reason {
            tracing::info!(reason = %reason, "shutdown requested (ShutdownOptions.Reason)");
        }
        if opts.force == Some(true) {
            return self.terminate_with(StopCause::Terminate);
        }
        self.backend.request_shutdown(opts.mechanism)?;
        self.state = next;
        self.stop_cause = Some(StopCause::Shutdown);
        let timeout = opts
            .timeout_in_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
        self.shutdown_deadline = Some(Instant::now() + timeout);
        tracing::info!(?timeout, "shutting down");
        Ok(())
    }

    /// HcsTerminateComputeSystem.
    pub fn terminate(&mut self) -> HcsResult<()> {
        self.terminate_with(StopCause::Terminate)
    }

    /// HcsTerminateComputeSystem with its options, which HCS defines none
    /// of: anything but an empty object is refused.
    pub fn terminate_with_options(&mut self, options: Option<&str>) -> HcsResult<()> {
        no_options(options, "HcsTerminateComputeSystem")?;
        self.terminate()
    }

    /// The last handle closed and the document asked for termination then.
    pub fn terminate_on_last_handle(&mut self) {
        if !self.stopped() {
            let _ = self.terminate_with(StopCause::LastHandleClosed);
        }
    }

    fn terminate_with(&mut self, cause: StopCause) -> HcsResult<()> {
        self.check(L::Terminate)?;
        self.stop_cause = Some(cause);
        if self.state == SystemState::Created {
            // Never started: nothing to wait for.
            self.finish(Ended::NeverStarted);
            return Ok(());
        }
        tracing::info!(?cause, "terminating");
        self.backend.kill();
        Ok(())
    }

    /// Timers: a shutdown that ran out of time becomes a terminate.
    pub fn on_timer(&mut self, now: Instant) {
        if let Some(d) = self.shutdown_deadline {
            if now >= d && self.state == SystemState::ShuttingDown {
                tracing::warn!("graceful shutdown timed out; terminating");
                self.shutdown_deadline = None;
                self.stop_cause = Some(StopCause::ShutdownTimedOut);
                self.backend.kill();
            }
        }
    }

    /// A child of the monitor exited with wait status `status`.
    pub fn on_child_exit(&mut self, pid: i32, status: nix::sys::wait::WaitStatus) {
        let code = exit_code(status);
        if Some(pid) == self.main_pid {
            self.main_pid = None;
            self.backend.main_exited();
            self.finish(Ended::Init(status, code));
            return;
        }
        self.process_exited(pid, code);
    }

    fn process_exited(&mut self, host_pid: i32, code: u32) {
        if let Some(e) = self.processes.by_host_pid_mut(host_pid) {
            Self::record_exit(&mut self.events, e, code);
        }
    }

    /// Note a process's exit and announce it.
    fn record_exit(events: &mut Vec<EventMessage>, e: &mut ProcessEntry, code: u32) {
        e.exit_code = Some(code);
        e.close_stdio();
        e.console = None;
        let status = e.status_json();
        let process = e.process;
        tracing::info!(pid = process.pid, code, "process exited");
        events.push(EventMessage::ProcessExited { process, status });
    }

    /// The system stopped: reap its processes, release its resources, remove
    /// its runtime directory, and record and announce its exit status.
    fn finish(&mut self, ended: Ended) {
        if self.stopped() {
            return;
        }
        self.backend.kill();
        // Its processes die with its pid namespace; collect their exits so
        // each handle sees its ProcessExited before SystemExited.
        let deadline = Instant::now() + Duration::from_secs(2);
        for pid in self.processes.running_host_pids() {
            loop {
                match nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                ) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => break,
                    Ok(st) => {
                        self.process_exited(pid, exit_code(st));
                        break;
                    }
                    Err(_) => {
                        self.process_exited(pid, 128 + libc::SIGKILL as u32);
                        break;
                    }
                }
            }
        }
        if let Err(e) = self.backend.release() {
            tracing::error!("releasing the system's resources: {e}");
        }
        if let Some(r) = self.rundir.take() {
            if let Err(e) = r.remove() {
                tracing::error!("removing the runtime directory: {e}");
            }
        }
        let status = self.exit_status_for(ended);
        self.state = SystemState::Stopped;
        self.shutdown_deadline = None;
        let json = hcs_schema::to_json(&status);
        tracing::info!(status = %json, "stopped");
        self.exit_status = Some(json.clone());
        self.events
            .push(EventMessage::SystemExited { status: json });
    }

    fn exit_status_for(&self, ended: Ended) -> SystemExitStatus {
        let sys_exit = |detail, initiator| AttributionRecord {
            system_exit: Some(SystemExit {
                detail: Some(detail),
                initiator: Some(initiator),
            }),
            ..Default::default()
        };
        let graceful = NotificationType::GracefulExit;
        let forced = NotificationType::ForcedExit;
        let unexpected = NotificationType::UnexpectedExit;
        let (exit_type, status, attribution) = match (self.stop_cause, ended) {
            // A crash is a crash whatever was asked of the system meanwhile.
            (cause, Ended::Backend(info))
                if info.kind == StopKind::Unexpected && cause != Some(StopCause::Terminate) =>
            {
                (unexpected, HResult::HCS_E_UNEXPECTED_EXIT, info.attribution)
            }
            (Some(StopCause::Shutdown), ended) => {
                let mut a = vec![sys_exit(SystemExitDetail::Shutdown, ExitInitiator::Client)];
                if let Ended::Backend(info) = ended {
                    a.extend(info.attribution);
                }
                (graceful, HResult::S_OK, a)
            }
            (Some(StopCause::ShutdownTimedOut), _) => (
                forced,
                HResult::S_OK,
                vec![
                    sys_exit(SystemExitDetail::Shutdown, ExitInitiator::Client),
                    sys_exit(SystemExitDetail::Terminate, ExitInitiator::Internal),
                ],
            ),
            (Some(StopCause::Terminate | StopCause::LastHandleClosed), _) => (
                forced,
                HResult::S_OK,
                vec![sys_exit(SystemExitDetail::Terminate, ExitInitiator::Client)],
            ),
            (None, Ended::Backend(info)) => match info.kind {
                StopKind::Clean => (graceful, HResult::S_OK, info.attribution),
                StopKind::Killed => (forced, HResult::S_OK, info.attribution),
                StopKind::Unexpected => {
                    (unexpected, HResult::HCS_E_UNEXPECTED_EXIT, info.attribution)
                }
            },
            // The init stopped by itself after a SIGTERM from inside (`kill 1`).
            (None, Ended::Init(nix::sys::wait::WaitStatus::Exited(_, 0), _)) => (
                graceful,
                HResult::S_OK,
                vec![sys_exit(SystemExitDetail::Shutdown, ExitInitiator::GuestOs)],
            ),
            (None, Ended::Init(_, code)) => (
                unexpected,
                HResult::HCS_E_UNEXPECTED_EXIT,
                vec![
                    AttributionRecord {
                        worker_exit: Some(WorkerExit {
                            exit_code: Some(code),
                            exit_type: Some(WorkerExitType::UnexpectedStop),
                            detail: Some(WorkerExitDetail::ProcessUnexpectedExit),
                            initiator: Some(ExitInitiator::Unknown),
                        }),
                        ..Default::default()
                    },
                    sys_exit(SystemExitDetail::UnexpectedExit, ExitInitiator::Unknown),
                ],
            ),
            (None, Ended::NeverStarted) => (forced, HResult::S_OK, Vec::new()),
        };
        SystemExitStatus {
            status: Some(status.0),
            exit_type: Some(exit_type),
            attribution: Some(attribution),
        }
    }

    /// HcsSaveComputeSystem.
    pub fn save(&mut self, options: Option<&str>) -> HcsResult<()> {
        self.check(L::Save)?;
        self.backend.save(options)
    }

    /// HcsCrashComputeSystem.
    pub fn crash(&mut self, options: Option<&str>) -> HcsResult<()> {
        self.check(L::Crash)?;
        self.backend.crash(options)
    }

    /// HcsModifyComputeSystem.
    pub fn modify(&mut self, settings: &str) -> HcsResult<()> {
        self.check(L::Modify)?;
        let request: hcs_schema::ModifySettingRequest =
            hcs_schema::from_json(settings, "ModifySettingRequest")?;
        request.validate()?;
        self.backend.modify(&request)
    }

    /// HcsGetComputeSystemProperties: `Id` and `SystemType` always, the rest
    /// as asked. Once stopped only the basic properties remain. A VM's
    /// `ProcessList` comes from its guest: work to run off the loop.
    pub fn properties(&self, query: Option<&str>) -> HcsResult<Served<String>> {
        self.check(L::GetProperties)?;
        let types: Vec<SystemPropertyType> = match query.filter(|q| !q.trim().is_empty()) {
            Some(q) => {
                let q: hcs_schema::SystemPropertyQuery =
                    hcs_schema::from_json(q, "System_PropertyQuery")?;
                hcs_schema::fields::refuse_unsupported(
                    &q,
                    hcs_schema::fields::Context {
                        document: "System_PropertyQuery",
                        on: self.backend.system_type().into(),
                    },
                )?;
                if q.queries.as_ref().is_some_and(|m| !m.is_empty()) {
                    return Err(HcsError::not_supported(
                        "System_PropertyQuery.Queries (2.5 property queries) is not supported; use PropertyTypes",
                    ));
                }
                q.property_types.unwrap_or_default()
            }
            None => Vec::new(),
        };
        let mut props = Properties {
            id: Some(self.id.clone()),
            system_type: Some(self.backend.system_type()),
            name: Some(self.id.clone()),
            owner: self.owner.clone(),
            runtime_id: Some(self.runtime_id.clone()),
            runtime_os_type: Some(OsType::Linux),
            state: Some(self.state.hcs_state()),
            stopped: Some(self.stopped()),
            ..Default::default()
        };
        if let Some(status) = &self.exit_status {
            props.exit_type = serde_json::from_str::<SystemExitStatus>(status)
                .ok()
                .and_then(|s| s.exit_type);
        }
        if types.contains(&SystemPropertyType::TerminateOnLastHandleClosed) {
            props.terminate_on_last_handle_closed = Some(self.terminate_on_last_close);
        }
        if self.stopped() {
            if let Some(t) = types
                .iter()
                .find(|t| **t != SystemPropertyType::TerminateOnLastHandleClosed)
            {
                return Err(HcsError::new(
                    HResult::HCS_E_SYSTEM_ALREADY_STOPPED,
                    format!("the compute system has stopped; only its exit status remains (asked for {})", t.as_str()),
                ));
            }
        } else {
            self.backend.properties(&types, &mut props)?;
            if types.contains(&SystemPropertyType::ProcessList) {
                if let Some(work) = self.backend.guest_process_list()? {
                    return Ok(Served::Later(Box::new(move || {
                        props.process_list = Some(work()?);
                        Ok(hcs_schema::to_json(&props))
                    })));
                }
            }
        }
        Ok(Served::Now(hcs_schema::to_json(&props)))
    }

    /// [`System::properties`] with no query: never waits on the guest.
    pub fn basic_properties(&self) -> HcsResult<String> {
        match self.properties(None)? {
            Served::Now(p) => Ok(p),
            Served::Later(_) => Err(HcsError::from_code(HResult::E_UNEXPECTED)),
        }
    }

    /// Whether HcsCreateProcess must wait for the guest first: the system
    /// could create a process now but its guest agent has not connected.
    pub fn create_process_must_wait(&self) -> bool {
        self.check(L::CreateProcess).is_ok() && self.backend.waiting_for_guest()
    }

    /// HcsCreateProcess: the process started (or work that starts it in
    /// the guest), and whether it dies with the connection that created it
    /// (`TerminateWithCreator`). [`System::process_started`] records it.
    pub fn create_process(
        &mut self,
        parameters: &str,
    ) -> HcsResult<(Served<StartedProcess>, bool)> {
        self.check(L::CreateProcess)?;
        let params: hcs_schema::ProcessParameters =
            hcs_schema::from_json(parameters, "ProcessParameters")?;
        params.validate_on(self.backend.system_type().into())?;
        let started = self.backend.create_process(&params)?;
        Ok((started, params.terminate_with_creator == Some(true)))
    }

    /// Record a process [`System::create_process`] started: the outcome
    /// and the caller's descriptors, and the process when it is `tied` to
    /// its creator's connection.
    pub fn process_started(
        &mut self,
        started: StartedProcess,
        tied: bool,
    ) -> HcsResult<(Outcome, Vec<OwnedFd>, Option<ProcessRef>)> {
        if self.stopped() {
            // Created off the loop while the system stopped: it is gone.
            return Err(HcsError::new(
                HResult::HCS_E_SYSTEM_ALREADY_STOPPED,
                "the compute system stopped while the process was being created",
            ));
        }
        let entry = ProcessEntry {
            process: ProcessRef {
                pid: started.pid,
                token: 0,
            },
            host_pid: started.host_pid,
            stdin: started.stdin,
            stdout: started.stdout,
            stderr: started.stderr,
            console: started.console,
            exit_code: None,
        };
        let fds = entry.dup_stdio()?;
        let process = self.processes.insert(entry);
        tracing::info!(pid = process.pid, "process created");
        if let Some(code) = self.processes.claim_early_exit(process.pid) {
            if let Some(e) = self.processes.get_mut(process) {
                Self::record_exit(&mut self.events, e, code);
            }
        }
        let tied = tied.then_some(process);
        let (outcome, fds) = process_outcome(process, fds);
        Ok((outcome, fds, tied))
    }

    /// HcsOpenProcess: the process and its current status.
    pub fn open_process(&self, pid: u32) -> HcsResult<Outcome> {
        let e = self.processes.by_pid(pid).ok_or_else(|| {
            HcsError::new(
                HResult::ERROR_NOT_FOUND,
                format!(
                    "no process with pid {pid} was started through HCS in compute system {:?}",
                    self.id
                ),
            )
        })?;
        Ok(Outcome {
            hresult: HResult::S_OK,
            document: Some(e.status_json()),
            process: Some(ProcessInfo {
                process: e.process,
                stdio: StdioPresent::default(),
            }),
        })
    }

    fn entry(&mut self, r: ProcessRef) -> HcsResult<&mut ProcessEntry> {
        self.processes.get_mut(r).ok_or_else(|| {
            HcsError::new(
                HResult::ERROR_NOT_FOUND,
                format!("process {} is not known (it exited long ago?)", r.pid),
            )
        })
    }

    /// HcsSignalProcess / HcsTerminateProcess.
    pub fn signal_process(&mut self, r: ProcessRef, signal: i32) -> HcsResult<Served<()>> {
        if !self.stopped() {
            self.check(L::ProcessControl)?;
        }
        let e = self.entry(r)?;
        if e.exit_code.is_some() {
            return Err(HcsError::new(
                HResult::HCS_E_PROCESS_ALREADY_STOPPED,
                format!("process {} has already exited", r.pid),
            ));
        }
        let (pid, host_pid) = (e.process.pid, e.host_pid);
        self.backend.signal_process(pid, host_pid, signal)
    }

    /// HcsGetProcessInfo: fresh descriptors of the same pipes.
    pub fn process_info(&mut self, r: ProcessRef) -> HcsResult<(Outcome, Vec<OwnedFd>)> {
        let e = self.entry(r)?;
        let fds = e.dup_stdio()?;
        Ok(process_outcome(e.process, fds))
    }

    /// HcsGetProcessProperties: its `ProcessStatus`. The query, when
    /// given, is a `ProcessStatus` document (`HCS_E_INVALID_JSON` when it
    /// is not) whose members choose those of the result; an empty one (or
    /// none) asks for all of them.
    pub fn process_properties(&mut self, r: ProcessRef, query: Option<&str>) -> HcsResult<String> {
        let query = hcs_schema::fields::parse_options::<hcs_schema::ProcessStatus>(
            query,
            "ProcessStatus",
            self.on(),
        )?;
        let status = self.entry(r)?.status_json();
        let Some(q) = query else { return Ok(status) };
        let asked = [
            ("ProcessId", q.process_id.is_some()),
            ("Exited", q.exited.is_some()),
            ("ExitCode", q.exit_code.is_some()),
            ("LastWaitResult", q.last_wait_result.is_some()),
        ];
        if !asked.iter().any(|(_, a)| *a) {
            return Ok(status);
        }
        let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&status)
            .map_err(|e| HcsError::new(HResult::E_UNEXPECTED, format!("ProcessStatus: {e}")))?;
        doc.retain(|k, _| asked.iter().any(|(name, a)| *a && name == k));
        Ok(serde_json::Value::Object(doc).to_string())
    }

    /// HcsModifyProcess: console size, or close the monitor's stdio copies.
    pub fn modify_process(&mut self, r: ProcessRef, settings: &str) -> HcsResult<Served<()>> {
        let req: hcs_schema::ProcessModifyRequest =
            hcs_schema::from_json(settings, "ProcessModifyRequest")?;
        req.validate()?;
        let e = self.entry(r)?;
        if e.exit_code.is_some() {
            return Err(HcsError::new(
                HResult::HCS_E_PROCESS_ALREADY_STOPPED,
                format!("process {} has already exited", r.pid),
            ));
        }
        use hcs_schema::enums::ModifyOperation;
        match req.operation {
            Some(ModifyOperation::ConsoleSize) => {
                let size = req.console_size.unwrap_or_default();
                let (rows, cols) = (size.height.unwrap_or(25), size.width.unwrap_or(80));
                let Some(console) = e.console.as_ref() else {
                    let pid = e.process.pid;
                    return self.backend.resize_console(pid, rows, cols);
                };
                hcs_container::set_window_size(std::os::fd::AsFd::as_fd(console), rows, cols)
                    .map(Served::Now)
                    .map_err(|err| HcsError::from_io("resizing the console", &err))
            }
            Some(ModifyOperation::CloseHandle) => {
                match req.close_handle.and_then(|c| c.handle) {
                    Some(StdHandle::StdIn) => e.stdin = None,
                    Some(StdHandle::StdOut) => e.stdout = None,
                    Some(StdHandle::StdErr) => e.stderr = None,
                    Some(StdHandle::All) => e.close_stdio(),
                    None => {
                        return Err(HcsError::invalid_json(
                            "ProcessModifyRequest.CloseHandle.Handle is missing",
                        ))
                    }
                }
                Ok(Served::Now(()))
            }
            None => Err(HcsError::invalid_json(
                "ProcessModifyRequest.Operation is missing",
            )),
        }
    }
}

fn process_outcome(process: ProcessRef, fds: [Option<OwnedFd>; 3]) -> (Outcome, Vec<OwnedFd>) {
    let stdio = StdioPresent {
        stdin: fds[0].is_some(),
        stdout: fds[1].is_some(),
        stderr: fds[2].is_some(),
    };
    let out: Vec<OwnedFd> = fds.into_iter().flatten().collect();
    (
        Outcome {
            hresult: HResult::S_OK,
            document: None,
            process: Some(ProcessInfo { process, stdio }),
        },
        out,
    )
}

/// A process's exit code: its status, or 128 + the signal that killed it.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> u32 {
    use nix::sys::wait::WaitStatus as W;
    match status {
        W::Exited(_, code) => code as u32,
        W::Signaled(_, sig, _) => 128 + sig as u32,
        _ => 255,
    }
}

/// An options document: absent or blank is `None`; anything else must be
/// the JSON document `doc` (else `HCS_E_INVALID_JSON`, naming the path),
/// and may set nothing `hcs_schema::fields::TABLE` refuses on `on`.
fn parse_options<T: serde::de::DeserializeOwned + hcs_schema::fields::Fields>(
    options: Option<&str>,
    doc: &str,
    on: hcs_schema::fields::On,
) -> HcsResult<Option<T>> {
    hcs_schema::fields::parse_options(options, doc, on)
}

/// The options of a call that takes none: absent, blank or `{}`.
fn no_options(options: Option<&str>, call: &str) -> HcsResult<()> {
    let opts: Option<serde_json::Map<String, serde_json::Value>> = options
        .filter(|o| !o.trim().is_empty())
        .map(|o| hcs_schema::from_json(o, &format!("{call} options")))
        .transpose()?;
    match opts.iter().flat_map(|o| o.keys()).next() {
        Some(key) => Err(HcsError::invalid_json(format!(
            "invalid {call} options document: $.{key}: {call} takes no options"
        ))),
        None => Ok(()),
    }
}
