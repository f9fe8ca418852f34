//! Finding the cgroup hierarchies of the host, once.
//!
//! A host mounts cgroups in one of three ways:
//!
//! * **unified**: one `cgroup2` file system (usually at `/sys/fs/cgroup`) holds
//!   every controller; freezing and killing are core features of every cgroup.
//! * **hybrid**: the v1 controllers are mounted one hierarchy each (some co-mounted,
//!   such as `cpu,cpuacct`) under `/sys/fs/cgroup/<controller>`, and a `cgroup2`
//!   file system is mounted too (usually at `/sys/fs/cgroup/unified`) holding only
//!   the controllers no v1 hierarchy claimed (often none; `hugetlb` on the machine
//!   this crate was written on).
//! * **legacy**: v1 hierarchies only.
//!
//! Everything needed to place a cgroup is in `/proc/self/mountinfo` (which
//! hierarchies exist and where) and `/proc/self/cgroup` (where the calling
//! process sits in each). [`Hierarchies::detect`] parses both once per process;
//! [`Hierarchies::from_mountinfo`] is the pure parser behind it.

use std::ops::BitOr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::CgroupError;
use crate::fsio;

/// Which cgroup layout the host has, detected once from `/proc/self/mountinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only a `cgroup2` hierarchy carries controllers.
    Unified,
    /// v1 controller hierarchies plus a `cgroup2` hierarchy.
    Hybrid,
    /// v1 controller hierarchies only.
    Legacy,
}

/// The cgroup version of one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A `cgroup` (v1) mount with its own controller list.
    V1,
    /// A `cgroup2` mount.
    V2,
}

/// The controllers this crate drives, as a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ctl(u16);

impl Ctl {
    pub(crate) const NONE: Ctl = Ctl(0);
    pub(crate) const CPU: Ctl = Ctl(1);
    pub(crate) const CPUACCT: Ctl = Ctl(1 << 1);
    pub(crate) const CPUSET: Ctl = Ctl(1 << 2);
    pub(crate) const MEMORY: Ctl = Ctl(1 << 3);
    pub(crate) const PIDS: Ctl = Ctl(1 << 4);
    /// v1 `freezer`, or the core freezer of a v2 cgroup.
    pub(crate) const FREEZER: Ctl = Ctl(1 << 5);
    /// v1 `blkio` (statistics only).
    pub(crate) const BLKIO: Ctl = Ctl(1 << 6);
    /// v2 `io` (statistics only).
    pub(crate) const IO: Ctl = Ctl(1 << 7);
    /// v1 `devices`, or a v2 cgroup's BPF device program (core, like the
    /// v2 freezer).
    pub(crate) const DEVICES: Ctl = Ctl(1 << 8);

    /// The v2 controllers we enable in `cgroup.subtree_control`, with their names.
    const V2_NAMES: [(Ctl, &'static str); 5] = [
        (Ctl::CPU, "cpu"),
        (Ctl::CPUSET, "cpuset"),
        (Ctl::MEMORY, "memory"),
        (Ctl::PIDS, "pids"),
        (Ctl::IO, "io"),
    ];

    /// A v1 controller name we use.
    fn from_v1_name(name: &str) -> Ctl {
        match name {
            "cpu" => Ctl::CPU,
            "cpuacct" => Ctl::CPUACCT,
            "cpuset" => Ctl::CPUSET,
            "memory" => Ctl::MEMORY,
            "pids" => Ctl::PIDS,
            "freezer" => Ctl::FREEZER,
            "blkio" => Ctl::BLKIO,
            "devices" => Ctl::DEVICES,
            _ => Ctl::NONE,
        }
    }

    /// A v2 controller name we use.
    fn from_v2_name(name: &str) -> Ctl {
        Ctl::V2_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
            .unwrap_or(Ctl::NONE)
    }

    pub(crate) fn contains(self, other: Ctl) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn minus(self, other: Ctl) -> Ctl {
        Ctl(self.0 & !other.0)
    }

    fn and(self, other: Ctl) -> Ctl {
        Ctl(self.0 & other.0)
    }

    /// `+cpu +memory ...` for `cgroup.subtree_control`.
    fn v2_enable_line(self) -> String {
        let mut s = String::new();
        for (c, name) in Ctl::V2_NAMES {
            if self.contains(c) {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push('+');
                s.push_str(name);
            }
        }
        s
    }

    /// Every controller this crate can use on a v2 cgroup.
    pub(crate) const ALL_V2: Ctl = Ctl(Ctl::CPU.0
        | Ctl::CPUSET.0
        | Ctl::MEMORY.0
        | Ctl::PIDS.0
        | Ctl::IO.0
        | Ctl::FREEZER.0
        | Ctl::DEVICES.0);
}

impl BitOr for Ctl {
    type Output = Ctl;
    fn bitor(self, rhs: Ctl) -> Ctl {
        Ctl(self.0 | rhs.0)
    }
}

/// Every v1 controller name the kernel knows; anything else in a v1 mount's
/// options (`rw`, `nosuid`, `clone_children`, `release_agent=...`) is an option.
const V1_CONTROLLER_NAMES: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One mounted cgroup hierarchy.
#[derive(Debug)]
pub struct Hierarchy {
    version: CgroupVersion,
    /// v1: the controllers (and `name=` of a named hierarchy) from the mount options.
    v1_controllers: Vec<String>,
    mount_point: PathBuf,
    mount_root: PathBuf,
    own_cgroup: PathBuf,
    /// v1: the controllers of ours in this hierarchy.
    ours: Ctl,
    /// v2: `cgroup.controllers` of the mount's root, read on first use.
    v2_controllers: OnceLock<Vec<String>>,
}

impl Hierarchy {
    /// v1 or v2.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/cpu` or `/sys/fs/cgroup`.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Which directory of the hierarchy the mount shows (field 4 of mountinfo; `/` normally).
    pub fn mount_root(&self) -> &Path {
        &self.mount_root
    }

    /// The calling process's cgroup in this hierarchy, as `/proc/self/cgroup` gives it
    /// (an absolute path inside the hierarchy, e.g. `/process_api/e512`).
    pub fn own_cgroup(&self) -> &Path {
        &self.own_cgroup
    }

    /// The directory of the calling process's cgroup, e.g. `/sys/fs/cgroup/memory/process_api/e512`.
    /// When the process's cgroup is not visible through this mount (it lies outside
    /// the mount's root), this is the mount point.
    pub fn process_dir(&self) -> PathBuf {
        match self.own_cgroup.strip_prefix(&self.mount_root) {
            Ok(rel) => self.mount_point.join(rel),
            Err(_) => {
                tracing::warn!(
                    own = %self.own_cgroup.display(),
                    root = %self.mount_root.display(),
                    "process cgroup is outside the mounted part of the hierarchy; using the mount point"
                );
                self.mount_point.clone()
            }
        }
    }

    /// The controllers of this hierarchy: for v1 the mount's controller list
    /// (e.g. `["cpu", "cpuacct"]`), for v2 the root's `cgroup.controllers`
    /// (read from the kernel the first time and remembered).
    pub fn controllers(&self) -> Result<&[String], CgroupError> {
        match self.version {
            CgroupVersion::V1 => Ok(&self.v1_controllers),
            CgroupVersion::V2 => {
                if let Some(c) = self.v2_controllers.get() {
                    return Ok(c);
                }
                let path = self.mount_point.join("cgroup.controllers");
                let text = fsio::read_string(&path)
                    .map_err(|source| CgroupError::Read { path, source })?;
                let list = text.split_whitespace().map(str::to_owned).collect();
                Ok(self.v2_controllers.get_or_init(|| list))
            }
        }
    }

    fn new_v2(mount_point: PathBuf, mount_root: PathBuf, own_cgroup: PathBuf) -> Hierarchy {
        Hierarchy {
            version: CgroupVersion::V2,
            v1_controllers: Vec::new(),
            mount_point,
            mount_root,
            own_cgroup,
            ours: Ctl::NONE,
            v2_controllers: OnceLock::new(),
        }
    }
}

/// Where a new cgroup goes in one hierarchy, decided once per [`Hierarchies`].
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The directory the relative path is created under.
    pub(crate) base: PathBuf,
    /// The hierarchy's mount point: the base of an [`crate::Anchor::Root`] path.
    pub(crate) root: PathBuf,
    /// A `cgroup2` hierarchy.
    pub(crate) v2: bool,
    /// The controllers used through this hierarchy.
    pub(crate) ctl: Ctl,
    /// v2: what to write to `cgroup.subtree_control` of each ancestor (may be empty).
    pub(crate) enable: String,
}

/// Every mounted hierarchy relevant to us.
///
/// v1 hierarchies are kept when they carry one of the controllers we use
/// (`cpu`, `cpuacct`, `cpuset`, `memory`, `pids`, `freezer`, `blkio`); named
/// hierarchies such as `name=systemd` and the others are dropped. The first
/// `cgroup2` mount is kept. A hierarchy mounted twice is kept once.
#[derive(Debug)]
pub struct Hierarchies {
    layout: Layout,
    list: Vec<Hierarchy>,
    plan: OnceLock<Vec<Placement>>,
}

static DETECTED: OnceLock<Hierarchies> = OnceLock::new();

impl Hierarchies {
    /// The host's hierarchies, parsed from `/proc/self/mountinfo` and
    /// `/proc/self/cgroup` on the first call and cached for the life of the
    /// process (a failure is not cached). The first call also reads the v2
    /// root's `cgroup.controllers`, so later calls cost nothing.
    pub fn detect() -> Result<&'static Hierarchies, CgroupError> {
        if let Some(h) = DETECTED.get() {
            return Ok(h);
        }
        let read = |p: &str| {
            fsio::read_string(Path::new(p)).map_err(|source| CgroupError::Read {
                path: PathBuf::from(p),
                source,
            })
        };
        let h = Hierarchies::from_mountinfo(
            &read("/proc/self/mountinfo")?,
            &read("/proc/self/cgroup")?,
        )?;
        h.plan()?;
        tracing::debug!(layout = ?h.layout, hierarchies = h.list.len(), "detected cgroup hierarchies");
        Ok(DETECTED.get_or_init(|| h))
    }

    /// Parses the text of `/proc/<pid>/mountinfo` and `/proc/<pid>/cgroup`.
    /// Pure: it reads nothing (a v2 hierarchy's `cgroup.controllers` is read
    /// later, on first use). Malformed lines are errors.
    pub fn from_mountinfo(
        mountinfo: &str,
        proc_self_cgroup: &str,
    ) -> Result<Hierarchies, CgroupError> {
        let own = parse_proc_cgroup(proc_self_cgroup)?;

        let mut list: Vec<Hierarchy> = Vec::new();
        let mut any_v1_controller = false;
        let mut any_v2 = false;
        for line in mountinfo.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let m = parse_mountinfo_line(line)?;
            match m.fstype {
                "cgroup2" => {
                    any_v2 = true;
                    if list.iter().any(|h| h.version == CgroupVersion::V2) {
                        continue;
                    }
                    let own_cgroup = own
                        .iter()
                        .find(|o| o.v2)
                        .map(|o| PathBuf::from(o.path))
                        .unwrap_or_else(|| PathBuf::from("/"));
                    list.push(Hierarchy::new_v2(
                        m.mount_point.into(),
                        m.root.into(),
                        own_cgroup,
                    ));
                }
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLER_NAMES.contains(o) || o.starts_with("name="))
                        .map(str::to_owned)
                        .collect();
                    if controllers.iter().any(|c| !c.starts_with("name=")) {
                        any_v1_controller = true;
                    }
                    let ours = controllers
                        .iter()
                        .fold(Ctl::NONE, |acc, c| acc | Ctl::from_v1_name(c));
                    if ours.is_empty() {
                        continue;
                    }
                    if list
                        .iter()
                        .any(|h| h.version == CgroupVersion::V1 && h.v1_controllers == controllers)
                    {
                        continue;
                    }
                    // A v1 controller lives in exactly one hierarchy, so matching any
                    // one of them finds the process's line for this hierarchy.
                    let own_cgroup = own
                        .iter()
                        .find(|o| {
                            !o.v2
                                && o.controllers
                                    .split(',')
                                    .any(|c| controllers.iter().any(|m| m == c))
                        })
                        .map(|o| PathBuf::from(o.path));
                    let own_cgroup = match own_cgroup {
                        Some(p) => p,
                        None => {
                            tracing::warn!(mount = %m.mount_point, "no /proc/self/cgroup line for this hierarchy; placing under its root");
                            PathBuf::from("/")
                        }
                    };
                    list.push(Hierarchy {
                        version: CgroupVersion::V1,
                        v1_controllers: controllers,
                        mount_point: m.mount_point.into(),
                        mount_root: m.root.into(),
                        own_cgroup,
                        ours,
                        v2_controllers: OnceLock::new(),
                    });
                }
                _ => {}
            }
        }

        let layout = match (any_v1_controller, any_v2) {
            (false, true) => Layout::Unified,
            (true, true) => Layout::Hybrid,
            (true, false) => Layout::Legacy,
            (false, false) => {
                return Err(CgroupError::NoHierarchy {
                    checked: "/proc/self/mountinfo".into(),
                })
            }
        };
        Ok(Hierarchies {
            layout,
            list,
            plan: OnceLock::new(),
        })
    }

    /// Only a `cgroup2` file system mounted at `mount_point`, with the calling
    /// process counted at its root. For a private cgroup2 mount (tests, a
    /// sandbox in its own mount namespace) without parsing mountinfo.
    pub fn unified(mount_point: &Path) -> Hierarchies {
        Hierarchies {
            layout: Layout::Unified,
            list: vec![Hierarchy::new_v2(
                mount_point.to_path_buf(),
                "/".into(),
                "/".into(),
            )],
            plan: OnceLock::new(),
        }
    }

    /// The host's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The hierarchies kept, in mountinfo order.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.list
    }

    /// The v1 hierarchy carrying `controller`, if mounted.
    pub fn v1(&self, controller: &str) -> Option<&Hierarchy> {
        self.list.iter().find(|h| {
            h.version == CgroupVersion::V1 && h.v1_controllers.iter().any(|c| c == controller)
        })
    }

    /// The `cgroup2` hierarchy, if mounted.
    pub fn v2(&self) -> Option<&Hierarchy> {
        self.list.iter().find(|h| h.version == CgroupVersion::V2)
    }

    /// Where [`crate::Cgroup::create_in`] puts directories: one entry per
    /// hierarchy used, decided on first use and remembered.
    ///
    /// * every kept v1 hierarchy, under the calling process's own cgroup;
    /// * the v2 hierarchy, under its root: always on a unified host; on a
    ///   hybrid host only if one of our controllers is available there and in
    ///   no v1 hierarchy, or if no v1 freezer is mounted (v2 freezing is core).
    pub(crate) fn plan(&self) -> Result<&[Placement], CgroupError> {
        if let Some(p) = self.plan.get() {
            return Ok(p);
        }
        let mut plan = Vec::new();
        let mut v1_ctl = Ctl::NONE;
        for h in self.list.iter().filter(|h| h.version == CgroupVersion::V1) {
            v1_ctl = v1_ctl | h.ours;
            plan.push(Placement {
                base: h.process_dir(),
                root: h.mount_point.clone(),
                v2: false,
                ctl: h.ours,
                enable: String::new(),
            });
        }
        if let Some(h) = self.v2() {
            let available = match h.controllers() {
                Ok(list) => list
                    .iter()
                    .fold(Ctl::NONE, |acc, c| acc | Ctl::from_v2_name(c)),
                // On a hybrid host the unified hierarchy is optional: if its
                // controllers cannot be read, count on none of them.
                Err(err) if self.layout == Layout::Hybrid => {
                    tracing::warn!(%err, "ignoring the unified hierarchy");
                    Ctl::NONE
                }
                Err(err) => return Err(err),
            };
            let wanted = match self.layout {
                Layout::Unified => Some(available),
                Layout::Hybrid => {
                    let mut covered = v1_ctl.and(Ctl::CPU | Ctl::CPUSET | Ctl::MEMORY | Ctl::PIDS);
                    if v1_ctl.contains(Ctl::BLKIO) {
                        covered = covered | Ctl::IO;
                    }
                    let missing = available.minus(covered);
                    // The v2 freezer and device programs are core: the
                    // unified hierarchy stands in when v1 has neither.
                    (!missing.is_empty()
                        || !v1_ctl.contains(Ctl::FREEZER)
                        || !v1_ctl.contains(Ctl::DEVICES))
                    .then_some(missing)
                }
                Layout::Legacy => None,
            };
            if let Some(enable) = wanted {
                plan.push(Placement {
                    base: h.mount_point.clone(),
                    root: h.mount_point.clone(),
                    v2: true,
                    ctl: enable | Ctl::FREEZER | Ctl::DEVICES,
                    enable: enable.v2_enable_line(),
                });
            }
        }
        Ok(self.plan.get_or_init(|| plan))
    }
}

/// One line of `/proc/self/cgroup`.
struct OwnCgroup<'a> {
    v2: bool,
    controllers: &'a str,
    path: &'a str,
}

fn parse_proc_cgroup(text: &str) -> Result<Vec<OwnCgroup<'_>>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: &str| fsio::parse_error(Path::new("/proc/self/cgroup"), reason, line);
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected hierarchy-id:controllers:path"));
        };
        let id: u32 = id
            .parse()
            .map_err(|_| bad("hierarchy id is not a number"))?;
        if !path.starts_with('/') {
            return Err(bad("cgroup path is not absolute"));
        }
        out.push(OwnCgroup {
            v2: id == 0 && controllers.is_empty(),
            controllers,
            path,
        });
    }
    Ok(out)
}

/// The fields of one mountinfo line that matter here.
struct MountLine<'a> {
    root: String,
    mount_point: String,
    fstype: &'a str,
    super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_mountinfo_line(line: &str) -> Result<MountLine<'_>, CgroupError> {
    let bad = |reason: &str| fsio::parse_error(Path::new("/proc/self/mountinfo"), reason, line);
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() < 10 {
        return Err(bad("too few fields"));
    }
    if fields[0].parse::<u64>().is_err() || fields[1].parse::<u64>().is_err() {
        return Err(bad("mount ids are not numbers"));
    }
    if !fields[2].contains(':') {
        return Err(bad("device is not major:minor"));
    }
    let sep = fields[6..]
        .iter()
        .position(|f| *f == "-")
        .map(|i| i + 6)
        .ok_or_else(|| bad("no \" - \" separator before the file system type"))?;
    if fields.len() < sep + 4 {
        return Err(bad("too few fields after the separator"));
    }
    let root = unescape(fields[3]);
    let mount_point = unescape(fields[4]);
    let fstype = fields[sep + 1];
    // Only cgroup mounts are held to this: others (nsfs's "net:[4026532250]"
    // root, say) are legitimately not paths, and are ignored anyway.
    let is_cgroup = fstype == "cgroup" || fstype == "cgroup2";
    if is_cgroup && (!root.starts_with('/') || !mount_point.starts_with('/')) {
        return Err(bad("root or mount point is not absolute"));
    }
    Ok(MountLine {
        root,
        mount_point,
        fstype,
        super_options: fields[sep + 3],
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cgroup lines of /proc/self/mountinfo on the machine this crate was written on.
    const HYBRID_MOUNTINFO: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/e5120e50d1c55ca4e62c4c69abe03971
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    fn mounts(h: &Hierarchies) -> Vec<(&str, CgroupVersion)> {
        h.hierarchies()
            .iter()
            .map(|x| (x.mount_point().to_str().unwrap(), x.version()))
            .collect()
    }

    #[test]
    fn hybrid_host() {
        let h = Hierarchies::from_mountinfo(HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
        assert_eq!(h.layout(), Layout::Hybrid);
        use CgroupVersion::*;
        assert_eq!(
            mounts(&h),
            vec![
                ("/sys/fs/cgroup/cpu", V1),
                ("/sys/fs/cgroup/cpuacct", V1),
                ("/sys/fs/cgroup/cpuset", V1),
                ("/sys/fs/cgroup/memory", V1),
                ("/sys/fs/cgroup/devices", V1),
                ("/sys/fs/cgroup/freezer", V1),
                ("/sys/fs/cgroup/blkio", V1),
                ("/sys/fs/cgroup/pids", V1),
                ("/sys/fs/cgroup/unified", V2),
            ],
            "name=systemd is not ours"
        );
        let mem = h.v1("memory").unwrap();
        assert_eq!(
            mem.own_cgroup(),
            Path::new("/process_api/e5120e50d1c55ca4e62c4c69abe03971")
        );
        assert_eq!(
            mem.process_dir(),
            Path::new("/sys/fs/cgroup/memory/process_api/e5120e50d1c55ca4e62c4c69abe03971")
        );
        assert_eq!(
            h.v1("cpu").unwrap().process_dir(),
            Path::new("/sys/fs/cgroup/cpu")
        );
        assert!(h.v1("systemd").is_none() && h.v1("name=systemd").is_none());

        // The unified hierarchy holds only hugetlb: nothing of ours lives only
        // there and the v1 freezer exists, so the plan leaves it alone.
        h.v2()
            .unwrap()
            .v2_controllers
            .set(vec!["hugetlb".into()])
            .unwrap();
        let plan = h.plan().unwrap();
        assert_eq!(plan.len(), 8, "seven v1 hierarchies and devices");
        assert!(plan.iter().all(|p| !p.v2));
        assert_eq!(
            plan[3].base,
            Path::new("/sys/fs/cgroup/memory/process_api/e5120e50d1c55ca4e62c4c69abe03971")
        );
    }

    #[test]
    fn hybrid_uses_unified_when_a_controller_lives_only_there() {
        // pids is not mounted as v1 here but is available on cgroup2.
        let mi: String = HYBRID_MOUNTINFO
            .lines()
            .filter(|l| !l.contains("cgroup/pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        let h = Hierarchies::from_mountinfo(&mi, HYBRID_CGROUP).unwrap();
        h.v2()
            .unwrap()
            .v2_controllers
            .set(vec!["hugetlb".into(), "pids".into()])
            .unwrap();
        let plan = h.plan().unwrap();
        let v2 = plan.iter().find(|p| p.v2).expect("v2 placement");
        assert_eq!(v2.base, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v2.enable, "+pids");
        assert!(v2.ctl.contains(Ctl::PIDS) && !v2.ctl.contains(Ctl::MEMORY));
    }

    #[test]
    fn hybrid_uses_unified_for_device_rules_without_a_v1_devices_hierarchy() {
        let mi: String = HYBRID_MOUNTINFO
            .lines()
            .filter(|l| !l.contains("cgroup/devices"))
            .map(|l| format!("{l}\n"))
            .collect();
        let h = Hierarchies::from_mountinfo(&mi, HYBRID_CGROUP).unwrap();
        h.v2()
            .unwrap()
            .v2_controllers
            .set(vec!["hugetlb".into()])
            .unwrap();
        let plan = h.plan().unwrap();
        let v2 = plan.iter().find(|p| p.v2).expect("v2 placement");
        assert!(v2.ctl.contains(Ctl::DEVICES), "{:?}", v2.ctl);
        assert!(plan
            .iter()
            .filter(|p| !p.v2)
            .all(|p| !p.ctl.contains(Ctl::DEVICES)));
    }

    #[test]
    fn pure_v2_host() {
        let mi = "\
22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 22 0:25 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:8 - bpf bpf rw,mode=700
";
        let cg = "0::/user.slice/user-1000.slice/session-2.scope\n";
        let h = Hierarchies::from_mountinfo(mi, cg).unwrap();
        assert_eq!(h.layout(), Layout::Unified);
        assert_eq!(mounts(&h), vec![("/sys/fs/cgroup", CgroupVersion::V2)]);
        let v2 = h.v2().unwrap();
        assert_eq!(
            v2.own_cgroup(),
            Path::new("/user.slice/user-1000.slice/session-2.scope")
        );
        v2.v2_controllers
            .set(
                "cpuset cpu io memory hugetlb pids rdma misc"
                    .split(' ')
                    .map(String::from)
                    .collect(),
            )
            .unwrap();
        let plan = h.plan().unwrap();
        assert_eq!(plan.len(), 1);
        assert!(plan[0].v2);
        assert_eq!(
            plan[0].base,
            Path::new("/sys/fs/cgroup"),
            "v2 cgroups go under the root"
        );
        assert_eq!(plan[0].enable, "+cpu +cpuset +memory +pids +io");
    }

    #[test]
    fn legacy_v1_with_comounted_cpu_cpuacct() {
        let mi = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,freezer
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
33 25 0:26 / /run/bind\\040cpu rw,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
";
        let cg = "\
12:freezer:/
8:net_cls,net_prio:/
4:memory:/system.slice/ssh.service
3:cpu,cpuacct:/system.slice/ssh.service
1:name=systemd:/system.slice/ssh.service
";
        let h = Hierarchies::from_mountinfo(mi, cg).unwrap();
        assert_eq!(h.layout(), Layout::Legacy);
        use CgroupVersion::*;
        assert_eq!(
            mounts(&h),
            vec![
                ("/sys/fs/cgroup/cpu,cpuacct", V1),
                ("/sys/fs/cgroup/memory", V1),
                ("/sys/fs/cgroup/freezer", V1),
            ],
            "the co-mounted hierarchy appears once although it is mounted twice"
        );
        let cpu = h.v1("cpu").unwrap();
        assert!(std::ptr::eq(cpu, h.v1("cpuacct").unwrap()));
        assert_eq!(cpu.controllers().unwrap(), ["cpu", "cpuacct"]);
        assert_eq!(
            cpu.process_dir(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/system.slice/ssh.service")
        );
        let plan = h.plan().unwrap();
        assert_eq!(plan.len(), 3);
        assert!(plan[0].ctl.contains(Ctl::CPU) && plan[0].ctl.contains(Ctl::CPUACCT));
        assert!(h.v2().is_none());
    }

    #[test]
    fn bind_mounted_subtree_places_relative_to_the_mount_root() {
        // A container without a cgroup namespace sees its own subtree at the mount point.
        let mi =
            "50 40 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n";
        let cg = "4:memory:/docker/abc/sub\n";
        let h = Hierarchies::from_mountinfo(mi, cg).unwrap();
        assert_eq!(
            h.v1("memory").unwrap().process_dir(),
            Path::new("/sys/fs/cgroup/memory/sub")
        );
    }

    #[test]
    fn non_path_roots_of_other_file_systems_are_fine() {
        let mut mi = String::from(HYBRID_MOUNTINFO);
        mi.push_str("65 64 0:4 net:[4026532250] /run/netns/x rw shared:2 - nsfs nsfs rw\n");
        Hierarchies::from_mountinfo(&mi, HYBRID_CGROUP).unwrap();
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for mi in [
            "hello world\n",
            "1 2 3\n",
            "a b 0:1 / /x rw - cgroup2 cgroup2 rw\n",
            "1 2 0:1 / /x rw cgroup2 cgroup2 rw x y\n",
            "\u{0}\u{1}",
        ] {
            assert!(
                matches!(
                    Hierarchies::from_mountinfo(mi, "0::/\n"),
                    Err(CgroupError::Parse { .. })
                ),
                "{mi:?}"
            );
        }
        for cg in ["garbage\n", "x:memory:/\n", "4:memory:relative\n"] {
            assert!(
                matches!(
                    Hierarchies::from_mountinfo(HYBRID_MOUNTINFO, cg),
                    Err(CgroupError::Parse { .. })
                ),
                "{cg:?}"
            );
        }
        // Well formed, but no cgroup mounted at all.
        let mi = "23 1 0:21 / /sys rw - sysfs sysfs rw\n";
        assert!(matches!(
            Hierarchies::from_mountinfo(mi, ""),
            Err(CgroupError::NoHierarchy { .. })
        ));
        assert!(matches!(
            Hierarchies::from_mountinfo("", ""),
            Err(CgroupError::NoHierarchy { .. })
        ));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trail\\04"), "/trail\\04");
    }
}
