//! The processes HCS started in a system: their pids, tokens, the monitor's
//! copies of their stdio (for HcsGetProcessInfo) and their exit codes.

use std::os::fd::OwnedFd;

use hcs_protocol::ProcessRef;

/// How many exited processes are remembered for late queries.
const KEEP_EXITED: usize = 1024;

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
