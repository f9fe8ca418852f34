//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::PathBuf;

use hcs_errors::{HResult, HcsError};
use hcs_schema::{from_json, to_json};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Directory of the fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Text of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `*.json` directly in `tests/fixtures` (the valid documents), sorted.
pub fn valid_fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Parses fixture `name` as a `T`, checks that serialising and parsing again
/// gives an equal value and that nothing of the original JSON was lost
/// (the re-serialised JSON equals the original as a `serde_json::Value`).
pub fn round_trip<T>(name: &str, document: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let text = fixture(name);
    let value: T = from_json(&text, document)
        .unwrap_or_else(|e| panic!("{name} does not parse as {document}: {e}"));
    let json = to_json(&value);
    let again: T = from_json(&json, document)
        .unwrap_or_else(|e| panic!("{name}: re-serialised JSON does not parse: {e}\n{json}"));
    assert_eq!(value, again, "{name}: round trip changed the value");
    let original: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    let reserialised: serde_json::Value = serde_json::from_str(&json).expect("output is JSON");
    assert_eq!(
        original, reserialised,
        "{name}: serialising lost or changed members"
    );
    value
}

/// Asserts `result` failed with HCS_E_INVALID_JSON and a message containing
/// every one of `needles`; returns the message.
pub fn expect_invalid<T: Debug>(result: Result<T, HcsError>, needles: &[&str]) -> String {
    let err = match result {
        Ok(v) => panic!("expected HCS_E_INVALID_JSON, got Ok({v:?})"),
        Err(e) => e,
    };
    assert_eq!(err.hresult, HResult::HCS_E_INVALID_JSON, "{err:?}");
    for needle in needles {
        assert!(
            err.message.contains(needle),
            "message {:?} does not contain {needle:?}",
            err.message
        );
    }
    err.message
}
