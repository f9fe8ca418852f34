//! End-to-end tests of the per-process security of OCI processes with a
//! busybox bundle: capabilities, rlimits, seccomp, noNewPrivileges, the
//! user's umask and groups, and refusals by JSON path. Real containers, so
//! they run as root (`sudo ./scripts/test.sh`) and fail otherwise.
//!
//! Each test runs `runhcs run` in the foreground, which prints the
//! process's output and exits with its exit code, and checks what the
//! process itself observed (/proc/self/status, /proc/self/limits, the
//! errors of the system calls it made).

mod common;

use serde_json::{json, Value};

use common::{text, unique, Bundle};

/// A bundle with a writable root (its own copy of the rootfs) and no
/// terminal, then `edit` applied to the config.
fn writable_bundle(edit: impl FnOnce(&mut Value)) -> Bundle {
    Bundle::new(|c| {
        c["root"]["readonly"] = json!(false);
        edit(c);
    })
}

/// A bundle whose process runs `script` with `sh -c` (stderr into stdout).
fn script_bundle(script: &str, edit: impl FnOnce(&mut Value)) -> Bundle {
    writable_bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", format!("exec 2>&1; {script}")]);
        edit(c);
    })
}

/// The value of `field` in a /proc/<pid>/status text.
fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Whether this (root) test process holds `cap` in its permitted set; the
/// monitor it starts holds the same.
fn we_hold(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let prm = status_field(&status, "CapPrm").expect("CapPrm");
    let mask = u64::from_str_radix(prm, 16).expect("hex mask");
    mask & (1 << cap) != 0
}

#[test]
fn capabilities_are_exactly_the_spec_sets() {
    // Only CAP_CHOWN: chown works, but writing to a file of another user
    // (needs CAP_DAC_OVERRIDE) and chmod of it (CAP_FOWNER) do not.
    let script = "grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status; \
                  touch /f; chmod 000 /f; \
                  chown 1000 /f && echo chown-ok; \
                  (echo x > /f) 2>/dev/null && echo write-ok || echo write-denied; \
                  chmod 644 /f 2>/dev/null && echo chmod-ok || echo chmod-denied";
    let only = |caps: &[&str]| {
        let caps = caps.to_vec();
        script_bundle(script, move |c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
        })
    };
    let out = only(&["CAP_CHOWN"]).run("caps-chown");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        status_field(&stdout, "CapPrm"),
        Some("0000000000000001"),
        "{stdout}"
    );
    assert_eq!(
        status_field(&stdout, "CapEff"),
        Some("0000000000000001"),
        "{stdout}"
    );
    assert_eq!(
        status_field(&stdout, "CapBnd"),
        Some("0000000000000001"),
        "{stdout}"
    );
    assert_eq!(
        status_field(&stdout, "CapAmb"),
        Some("0000000000000000"),
        "{stdout}"
    );
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("-ok") || l.ends_with("-denied"))
        .collect();
    assert_eq!(
        results,
        ["chown-ok", "write-denied", "chmod-denied"],
        "{stdout}"
    );

    // The other way round: CAP_DAC_OVERRIDE (bit 1) but no CAP_CHOWN.
    let out = only(&["CAP_DAC_OVERRIDE"]).run("caps-dac");
    let stdout = text(&out.stdout);
    assert_eq!(
        status_field(&stdout, "CapEff"),
        Some("0000000000000002"),
        "{stdout}"
    );
    assert!(
        stdout.contains("chown: /f: Operation not permitted"),
        "{stdout}"
    );
    assert!(!stdout.contains("chown-ok"), "{stdout}");

    // A non-root user keeps ambient capabilities across exec.
    let out = script_bundle("grep -E '^Cap(Eff|Amb)' /proc/self/status; id -u", |c| {
        let caps = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps
        });
    })
    .run("caps-ambient");
    let stdout = text(&out.stdout);
    assert_eq!(
        status_field(&stdout, "CapAmb"),
        Some("0000000000000400"),
        "{stdout}"
    );
    assert_eq!(
        status_field(&stdout, "CapEff"),
        Some("0000000000000400"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1000\n"), "{stdout}");
}

#[test]
fn rlimits_are_set_and_a_hard_limit_beyond_reach_is_an_error() {
    let out = script_bundle(
        "ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits",
        |c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
        },
    )
    .run("rlimit");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["100", "200"], "{stdout}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["Max", "open", "files", "100", "200", "files"]
    );

    // One above our own hard limit: only CAP_SYS_RESOURCE allows it.
    let (_, own_hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let want = own_hard.saturating_add(1).min(1 << 20);
    let b = script_bundle("ulimit -Hn", |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": want}]);
    });
    let out = b.run("rlimit-high");
    if we_hold(24) || want <= own_hard {
        assert_eq!(
            text(&out.stdout).trim(),
            want.to_string(),
            "{}",
            text(&out.stderr)
        );
    } else {
        assert_ne!(out.status.code(), Some(0));
        let err = text(&out.stderr);
        assert!(
            err.contains("OciProcess.rlimits[0]: setting RLIMIT_NOFILE")
                && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
    }
}

/// A profile that allows everything but mkdir and mkdirat (EPERM).
fn deny_mkdir() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            // Unknown names are skipped, as runc does.
            {"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"}
        ]
    })
}

#[test]
fn seccomp_denies_the_profiles_system_calls() {
    // With and without no_new_privs (without it, and without CAP_SYS_ADMIN
    // in the process's sets, the filter must be installed while the
    // runtime still holds it).
    for nnp in [true, false] {
        let out = script_bundle(
            "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
             mkdir /tmp/denied; echo mkdir=$?; \
             touch /tmp/allowed && echo touch-ok",
            |c| {
                c["process"]["noNewPrivileges"] = json!(nnp);
                c["linux"]["seccomp"] = deny_mkdir();
            },
        )
        .run("seccomp");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert_eq!(status_field(&stdout, "Seccomp"), Some("2"), "{stdout}");
        assert_eq!(
            status_field(&stdout, "NoNewPrivs"),
            Some(if nnp { "1" } else { "0" })
        );
        assert!(
            stdout.contains("mkdir: can't create directory '/tmp/denied': Operation not permitted"),
            "{stdout}"
        );
        assert!(stdout.contains("mkdir=1\n"), "{stdout}");
        assert!(stdout.ends_with("touch-ok\n"), "{stdout}");
    }

    // Without the profile, the same mkdir works.
    let out = script_bundle("mkdir /tmp/made && echo made", |_| {}).run("no-seccomp");
    assert_eq!(text(&out.stdout), "made\n", "{}", text(&out.stderr));

    // A notify action has no agent to go to: refused by path.
    let out = writable_bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}
        ]});
    })
    .run("seccomp-notify");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn no_new_privileges_umask_and_groups() {
    for nnp in [true, false] {
        let out = script_bundle(
            "grep NoNewPrivs: /proc/self/status; id -u; id -G; umask",
            |c| {
                c["process"]["noNewPrivileges"] = json!(nnp);
                c["process"]["user"] =
                    json!({"uid": 1000, "gid": 1000, "umask": 0o077, "additionalGids": [10, 20]});
            },
        )
        .run("nnp");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                if nnp {
                    "NoNewPrivs:\t1"
                } else {
                    "NoNewPrivs:\t0"
                },
                "1000",
                "1000 10 20",
                "0077"
            ]
        );
    }
}

#[test]
fn bad_capability_names_are_refused_by_path() {
    // In config.json: refused before anything is created, naming it.
    let out = writable_bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        c["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_FOO"]);
    })
    .run("badcap");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("CAP_FOO"),
        "{}",
        text(&out.stderr)
    );

    // In an exec's process document, which goes to the backend as it is:
    // the error names the JSON path.
    let b = writable_bundle(|c| c["process"]["args"] = json!(["sleep", "60"]));
    let id = unique("badcap-exec");
    let _g = b.create(&id);
    b.ok(&["start", &id]);
    let pfile = b.path().join("process.json");
    let exec = |process: Value| {
        std::fs::write(&pfile, process.to_string()).expect("process.json");
        b.exec(&["--process", pfile.to_str().expect("utf-8"), &id])
    };
    let mut process = json!({
        "args": ["true"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": ["CAP_KILL", "CAP_FOO"]}
    });
    let out = exec(process.clone());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr)
            .contains(r#"OciProcess.capabilities.bounding[1]: unknown capability "CAP_FOO""#),
        "{}",
        text(&out.stderr)
    );
    process["capabilities"] = json!({});
    process["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]);
    let out = exec(process.clone());
    assert!(
        text(&out.stderr).contains(r#"OciProcess.rlimits[0].type: unknown rlimit "RLIMIT_FOO""#),
        "{}",
        text(&out.stderr)
    );
    // And a good one runs with what it asked for.
    process["rlimits"] = json!([]);
    process["args"] = json!(["sh", "-c", "grep CapEff /proc/self/status"]);
    // (Root's capabilities after exec come from the bounding set, so it is given too.)
    let kill = json!(["CAP_KILL"]);
    process["capabilities"] = json!({"bounding": kill, "effective": kill, "permitted": kill});
    let out = exec(process);
    assert_eq!(
        text(&out.stdout),
        "CapEff:\t0000000000000020\n",
        "{}",
        text(&out.stderr)
    );
}

/// Docker's device rules (everything denied, its default nodes allowed,
/// /dev/fuse denied) with `CAP_MKNOD`, which Docker grants: a node for a
/// disk can be made but not opened, /dev/null works, /dev/fuse is denied.
/// runc, given the same config.json, is the control.
#[test]
fn device_rules_keep_a_container_with_cap_mknod_off_host_disks() {
    // A block device of the host that root here can open: only the rules
    // can keep the container from it.
    let (major, minor) = host_block_device();
    let script = format!(
        "echo x > /dev/null && echo null-ok; \
         mknod /dev/disk b {major} {minor} && echo mknod-ok; \
         head -c1 /dev/disk >/dev/null 2>&1 && echo disk-opened || echo disk-denied; \
         mknod /dev/fuse c 10 229 && (echo > /dev/fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied"
    );
    let b = script_bundle(&script, |c| {
        c["root"]["readonly"] = json!(true);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"}
        ]);
    });
    let want = ["null-ok", "mknod-ok", "disk-denied", "fuse-denied"];
    let out = b.run("devrules");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        want,
        "{}",
        text(&out.stderr)
    );

    // runc, same config, with the rootfs by its absolute path (runc refuses
    // a symlinked one).
    let Ok(runc) = which_runc() else {
        panic!("runc is not installed: scripts/install-deps.sh installs it");
    };
    b.edit(|c| c["root"]["path"] = json!(common::rootfs()));
    let id = unique("devrules-runc");
    let state = b.path().join("runc-state");
    let out = common::run_to_files(
        std::process::Command::new(runc)
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle", &b.bundle_arg(), &id]),
    );
    assert!(out.status.success(), "runc: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().collect::<Vec<_>>(), want, "runc");
}

/// The numbers of a block device of the host that this (root) test process
/// can open for reading.
fn host_block_device() -> (u32, u32) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut candidates: Vec<std::path::PathBuf> = std::fs::read_dir("/dev")
        .expect("/dev")
        .flatten()
        .map(|e| e.path())
        .collect();
    candidates.sort();
    for p in candidates {
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        if m.file_type().is_block_device() && std::fs::File::open(&p).is_ok() {
            return (libc::major(m.rdev()), libc::minor(m.rdev()));
        }
    }
    panic!("no block device in /dev opens here: the test needs one to show the rules keep it out");
}

fn which_runc() -> Result<std::path::PathBuf, ()> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or(())
}
