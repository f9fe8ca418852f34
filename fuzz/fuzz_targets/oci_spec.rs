//! The OCI runtime spec mapping: a bundle's config.json, as `runhcs create`
//! hands it to the HCS container backend (`Container.OciSpecification`
//! with `OciBundlePath`), mapped to the container's spec
//! (`ContainerSpec::from_document`), its seccomp profile compiled to BPF
//! (in memory, never loaded), and its `process` mapped as the init process
//! (`ProcessSpec::from_oci`). The same bytes are also tried as a plain HCS
//! `Container` document. Nothing is created, mounted or run: the mapping
//! only looks at paths (the bundle is an empty `rootfs` in a private
//! directory).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hcs_container::security::{compile_seccomp, container_seccomp};
use hcs_container::{ContainerSpec, ProcessSpec};
use hcs_schema::Container;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The bundle: `HCS_FUZZ_TMP` (scripts/fuzz.sh points it into build/) or
/// the system's temporary directory, per process.
fn bundle() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("HCS_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let d = base.join(format!("hcs-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(d.join("rootfs")).expect("bundle directory");
        d
    })
}

fn map(doc: &Container, raw: Option<&Value>) {
    let Ok(spec) = ContainerSpec::from_document("fuzz", doc, bundle()) else {
        return;
    };
    let seccomp = container_seccomp(&spec);
    if let Some(s) = seccomp {
        let _ = compile_seccomp(s, "Container.OciSpecification.linux.seccomp");
    }
    if let Some(process) = raw.and_then(|r| r.get("process")) {
        let _ = ProcessSpec::from_oci(process, seccomp);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let document = json!({
        "OciBundlePath": bundle().to_string_lossy(),
        "OciSpecification": value,
    });
    if let Ok(doc) = serde_json::from_value::<Container>(document) {
        map(&doc, Some(&value));
    }
    if let Ok(doc) = hcs_schema::from_json::<Container>(&value.to_string(), "Container") {
        map(&doc, None);
    }
});
