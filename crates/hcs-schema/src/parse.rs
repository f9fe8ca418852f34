//! Parsing HCS documents into the schema types with errors that say what was
//! wrong and where, and serialising them back.

use hcs_errors::HcsError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_path_to_error::Segment;

/// Parses `json` as a `T`, naming `document` (e.g. `"ComputeSystem"`) in errors.
///
/// Every failure is `HCS_E_INVALID_JSON` with a message such as
///
/// ```text
/// invalid ComputeSystem document: at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB` (line 5, column 31): invalid type: string "lots", expected u64
/// ```
///
/// i.e. the document kind, the JSON path of the bad value (`$` is the root,
/// object members as `.Name` or `["key"]`, array elements as `[0]`), the
/// position, and what was expected. Unknown members are reported at the path
/// of their object together with the member names that are allowed. Empty
/// input, `null`, trailing characters and nesting deeper than 128 levels are
/// reported as such. Only syntax and types are checked here; call the
/// document's `validate()` for the semantic rules.
pub fn from_json<T: DeserializeOwned>(json: &str, document: &str) -> Result<T, HcsError> {
    if json.trim().is_empty() {
        return Err(HcsError::invalid_json(format!(
            "invalid {document} document: the document is empty; expected a JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(err) => {
            if json.trim() == "null" {
                return Err(HcsError::invalid_json(format!(
                    "invalid {document} document: the document is `null`; expected a JSON object"
                )));
            }
            return Err(HcsError::invalid_json(format!(
                "invalid {document} document: {}",
                describe_error("$", err.path(), err.inner())
            )));
        }
    };
    if let Err(err) = de.end() {
        return Err(HcsError::invalid_json(format!(
            "invalid {document} document: unexpected characters after the end of the JSON value (line {}, column {})",
            err.line(),
            err.column()
        )));
    }
    Ok(value)
}

/// Parses a free-form member of an already parsed document (`Settings` of a
/// [`ModifySettingRequest`](crate::requests::ModifySettingRequest),
/// `HostedSystem`, `GuestRequest`, ...) as a `T`. Errors are reported like
/// [`from_json`]'s, at paths under `path` (e.g. `$.Settings`), without
/// line and column.
///
/// ```
/// use hcs_schema::{from_json, parse::from_value, requests::ModifySettingRequest};
/// use hcs_schema::virtual_machine::devices::Attachment;
///
/// let req: ModifySettingRequest = from_json(
///     r#"{"ResourcePath":"VirtualMachine/Devices/Scsi/0/Attachments/1","RequestType":"Add",
///         "Settings":{"Type":"VirtualDisk","Path":"/images/data.img","ReadOnly":"yes"}}"#,
///     "ModifySettingRequest",
/// ).unwrap();
/// let settings = req.settings.unwrap_or_default();
/// let err = from_value::<Attachment>(&settings, "ModifySettingRequest", "$.Settings").unwrap_err();
/// assert!(err.message.contains("at `$.Settings.ReadOnly`"));
/// ```
pub fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    document: &str,
    path: &str,
) -> Result<T, HcsError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        HcsError::invalid_json(format!(
            "invalid {document} document: {}",
            describe_error(path, err.path(), err.inner())
        ))
    })
}

/// Serialises `value` as compact JSON.
///
/// Serialising the types of this crate cannot fail (all map keys are strings
/// or integers and no type has a failing `Serialize`); for a foreign type whose
/// `Serialize` fails this returns `null`. Use [`try_to_json`] to see the error.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("null"))
}

/// Serialises `value` as compact JSON, reporting a failing `Serialize` as
/// `HCS_E_INVALID_JSON`.
pub fn try_to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, HcsError> {
    serde_json::to_string(value)
        .map_err(|e| HcsError::invalid_json(format!("cannot serialise document: {e}")))
}

/// Longest path shown in full; deeper paths (nesting up to serde_json's
/// limit of 128) show their first and last segments.
const MAX_PATH_SEGMENTS: usize = 24;

/// `at `<path>` (line L, column C): <what was wrong>` for a parse error,
/// the path starting at `base` (`$` for a whole document).
fn describe_error(base: &str, path: &serde_path_to_error::Path, err: &serde_json::Error) -> String {
    let text = err.to_string();
    let (line, column) = (err.line(), err.column());
    let suffix = format!(" at line {line} column {column}");
    let mut message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();

    let mut segments: Vec<&Segment> = path.iter().collect();
    // A key that failed to parse, or an error inside a value that was not
    // tracked, leaves an `Unknown` segment at the end: drop it.
    while matches!(segments.last(), Some(Segment::Unknown)) {
        segments.pop();
    }
    // serde reports an unknown member at the path of the member itself;
    // report it at the object that does not allow it.
    if let Some(field) = unknown_field(&message) {
        if matches!(segments.last(), Some(Segment::Map { key }) if *key == field) {
            segments.pop();
        }
        if let Some(hint) = did_you_mean(&message, &field) {
            message = message.replacen(
                &format!("unknown field `{field}`"),
                &format!("unknown field `{field}` (did you mean `{hint}`?)"),
                1,
            );
        }
    }
    match err.classify() {
        serde_json::error::Category::Eof => {
            message = format!("the document ends too early: {message}")
        }
        _ if message == "trailing characters" => {
            message = String::from("the array has more elements than expected")
        }
        _ => {}
    }

    let path = format_path(base, &segments);
    if line == 0 {
        format!("at `{path}`: {message}")
    } else {
        format!("at `{path}` (line {line}, column {column}): {message}")
    }
}

/// The member name of serde's "unknown field `X`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    rest.get(..end).map(str::to_string)
}

/// A member name from serde's "expected one of `A`, `B`" list that differs
/// from `field` only in letter case (`SizeInMb` for `SizeInMB`).
fn did_you_mean(message: &str, field: &str) -> Option<String> {
    let (_, list) = message.split_once("expected ")?;
    list.split('`')
        .skip(1)
        .step_by(2)
        .find(|name| name.eq_ignore_ascii_case(field))
        .map(str::to_string)
}

/// `base` followed by the segments of a serde path: `.Name` / `["odd key"]` / `[3]`.
fn format_path(base: &str, segments: &[&Segment]) -> String {
    let mut out = String::from(base);
    let hidden = segments.len().saturating_sub(MAX_PATH_SEGMENTS);
    for (i, segment) in segments.iter().enumerate() {
        if hidden > 0 && i >= MAX_PATH_SEGMENTS / 2 && i < MAX_PATH_SEGMENTS / 2 + hidden {
            if i == MAX_PATH_SEGMENTS / 2 {
                out.push_str(&format!("…({hidden} more levels)…"));
            }
            continue;
        }
        match segment {
            Segment::Seq { index } => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// Appends an object member to a path: `.Name` when the key is an identifier
/// (letters, digits, `_`, not starting with a digit), otherwise `["key"]`
/// with the key JSON-quoted (so `"0"` map keys read `["0"]`).
pub(crate) fn push_key(out: &mut String, key: &str) {
    let identifier = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        out.push('.');
        out.push_str(key);
    } else {
        out.push('[');
        out.push_str(&serde_json::Value::String(key.to_string()).to_string());
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_only_when_needed() {
        let mut s = String::from("$");
        push_key(&mut s, "Devices");
        push_key(&mut s, "Primary disk");
        push_key(&mut s, "0");
        push_key(&mut s, "a\"b");
        assert_eq!(s, r#"$.Devices["Primary disk"]["0"]["a\"b"]"#);
    }
}
