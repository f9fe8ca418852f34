//! scripts/host-integrity.sh, run on a fake root: it passes when nothing
//! changed (or only what its allow-list names) and fails, naming the entry,
//! for any other change to /dev, /tmp, /run, the cgroup tree or the mounts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hcs_integration_tests::repo;

struct Fake {
    root: tempfile::TempDir,
    snaps: tempfile::TempDir,
    n: usize,
}

impl Fake {
    fn new() -> Fake {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "dev/pts",
            "dev/shm",
            "tmp",
            "run/hcs/ns",
            "sys/fs/cgroup/pids/hcs",
            "sys/fs/cgroup/memory",
            "proc/self",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("dev/null"), "").unwrap();
        std::fs::set_permissions(r.join("dev/null"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::write(r.join("tmp/kept"), "").unwrap();
        std::fs::write(
            r.join("proc/self/mountinfo"),
            "21 1 0:21 / /proc rw,relatime - proc proc rw\n\
             22 1 0:22 / / rw,relatime shared:1 - ext4 /dev/sda rw\n",
        )
        .unwrap();
        Fake {
            root,
            snaps: tempfile::tempdir().unwrap(),
            n: 0,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }

    fn snapshot(&mut self) -> PathBuf {
        self.n += 1;
        let out = self.snaps.path().join(format!("{}.txt", self.n));
        let st = self.script(&["snapshot".as_ref(), out.as_os_str()]);
        assert!(st.status.success(), "{st:?}");
        out
    }

    /// `None` if they match, else the script's report.
    fn compare(&self, a: &Path, b: &Path) -> Option<String> {
        let out = self.script(&["compare".as_ref(), a.as_os_str(), b.as_os_str()]);
        match out.status.code() {
            Some(0) => None,
            Some(1) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
            _ => panic!("compare: {out:?}"),
        }
    }

    /// Snapshot now and compare with `before`.
    fn changed_since(&mut self, before: &Path) -> Option<String> {
        let after = self.snapshot();
        self.compare(before, &after)
    }

    fn script(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        Command::new(repo().join("scripts/host-integrity.sh"))
            .args(args)
            .env("HOST_INTEGRITY_ROOT", self.root.path())
            .env_remove("HOST_INTEGRITY_ALLOW")
            .output()
            .unwrap()
    }
}

#[test]
fn an_unchanged_host_passes_and_every_kind_of_change_fails() {
    let mut f = Fake::new();
    let base = f.snapshot();
    assert_eq!(f.changed_since(&base), None);

    // Each change, checked against the base and then undone.
    type Step = (&'static str, fn(&Fake), fn(&Fake));
    let steps: [Step; 7] = [
        (
            "tmp /tmp/stray",
            |f| std::fs::write(f.path("tmp/stray"), "x").unwrap(),
            |f| std::fs::remove_file(f.path("tmp/stray")).unwrap(),
        ),
        (
            "dev /dev/null",
            |f| {
                let p = f.path("dev/null");
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap()
            },
            |f| {
                let p = f.path("dev/null");
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap()
            },
        ),
        (
            "tmp /tmp/kept",
            |f| std::fs::remove_file(f.path("tmp/kept")).unwrap(),
            |_| {},
        ),
        (
            "run /run/hcs/ns2",
            |f| std::fs::create_dir(f.path("run/hcs/ns2")).unwrap(),
            |f| std::fs::remove_dir(f.path("run/hcs/ns2")).unwrap(),
        ),
        (
            "cgroup /pids/hcs/leaked",
            |f| std::fs::create_dir(f.path("sys/fs/cgroup/pids/hcs/leaked")).unwrap(),
            |f| std::fs::remove_dir(f.path("sys/fs/cgroup/pids/hcs/leaked")).unwrap(),
        ),
        (
            "mount 0:40 / /tmp/x",
            |f| {
                let p = f.path("proc/self/mountinfo");
                let mut t = std::fs::read_to_string(&p).unwrap();
                t.push_str("40 22 0:40 / /tmp/x rw - tmpfs tmpfs rw\n");
                std::fs::write(p, t).unwrap();
            },
            |_| {},
        ),
        (
            "shared:1",
            |f| {
                let p = f.path("proc/self/mountinfo");
                let t = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("shared:1 ", "");
                std::fs::write(p, t).unwrap();
            },
            |_| {},
        ),
    ];
    for (needle, change, undo) in steps {
        let mut f = Fake::new();
        let before = f.snapshot();
        change(&f);
        let report = f
            .changed_since(&before)
            .unwrap_or_else(|| panic!("{needle}: the change passed"));
        assert!(report.contains(needle), "{needle}: {report}");
        undo(&f);
    }
    // A recreated file is a different inode, even with the same mode.
    let mut f = Fake::new();
    let before = f.snapshot();
    let null = f.path("dev/null");
    std::fs::remove_file(&null).unwrap();
    std::fs::write(&null, "").unwrap();
    std::fs::set_permissions(&null, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = f.changed_since(&before);
    assert!(report.is_some_and(|r| r.contains("dev /dev/null")));
}

#[test]
fn the_allow_list_lets_only_the_tests_own_artefacts_through() {
    let mut f = Fake::new();
    std::fs::remove_dir_all(f.path("run/hcs")).unwrap();
    let before = f.snapshot();
    // A pseudo-terminal, the kept cgroup parent, the runtime root, and the
    // mount table's ids all may change.
    std::fs::write(f.path("dev/pts/5"), "").unwrap();
    std::fs::create_dir(f.path("sys/fs/cgroup/memory/hcs")).unwrap();
    std::fs::create_dir(f.path("run/hcs")).unwrap();
    let p = f.path("proc/self/mountinfo");
    let t = std::fs::read_to_string(&p)
        .unwrap()
        .replace("21 1 ", "97 3 ");
    std::fs::write(&p, t).unwrap();
    assert_eq!(f.changed_since(&before), None);
    // But not what is inside them.
    std::fs::create_dir(f.path("run/hcs/left")).unwrap();
    assert!(f
        .changed_since(&before)
        .is_some_and(|r| r.contains("run /run/hcs/left")));
}
