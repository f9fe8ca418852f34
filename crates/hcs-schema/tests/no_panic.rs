//! Mutated documents never panic: every fixture (valid and invalid) gets
//! thousands of deterministic pseudo-random mutations and each result goes
//! through `from_json` + `validate()` for several document kinds. The test
//! only asserts that nothing panicked and that every error is
//! HCS_E_INVALID_JSON, or ERROR_NOT_SUPPORTED naming a member the table of
//! `hcs_schema::fields` refuses.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{fixture, fixtures_dir};
use hcs_errors::{HResult, HcsError};
use hcs_schema::process::ProcessParameters;
use hcs_schema::requests::{ModifySettingRequest, ProcessModifyRequest, SignalProcessOptions};
use hcs_schema::{from_json, to_json, ComputeSystem, Properties, ResultError};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INSERTS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"0",
    b"7",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\\",
    b"\\u0000",
    b"\xff",
    b" ",
    b"\"Major\":1",
    b"{\"Container\":{}}",
];

fn mutate(input: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut doc = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = doc.len();
        match rng.below(7) {
            // flip a bit
            0 if len > 0 => {
                let i = rng.below(len);
                let bit = rng.below(8);
                if let Some(b) = doc.get_mut(i) {
                    *b ^= 1 << bit;
                }
            }
            // delete a range
            1 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                doc.drain(start..end);
            }
            // duplicate a range
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy: Vec<u8> = doc.get(start..end).map(<[u8]>::to_vec).unwrap_or_default();
                let at = rng.below(len + 1);
                doc.splice(at..at, copy);
            }
            // insert a token
            3 | 4 => {
                let token = INSERTS
                    .get(rng.below(INSERTS.len()))
                    .copied()
                    .unwrap_or(b"{");
                let at = rng.below(len + 1);
                doc.splice(at..at, token.iter().copied());
            }
            // replace a byte with a digit
            5 if len > 0 => {
                let i = rng.below(len);
                if let Some(b) = doc.get_mut(i) {
                    *b = b'0' + (rng.below(10) as u8);
                }
            }
            // truncate, or nest deeply
            _ => {
                if rng.below(2) == 0 {
                    let keep = rng.below(len + 1);
                    doc.truncate(keep);
                } else {
                    let at = rng.below(len + 1);
                    let depth = 100 + rng.below(400);
                    doc.splice(at..at, std::iter::repeat_n(b'[', depth));
                }
            }
        }
    }
    doc
}

fn check<T>(result: Result<T, HcsError>, failures: &mut Vec<String>, doc: &str) {
    if let Err(e) = result {
        let refused_member =
            e.hresult == HResult::ERROR_NOT_SUPPORTED && e.message.contains("` is not supported: ");
        if e.hresult != HResult::HCS_E_INVALID_JSON && !refused_member {
            failures.push(format!("{:?} for {doc:?}", e));
        }
    }
}

/// Runs every parser and validator over `doc`; returns errors that are not
/// HCS_E_INVALID_JSON and whether some document kind parsed.
fn exercise(doc: &str) -> (Vec<String>, bool) {
    let mut failures = Vec::new();
    let cs = from_json::<ComputeSystem>(doc, "ComputeSystem");
    let mut parsed = cs.is_ok();
    if let Ok(cs) = &cs {
        check(cs.validate(), &mut failures, doc);
        // What parsed must serialise and parse again.
        check(
            from_json::<ComputeSystem>(&to_json(cs), "ComputeSystem"),
            &mut failures,
            doc,
        );
    }
    check(cs, &mut failures, doc);
    let p = from_json::<ProcessParameters>(doc, "ProcessParameters");
    parsed |= p.is_ok();
    if let Ok(p) = &p {
        check(p.validate(), &mut failures, doc);
        let _ = p.argv();
    }
    check(p, &mut failures, doc);
    let m = from_json::<ProcessModifyRequest>(doc, "ProcessModifyRequest");
    if let Ok(m) = &m {
        check(m.validate(), &mut failures, doc);
    }
    check(m, &mut failures, doc);
    let m = from_json::<ModifySettingRequest>(doc, "ModifySettingRequest");
    if let Ok(m) = &m {
        check(m.validate(), &mut failures, doc);
    }
    check(m, &mut failures, doc);
    check(
        from_json::<SignalProcessOptions>(doc, "SignalProcessOptions"),
        &mut failures,
        doc,
    );
    check(
        from_json::<Properties>(doc, "Properties"),
        &mut failures,
        doc,
    );
    check(
        from_json::<ResultError>(doc, "ResultError"),
        &mut failures,
        doc,
    );
    (failures, parsed)
}

fn all_fixtures() -> Vec<String> {
    let mut names = Vec::new();
    for dir in [fixtures_dir(), fixtures_dir().join("invalid")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let rel = if dir.ends_with("invalid") {
                    format!("invalid/{name}")
                } else {
                    name
                };
                names.push(rel);
            }
        }
    }
    names.sort();
    names
}

#[test]
fn mutated_fixtures_never_panic() {
    const MUTATIONS_PER_FIXTURE: usize = 150;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut panics = Vec::new();
    let mut wrong_codes = Vec::new();
    let mut total = 0usize;
    let mut parsed = 0usize;
    for name in all_fixtures() {
        let original = fixture(&name);
        for _ in 0..MUTATIONS_PER_FIXTURE {
            let bytes = mutate(original.as_bytes(), &mut rng);
            let doc = String::from_utf8_lossy(&bytes).into_owned();
            total += 1;
            match catch_unwind(AssertUnwindSafe(|| exercise(&doc))) {
                Ok((failures, ok)) => {
                    wrong_codes.extend(failures);
                    parsed += usize::from(ok);
                }
                Err(_) => panics.push(format!("{name}: {doc:?}")),
            }
        }
    }
    assert!(total >= 4000, "only {total} mutations ran");
    // Enough mutants still parse for the validators to run on odd values.
    assert!(
        parsed >= 50,
        "only {parsed} of {total} mutated documents parsed"
    );
    assert!(
        panics.is_empty(),
        "{} of {total} mutated documents panicked, first: {}",
        panics.len(),
        panics[0]
    );
    assert!(
        wrong_codes.is_empty(),
        "errors other than HCS_E_INVALID_JSON: {:?}",
        &wrong_codes[..wrong_codes.len().min(3)]
    );
}

#[test]
fn the_harness_does_catch_panics() {
    // The assertion above can fail: catch_unwind does report a panic.
    let caught = catch_unwind(|| {
        let v: Vec<u8> = Vec::new();
        v.get(1).copied().unwrap_or_else(|| panic!("deliberate"))
    });
    caught.unwrap_err();
}

/// Replaces, deletes or renames one node of a JSON value (keeps it valid JSON).
fn mutate_value(value: &mut serde_json::Value, rng: &mut XorShift) {
    use serde_json::{json, Value};
    // Pick a node: list every node as a JSON pointer, choose one.
    let mut pointers = Vec::new();
    let mut stack = vec![(String::new(), &*value)];
    while let Some((pointer, v)) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    stack.push((format!("{pointer}/{escaped}"), child));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    stack.push((format!("{pointer}/{i}"), child));
                }
            }
            _ => {}
        }
        pointers.push(pointer);
    }
    let pointer = pointers
        .get(rng.below(pointers.len()))
        .cloned()
        .unwrap_or_default();
    let Some(node) = value.pointer_mut(&pointer) else {
        return;
    };
    let replacements = [
        json!(0),
        json!(-1),
        json!(1),
        json!(65),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(""),
        json!("\u{0}"),
        json!("A=B"),
        json!("Major"),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
        json!([0, 0, 0]),
        json!({"Major": 1}),
        json!("CtrlC"),
        json!("Running"),
    ];
    match rng.below(4) {
        0 => {
            if let Some(r) = replacements.get(rng.below(replacements.len())) {
                *node = r.clone();
            }
        }
        1 => {
            if let Value::Object(map) = node {
                if !map.is_empty() {
                    let i = rng.below(map.len());
                    if let Some(k) = map.keys().nth(i).cloned() {
                        map.remove(&k);
                    }
                }
            }
        }
        2 => {
            if let Value::Object(map) = node {
                if !map.is_empty() {
                    let i = rng.below(map.len());
                    if let Some(k) = map.keys().nth(i).cloned() {
                        if let Some(v) = map.remove(&k) {
                            map.insert(k.to_lowercase(), v);
                        }
                    }
                }
            }
        }
        _ => {
            let extra = [
                ("Container", json!({})),
                ("VirtualMachine", json!({})),
                ("HostedSystem", json!({})),
                (
                    "UserNamespace",
                    json!({"UidMappings": [{"ContainerId": 0, "HostId": 0, "Size": 0}]}),
                ),
                ("Environment", json!({"": "x"})),
                ("CommandArgs", json!([])),
                ("Operation", json!("CloseHandle")),
                ("Signal", json!(0)),
            ];
            if let (Value::Object(map), Some((k, v))) = (node, extra.get(rng.below(extra.len()))) {
                map.insert((*k).to_string(), v.clone());
            }
        }
    }
}

#[test]
fn value_level_mutations_never_panic() {
    const MUTATIONS_PER_FIXTURE: usize = 100;
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let mut panics = Vec::new();
    let mut wrong_codes = Vec::new();
    let (mut total, mut parsed) = (0usize, 0usize);
    for name in all_fixtures() {
        let Ok(original) = serde_json::from_str::<serde_json::Value>(&fixture(&name)) else {
            continue; // the invalid fixtures are not JSON
        };
        for _ in 0..MUTATIONS_PER_FIXTURE {
            let mut value = original.clone();
            for _ in 0..1 + rng.below(3) {
                mutate_value(&mut value, &mut rng);
            }
            let doc = value.to_string();
            total += 1;
            match catch_unwind(AssertUnwindSafe(|| exercise(&doc))) {
                Ok((failures, ok)) => {
                    wrong_codes.extend(failures);
                    parsed += usize::from(ok);
                }
                Err(_) => panics.push(format!("{name}: {doc}")),
            }
        }
    }
    assert!(total >= 3000, "only {total} mutations ran");
    assert!(
        parsed >= 500,
        "only {parsed} of {total} mutated documents parsed"
    );
    assert!(
        panics.is_empty(),
        "{} of {total} mutated documents panicked, first: {}",
        panics.len(),
        panics[0]
    );
    assert!(
        wrong_codes.is_empty(),
        "errors other than HCS_E_INVALID_JSON: {:?}",
        &wrong_codes[..wrong_codes.len().min(3)]
    );
}
