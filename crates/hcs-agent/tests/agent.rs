//! End-to-end tests of the agent's process handling, through the protocol,
//! with `hcs-agent --unix` on a temp dir (only unix sockets, no network).

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;

use common::*;
use hcs_agent_protocol::*;

#[test]
fn handshake_picks_the_highest_shared_version() {
    let agent = AgentProc::start();
    let mut c = agent.connect_raw();
    assert_eq!(c.hello(&[0, 1, 2, 7, 300]), Ok(PROTOCOL_VERSION));
}

#[test]
fn no_shared_version_is_unsupported_protocol_version() {
    let agent = AgentProc::start();
    let mut c = agent.connect_raw();
    // Version 1 (before ProcessSecurity) is refused, saying what each side speaks.
    let (hr, msg) = c.hello(&[1, 3]).unwrap_err();
    assert_eq!(hr, 0x8037_010C, "HCS_E_UNSUPPORTED_PROTOCOL_VERSION");
    assert!(msg.contains("[1, 3]"), "{msg}");
    assert!(msg.contains("speaks [2]"), "{msg}");
    // The connection survives; an empty offer fails the same way; a good one works.
    assert_eq!(
        c.hello(&[]).unwrap_err().0,
        hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION
    );
    assert_eq!(c.hello(&[2]), Ok(2));
}

#[test]
fn requests_before_hello_are_refused() {
    let agent = AgentProc::start();
    let mut c = agent.connect_raw();
    match c.call(&Message::ProcessList) {
        Reply::Error(hr, m) => {
            assert_eq!(hr, hresult::HCS_E_PROTOCOL_ERROR);
            assert!(m.contains("Hello"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn echoes_args_and_env_to_stdout_and_stderr() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&[
        "sh",
        "-c",
        "echo \"$0|$1|$FOO\"; echo oops >&2; exit 0",
        "first",
        "second arg",
    ]);
    spec.env = &["PATH=/usr/bin:/bin", "FOO=bar baz"];
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    assert_eq!(read_all(&mut p.stdout), "first|second arg|bar baz\n");
    assert_eq!(read_all(&mut p.stderr), "oops\n");
    assert_eq!(
        c.wait(p.pid),
        ProcessExited {
            pid: p.pid,
            exit_code: 0,
            signal: 0
        }
    );
}

#[test]
fn working_directory_and_default_path() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["pwd"]);
    spec.env = &[];
    spec.cwd = "/tmp";
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    assert_eq!(read_all(&mut p.stdout), "/tmp\n");
    assert_eq!(c.wait(p.pid).exit_code, 0);
}

#[test]
fn stdin_is_copied_to_stdout_by_cat_and_closed() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["cat"]);
    spec.stdin = true;
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    // More than a pipe buffer, so both directions must stream.
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| b"hello agent\n"[(i % 12) as usize])
        .collect();
    let writer = feed(p.stdin.take().unwrap(), data.clone());
    let out = read_all(&mut p.stdout);
    writer.join().unwrap();
    assert_eq!(out.as_bytes(), &data[..]);
    // cat only exits because closing the host's stream closed its stdin.
    assert_eq!(c.wait(p.pid).exit_code, 0);
}

#[test]
fn exit_codes_and_waits_after_exit() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["sh", "-c", "exit 42"]);
    spec.stdout = false;
    spec.stderr = false;
    let p = create(&mut agent, &mut c, &spec).unwrap();
    let exited = ProcessExited {
        pid: p.pid,
        exit_code: 42,
        signal: 0,
    };
    // A wait on another connection returns once the agent has the exit, so
    // every wait below is issued after it, without guessing how long it takes.
    assert_eq!(agent.connect().wait(p.pid), exited);
    assert_eq!(
        c.wait(p.pid),
        exited,
        "a wait after the exit still gets the status"
    );
    assert_eq!(c.wait(p.pid), exited, "and so does a second one");
    // Another connection can wait too.
    assert_eq!(agent.connect().wait(p.pid), exited);
    // Signalling an exited process fails with PROCESS_ALREADY_STOPPED.
    assert!(matches!(
        c.signal(p.pid, 15),
        Reply::Error(hresult::HCS_E_PROCESS_ALREADY_STOPPED, _)
    ));
}

#[test]
fn signal_kills_a_process() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let p = create(&mut agent, &mut c, &Spec::new(&["sleep", "100"])).unwrap();
    // A wait sent first is answered when the process dies.
    let wait_id = c.send(&Message::WaitProcess(WaitProcess { pid: p.pid }));
    assert_eq!(c.signal(p.pid, 15), Reply::Ok);
    match c.recv(wait_id) {
        Reply::Exited(e) => assert_eq!(
            e,
            ProcessExited {
                pid: p.pid,
                exit_code: 143,
                signal: 15
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.signal(p.pid, 0xdead), Reply::Error(_, _)));
}

#[test]
fn unknown_pids_are_not_found() {
    let agent = AgentProc::start();
    let mut c = agent.connect();
    let own_pid = std::process::id(); // exists, but the agent did not start it
    for msg in [
        Message::Signal(Signal {
            pid: own_pid,
            signal: 9,
        }),
        Message::WaitProcess(WaitProcess { pid: own_pid }),
        Message::ResizeConsole(ResizeConsole {
            pid: own_pid,
            size: ConsoleSize { rows: 1, cols: 1 },
        }),
    ] {
        match c.call(&msg) {
            Reply::Error(hr, m) => {
                assert_eq!(hr, hresult::ERROR_NOT_FOUND);
                assert!(m.contains("not started by the agent"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn pty_tty_prints_a_pts_device() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["tty"]);
    spec.stderr = false;
    spec.terminal = Some(ConsoleSize { rows: 24, cols: 80 });
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    let out = read_all(&mut p.stdout);
    assert!(
        out.starts_with("/dev/pts/") && out.ends_with("\r\n"),
        "{out:?}"
    );
    assert_eq!(c.wait(p.pid).exit_code, 0);
}

#[test]
fn pty_resize_is_seen_by_stty() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["sh", "-c", "stty size; read line; stty size"]);
    spec.stderr = false;
    spec.stdin = true;
    spec.terminal = Some(ConsoleSize { rows: 24, cols: 80 });
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    read_until(p.stdout.as_mut().unwrap(), "24 80");
    let resize = Message::ResizeConsole(ResizeConsole {
        pid: p.pid,
        size: ConsoleSize {
            rows: 40,
            cols: 100,
        },
    });
    assert_eq!(c.call(&resize), Reply::Ok);
    p.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let rest = read_all(&mut p.stdout);
    assert!(rest.contains("40 100"), "{rest:?}");
    assert_eq!(c.wait(p.pid).exit_code, 0);
    // A process without a terminal cannot be resized.
    let mut plain = Spec::new(&["sleep", "10"]);
    plain.stdout = false;
    plain.stderr = false;
    let q = create(&mut agent, &mut c, &plain).unwrap();
    let resize = Message::ResizeConsole(ResizeConsole {
        pid: q.pid,
        size: ConsoleSize { rows: 1, cols: 1 },
    });
    assert!(matches!(
        c.call(&resize),
        Reply::Error(hresult::E_INVALIDARG, _)
    ));
    assert_eq!(c.signal(q.pid, 9), Reply::Ok);
}

#[test]
fn pty_stdin_close_sends_eof() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["cat"]);
    spec.stderr = false;
    spec.stdin = true;
    spec.terminal = Some(ConsoleSize { rows: 24, cols: 80 });
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    let writer = feed(p.stdin.take().unwrap(), b"line\n".to_vec());
    let out = read_all(&mut p.stdout);
    writer.join().unwrap();
    assert!(out.contains("line"), "{out:?}");
    assert_eq!(c.wait(p.pid).exit_code, 0);
}

#[test]
fn missing_executables_and_bad_requests_give_clear_errors() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let err = create(&mut agent, &mut c, &Spec::new(&["/nonexistent/prog"]))
        .err()
        .unwrap();
    assert_eq!(err.0, hresult::ERROR_FILE_NOT_FOUND);
    assert!(
        err.1.contains("\"/nonexistent/prog\" was not found"),
        "{}",
        err.1
    );
    let err = create(&mut agent, &mut c, &Spec::new(&["no-such-program-hcs"]))
        .err()
        .unwrap();
    assert_eq!(err.0, hresult::ERROR_FILE_NOT_FOUND);
    assert!(
        err.1.contains("searched PATH=/usr/local/bin:/usr/bin:/bin"),
        "{}",
        err.1
    );
    // Not executable: execve fails in the child and is reported precisely.
    let err = create(&mut agent, &mut c, &Spec::new(&["/etc/passwd"]))
        .err()
        .unwrap();
    assert_eq!(err.0, hresult::E_ACCESSDENIED);
    assert!(err.1.contains("execve failed"), "{}", err.1);
    let mut spec = Spec::new(&["true"]);
    spec.cwd = "/nonexistent-dir";
    let err = create(&mut agent, &mut c, &spec).err().unwrap();
    assert!(err.1.contains("chdir failed"), "{}", err.1);
    let err = create(&mut agent, &mut c, &Spec::new(&[])).err().unwrap();
    assert_eq!(err.0, hresult::E_INVALIDARG);
    let mut spec = Spec::new(&["true"]);
    spec.user = User::Name(b"no-such-user-hcs");
    let err = create(&mut agent, &mut c, &spec).err().unwrap();
    assert!(err.1.contains("unknown user"), "{}", err.1);
    // As for a container's process (hcs-container's users.rs): element not found.
    assert_eq!(err.0, hresult::ERROR_NOT_FOUND, "{}", err.1);
    // A stdio port nobody listens on.
    let args: [&[u8]; 1] = [b"true"];
    let req = Message::CreateProcess(CreateProcess {
        args: List::Slice(&args),
        executable: b"",
        env: List::Slice(&[]),
        cwd: b"",
        user: User::Default,
        terminal: None,
        stdin_port: None,
        stdout_port: Some(99_999),
        stderr_port: None,
        security: ProcessSecurity::INHERIT,
    });
    match c.call(&req) {
        Reply::Error(_, m) => assert!(m.contains("stdout stream to port 99999"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The connection still works.
    let mut p = create(&mut agent, &mut c, &Spec::new(&["echo", "still here"])).unwrap();
    assert_eq!(read_all(&mut p.stdout), "still here\n");
}

#[test]
fn runs_as_another_user() {
    if is_root() {
        let mut agent = AgentProc::start();
        let mut c = agent.connect();
        let mut spec = Spec::new(&["sh", "-c", "echo $(id -u):$(id -g):$(id -G)"]);
        spec.user = User::Id {
            uid: 65534,
            gid: 65534,
        };
        let mut p = create(&mut agent, &mut c, &spec).unwrap();
        assert_eq!(read_all(&mut p.stdout), "65534:65534:65534\n");
        spec.user = User::Name(b"nobody");
        let mut p = create(&mut agent, &mut c, &spec).unwrap();
        assert!(read_all(&mut p.stdout).starts_with("65534:"));
    } else {
        hcs_test_support::skip("agent::runs_as_another_user", "needs root");
    }
}

/// The value of `key:` in a /proc status-like text.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_SYS_ADMIN: u64 = 1 << 21;

#[test]
fn the_whole_oci_process_reaches_the_child() {
    if !is_root() {
        hcs_test_support::skip(
            "agent::the_whole_oci_process_reaches_the_child",
            "needs root",
        );
        return;
    }
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let script = "echo \"cwd=$(pwd) env=$HCS_TEST_VAR\"; cat /proc/self/status; \
                  grep 'Max open files' /proc/self/limits; echo \"oom=$(cat /proc/self/oom_score_adj)\"";
    let args = ["/bin/sh", "-c", script];
    let mut spec = Spec::new(&args);
    spec.env = &["PATH=/usr/bin:/bin", "HCS_TEST_VAR=from the client"];
    spec.cwd = "/proc";
    spec.user = User::Id {
        uid: 4321,
        gid: 4322,
    };
    let gids = [4323u32, 4324];
    let rlimits = [Rlimit {
        resource: libc::RLIMIT_NOFILE,
        soft: 123,
        hard: 456,
    }];
    let wanted = CAP_CHOWN | CAP_NET_BIND_SERVICE;
    spec.security = ProcessSecurity {
        additional_gids: Some(List::Slice(&gids)),
        umask: Some(0o027),
        no_new_privileges: true,
        capabilities: Some(Capabilities {
            bounding: wanted | CAP_KILL,
            effective: wanted,
            permitted: wanted,
            inheritable: wanted,
            ambient: wanted,
        }),
        rlimits: List::Slice(&rlimits),
        oom_score_adj: Some(432),
    };
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    let out = read_all(&mut p.stdout);
    assert_eq!(
        c.wait(p.pid).exit_code,
        0,
        "{out}{}",
        read_all(&mut p.stderr)
    );
    assert!(out.starts_with("cwd=/proc env=from the client\n"), "{out}");
    assert_eq!(field(&out, "Uid"), "4321\t4321\t4321\t4321", "{out}");
    assert_eq!(field(&out, "Gid"), "4322\t4322\t4322\t4322", "{out}");
    assert_eq!(field(&out, "Groups"), "4323 4324", "{out}");
    assert_eq!(field(&out, "Umask"), "0027", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    let caps = |key| u64::from_str_radix(field(&out, key), 16).unwrap();
    // A non-root user keeps across exec exactly its ambient capabilities.
    assert_eq!(caps("CapBnd"), wanted | CAP_KILL, "{out}");
    assert_eq!(caps("CapAmb"), wanted, "{out}");
    assert_eq!(caps("CapEff"), wanted, "{out}");
    assert_eq!(caps("CapPrm"), wanted, "{out}");
    assert_eq!(caps("CapInh"), wanted, "{out}");
    let limits = out
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>()[3..5],
        ["123", "456"],
        "{limits}"
    );
    assert!(out.ends_with("oom=432\n"), "{out}");
}

#[test]
fn root_processes_get_only_their_bounding_set() {
    if !is_root() {
        hcs_test_support::skip(
            "agent::root_processes_get_only_their_bounding_set",
            "needs root",
        );
        return;
    }
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["cat", "/proc/self/status"]);
    spec.security = ProcessSecurity {
        capabilities: Some(Capabilities {
            bounding: CAP_CHOWN | CAP_KILL,
            effective: CAP_CHOWN,
            permitted: CAP_CHOWN,
            ..Capabilities::default()
        }),
        ..ProcessSecurity::INHERIT
    };
    let mut p = create(&mut agent, &mut c, &spec).unwrap();
    let out = read_all(&mut p.stdout);
    let caps = |key| u64::from_str_radix(field(&out, key), 16).unwrap();
    assert_eq!(caps("CapBnd"), CAP_CHOWN | CAP_KILL, "{out}");
    assert_eq!(caps("CapEff") & CAP_SYS_ADMIN, 0, "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
}

#[test]
fn the_executable_runs_with_args_as_given() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let args: [&[u8]; 3] = [b"not-a-program", b"-c", b"echo $0"];
    let port = agent.listen();
    let req = Message::CreateProcess(CreateProcess {
        args: List::Slice(&args),
        executable: b"sh",
        env: List::Slice(&[b"PATH=/usr/bin:/bin"]),
        cwd: b"/",
        user: User::Default,
        terminal: None,
        stdin_port: None,
        stdout_port: Some(port.0),
        stderr_port: None,
        security: ProcessSecurity::INHERIT,
    });
    let pid = match c.call(&req) {
        Reply::Created(pid) => pid,
        other => panic!("{other:?}"),
    };
    let (mut out, _) = port.1.accept().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    assert_eq!(text, "not-a-program\n");
    assert_eq!(c.wait(pid).exit_code, 0);
}

#[test]
fn bad_process_security_is_refused_before_the_start() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["true"]);
    let rlimits = [Rlimit {
        resource: 7,
        soft: 10,
        hard: 5,
    }];
    spec.security = ProcessSecurity {
        rlimits: List::Slice(&rlimits),
        ..ProcessSecurity::INHERIT
    };
    let (hr, m) = create(&mut agent, &mut c, &spec).err().unwrap();
    assert_eq!(hr, hresult::E_INVALIDARG);
    assert!(m.contains("soft limit 10 exceeds the hard limit 5"), "{m}");
    spec.security = ProcessSecurity {
        umask: Some(0o1000),
        ..ProcessSecurity::INHERIT
    };
    let (_, m) = create(&mut agent, &mut c, &spec).err().unwrap();
    assert!(m.contains("umask 0o1000"), "{m}");
    spec.security = ProcessSecurity {
        capabilities: Some(Capabilities {
            effective: CAP_CHOWN,
            ..Capabilities::default()
        }),
        ..ProcessSecurity::INHERIT
    };
    let (_, m) = create(&mut agent, &mut c, &spec).err().unwrap();
    assert!(m.contains("effective must be within permitted"), "{m}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn process_list_contains_a_running_sleep() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["sleep", "30"]);
    spec.stdout = false;
    spec.stderr = false;
    let p = create(&mut agent, &mut c, &spec).unwrap();
    match c.call(&Message::ProcessList) {
        Reply::List(list) => {
            assert!(
                list.contains(&(p.pid, "sleep 30".to_string())),
                "{} entries",
                list.len()
            );
            let agent_pid = agent.child.id();
            assert!(list
                .iter()
                .any(|(pid, cmd)| *pid == agent_pid && cmd.contains("hcs-agent --unix")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.signal(p.pid, 9), Reply::Ok);
    assert_eq!(c.wait(p.pid).signal, 9);
}

#[test]
fn bad_bytes_do_not_kill_the_agent() {
    let mut agent = AgentProc::start();
    // Garbage: the agent answers why and drops only this connection.
    let mut junk = agent.connect_raw();
    junk.s
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (h, r) = junk.recv_any();
    assert_eq!(h.request_id, 0);
    assert!(
        matches!(r, Reply::Error(hresult::HCS_E_PROTOCOL_ERROR, ref m) if m.contains("magic")),
        "{r:?}"
    );
    // A valid header with a payload that does not decode fails that request only.
    let mut c = agent.connect();
    let mut bad = Message::WaitProcess(WaitProcess { pid: 1 })
        .encode_to_vec(PROTOCOL_VERSION, 77)
        .unwrap();
    bad[16] = 2; // payload length 2: too short for a pid
    bad.truncate(HEADER_LEN + 2);
    c.s.write_all(&bad).unwrap();
    assert!(matches!(
        c.recv(77),
        Reply::Error(hresult::HCS_E_PROTOCOL_ERROR, _)
    ));
    // An unknown message type.
    let mut unknown = Message::ProcessList
        .encode_to_vec(PROTOCOL_VERSION, 78)
        .unwrap();
    unknown[6] = 0x42;
    c.s.write_all(&unknown).unwrap();
    assert!(matches!(
        c.recv(78),
        Reply::Error(hresult::HCS_E_UNKNOWN_MESSAGE, _)
    ));
    // A response sent as a request.
    assert!(matches!(
        c.call(&Message::Ok),
        Reply::Error(hresult::HCS_E_UNKNOWN_MESSAGE, _)
    ));
    // A huge announced payload.
    let mut huge = Message::ProcessList
        .encode_to_vec(PROTOCOL_VERSION, 79)
        .unwrap();
    huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut other = agent.connect();
    other.s.write_all(&huge).unwrap();
    assert!(matches!(
        other.recv_any().1,
        Reply::Error(hresult::HCS_E_PROTOCOL_ERROR, _)
    ));
    // Random frames from a fixed seed, then a connection cut mid-frame.
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..50 {
        let mut s = UnixStream::connect(agent.dir.path().join("agent.sock")).unwrap();
        let mut frame = Message::ProcessList
            .encode_to_vec(PROTOCOL_VERSION, 1)
            .unwrap();
        for _ in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            frame.push(seed as u8);
        }
        frame[20] = (seed >> 8) as u8 & 1;
        let _ = s.write_all(&frame[..(seed as usize % frame.len())]);
    }
    // The agent is alive and the first connection still works.
    assert!(agent.alive());
    assert!(matches!(c.call(&Message::ProcessList), Reply::List(_)));
    let mut p = create(&mut agent, &mut c, &Spec::new(&["echo", "ok"])).unwrap();
    assert_eq!(read_all(&mut p.stdout), "ok\n");
}

#[test]
fn several_connections_at_once() {
    let mut agent = AgentProc::start();
    let mut a = agent.connect();
    let mut b = agent.connect();
    let pa = create(&mut agent, &mut a, &Spec::new(&["sleep", "0.3"])).unwrap();
    let mut pb = create(&mut agent, &mut b, &Spec::new(&["echo", "b"])).unwrap();
    assert_eq!(read_all(&mut pb.stdout), "b\n");
    assert_eq!(b.wait(pb.pid).exit_code, 0);
    assert_eq!(a.wait(pa.pid).exit_code, 0);
}

#[test]
fn shutdown_stops_the_unix_agent() {
    let mut agent = AgentProc::start();
    let mut c = agent.connect();
    let mut spec = Spec::new(&["sleep", "100"]);
    spec.stdout = false;
    spec.stderr = false;
    let p = create(&mut agent, &mut c, &spec).unwrap();
    assert_eq!(
        c.call(&Message::Shutdown(Shutdown {
            action: ShutdownAction::PowerOff
        })),
        Reply::Ok
    );
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // Its process was killed with it.
    let gone = !std::path::Path::new(&format!("/proc/{}", p.pid)).exists()
        || std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true);
    assert!(gone, "sleep {} survived the shutdown", p.pid);
}

#[test]
fn set_time_zone_writes_localtime_and_timezone_under_its_etc() {
    let agent = AgentProc::start();
    let mut c = agent.connect();
    let etc = agent.dir.path().join("etc");
    let tzif = b"TZif2\0\0\0some zone data";
    let r = c.call(&Message::SetTimeZone(SetTimeZone {
        name: b"Europe/Paris",
        tzif,
    }));
    assert!(matches!(r, Reply::Ok), "{r:?}");
    assert_eq!(std::fs::read(etc.join("localtime")).unwrap(), tzif);
    assert_eq!(
        std::fs::read_to_string(etc.join("timezone")).unwrap(),
        "Europe/Paris\n"
    );
    // UTC: no localtime at all.
    let r = c.call(&Message::SetTimeZone(SetTimeZone {
        name: b"UTC",
        tzif: b"",
    }));
    assert!(matches!(r, Reply::Ok), "{r:?}");
    assert!(!etc.join("localtime").exists());
    assert_eq!(
        std::fs::read_to_string(etc.join("timezone")).unwrap(),
        "UTC\n"
    );
    // Bad names and data are refused and change nothing.
    for (name, tzif) in [
        (b"../../x".as_slice(), b"".as_slice()),
        (b"Europe/Paris", b"not tzif"),
    ] {
        match c.call(&Message::SetTimeZone(SetTimeZone { name, tzif })) {
            Reply::Error(hr, _) => assert_eq!(hr, hresult::E_INVALIDARG),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_to_string(etc.join("timezone")).unwrap(),
        "UTC\n"
    );
    assert!(!agent.dir.path().join("x").exists());
}

/// SetTime changes the clock only as the guest's init: an agent on a host
/// (unix mode, as here) refuses it and never touches the host's clock.
#[test]
fn set_time_is_refused_outside_a_guest() {
    let agent = AgentProc::start();
    let mut c = agent.connect();
    let before = std::time::SystemTime::now();
    match c.call(&Message::SetTime(SetTime {
        seconds: 1_000_000_000,
        nanoseconds: 0,
    })) {
        Reply::Error(hr, _) => assert_eq!(hr, hresult::ERROR_NOT_SUPPORTED),
        other => panic!("{other:?}"),
    }
    let since = std::time::SystemTime::now()
        .duration_since(before)
        .expect("the host's clock did not go back");
    assert!(since < std::time::Duration::from_secs(60), "{since:?}");
}
