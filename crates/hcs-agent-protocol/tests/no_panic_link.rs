//! The decoder and encoder link without `core::fmt` and `core::panicking`.
//!
//! Builds a tiny `#![no_std]` cdylib that decodes a frame, walks every
//! field and re-encodes it (what the no_std test guest will do), in release
//! mode with `panic = "abort"` and LTO like the guest, and lists its symbols
//! with `nm`, failing on the same patterns as the guest's build gate.

use std::path::Path;
use std::process::Command;

const FIXTURE_LIB: &str = r#"
#![no_std]
use hcs_agent_protocol::*;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

fn walk(msg: &Message<'_>) -> usize {
    match msg {
        Message::Hello(h) => h.versions.iter().map(usize::from).sum::<usize>() + h.client.len(),
        Message::CreateProcess(c) => {
            let mut n = c.args.iter().map(|a| a.len()).sum::<usize>();
            n += c.env.iter().map(|a| a.len()).sum::<usize>() + c.cwd.len();
            if let User::Name(name) = c.user { n += name.len(); }
            n + c.stdout_port.unwrap_or(0) as usize + c.terminal.map_or(0, |t| t.rows as usize)
        }
        Message::ProcessListReply(p) => p.processes.iter().map(|e| e.command_line.len() + e.pid as usize).sum(),
        Message::Error(e) => e.message.len() + e.hresult as usize,
        Message::ProcessExited(e) => e.exit_code as usize,
        _ => msg.message_type() as usize,
    }
}

/// Decodes `input`, walks it, re-encodes it into `out`.
#[no_mangle]
pub extern "C" fn fixture_roundtrip(input: *const u8, len: usize, out: *mut u8, out_len: usize) -> usize {
    // SAFETY: the caller passes valid buffers.
    let input = unsafe { core::slice::from_raw_parts(input, len) };
    // SAFETY: as above.
    let out = unsafe { core::slice::from_raw_parts_mut(out, out_len) };
    match decode_frame(input) {
        Ok((h, msg, _)) => match msg.encode(h.version, h.request_id, out) {
            Ok(n) => n + walk(&msg),
            Err(e) => e.as_str().len(),
        },
        Err(e) => e.as_str().len() + e.hresult() as usize,
    }
}

/// Encodes a reply the way an agent does.
#[no_mangle]
pub extern "C" fn fixture_reply(pid: u32, out: *mut u8, out_len: usize) -> usize {
    // SAFETY: the caller passes a valid buffer.
    let out = unsafe { core::slice::from_raw_parts_mut(out, out_len) };
    let entries = [ProcessEntry { pid, command_line: b"x", start_time_100ns: 0, user_time_100ns: 0,
        kernel_time_100ns: 0, memory_commit_bytes: 0, working_set_private_bytes: 0, working_set_shared_bytes: 0 }];
    let msg = Message::ProcessListReply(ProcessListReply { processes: List::Slice(&entries) });
    msg.encode(PROTOCOL_VERSION, 1, out).unwrap_or(0)
}
"#;

const BAD_SYMBOLS: [&str; 4] = [
    "4core3fmt",
    "4core9panicking",
    "core::fmt",
    "core::panicking",
];

#[test]
fn decoder_links_without_fmt_or_panicking() {
    if Command::new("nm").arg("--version").output().is_err() {
        hcs_test_support::skip(
            "no_panic_link::decoder_links_without_fmt_or_panicking",
            "no `nm` (binutils) to list the linked symbols",
        );
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-panic-fixture");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        r#"[package]
name = "no-panic-fixture"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
hcs-agent-protocol = {{ path = "{}" }}

[workspace]

[profile.release]
panic = "abort"
opt-level = "s"
lto = true
codegen-units = 1
"#,
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), FIXTURE_LIB).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(status.success(), "building the no_std fixture failed");
    let lib = dir.join("target/release/libno_panic_fixture.so");
    let out = Command::new("nm").arg(&lib).output().unwrap();
    assert!(out.status.success());
    let symbols = String::from_utf8_lossy(&out.stdout);
    assert!(
        symbols.contains("fixture_roundtrip"),
        "fixture not exported:\n{symbols}"
    );
    let bad: Vec<&str> = symbols
        .lines()
        .filter(|l| BAD_SYMBOLS.iter().any(|p| l.contains(p)))
        .collect();
    assert!(
        bad.is_empty(),
        "core::fmt / core::panicking reachable from the codec:\n{}",
        bad.join("\n")
    );
}
