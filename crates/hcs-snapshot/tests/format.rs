//! The state file format: round trip and every way a file can be wrong.

mod common;

use std::io::{Cursor, Read};

use common::*;
use hcs_snapshot::{
    Encoding, Limits, StateFile, StateFileError, StateWriter, FORMAT_VERSION, HEADER_LEN,
};

fn parse(data: &[u8]) -> Result<StateFile, StateFileError> {
    StateFile::from_bytes(data.to_vec(), &Limits::default())
}

fn stream(data: &[u8]) -> Result<StateFile, StateFileError> {
    StateFile::read_from(Cursor::new(data.to_vec()), &Limits::default())
}

#[test]
fn round_trip_of_a_multi_section_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.state");
    let w = sample_writer();
    w.write_to_path(&path).expect("write");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("vm.state")],
        "no temporary file is left"
    );
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), w.total_len());

    let f = StateFile::open(&path).expect("open");
    assert_eq!(f.format_version(), FORMAT_VERSION);
    let got: Vec<_> = f
        .sections()
        .map(|s| (s.name, s.version, s.encoding, s.payload.len()))
        .collect();
    assert_eq!(got[0], ("serial", 3, Encoding::Raw, 17));
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        ["serial", "vcpu.0", "vcpu.1", "config.json", "empty"]
    );
    assert_eq!(
        f.section("serial").expect("serial").payload,
        b"16550 state bytes"
    );
    assert_eq!(f.decode::<VcpuLike>("vcpu.0", 1).expect("vcpu.0"), vcpu(0));
    assert_eq!(f.decode::<VcpuLike>("vcpu.1", 1).expect("vcpu.1"), vcpu(1));
    let json = f.section("config.json").expect("json");
    assert_eq!(json.encoding, Encoding::Json);
    assert!(f.section("empty").expect("empty").payload.is_empty());

    // The three ways in give the same file.
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes, w.to_bytes());
    assert_eq!(parse(&bytes).expect("bytes").len(), 5);
    assert_eq!(stream(&bytes).expect("stream").len(), 5);
}

#[test]
fn payload_offsets_point_into_the_file() {
    let bytes = sample_writer().to_bytes();
    let f = parse(&bytes).expect("parse");
    for s in f.sections() {
        let at = s.offset as usize;
        assert_eq!(&bytes[at..at + s.payload.len()], s.payload, "{}", s.name);
    }
}

#[test]
fn a_missing_section_is_named() {
    let f = parse(&sample_writer().to_bytes()).expect("parse");
    let err = f.section("vcpu.7").expect_err("missing");
    assert!(matches!(&err, StateFileError::SectionNotFound { name } if name == "vcpu.7"));
    assert_eq!(err.to_string(), "state file has no section \"vcpu.7\"");
    assert!(f.get("vcpu.7").is_none());
    assert!(matches!(
        f.decode::<u32>("nope", 1),
        Err(StateFileError::SectionNotFound { .. })
    ));
}

#[test]
fn truncation_at_every_length_is_refused() {
    let full = sample_writer().to_bytes();
    for len in 0..full.len() {
        for (how, result) in [
            ("bytes", parse(&full[..len])),
            ("stream", stream(&full[..len])),
        ] {
            match result {
                Err(StateFileError::Truncated { len: at, .. }) => {
                    assert_eq!(at, len as u64, "{how} at {len}")
                }
                other => panic!("{how} truncated at {len}: {other:?}"),
            }
        }
    }
    let msg = parse(&full[..HEADER_LEN + 10])
        .expect_err("short")
        .to_string();
    assert!(
        msg.contains(&format!("needs bytes 48..{}", full.len()))
            && msg.contains("ends at offset 58"),
        "{msg}"
    );
}

#[test]
fn every_single_bit_flip_is_detected() {
    let good = small_file();
    assert!(good.len() < 200, "small file is {} bytes", good.len());
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[byte] ^= 1 << bit;
            let err = parse(&bad).expect_err(&format!("flip of byte {byte} bit {bit} accepted"));
            let ok = match byte {
                0..=7 => matches!(err, StateFileError::BadMagic { .. }),
                8..=11 => matches!(
                    err,
                    StateFileError::NewerVersion { .. }
                        | StateFileError::OlderVersion { .. }
                        | StateFileError::HeaderCrc { .. }
                ),
                12..=47 => matches!(err, StateFileError::HeaderCrc { .. }),
                _ => matches!(err, StateFileError::BodyCrc { .. }),
            };
            assert!(ok, "byte {byte} bit {bit}: {err}");
            assert!(stream(&bad).is_err(), "stream: byte {byte} bit {bit}");
        }
    }
}

#[test]
fn wrong_magic_is_refused() {
    let mut bad = small_file();
    bad[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    let err = parse(&bad).expect_err("elf");
    assert!(matches!(err, StateFileError::BadMagic { found } if &found[..4] == b"\x7fELF"));
    assert!(
        err.to_string()
            .starts_with("not an HCS saved-state file: bytes 0..8 are [7f, 45, 4c, 46"),
        "{err}"
    );
    assert!(matches!(
        parse(&[0u8; 4096]),
        Err(StateFileError::BadMagic { .. })
    ));
}

#[test]
fn a_newer_version_is_refused_naming_both_versions() {
    let mut bad = small_file();
    put_u32(&mut bad, 8, FORMAT_VERSION + 1);
    refresh_crcs(&mut bad);
    let err = parse(&bad).expect_err("newer");
    assert!(
        matches!(err, StateFileError::NewerVersion { found, supported } if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("format version 2") && msg.contains("versions up to 1"),
        "{msg}"
    );
    // A newer writer may change the rest of the header: the version wins
    // over a checksum that no longer matches.
    bad[40] ^= 0xff;
    assert!(matches!(
        parse(&bad),
        Err(StateFileError::NewerVersion { .. })
    ));
    put_u32(&mut bad, 8, 0);
    refresh_crcs(&mut bad);
    assert!(matches!(
        parse(&bad),
        Err(StateFileError::OlderVersion { found: 0, min: 1 })
    ));
}

/// Runs `f` and expects it to refuse the file. That it does so without
/// allocating or reading what the file claims is a property checked by
/// alloc_bound.rs (a counting allocator), not a wall-clock bound here.
fn refused(what: &str, f: impl FnOnce() -> Result<StateFile, StateFileError>) -> StateFileError {
    f().expect_err(what)
}

#[test]
fn absurd_counts_and_lengths_are_refused() {
    let good = small_file();
    let patched = |at: usize, v: u64, wide: bool| {
        let mut b = good.clone();
        if wide {
            put_u64(&mut b, at, v)
        } else {
            put_u32(&mut b, at, v as u32)
        }
        refresh_crcs(&mut b);
        b
    };
    let b = patched(16, u32::MAX as u64, false);
    let err = refused("count", || parse(&b));
    assert!(
        matches!(
            err,
            StateFileError::TooManySections {
                count: u32::MAX,
                max: 4096
            }
        ),
        "{err}"
    );
    let b = patched(16, 4096, false);
    assert!(matches!(
        refused("count 4096", || stream(&b)),
        StateFileError::TotalTooSmall { count: 4096, .. }
    ));
    let b = patched(24, u64::MAX, true);
    let err = refused("total", || stream(&b));
    assert!(
        matches!(
            err,
            StateFileError::FileTooLarge {
                declared: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("offset 24"), "{err}");
    // A total within the cap, but the data is not there.
    let b = patched(24, 60 << 20, true);
    assert!(matches!(
        refused("short stream", || stream(&b)),
        StateFileError::Truncated { .. }
    ));
    // First section's payload length (header at 48, length at +40).
    for len in [u64::MAX, 1 << 40, (16 << 20) + 1] {
        let b = patched(48 + 40, len, true);
        let err = refused("section len", || parse(&b));
        assert!(
            matches!(&err, StateFileError::SectionTooLarge { name, offset: 48, .. } if name == "a"),
            "{err}"
        );
    }
    let b = patched(48 + 40, 10 << 20, true);
    let err = refused("overrun", || parse(&b));
    assert!(
        matches!(&err, StateFileError::SectionOverrun { name, offset: 48, len, .. } if name == "a" && *len == 10 << 20),
        "{err}"
    );
}

#[test]
fn payload_total_and_section_count_caps_hold_in_reader_and_writer() {
    let small = Limits {
        max_sections: 3,
        max_section_len: 100,
        max_payload_total: 150,
    };
    let mut w = StateWriter::new();
    for i in 0..4 {
        w.add_raw(&format!("s{i}"), 0, vec![i as u8; 60])
            .expect("add");
    }
    let bytes = w.to_bytes();
    let r = StateFile::from_bytes(bytes.clone(), &small);
    assert!(
        matches!(r, Err(StateFileError::TooManySections { count: 4, max: 3 })),
        "{r:?}"
    );
    let mid = Limits {
        max_sections: 4,
        ..small
    };
    let r = StateFile::from_bytes(bytes, &mid);
    assert!(
        matches!(&r, Err(StateFileError::FileTooLarge { .. })),
        "{r:?}"
    );

    let mut w = StateWriter::with_limits(small);
    w.add_raw("a", 0, vec![0; 100]).expect("a");
    assert!(matches!(
        w.add_raw("b", 0, vec![0; 101]),
        Err(StateFileError::WriterLimit { .. })
    ));
    assert!(matches!(
        w.add_raw("b", 0, vec![0; 51]),
        Err(StateFileError::WriterLimit { .. })
    ));
    w.add_raw("b", 0, vec![0; 50]).expect("b");
    w.add_raw("c", 0, Vec::new()).expect("c");
    assert!(matches!(
        w.add_raw("d", 0, Vec::new()),
        Err(StateFileError::WriterLimit { .. })
    ));
    StateFile::from_bytes(w.to_bytes(), &small).unwrap();

    // A file whose total length fits but whose payloads exceed the total cap.
    let mut w = StateWriter::new();
    w.add_raw("x", 0, vec![1; 100]).expect("x");
    w.add_raw("y", 0, vec![2; 100]).expect("y");
    let tight = Limits {
        max_sections: 100,
        max_section_len: 100,
        max_payload_total: 150,
    };
    let r = StateFile::from_bytes(w.to_bytes(), &tight);
    assert!(
        matches!(&r, Err(StateFileError::PayloadTotalTooLarge { name, total: 200, .. }) if name == "y"),
        "{r:?}"
    );
}

#[test]
fn data_past_the_end_and_stray_bytes_are_refused() {
    let mut longer = small_file();
    longer.push(0);
    assert!(matches!(
        parse(&longer),
        Err(StateFileError::DataAfterEnd { .. })
    ));
    assert!(matches!(
        stream(&longer),
        Err(StateFileError::DataAfterEnd { .. })
    ));
    // An endless stream after a valid file: read stops at the declared end.
    let endless = Cursor::new(small_file()).chain(std::io::repeat(0));
    let r = StateFile::read_from(endless, &Limits::default());
    assert!(
        matches!(r, Err(StateFileError::DataAfterEnd { .. })),
        "{r:?}"
    );

    let mut stray = small_file();
    stray.extend_from_slice(&[0; 5]);
    let total = stray.len() as u64;
    put_u64(&mut stray, 24, total);
    refresh_crcs(&mut stray);
    let err = parse(&stray).expect_err("stray");
    assert!(
        matches!(err, StateFileError::TrailingBytes { count: 5, .. }),
        "{err}"
    );
}

#[test]
fn malformed_section_headers_are_refused_with_their_offset() {
    let good = small_file();
    let check = |mutate: &dyn Fn(&mut Vec<u8>), want: &str| {
        let mut b = good.clone();
        mutate(&mut b);
        refresh_crcs(&mut b);
        let msg = parse(&b).expect_err(want).to_string();
        assert!(msg.contains(want), "want {want:?} in {msg:?}");
    };
    check(
        &|b| b[48 + 5] = b'z',
        "section #0 at offset 48: the name field has bytes after its NUL padding",
    );
    check(
        &|b| b[48] = b' ',
        "section #0 at offset 48: the name contains ' '",
    );
    check(&|b| b[48] = 0, "section #0 at offset 48: the name is empty");
    check(
        &|b| b[48 + 36] = 9,
        "section \"a\" at offset 48: unknown encoding 9",
    );
    check(&|b| b[48 + 38] = 1, "unknown flags 0x1 at offset 86");
    check(&|b| b[20] = 1, "non-zero reserved byte at offset 20");
    check(&|b| b[12] = 4, "unknown flags 0x4 at offset 12");
    // The second section renamed to the first one's name.
    let second = 48 + 48 + 5;
    check(
        &|b| b[second] = b'a',
        "section \"a\" at offset 101 appears twice (first at offset 48)",
    );
}

#[test]
fn writer_refuses_bad_and_duplicate_names() {
    let mut w = StateWriter::new();
    for bad in ["", "a b", "é", &"x".repeat(33)] {
        assert!(
            matches!(
                w.add_raw(bad, 0, vec![]),
                Err(StateFileError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    w.add_raw(&"x".repeat(32), 0, vec![1])
        .expect("32 bytes is fine");
    w.add_raw("dev/virtio-blk:0", 0, vec![])
        .expect("punctuation");
    assert!(matches!(
        w.add_raw("dev/virtio-blk:0", 0, vec![]),
        Err(StateFileError::DuplicateName { .. })
    ));
    let f = parse(&w.to_bytes()).expect("parse");
    assert_eq!(f.section(&"x".repeat(32)).expect("long").payload, [1]);
}

#[test]
fn section_versions_and_encodings_are_checked_on_decode() {
    let mut w = StateWriter::new();
    w.add_serde("v2", 2, &5u32).expect("v2");
    w.add_raw("raw", 1, vec![1, 2, 3]).expect("raw");
    w.add_serde("pair", 1, &(1u8, 2u8)).expect("pair");
    w.add_section("lies", 1, Encoding::Postcard, vec![0xff; 12])
        .expect("lies");
    let f = parse(&w.to_bytes()).expect("parse");
    let err = f.decode::<u32>("v2", 1).expect_err("newer section");
    assert_eq!(
        err.to_string(),
        "section \"v2\" has version 2, newer than this build understands (1)"
    );
    assert_eq!(f.decode::<u32>("v2", 2).expect("v2"), 5);
    assert!(matches!(
        f.decode::<u32>("raw", 1),
        Err(StateFileError::WrongEncoding { .. })
    ));
    assert!(matches!(
        f.decode::<u8>("pair", 1),
        Err(StateFileError::DecodeTrailing { count: 1, .. })
    ));
    let err = f.decode::<Vec<u64>>("lies", 1).expect_err("garbage");
    assert!(matches!(err, StateFileError::Decode { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("section \"lies\" (payload at offset"),
        "{err}"
    );
}

#[test]
fn io_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.state");
    let err = StateFile::open(&path).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot open state file {}", path.display())),
        "{err}"
    );
    let err = sample_writer()
        .write_to_path(&dir.path().join("no/such/dir/x"))
        .expect_err("no dir");
    assert!(
        matches!(err, StateFileError::Io { op: "create", .. }),
        "{err}"
    );
}
