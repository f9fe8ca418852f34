//! Resolving a process's user from the guest's /etc/passwd and /etc/group
//! (read directly: a static binary should not go through NSS).

use hcs_agent_protocol::User;

use crate::error::{AgentError, Result};

/// Credentials a child switches to before exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the primary one included).
    pub groups: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

fn read_db(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn passwd_entries(db: &str) -> impl Iterator<Item = PasswdEntry> + '_ {
    db.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?.to_string();
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(PasswdEntry { name, uid, gid })
    })
}

/// `(name, gid, members)` of each /etc/group line.
fn group_entries(db: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> + '_ {
    db.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
            .collect();
        Some((name, gid, members))
    })
}

/// Resolves a request's user and, with `additional_gids`, replaces its
/// supplementary groups by exactly those (OCI `user.additionalGids`);
/// `None` keeps the agent's own credentials.
pub fn resolve(user: &User<'_>, additional_gids: Option<Vec<u32>>) -> Result<Option<Credentials>> {
    let creds = match (resolve_user(user)?, additional_gids) {
        (creds, None) => creds,
        (Some(c), Some(groups)) => Some(Credentials { groups, ..c }),
        // Groups without a user: the agent's own ids with those groups.
        (None, Some(groups)) => Some(Credentials {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            groups,
        }),
    };
    Ok(creds)
}

fn resolve_user(user: &User<'_>) -> Result<Option<Credentials>> {
    match *user {
        User::Default => Ok(None),
        User::Id { uid, gid } => Ok(Some(Credentials {
            uid,
            gid,
            groups: vec![gid],
        })),
        User::Name(raw) => {
            let spec = std::str::from_utf8(raw)
                .map_err(|_| AgentError::InvalidArgument("user name is not UTF-8".into()))?;
            resolve_spec(spec, &read_db("/etc/passwd"), &read_db("/etc/group")).map(Some)
        }
    }
}

/// Resolves `user[:group]`, each a name or a number.
pub fn resolve_spec(spec: &str, passwd: &str, group: &str) -> Result<Credentials> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(AgentError::InvalidArgument("empty user name".into()));
    }
    let entry =
        passwd_entries(passwd).find(|e| e.name == user_part || e.uid.to_string() == user_part);
    let (uid, mut gid, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.as_str())),
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => return Err(AgentError::UnknownUser(user_part.to_string())),
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(group)
                .find(|(n, _, _)| *n == g)
                .map(|(_, id, _)| id)
                .ok_or_else(|| AgentError::UnknownUser(format!("{user_part} (group \"{g}\")")))?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for (_, id, members) in group_entries(group) {
            if members.contains(&name) && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    Ok(Credentials { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad line\nalice:x:1000:100::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\nwheel:x:10:alice,bob\nnogroup:x:65534:\n";

    #[test]
    fn names_numbers_and_groups() {
        let c = resolve_spec("alice", PASSWD, GROUP).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 1000,
                gid: 100,
                groups: vec![100, 10]
            }
        );
        let c = resolve_spec("nobody:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (65534, 10));
        let c = resolve_spec("4242:7", PASSWD, GROUP).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 4242,
                gid: 7,
                groups: vec![7]
            }
        );
        let c = resolve_spec("1000", PASSWD, GROUP).unwrap();
        assert_eq!(c.gid, 100);
        assert!(matches!(
            resolve_spec("mallory", PASSWD, GROUP),
            Err(AgentError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve_spec("root:nosuch", PASSWD, GROUP),
            Err(AgentError::UnknownUser(_))
        ));
        resolve_spec("", PASSWD, GROUP).unwrap_err();
    }
}
