//! Semantic checks that run after a document parsed: what serde cannot
//! express (exactly one of several members, value ranges, NUL bytes).
//! Every failure is `HCS_E_INVALID_JSON` with the JSON path of the bad member.

use std::fmt;

use hcs_errors::HcsError;
use serde_json::Value;

use crate::version::{Version, HIGHEST_KNOWN_MINOR, SCHEMA_MAJOR};

/// Documents that have checks beyond what parsing enforces.
pub trait Validate {
    /// `Ok(())` when the document makes sense; otherwise `HCS_E_INVALID_JSON`
    /// with a message naming the JSON path of the offending member.
    fn validate(&self) -> Result<(), HcsError>;
}

/// `HCS_E_INVALID_JSON` with the message `invalid <document> document: at `<path>`: <message>`.
pub(crate) fn error(document: &str, path: &str, message: impl fmt::Display) -> HcsError {
    HcsError::invalid_json(format!(
        "invalid {document} document: at `{path}`: {message}"
    ))
}

/// `base` extended by one object member, in the notation of error paths:
/// `.Name` for identifier-like names, `["Primary disk"]` otherwise.
pub(crate) fn member(base: &str, key: &str) -> String {
    let mut s = String::from(base);
    crate::parse::push_key(&mut s, key);
    s
}

/// `base` extended by an array index: `[3]`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// Checks a `SchemaVersion`: major must be 2 and the minor one this crate
/// knows (2.0 to 2.[`HIGHEST_KNOWN_MINOR`]); a document of a later minor may
/// carry fields whose meaning we would silently get wrong.
pub(crate) fn check_schema_version(
    document: &str,
    path: &str,
    version: &Version,
) -> Result<(), HcsError> {
    match version.major {
        None => Err(error(
            document,
            &member(path, "Major"),
            format!("missing; expected {SCHEMA_MAJOR} (supported versions 2.0 to 2.{HIGHEST_KNOWN_MINOR})"),
        )),
        Some(SCHEMA_MAJOR) => match version.minor {
            Some(minor) if minor > HIGHEST_KNOWN_MINOR => Err(error(
                document,
                &member(path, "Minor"),
                format!(
                    "schema version {SCHEMA_MAJOR}.{minor} is not supported (supported versions 2.0 to 2.{HIGHEST_KNOWN_MINOR})"
                ),
            )),
            _ => Ok(()),
        },
        Some(major) => Err(error(
            document,
            &member(path, "Major"),
            format!(
                "schema version {} is not supported: major version must be {SCHEMA_MAJOR} \
                 (supported versions 2.0 to 2.{HIGHEST_KNOWN_MINOR}; version 1.x is the legacy V1 format)",
                Version { major: Some(major), minor: version.minor }
            ),
        )),
    }
}

/// Fails when `value` contains a NUL character: it cannot be passed to the
/// kernel (paths, argv, environment are C strings).
pub(crate) fn check_no_nul(document: &str, path: &str, value: &str) -> Result<(), HcsError> {
    match value.find('\0') {
        None => Ok(()),
        Some(at) => Err(error(
            document,
            path,
            format!("contains a NUL character at byte {at}; strings passed to the system may not contain NUL"),
        )),
    }
}

/// Fails when `value` contains a control character (NUL, newline, escape…):
/// for names that are shown, logged and compared, where none can be right.
pub(crate) fn check_no_control(document: &str, path: &str, value: &str) -> Result<(), HcsError> {
    match value.char_indices().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(error(
            document,
            path,
            format!("contains the control character {c:?} at byte {at}; none is allowed here"),
        )),
    }
}

/// Longest host name Linux accepts (`HOST_NAME_MAX`).
pub const HOST_NAME_MAX: usize = 64;

/// A host name for a UTS namespace: 1..=[`HOST_NAME_MAX`] bytes, without
/// control characters or white space.
pub(crate) fn check_host_name(document: &str, path: &str, value: &str) -> Result<(), HcsError> {
    if value.is_empty() || value.len() > HOST_NAME_MAX {
        return Err(error(
            document,
            path,
            format!(
                "is {} bytes long; a host name has 1 to {HOST_NAME_MAX}",
                value.len()
            ),
        ));
    }
    check_no_control(document, path, value)?;
    if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(error(
            document,
            path,
            format!("contains white space {c:?} at byte {at}; a host name cannot"),
        ));
    }
    Ok(())
}

/// Fails when a number is outside `range`, naming the range.
pub(crate) fn check_range(
    document: &str,
    path: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    why: &str,
) -> Result<(), HcsError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(error(
        document,
        path,
        format!(
            "{value} is out of range; expected {}..={} ({why})",
            range.start(),
            range.end()
        ),
    ))
}

/// [`check_value_no_nul`] over a whole parsed document: every string in it
/// becomes a path, a name, an argument or is forwarded, and NUL is right in
/// none of them (they end as C strings, or in a guest that treats them so).
pub(crate) fn check_document_no_nul<T: serde::Serialize>(
    document: &str,
    value: &T,
) -> Result<(), HcsError> {
    match serde_json::to_value(value) {
        Ok(v) => check_value_no_nul(document, "$", &v),
        // A parsed document always serialises; if not, the field checks stand.
        Err(_) => Ok(()),
    }
}

/// [`check_no_nul`] over every string (and object key) inside a free-form
/// JSON value, walked without recursion so no depth can exhaust the stack.
pub(crate) fn check_value_no_nul(
    document: &str,
    path: &str,
    value: &Value,
) -> Result<(), HcsError> {
    let mut stack: Vec<(String, &Value)> = vec![(path.to_string(), value)];
    while let Some((p, v)) = stack.pop() {
        match v {
            Value::String(s) => check_no_nul(document, &p, s)?,
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((index(&p, i), item));
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let child = member(&p, k);
                    check_no_nul(document, &child, k)?;
                    stack.push((child, item));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(())
}

/// Fails when `value` is absent or empty.
pub(crate) fn require_non_empty(
    document: &str,
    path: &str,
    value: Option<&str>,
    why: &str,
) -> Result<(), HcsError> {
    match value {
        Some(s) if !s.is_empty() => Ok(()),
        Some(_) => Err(error(document, path, format!("is empty; {why}"))),
        None => Err(error(document, path, format!("missing; {why}"))),
    }
}
