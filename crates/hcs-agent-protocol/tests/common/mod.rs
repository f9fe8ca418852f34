//! Sample messages shared by the round-trip and fuzz tests.
#![allow(dead_code)]

use hcs_agent_protocol::*;

pub static ARGS: [&[u8]; 3] = [b"/bin/sh", b"-c", b"echo \xff non-utf8"];
pub static ENV: [&[u8]; 2] = [b"PATH=/usr/bin:/bin", b"HOME=/root"];
pub static EMPTY: [&[u8]; 0] = [];
pub static VERSIONS: [u16; 3] = [1, 2, 0xffff];
pub static ENTRIES: [ProcessEntry<'static>; 2] = [
    ProcessEntry {
        pid: 1,
        command_line: b"/init --vsock",
        start_time_100ns: 0,
        user_time_100ns: 12,
        kernel_time_100ns: 34,
        memory_commit_bytes: 1 << 20,
        working_set_private_bytes: 4096,
        working_set_shared_bytes: 8192,
    },
    ProcessEntry {
        pid: u32::MAX,
        command_line: b"",
        start_time_100ns: u64::MAX,
        user_time_100ns: u64::MAX,
        kernel_time_100ns: 0,
        memory_commit_bytes: 0,
        working_set_private_bytes: u64::MAX,
        working_set_shared_bytes: 1,
    },
];

/// At least one sample of every message type and of every variant inside.
static GIDS: [u32; 3] = [0, 10, u32::MAX];
static RLIMITS: [Rlimit; 2] = [
    Rlimit {
        resource: 7,
        soft: 100,
        hard: 200,
    },
    Rlimit {
        resource: 0,
        soft: u64::MAX,
        hard: u64::MAX,
    },
];

pub fn samples() -> Vec<Message<'static>> {
    vec![
        Message::Hello(Hello {
            versions: List::Slice(&VERSIONS),
            client: b"hcs-monitor",
        }),
        Message::Hello(Hello {
            versions: List::Slice(&[]),
            client: b"",
        }),
        Message::CreateProcess(CreateProcess {
            args: List::Slice(&ARGS),
            executable: b"",
            env: List::Slice(&ENV),
            cwd: b"/tmp",
            user: User::Default,
            terminal: None,
            stdin_port: Some(1000),
            stdout_port: Some(1001),
            stderr_port: Some(u32::MAX),
            security: ProcessSecurity::INHERIT,
        }),
        Message::CreateProcess(CreateProcess {
            args: List::Slice(&ARGS[..1]),
            executable: b"/bin/sh",
            env: List::Slice(&EMPTY),
            cwd: b"",
            user: User::Id {
                uid: 1000,
                gid: 100,
            },
            terminal: Some(ConsoleSize { rows: 24, cols: 80 }),
            stdin_port: None,
            stdout_port: Some(7),
            stderr_port: None,
            security: ProcessSecurity {
                additional_gids: Some(List::Slice(&GIDS)),
                umask: Some(0o027),
                no_new_privileges: true,
                capabilities: Some(Capabilities {
                    bounding: u64::MAX,
                    effective: 1,
                    permitted: 3,
                    inheritable: 0,
                    ambient: 1 << 40,
                }),
                rlimits: List::Slice(&RLIMITS),
                oom_score_adj: Some(-1000),
            },
        }),
        Message::CreateProcess(CreateProcess {
            args: List::Slice(&EMPTY),
            executable: b"",
            env: List::Slice(&ENV[1..]),
            cwd: b"/",
            user: User::Name(b"nobody"),
            terminal: None,
            stdin_port: None,
            stdout_port: None,
            stderr_port: None,
            security: ProcessSecurity {
                additional_gids: Some(List::Slice(&[])),
                oom_score_adj: Some(i32::MAX),
                ..ProcessSecurity::INHERIT
            },
        }),
        Message::SetTimeZone(SetTimeZone {
            name: b"Europe/Paris",
            tzif: b"TZif2\0\0",
        }),
        Message::SetTime(SetTime {
            seconds: 1_700_000_000,
            nanoseconds: 999_999_999,
        }),
        Message::ResizeConsole(ResizeConsole {
            pid: 42,
            size: ConsoleSize {
                rows: 50,
                cols: 132,
            },
        }),
        Message::Signal(Signal {
            pid: 42,
            signal: 15,
        }),
        Message::WaitProcess(WaitProcess { pid: 42 }),
        Message::ProcessList,
        Message::Shutdown(Shutdown {
            action: ShutdownAction::PowerOff,
        }),
        Message::Shutdown(Shutdown {
            action: ShutdownAction::Reboot,
        }),
        Message::HelloReply(HelloReply {
            version: 1,
            agent: b"hcs-agent 0.1.0",
        }),
        Message::ProcessCreated(ProcessCreated { pid: 4242 }),
        Message::Ok,
        Message::ProcessExited(ProcessExited {
            pid: 42,
            exit_code: 3,
            signal: 0,
        }),
        Message::ProcessExited(ProcessExited {
            pid: 42,
            exit_code: 137,
            signal: 9,
        }),
        Message::ProcessListReply(ProcessListReply {
            processes: List::Slice(&ENTRIES),
        }),
        Message::ProcessListReply(ProcessListReply {
            processes: List::Slice(&[]),
        }),
        Message::Error(ErrorReply {
            hresult: hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION,
            message: b"no shared version",
        }),
    ]
}

/// Touches every field of a decoded message, lists included.
pub fn walk(msg: &Message<'_>) -> usize {
    let mut n = 0usize;
    match msg {
        Message::Hello(h) => n += h.versions.iter().count() + h.client.len(),
        Message::CreateProcess(c) => {
            n += c.args.iter().map(|a| a.len()).sum::<usize>();
            n += c.env.iter().map(|a| a.len()).sum::<usize>();
            n += c.cwd.len() + c.executable.len();
            n += c
                .security
                .additional_gids
                .iter()
                .flat_map(|l| l.iter())
                .count();
            n += c
                .security
                .rlimits
                .iter()
                .map(|r| r.resource as usize)
                .sum::<usize>();
        }
        Message::ProcessListReply(p) => {
            n += p
                .processes
                .iter()
                .map(|e| e.command_line.len())
                .sum::<usize>()
        }
        Message::Error(e) => n += e.message.len(),
        _ => {}
    }
    n
}
