//! `exec --user`: resolve `name`, `name:group`, `uid`, `uid:gid` (any mix) the
//! way runc does, through the container's own `/etc/passwd` and `/etc/group`.
//!
//! The files are read through `/proc/<init-pid>/root` with `openat2`'s
//! `RESOLVE_IN_ROOT`: a symlink in the container (`/etc/passwd ->
//! /usr/lib/passwd`, or a hostile `-> ../../../../etc/shadow`) resolves
//! inside the container's root, never on the host.
//!
//! ```
//! use engine_runtime::linux::users::{resolve_in, UserDb};
//! let db = UserDb::parse(
//!     "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
//!     "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
//! );
//! let u = resolve_in(&db, "app")?;
//! assert_eq!((u.uid, u.gid, u.additional_gids.clone()), (1000, 1000, vec![10]));
//! assert_eq!(u.home.as_deref(), Some("/home/app"));
//! let u = resolve_in(&db, "app:wheel")?;
//! assert_eq!((u.uid, u.gid), (1000, 10));
//! assert_eq!(resolve_in(&db, "4242:7")?.uid, 4242);
//! # Ok::<(), engine_core::Error>(())
//! ```

use engine_core::{Error, Result};
use std::io::Read;
use std::os::fd::OwnedFd;

/// One `/etc/passwd` entry (the fields `exec` needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

/// A container's user and group database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    /// `/etc/passwd` entries (empty when the file is missing).
    pub users: Vec<PasswdEntry>,
    /// `/etc/group` entries (empty when the file is missing).
    pub groups: Vec<GroupEntry>,
}

/// What `exec --user` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups: the groups listing the user by name, when the
    /// group was not given explicitly (as runc does).
    pub additional_gids: Vec<u32>,
    /// The user's home directory, when the user is in `/etc/passwd`.
    pub home: Option<String>,
}

impl UserDb {
    /// Parse the text of `/etc/passwd` and `/etc/group` (comments, blank and
    /// malformed lines are skipped).
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let users = passwd
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 4 || f[0].is_empty() {
                    return None;
                }
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].trim().parse().ok()?,
                    gid: f[3].trim().parse().ok()?,
                    home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 3 || f[0].is_empty() {
                    return None;
                }
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].trim().parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| m.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                        .unwrap_or_default(),
                })
            })
            .collect();
        UserDb { users, groups }
    }

    /// Read `/etc/passwd` and `/etc/group` of the container whose init is
    /// `pid`, resolving every path inside its root. A missing file is empty.
    pub fn of_container(pid: i32) -> Result<UserDb> {
        let root_path = format!("/proc/{pid}/root");
        let root = nix::fcntl::open(
            root_path.as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open the container's root {root_path}"), e.into()))?;
        let passwd = read_in_root(&root, "etc/passwd", &root_path)?;
        let group = read_in_root(&root, "etc/group", &root_path)?;
        Ok(UserDb::parse(&passwd, &group))
    }
}

/// Read `path` below `root` with every component (symlinks included) resolved
/// inside `root`; `""` when it does not exist.
fn read_in_root(root: &OwnedFd, path: &str, shown: &str) -> Result<String> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match engine_core::fs::retry_on(nix::Error::EAGAIN, || nix::fcntl::openat2(root, path, how)) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(Error::io(format!("open {shown}/{path} inside the container"), e.into())),
    };
    let mut f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|e| Error::io(format!("stat {shown}/{path}"), e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{shown}/{path}"), "is not a regular file"));
    }
    let mut s = String::new();
    // A user database larger than this is not one.
    f.by_ref()
        .take(16 << 20)
        .read_to_string(&mut s)
        .map_err(|e| Error::io(format!("read {shown}/{path} inside the container"), e))?;
    Ok(s)
}

/// Resolve `spec` (`user[:group]`, each a name or a number) in `db`, as runc does:
/// - a user name must exist in `/etc/passwd`; a numeric uid need not;
/// - without `:group`, the group is the user's primary group (0 when the uid
///   is not in `/etc/passwd`) and the supplementary groups are those listing
///   the user in `/etc/group`;
/// - a group name must exist in `/etc/group`; a numeric gid need not.
pub fn resolve_in(db: &UserDb, spec: &str) -> Result<ExecUser> {
    let bad = |why: String| Error::invalid("--user", format!("{spec:?}: {why}"));
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(bad("no user given".into()));
    }
    let entry = match user.parse::<u32>() {
        Ok(uid) => db.users.iter().find(|u| u.uid == uid),
        Err(_) => Some(
            db.users
                .iter()
                .find(|u| u.name == user)
                .ok_or_else(|| bad(format!("no user {user:?} in the container's /etc/passwd")))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user.parse().map_err(|_| bad(format!("{user:?} is not a user")))?,
    };
    let (gid, additional_gids) = match group {
        Some("") => return Err(bad("empty group after ':'".into())),
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => {
                    db.groups
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| bad(format!("no group {g:?} in the container's /etc/group")))?
                        .gid
                }
            };
            (gid, Vec::new())
        }
        None => {
            let gid = entry.map(|e| e.gid).unwrap_or(0);
            let mut extra: Vec<u32> = match entry {
                Some(e) => db.groups.iter().filter(|g| g.members.contains(&e.name)).map(|g| g.gid).collect(),
                None => Vec::new(),
            };
            extra.dedup();
            (gid, extra)
        }
    };
    Ok(ExecUser { uid, gid, additional_gids, home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()) })
}

/// [`resolve_in`] on the user database of the container whose init is `pid`.
pub fn resolve(pid: i32, spec: &str) -> Result<ExecUser> {
    // Plain numbers with a group need no lookup (and work without /etc files).
    if let Some((u, g)) = spec.split_once(':') {
        if let (Ok(uid), Ok(gid)) = (u.parse::<u32>(), g.parse::<u32>()) {
            return Ok(ExecUser { uid, gid, additional_gids: Vec::new(), home: None });
        }
    }
    resolve_in(&UserDb::of_container(pid)?, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> UserDb {
        UserDb::parse(
            "# comment\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nbroken line\n",
            "root:x:0:\nwheel:x:10:root,app\nstaff:x:50: app \napp:x:1001:\n",
        )
    }

    #[test]
    fn names_numbers_and_groups() {
        let d = db();
        assert_eq!(
            resolve_in(&d, "app").unwrap(),
            ExecUser { uid: 1000, gid: 1001, additional_gids: vec![10, 50], home: Some("/home/app".into()) }
        );
        assert_eq!(resolve_in(&d, "1000").unwrap().gid, 1001);
        let u = resolve_in(&d, "app:staff").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (1000, 50, 0));
        assert_eq!((resolve_in(&d, "root:7").unwrap().gid, resolve_in(&d, "4242").unwrap().gid), (7, 0));
        assert_eq!(resolve_in(&d, "4242:wheel").unwrap().gid, 10);
    }

    #[test]
    fn unknown_names_are_named() {
        let d = db();
        let e = resolve_in(&d, "ghost").unwrap_err().to_string();
        assert!(e.contains("ghost") && e.contains("/etc/passwd"), "{e}");
        let e = resolve_in(&d, "app:nogrp").unwrap_err().to_string();
        assert!(e.contains("nogrp") && e.contains("/etc/group"), "{e}");
        assert!(resolve_in(&d, ":1").is_err());
        assert!(resolve_in(&d, "app:").is_err());
    }
}
