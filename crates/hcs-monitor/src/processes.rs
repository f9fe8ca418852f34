//! The processes HCS started in a system: their pids, tokens, the monitor's
//! copies of their stdio (for HcsGetProcessInfo) and their exit codes.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use hcs_protocol::ProcessRef;

/// How many exited processes are remembered for late queries.
const KEEP_EXITED: usize = 1024;
/// How many exits of processes not recorded yet are kept (see
/// [`ProcessTable::exit_before_record`]); more than creations in flight
/// only comes from a guest reporting pids it never started.
const KEEP_EARLY_EXITS: usize = 64;

/// One process.
pub struct ProcessEntry {
    /// Its reference (pid in the system + token).
    pub process: ProcessRef,
    /// Host pid when it is the monitor's child.
    pub host_pid: Option<i32>,
    /// The monitor's copies of the caller's stdio ends.
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The pty master.
    pub console: Option<OwnedFd>,
    /// Exit code once it exited.
    pub exit_code: Option<u32>,
}

impl ProcessEntry {
    /// The `ProcessStatus` document.
    pub fn status_json(&self) -> String {
        let status = hcs_schema::ProcessStatus {
            process_id: Some(self.process.pid),
            exited: Some(self.exit_code.is_some()),
            exit_code: self.exit_code,
            last_wait_result: Some(0),
        };
        hcs_schema::to_json(&status)
    }

    /// Fresh copies of the caller's stdio ends, for a response.
    pub fn dup_stdio(&self) -> hcs_errors::HcsResult<[Option<OwnedFd>; 3]> {
        let dup = |f: &Option<OwnedFd>| {
            f.as_ref()
                .map(|f| {
                    f.try_clone().map_err(|e| {
                        hcs_errors::HcsError::from_io("duplicating a stdio descriptor", &e)
                    })
                })
                .transpose()
        };
        Ok([dup(&self.stdin)?, dup(&self.stdout)?, dup(&self.stderr)?])
    }

    /// Drop the monitor's stdio copies (exit, or CloseHandle All).
    pub fn close_stdio(&mut self) {
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
    }
}

/// Every process of the system, in creation order.
#[derive(Default)]
pub struct ProcessTable {
    entries: Vec<ProcessEntry>,
    next_token: u64,
    /// (pid, exit code) of guest processes whose exit came first.
    early_exits: VecDeque<(u32, u32)>,
}

impl ProcessTable {
    /// Record a new process and give it a token.
    pub fn insert(&mut self, mut entry: ProcessEntry) -> ProcessRef {
        self.next_token += 1;
        entry.process.token = self.next_token;
        let r = entry.process;
        self.entries.push(entry);
        self.trim();
        r
    }

    fn trim(&mut self) {
        let exited = self
            .entries
            .iter()
            .filter(|e| e.exit_code.is_some())
            .count();
        if exited > KEEP_EXITED {
            let mut drop = exited - KEEP_EXITED;
            self.entries.retain(|e| {
                if drop > 0 && e.exit_code.is_some() {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// The entry of a reference.
    pub fn get_mut(&mut self, r: ProcessRef) -> Option<&mut ProcessEntry> {
        self.entries.iter_mut().find(|e| e.process == r)
    }

    /// The newest process with this pid (a running one first).
    pub fn by_pid(&self, pid: u32) -> Option<&ProcessEntry> {
        let mut matching = self.entries.iter().rev().filter(|e| e.process.pid == pid);
        let newest = matching.clone().next();
        matching.find(|e| e.exit_code.is_none()).or(newest)
    }

    /// The running process with this pid in the system.
    pub fn running_by_pid_mut(&mut self, pid: u32) -> Option<&mut ProcessEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.process.pid == pid && e.exit_code.is_none())
    }

    /// A guest process `pid` exited and no running entry has that pid:
    /// keep its exit for [`ProcessTable::claim_early_exit`]. A VM's
    /// process creation finishes off the monitor's loop, and the agent
    /// answers the watch on a process that exits at once before the loop
    /// records the creation; dropping that exit would leave the process
    /// running forever to its callers.
    pub fn exit_before_record(&mut self, pid: u32, exit_code: u32) {
        if self.early_exits.len() >= KEEP_EARLY_EXITS {
            self.early_exits.pop_front();
        }
        self.early_exits.push_back((pid, exit_code));
    }

    /// The exit of `pid` that came before its creation was recorded.
    pub fn claim_early_exit(&mut self, pid: u32) -> Option<u32> {
        let i = self.early_exits.iter().position(|(p, _)| *p == pid)?;
        self.early_exits.remove(i).map(|(_, code)| code)
    }

    /// The running process with this host pid.
    pub fn by_host_pid_mut(&mut self, host_pid: i32) -> Option<&mut ProcessEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.host_pid == Some(host_pid) && e.exit_code.is_none())
    }

    /// Host pids of processes that have not exited.
    pub fn running_host_pids(&self) -> Vec<i32> {
        self.entries
            .iter()
            .filter(|e| e.exit_code.is_none())
            .filter_map(|e| e.host_pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32) -> ProcessEntry {
        ProcessEntry {
            process: ProcessRef { pid, token: 0 },
            host_pid: None,
            stdin: None,
            stdout: None,
            stderr: None,
            console: None,
            exit_code: None,
        }
    }

    #[test]
    fn an_exit_that_comes_before_the_record_is_claimed_once() {
        let mut t = ProcessTable::default();
        assert!(t.running_by_pid_mut(8).is_none());
        t.exit_before_record(8, 3);
        t.insert(entry(8));
        assert_eq!(t.claim_early_exit(8), Some(3));
        assert_eq!(t.claim_early_exit(8), None);
    }

    #[test]
    fn early_exits_are_bounded() {
        let mut t = ProcessTable::default();
        for pid in 0..(KEEP_EARLY_EXITS as u32 + 10) {
            t.exit_before_record(pid, 0);
        }
        assert_eq!(t.early_exits.len(), KEEP_EARLY_EXITS);
        assert_eq!(t.claim_early_exit(0), None, "the oldest went first");
        assert_eq!(t.claim_early_exit(KEEP_EARLY_EXITS as u32 + 9), Some(0));
    }
}
