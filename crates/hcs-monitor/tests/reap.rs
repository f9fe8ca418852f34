//! `hcs-monitor reap`: cleanup after a dead monitor touches only the
//! system's own runtime directory and its cgroups under `hcs/`, whatever its
//! record.json says.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcs_cgroups::{Cgroup, Hierarchies};
use hcs_rundir::{Record, RunDir};
use hcs_test_support::skip;

/// A cgroup hierarchy we can make directories in, or why not.
fn hierarchy(test: &str) -> Option<PathBuf> {
    if !hcs_test_support::is_root() {
        skip(test, "needs root to make cgroups");
        return None;
    }
    let Some(mount) = Hierarchies::detect().ok().and_then(|h| {
        h.hierarchies()
            .first()
            .map(|h| h.mount_point().to_path_buf())
    }) else {
        skip(test, "no cgroup hierarchy is mounted");
        return None;
    };
    Some(mount)
}

/// Leave a stale runtime directory for `<ns>/<id>` holding `record`.
fn stale_dir(root: &Path, ns: &str, id: &str, record: &Record) -> PathBuf {
    let dir = RunDir::create(root, ns, id).unwrap();
    dir.write_record(record).unwrap();
    let path = dir.path().to_path_buf();
    // Dropping it releases the lock without removing anything: a dead monitor.
    drop(dir);
    path
}

fn record(ns: &str, id: &str, cgroups: Vec<PathBuf>, leaf: &str) -> Record {
    Record {
        id: id.into(),
        namespace: ns.into(),
        system_type: "Container".into(),
        monitor_pid: 1,
        cgroups,
        cgroup_leaf: Some(leaf.into()),
        ..Default::default()
    }
}

fn reap(root: &Path, ns: &str, id: Option<&str>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcs-monitor"));
    cmd.arg("reap")
        .arg(ns)
        .args(id)
        .env("HCS_RUNTIME_ROOT", root);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "hcs-monitor reap: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_dead_monitors_own_cgroup_is_reaped() {
    let test = "reap::a_dead_monitors_own_cgroup_is_reaped";
    let Some(_) = hierarchy(test) else { return };
    let root = tempfile::tempdir().unwrap();
    let ns = format!("reap{}", std::process::id());
    let leaf = format!("{ns}@legit");
    let cg = Cgroup::create_under(Path::new(hcs_rundir::CGROUP_PARENT), Path::new(&leaf)).unwrap();
    let paths = cg.paths();
    assert!(paths.iter().all(|p| p.is_dir()));
    let dir = stale_dir(
        root.path(),
        &ns,
        "legit",
        &record(&ns, "legit", paths.clone(), &leaf),
    );
    reap(root.path(), &ns, Some("legit"));
    let left: Vec<_> = paths.iter().filter(|p| p.exists()).collect();
    let _ = cg.destroy();
    assert!(
        left.is_empty(),
        "the dead monitor's cgroups are still there: {left:?}"
    );
    assert!(!dir.exists(), "the stale runtime directory is still there");
}

#[test]
fn a_record_naming_paths_outside_the_parent_touches_none_of_them() {
    let test = "reap::a_record_naming_paths_outside_the_parent_touches_none_of_them";
    let Some(mount) = hierarchy(test) else { return };
    let root = tempfile::tempdir().unwrap();
    let ns = format!("reapbad{}", std::process::id());
    // A cgroup of someone else, outside hcs/ (empty, so a cleanup that
    // trusted the record would rmdir it).
    let outside = mount.join(format!("hcs-reap-test-outside-{}", std::process::id()));
    std::fs::create_dir(&outside).unwrap();
    // An ordinary directory shaped like ours, but not in a cgroup hierarchy.
    let plain = tempfile::tempdir().unwrap();
    let plain_leaf = plain.path().join("hcs").join(format!("{ns}@b"));
    std::fs::create_dir_all(&plain_leaf).unwrap();
    let cases = [
        // Not under hcs/ at all.
        (
            "a",
            vec![outside.clone()],
            "hcs-reap-test-outside".to_string(),
        ),
        // Shaped like ours but outside every cgroup hierarchy.
        ("b", vec![plain_leaf.clone()], format!("{ns}@b")),
        // Climbing out of hcs/ with `..`.
        (
            "c",
            vec![mount
                .join("hcs")
                .join(format!("{ns}@c"))
                .join("..")
                .join("..")
                .join(outside.file_name().unwrap())],
            format!("{ns}@c"),
        ),
        // A leaf that climbs out itself.
        (
            "d",
            vec![outside.clone()],
            format!("../{}", outside.file_name().unwrap().to_string_lossy()),
        ),
        // Another system's name in this system's directory.
        ("e", vec![plain_leaf.clone()], format!("{ns}@b")),
    ];
    let mut dirs = Vec::new();
    for (id, cgroups, leaf) in &cases {
        let mut r = record(&ns, id, cgroups.clone(), leaf);
        if *id == "e" {
            r.id = "b".into();
        }
        dirs.push(stale_dir(root.path(), &ns, id, &r));
    }
    reap(root.path(), &ns, None);
    let outside_kept = outside.is_dir();
    let _ = std::fs::remove_dir(&outside);
    assert!(
        outside_kept,
        "the cgroup {} outside hcs/ was removed",
        outside.display()
    );
    assert!(plain_leaf.is_dir(), "{} was removed", plain_leaf.display());
    // The runtime directories themselves are ours, and are still removed.
    for d in dirs {
        assert!(!d.exists(), "{} is still there", d.display());
    }
}
