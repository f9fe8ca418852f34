//! cgroups for HCS compute systems: create one cgroup per compute system in
//! every hierarchy the host uses (cgroup v1, v2 or hybrid), apply its limits,
//! let its first process join before exec, freeze and thaw it, read its usage,
//! and kill everything in it before removing it.
//!
//! ```no_run
//! use std::path::Path;
//! use hcs_cgroups::{Cgroup, Resources};
//!
//! # fn main() -> Result<(), hcs_cgroups::CgroupError> {
//! let cg = Cgroup::create(Path::new("hcs/default/c1"))?;
//! cg.apply(&Resources { memory_limit_bytes: Some(256 << 20), pids_max: Some(512), ..Default::default() })?;
//! let fds = cg.open_procs_files()?;
//! // ... fork; in the child: hcs_cgroups::join_procs_files(&fds), then exec ...
//! cg.freeze()?;
//! cg.thaw()?;
//! println!("{:?}", cg.stats()?);
//! cg.destroy()?;
//! # Ok(()) }
//! ```
//!
//! # Why not youki's `libcgroups`
//!
//! This is on the container start path, whose budget is set by crun's 13 ms on
//! this kind of machine, and `libcgroups` (0.x, read at the time of writing)
//! costs more than the whole budget allows for cgroups and decides things we
//! need decided differently:
//!
//! * Its v1 `Manager::new` resolves each of its twelve controller types on its
//!   own, and each resolution opens and parses `/proc/self/mountinfo` and
//!   `/proc/self/cgroup` again: two dozen procfs parses per container. Here
//!   both are parsed once per process ([`Hierarchies::detect`]), and a create
//!   is a handful of `mkdir`s.
//! * Its v1 `remove` reads `cgroup.procs`, sends SIGKILL once without freezing
//!   (a process that forks meanwhile survives), then retries `rmdir` four
//!   times with 10–60 ms sleeps before giving up. Here the kill is certain:
//!   freeze, SIGKILL through pidfds, thaw, wait on the pidfds, repeat until
//!   empty (or `cgroup.kill` on v2), and nothing sleeps on a guess.
//! * It treats a hybrid host as plain v1 and never looks at the unified
//!   hierarchy; here the unified hierarchy is used when a controller we need
//!   lives only there (or no v1 freezer is mounted), and left alone otherwise.
//! * Given a cgroup path, its v1 manager places it at each hierarchy's root
//!   (the caller's own cgroup is used only for an empty path). Here containers
//!   go under the calling process's own v1 cgroup, so that a runtime confined
//!   to, say, `memory:/process_api/<id>` keeps its containers inside that limit.
//! * Its v2 freezer polls `cgroup.events` every 10 ms; here the wait sleeps in
//!   `poll(POLLPRI)` and wakes when the kernel reports the change.
//!
//! # Layout rules
//!
//! See [`Cgroup::create_in`] for where directories go, [`Cgroup::apply`] for
//! what a missing controller does (an error, never a silently dropped limit)
//! and [`Cgroup::destroy`] for the kill and removal sequence.

#![warn(missing_docs)]

mod cgroup;
pub mod devices;
mod error;
mod fsio;
mod hierarchy;
mod resources;
mod stats;

pub use cgroup::{join_procs_files, Anchor, Cgroup, FREEZE_TIMEOUT, KILL_TIMEOUT};
pub use error::CgroupError;
pub use hierarchy::{CgroupVersion, Hierarchies, Hierarchy, Layout};
pub use resources::{
    cpu_shares_to_weight, cpu_weight_to_shares, CpuQuota, Resources, CPU_SHARES_MAX,
    CPU_SHARES_MIN, CPU_WEIGHT_MAX, CPU_WEIGHT_MIN,
};
pub use stats::Stats;
