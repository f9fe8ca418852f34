//! Calls about the service rather than one system: enumeration and service
//! properties.

use std::time::Duration;

use hcs_errors::{HResult, HcsError, HcsResult};
use hcs_protocol::{ConnectionKind, Request};
use hcs_schema::properties::SystemQuery;
use hcs_schema::ServicePropertyQuery;

use crate::operation::{Operation, OperationType, Target};

/// `HcsEnumerateComputeSystems` in the default namespace.
pub fn enumerate_compute_systems(query: Option<&str>, operation: &Operation) -> HcsResult<()> {
    enumerate_compute_systems_in_namespace(crate::DEFAULT_NAMESPACE, query, operation)
}

/// `HcsEnumerateComputeSystemsInNamespace`: the result document is a JSON
/// array of `Properties` (Id, SystemType, Owner, State, ...) of the live
/// systems matching the optional `SystemQuery`. Runtime directories left by
/// dead monitors are cleaned up on the way.
pub fn enumerate_compute_systems_in_namespace(
    namespace: &str,
    query: Option<&str>,
    operation: &Operation,
) -> HcsResult<()> {
    let generation = operation.begin(OperationType::Enumerate, Target::None, None)?;
    let parsed = hcs_rundir::validate_name("namespace", namespace).and_then(|_| {
        hcs_schema::fields::parse_options::<SystemQuery>(
            query,
            "SystemQuery",
            hcs_schema::fields::On::Any,
        )
    });
    let query = match parsed {
        Ok(q) => q,
        Err(e) => {
            operation.fail(generation, &e);
            return Err(e);
        }
    };
    let op = operation.clone();
    let namespace = namespace.to_string();
    let spawned = std::thread::Builder::new()
        .name("hcs-enumerate".into())
        .spawn(move || match enumerate(&namespace, query.as_ref()) {
            Ok(doc) => op.complete(generation, HResult::S_OK, Some(doc), None),
            Err(e) => op.fail(generation, &e),
        });
    if let Err(e) = spawned {
        let e = HcsError::from_io("starting the enumeration thread", &e);
        operation.fail(generation, &e);
        return Err(e);
    }
    Ok(())
}

fn enumerate(namespace: &str, query: Option<&SystemQuery>) -> HcsResult<String> {
    let scan = hcs_rundir::scan(&hcs_rundir::root(), namespace)?;
    if !scan.stale.is_empty() {
        // Dead monitors' leftovers are cleaned by a reaping monitor, not here.
        if let Err(e) = crate::launch::reap(namespace, None) {
            tracing::warn!("cleaning up after dead monitors in {namespace}: {e}");
        }
    }
    let ids = scan.live;
    let mut out = Vec::new();
    for id in ids {
        if let Some(wanted) = query.and_then(|q| q.ids.as_ref()) {
            if !wanted.iter().any(|w| w == &id) {
                continue;
            }
        }
        let Ok(conn) = crate::system::connect(namespace, &id, ConnectionKind::Query) else {
            // It stopped between listing and asking.
            continue;
        };
        let answer = conn.request_sync(
            Request::GetProperties { query: None },
            Duration::from_secs(30),
        );
        conn.release_user();
        let Ok((outcome, _)) = answer else { continue };
        let Some(doc) = outcome.document.filter(|_| outcome.hresult.is_success()) else {
            continue;
        };
        let Ok(props) = serde_json::from_str::<serde_json::Value>(&doc) else {
            continue;
        };
        if matches_query(&props, query) {
            out.push(props);
        }
    }
    Ok(serde_json::Value::Array(out).to_string())
}

fn matches_query(props: &serde_json::Value, query: Option<&SystemQuery>) -> bool {
    let Some(q) = query else { return true };
    let field = |name: &str| props.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let one_of = |list: &Option<Vec<String>>, value: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == value))
    };
    let types: Option<Vec<String>> = q.types.as_ref().map(|ts| {
        ts.iter()
            .filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned))
            .collect()
    });
    one_of(&q.ids, field("Id"))
        && one_of(&q.names, field("Id"))
        && one_of(&types, field("SystemType"))
        && one_of(&q.owners, field("Owner"))
}

/// Highest schema minor version (of major 2) this implementation accepts.
pub const SCHEMA_MINOR_MAX: u32 = hcs_schema::version::HIGHEST_KNOWN_MINOR;

/// `HcsGetServiceProperties`. Supports `Basic` (the schema versions
/// accepted). Each of `PropertyQueries` (2.5) is answered, as HCS does, in
/// `PropertyResponses` under its name: none is available on Linux, so each
/// answer is an `ERROR_NOT_SUPPORTED` error naming its JSON path.
pub fn get_service_properties(query: Option<&str>) -> HcsResult<String> {
    let (types, queries): (Vec<String>, Vec<String>) = match query {
        Some(q) if !q.trim().is_empty() => {
            let q: ServicePropertyQuery = hcs_schema::from_json(q, "Service_PropertyQuery")?;
            hcs_schema::fields::refuse_unsupported(
                &q,
                hcs_schema::fields::Context {
                    document: "Service_PropertyQuery",
                    on: hcs_schema::fields::On::Any,
                },
            )?;
            let types = q
                .property_types
                .unwrap_or_default()
                .iter()
                .filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned))
                .collect();
            (
                types,
                q.property_queries.unwrap_or_default().into_keys().collect(),
            )
        }
        _ => (vec!["Basic".to_string()], Vec::new()),
    };
    let mut properties = Vec::new();
    for t in &types {
        match t.as_str() {
            "Basic" => properties.push(serde_json::json!({
                "SupportedSchemaVersions": [{ "Major": 2, "Minor": SCHEMA_MINOR_MAX }]
            })),
            other => {
                return Err(HcsError::not_supported(format!(
                "service property type {other:?} is not supported on Linux; supported: [\"Basic\"]"
            )))
            }
        }
    }
    let mut result = serde_json::json!({ "Properties": properties });
    if !queries.is_empty() {
        let responses: serde_json::Map<String, serde_json::Value> = queries
            .into_iter()
            .map(|name| {
                let message = format!(
                    "$.PropertyQueries.{name}: the service property query {name:?} is not supported on Linux"
                );
                let answer = serde_json::json!({
                    "Error": { "Error": HResult::ERROR_NOT_SUPPORTED.0, "ErrorMessage": message }
                });
                (name, answer)
            })
            .collect();
        result["PropertyResponses"] = serde_json::Value::Object(responses);
    }
    Ok(result.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_queries_are_each_answered_with_an_error_naming_them() {
        let r = get_service_properties(Some(
            r#"{"PropertyTypes":["Basic"],"PropertyQueries":{"ProcessorCapabilities":{}}}"#,
        ))
        .unwrap();
        let r: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(r["Properties"][0]["SupportedSchemaVersions"][0]["Major"], 2);
        let answer = &r["PropertyResponses"]["ProcessorCapabilities"]["Error"];
        assert_eq!(answer["Error"], HResult::ERROR_NOT_SUPPORTED.0, "{r}");
        let message = answer["ErrorMessage"].as_str().unwrap();
        assert!(
            message.contains("$.PropertyQueries.ProcessorCapabilities"),
            "{message}"
        );
        // Without queries there is no PropertyResponses member.
        let r = get_service_properties(Some(r#"{"PropertyTypes":["Basic"]}"#)).unwrap();
        assert!(!r.contains("PropertyResponses"), "{r}");
        // Not JSON is refused.
        let e = get_service_properties(Some("Basic please")).unwrap_err();
        assert_eq!(e.hresult, HResult::HCS_E_INVALID_JSON, "{e}");
    }
}
