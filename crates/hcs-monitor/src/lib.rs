//! The per-system monitor.
//!
//! Every compute system has one monitor process, like Hyper-V's worker
//! process or a containerd shim. It is spawned by the client that creates the
//! system (with one end of a socket pair as its stdin), owns the system for
//! its whole life, keeps its runtime directory (`/run/hcs/<namespace>/<id>`)
//! and serves its control socket there. It is single-threaded: one `mio`
//! loop over the control socket, the client connections and a `signalfd` for
//! SIGCHLD. Being single-threaded is what lets it fork container processes
//! without the hazards of forking a multi-threaded program. A VM's monitor
//! (which never forks) also runs vCPU, device and guest-agent threads.

pub mod agent;
pub mod backend;
pub mod container;
pub mod guest_link;
pub mod lifecycle;
pub mod logging;
pub mod process_params;
pub mod processes;
pub mod reap;
pub mod server;
pub mod system;
pub mod vm;
