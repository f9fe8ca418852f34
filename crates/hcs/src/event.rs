//! Events delivered to system and process callbacks (`HCS_EVENT`).

use crate::operation::Operation;

/// `HCS_EVENT_TYPE`, with Microsoft's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventType {
    /// Never delivered.
    Invalid = 0x0000_0000,
    /// The system stopped; data is a `SystemExitStatus` document.
    SystemExited = 0x0000_0001,
    /// The guest began to crash; data is a `CrashReport`.
    SystemCrashInitiated = 0x0000_0002,
    /// The guest crash report is complete; data is a `CrashReport`.
    SystemCrashReport = 0x0000_0003,
    /// RDP enhanced mode changed (never on Linux).
    SystemRdpEnhancedModeStateChanged = 0x0000_0004,
    /// Reserved.
    SystemSiloJobCreated = 0x0000_0005,
    /// The connection to the guest agent closed.
    SystemGuestConnectionClosed = 0x0000_0006,
    /// A process exited; data is a `ProcessStatus` document. Process handles only.
    ProcessExited = 0x0001_0000,
    /// An operation used with this handle completed (with
    /// [`EventOptions::ENABLE_OPERATION_CALLBACKS`]).
    OperationCallback = 0x0100_0000,
    /// The connection to the compute system's monitor was lost.
    ServiceDisconnect = 0x0200_0000,
    /// VM lifecycle group (with [`EventOptions::ENABLE_VM_LIFECYCLE`]).
    GroupVmLifecycle = 0x8000_0002,
    /// Live migration group.
    GroupLiveMigration = 0x8000_0003,
    /// Operation information group.
    GroupOperationInfo = 0xC000_0001,
}

/// `HCS_EVENT_OPTIONS` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EventOptions(pub u32);

impl EventOptions {
    /// `HcsEventOptionNone`.
    pub const NONE: EventOptions = EventOptions(0);
    /// `HcsEventOptionEnableOperationCallbacks`: completions of operations used
    /// with the handle arrive as [`EventType::OperationCallback`] events.
    pub const ENABLE_OPERATION_CALLBACKS: EventOptions = EventOptions(0x1);
    /// `HcsEventOptionEnableVmLifecycle`.
    pub const ENABLE_VM_LIFECYCLE: EventOptions = EventOptions(0x2);
    /// `HcsEventOptionEnableLiveMigrationEvents`.
    pub const ENABLE_LIVE_MIGRATION_EVENTS: EventOptions = EventOptions(0x4);

    /// True if every flag of `other` is set.
    pub fn contains(self, other: EventOptions) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for EventOptions {
    type Output = EventOptions;
    fn bitor(self, rhs: EventOptions) -> EventOptions {
        EventOptions(self.0 | rhs.0)
    }
}

/// One event (`HCS_EVENT`).
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub event_type: EventType,
    /// Its JSON document, if the type has one.
    pub data: Option<String>,
    /// The completed operation, for [`EventType::OperationCallback`] only.
    pub operation: Option<Operation>,
}

/// A registered event callback.
pub(crate) type EventCallback = std::sync::Arc<dyn Fn(&Event) + Send + Sync + 'static>;
