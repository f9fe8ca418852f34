//! The control protocol between HCS clients and the monitor that owns a
//! compute system.
//!
//! Transport: a unix `SOCK_SEQPACKET` socket, either the monitor's
//! `control.sock` or the socket pair a creating client hands to the monitor
//! it spawns. Seqpacket keeps message boundaries and ties passed file
//! descriptors to the message that carries them, which is what stdio
//! handles need ([`wire`]).
//!
//! Messages are JSON ([`messages`]): a client sends [`messages::RequestFrame`]s,
//! the monitor answers each with a [`messages::Reply::Response`] carrying the
//! same id, and pushes [`messages::Reply::Event`]s whenever something happens.
//! HCS documents (configuration, properties, options) travel as JSON strings
//! inside those messages, untouched, so that the monitor parses them and
//! reports errors against the caller's own text.

pub mod messages;
pub mod wire;

pub use messages::*;
pub use wire::{Channel, Packet, RecvOutcome};

/// Version of this protocol. A monitor refuses a `Hello` with another major.
pub const PROTOCOL_VERSION: u32 = 1;

/// Name of the control socket inside a system's runtime directory.
pub const CONTROL_SOCKET: &str = "control.sock";
