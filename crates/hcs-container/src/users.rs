//! Resolving `ProcessParameters.User` against the container's own
//! `/etc/passwd` and `/etc/group` (read through `/proc/<init>/root`, never the
//! host's).

use std::path::Path;

use hcs_errors::{HResult, HcsError, HcsResult};

/// Who a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory, for `HOME`.
    pub home: String,
    /// User name, for `USER`.
    pub name: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd(root: &Path) -> Vec<PasswdEntry> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// (name, gid, members) of every group.
fn groups(root: &Path) -> Vec<(String, u32, Vec<String>)> {
    std::fs::read_to_string(root.join("etc/group"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`; empty = root)
/// against the container root `root`.
pub fn resolve(root: &Path, user: Option<&str>) -> HcsResult<Identity> {
    let user = user.map(str::trim).filter(|u| !u.is_empty()).unwrap_or("0");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let users = passwd(root);
    let entry = match u.parse::<u32>() {
        Ok(uid) => users
            .into_iter()
            .find(|e| e.uid == uid)
            .map(Ok)
            .unwrap_or_else(|| {
                Err(PasswdEntry {
                    name: uid.to_string(),
                    uid,
                    gid: 0,
                    home: "/".to_string(),
                })
            }),
        Err(_) => users
            .into_iter()
            .find(|e| e.name == u)
            .map(Ok)
            .ok_or_else(|| {
                HcsError::new(
                    HResult::ERROR_NOT_FOUND,
                    format!("ProcessParameters.User: no user {u:?} in the container's /etc/passwd"),
                )
            })?,
    };
    // A numeric uid that has no passwd entry is still usable, as in runc.
    let (entry, known) = match entry {
        Ok(e) => (e, true),
        Err(e) => (e, false),
    };
    let all_groups = groups(root);
    let gid =
        match g {
            None => entry.gid,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => all_groups
                    .iter()
                    .find(|(n, _, _)| n == g)
                    .map(|(_, gid, _)| *gid)
                    .ok_or_else(|| {
                        HcsError::new(
                    HResult::ERROR_NOT_FOUND,
                    format!("ProcessParameters.User: no group {g:?} in the container's /etc/group"),
                )
                    })?,
            },
        };
    let mut supplementary: Vec<u32> = if known {
        all_groups
            .iter()
            .filter(|(_, _, m)| m.contains(&entry.name))
            .map(|(_, gid, _)| *gid)
            .collect()
    } else {
        Vec::new()
    };
    supplementary.retain(|x| *x != gid);
    supplementary.insert(0, gid);
    Ok(Identity {
        uid: entry.uid,
        gid,
        groups: supplementary,
        home: entry.home,
        name: entry.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:A:/home/alice:/bin/sh\nbroken line\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nusers:x:100:\nwheel:x:10:alice,bob\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn names_ids_and_groups() {
        let r = root();
        let a = resolve(r.path(), Some("alice")).unwrap();
        assert_eq!(
            (a.uid, a.gid, a.groups.clone(), a.home.as_str()),
            (1000, 100, vec![100, 10], "/home/alice")
        );
        let b = resolve(r.path(), Some("1000:wheel")).unwrap();
        assert_eq!((b.uid, b.gid), (1000, 10));
        let c = resolve(r.path(), Some("4242")).unwrap();
        assert_eq!((c.uid, c.gid), (4242, 0));
        assert_eq!(resolve(r.path(), None).unwrap().uid, 0);
        let e = resolve(r.path(), Some("mallory")).unwrap_err();
        assert_eq!(e.hresult, HResult::ERROR_NOT_FOUND);
        assert!(e.message.contains("mallory"));
    }
}
