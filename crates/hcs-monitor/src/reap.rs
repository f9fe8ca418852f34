//! `hcs-monitor reap`: cleanup after dead monitors, done in a process of
//! its own rather than inside every client linked to the library.

use hcs_errors::HcsResult;

/// Clean up after the dead monitor of `<namespace>/<id>`, or after every
/// dead monitor of `namespace` when no id is given. Returns the exit code:
/// 0 done, 1 failed, 2 bad arguments.
pub fn run(namespace: Option<&str>, id: Option<&str>) -> i32 {
    crate::logging::init_stderr();
    let Some(namespace) = namespace else {
        eprintln!("usage: hcs-monitor reap <namespace> [<id>]");
        return 2;
    };
    match reap(&hcs_rundir::root(), namespace, id) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hcs-monitor reap: {e}");
            1
        }
    }
}

/// See [`run`].
pub fn reap(root: &std::path::Path, namespace: &str, id: Option<&str>) -> HcsResult<()> {
    hcs_rundir::validate_name("namespace", namespace)?;
    match id {
        Some(id) => {
            hcs_rundir::validate_name("compute system id", id)?;
            hcs_rundir::cleanup_if_stale(&hcs_rundir::system_dir(root, namespace, id)).map(|_| ())
        }
        None => hcs_rundir::list_live(root, namespace).map(|_| ()),
    }
}
