//! The lifecycle of a compute system, in one place.
//!
//! ```text
//!            Start            Pause
//!  Created ─────────▶ Running ─────▶ Paused
//!     │                │  ▲  Resume    │
//!     │                │  └────────────┘
//!     │       Shutdown │               │ Shutdown
//!     │                ▼               ▼
//!     │            ShuttingDown ◀──────┘
//!     │                │
//!     └──Terminate─────┴─── exit ───▶ Stopped
//! ```
//!
//! Every request is checked against the current state by
//! [`SystemState::check`], one exhaustive match (the model is Cloud
//! Hypervisor's `VmState::valid_transition`), which gives the next state or
//! the HCS error the caller must see.

use hcs_errors::{HResult, HcsError};

/// Where a compute system is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemState {
    /// Created; nothing runs yet.
    Created,
    /// Running.
    Running,
    /// Every process or vCPU is frozen.
    Paused,
    /// A graceful shutdown was asked for; it is on its way down.
    ShuttingDown,
    /// It has stopped; only its exit status remains.
    Stopped,
}

/// What is asked of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Start,
    Pause,
    Resume,
    Shutdown,
    Terminate,
    Save,
    Crash,
    Modify,
    GetProperties,
    CreateProcess,
    /// Process operations on existing processes (signal, info, modify).
    ProcessControl,
    /// The system's main process exited (not a client request).
    Exited,
}

impl SystemState {
    /// The `Properties.State` string.
    pub fn hcs_state(self) -> hcs_schema::enums::State {
        use hcs_schema::enums::State;
        match self {
            SystemState::Created => State::Created,
            SystemState::Running | SystemState::ShuttingDown => State::Running,
            SystemState::Paused => State::Paused,
            SystemState::Stopped => State::Stopped,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            SystemState::Created => "created but not started",
            SystemState::Running => "running",
            SystemState::Paused => "paused",
            SystemState::ShuttingDown => "shutting down",
            SystemState::Stopped => "stopped",
        }
    }

    /// Check `request` against this state: the state after it, or the error.
    pub fn check(self, request: Request) -> Result<SystemState, HcsError> {
        use Request as R;
        use SystemState as S;
        let invalid = |why: &str| -> Result<SystemState, HcsError> {
            Err(HcsError::new(
                HResult::HCS_E_INVALID_STATE,
                format!(
                    "cannot {} a compute system that is {}{why}",
                    verb(request),
                    self.describe()
                ),
            ))
        };
        match (self, request) {
            (S::Created, R::Start) => Ok(S::Running),
            (S::Running | S::Paused | S::ShuttingDown, R::Start) => invalid(""),

            (S::Running, R::Pause) => Ok(S::Paused),
            (S::Paused, R::Pause) => invalid(" already"),
            (S::Created | S::ShuttingDown, R::Pause) => invalid(""),

            (S::Paused, R::Resume) => Ok(S::Running),
            (S::Created | S::Running | S::ShuttingDown, R::Resume) => {
                invalid(" (it is not paused)")
            }

            (S::Running | S::Paused, R::Shutdown) => Ok(S::ShuttingDown),
            // A second shutdown joins the first.
            (S::ShuttingDown, R::Shutdown) => Ok(S::ShuttingDown),
            (S::Created, R::Shutdown) => invalid(" (nothing runs yet; terminate it instead)"),

            (S::Created | S::Running | S::Paused | S::ShuttingDown, R::Terminate) => Ok(S::Stopped),

            (S::Paused, R::Save) => Ok(S::Paused),
            (S::Running, R::Save) => invalid(" (pause it first)"),
            (S::Created | S::ShuttingDown, R::Save) => invalid(""),

            (S::Running | S::Paused, R::Crash) => Ok(self),
            (S::Created | S::ShuttingDown, R::Crash) => invalid(""),

            (S::Created | S::Running | S::Paused, R::Modify) => Ok(self),
            (S::ShuttingDown, R::Modify) => invalid(""),

            (_, R::GetProperties) => Ok(self),

            (S::Running, R::CreateProcess) => Ok(self),
            (S::Created, R::CreateProcess) => invalid(" (start it first)"),
            (S::Paused | S::ShuttingDown, R::CreateProcess) => invalid(""),

            (S::Running | S::Paused | S::ShuttingDown, R::ProcessControl) => Ok(self),
            (S::Created, R::ProcessControl) => invalid(""),

            (_, R::Exited) => Ok(S::Stopped),

            (S::Stopped, R::ProcessControl) => Err(HcsError::new(
                HResult::HCS_E_PROCESS_ALREADY_STOPPED,
                "the compute system has stopped, and its processes with it",
            )),
            (S::Stopped, _) => Err(HcsError::new(
                HResult::HCS_E_SYSTEM_ALREADY_STOPPED,
                format!(
                    "cannot {} the compute system: it has already stopped",
                    verb(request)
                ),
            )),
        }
    }
}

fn verb(r: Request) -> &'static str {
    match r {
        Request::Start => "start",
        Request::Pause => "pause",
        Request::Resume => "resume",
        Request::Shutdown => "shut down",
        Request::Terminate => "terminate",
        Request::Save => "save",
        Request::Crash => "crash",
        Request::Modify => "modify",
        Request::GetProperties => "query",
        Request::CreateProcess => "create a process in",
        Request::ProcessControl => "control a process of",
        Request::Exited => "exit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATES: [SystemState; 5] = [
        SystemState::Created,
        SystemState::Running,
        SystemState::Paused,
        SystemState::ShuttingDown,
        SystemState::Stopped,
    ];

    #[test]
    fn the_documented_paths() {
        let s = SystemState::Created.check(Request::Start).unwrap();
        let s = s.check(Request::Pause).unwrap();
        assert_eq!(s, SystemState::Paused);
        let s = s.check(Request::Resume).unwrap();
        let s = s.check(Request::Shutdown).unwrap();
        assert_eq!(s, SystemState::ShuttingDown);
        assert_eq!(s.check(Request::Exited).unwrap(), SystemState::Stopped);
    }

    #[test]
    fn stopped_systems_answer_already_stopped() {
        for r in [
            Request::Shutdown,
            Request::Terminate,
            Request::Start,
            Request::Pause,
        ] {
            assert_eq!(
                SystemState::Stopped.check(r).unwrap_err().hresult,
                HResult::HCS_E_SYSTEM_ALREADY_STOPPED
            );
        }
        SystemState::Stopped.check(Request::GetProperties).unwrap();
    }

    #[test]
    fn save_needs_a_paused_system_and_terminate_always_works_until_stopped() {
        assert_eq!(
            SystemState::Running
                .check(Request::Save)
                .unwrap_err()
                .hresult,
            HResult::HCS_E_INVALID_STATE
        );
        SystemState::Paused.check(Request::Save).unwrap();
        for s in ALL_STATES {
            assert_eq!(
                s.check(Request::Terminate).is_ok(),
                s != SystemState::Stopped,
                "{s:?}"
            );
        }
    }

    #[test]
    fn error_messages_say_what_and_why() {
        let e = SystemState::Created
            .check(Request::CreateProcess)
            .unwrap_err();
        assert!(e.message.contains("start it first"), "{}", e.message);
    }
}
