//! `COPY` and `ADD` sources: resolved in a root (the context or another
//! stage's root filesystem) that is never left (openat2 `RESOLVE_IN_ROOT`
//! through [`engine_archive::ContainerRoot`]), symbolic links copied as
//! links, `.dockerignore` applied, rewritten into one tar of destination
//! paths with the owner and mode asked for, and a content hash for the
//! cache.

use crate::ignore::{has_wildcards, matches, DockerIgnore};
use engine_archive::ContainerRoot;
use engine_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// What to copy and how.
#[derive(Clone, Debug)]
pub(crate) struct CopyPlan {
    /// The instruction (`COPY`/`ADD`), for messages.
    pub keyword: String,
    /// Source paths or patterns, relative to the source root.
    pub sources: Vec<String>,
    /// Absolute destination in the image.
    pub dest: String,
    /// Owner of everything copied.
    pub owner: (u32, u32),
    /// Mode of everything copied, if asked.
    pub mode: Option<u32>,
    /// Unpack local tar archives (`ADD`).
    pub unpack: bool,
}

/// A tar of destination paths, ready to extract at `/`, and its hash.
#[derive(Debug)]
pub(crate) struct CopyTar {
    pub tar: Vec<u8>,
    pub hash: String,
}

fn clean(src: &str, keyword: &str) -> Result<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir if parts.pop().is_none() => {
                return Err(Error::invalid(
                    format!("{keyword} source {src:?}"),
                    "forbidden path outside the build context",
                ));
            }
            _ => {}
        }
    }
    Ok(parts.join("/"))
}

/// Every path under `dir` (relative, `/`-separated), links not followed.
fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir.join(rel)) else { return };
    let mut names: Vec<_> = rd.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.push(r.clone());
        if is_dir {
            walk(dir, &r, out);
        }
    }
}

fn is_archive(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b]) || (data.len() > 262 && &data[257..262] == b"ustar")
}

struct Out {
    tar: tar::Builder<Vec<u8>>,
    hash: Sha256,
    plan: CopyPlan,
}

impl Out {
    fn add(&mut self, h: &tar::Header, path: &str, data: &[u8], link: Option<&Path>) -> Result<()> {
        let mut nh = tar::Header::new_gnu();
        let kind = h.entry_type();
        nh.set_entry_type(kind);
        let mut mode = h.mode().unwrap_or(0o644);
        if let Some(m) = self.plan.mode {
            mode = m;
        }
        nh.set_mode(mode);
        nh.set_uid(self.plan.owner.0 as u64);
        nh.set_gid(self.plan.owner.1 as u64);
        nh.set_mtime(h.mtime().unwrap_or(0));
        nh.set_size(data.len() as u64);
        let path = path.trim_start_matches('/');
        let what = || format!("{} {path}", self.plan.keyword);
        self.hash.update(format!("{path}\0{kind:?}\0{mode:o}\0{:?}\0{}\0", self.plan.owner, data.len()));
        if let Some(l) = link {
            self.hash.update(l.as_os_str().as_encoded_bytes());
            self.tar.append_link(&mut nh, path, l).map_err(|e| Error::io(what(), e))?;
        } else {
            self.hash.update(data);
            self.tar.append_data(&mut nh, path, data).map_err(|e| Error::io(what(), e))?;
        }
        Ok(())
    }

    /// Append the entries of tar `input` (from `write_tar`, or an archive
    /// `ADD` unpacks), mapping each entry name with `map` (`None` skips it).
    fn add_tar(&mut self, input: impl Read, map: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let mut ar = tar::Archive::new(input);
        let entries = ar.entries().map_err(|e| Error::invalid("archive", e.to_string()))?;
        for e in entries {
            let mut e = e.map_err(|e| Error::invalid("archive", e.to_string()))?;
            let name = e.path().map_err(|e| Error::invalid("archive", e.to_string()))?.to_string_lossy().into_owned();
            let name = name.trim_start_matches("./").trim_end_matches('/').to_string();
            let Some(dest) = map(&name) else { continue };
            let h = e.header().clone();
            let link = e.link_name().ok().flatten().map(|l| l.into_owned());
            let mut data = Vec::new();
            if h.entry_type().is_file() {
                e.read_to_end(&mut data).map_err(|er| Error::io(format!("read {name}"), er))?;
            }
            let link = if h.entry_type().is_symlink() || h.entry_type().is_hard_link() { link } else { None };
            // Hard links inside a copied tree point at destination names.
            let link = match (h.entry_type().is_hard_link(), link) {
                (true, Some(l)) => map(l.to_string_lossy().trim_start_matches("./")).map(PathBuf::from),
                (_, l) => l,
            };
            self.add(&h, &dest, &data, link.as_deref())?;
        }
        Ok(())
    }
}

fn join(dest: &str, rest: &str) -> String {
    let d = dest.trim_end_matches('/');
    if rest.is_empty() {
        if d.is_empty() {
            "/".into()
        } else {
            d.to_string()
        }
    } else {
        format!("{d}/{rest}")
    }
}

/// Resolve the plan's sources in `root` (the host directory `host_dir`,
/// with `ignore` when it is the build context) and make the tar.
pub(crate) fn make_tar(root_dir: &Path, ignore: Option<&DockerIgnore>, plan: &CopyPlan) -> Result<CopyTar> {
    let root = ContainerRoot::open_dir(root_dir)?;
    let ignored = |rel: &str| ignore.is_some_and(|i| !rel.is_empty() && i.ignored(rel));
    let mut all: Option<Vec<String>> = None;
    let mut resolved: Vec<String> = Vec::new();
    let mut wildcard = false;
    for src in &plan.sources {
        let c = clean(src, &plan.keyword)?;
        if has_wildcards(&c) {
            wildcard = true;
            let list = all.get_or_insert_with(|| {
                let mut v = Vec::new();
                walk(root_dir, "", &mut v);
                v
            });
            let hits: Vec<String> = list.iter().filter(|p| matches(&c, p) && !ignored(p)).cloned().collect();
            if hits.is_empty() {
                return Err(Error::invalid(
                    format!("{} source {src:?}", plan.keyword),
                    "no source files were specified (the pattern matches nothing in the build context)",
                ));
            }
            resolved.extend(hits);
        } else {
            let missing = || {
                Error::invalid(
                    format!("{} source {src:?}", plan.keyword),
                    format!(
                        "file not found in build context or excluded by .dockerignore: stat {c}: file does not exist"
                    ),
                )
            };
            if ignored(&c) {
                return Err(missing());
            }
            match root.stat(&c) {
                Ok(_) => resolved.push(c),
                Err(e) if e.is_not_found() => return Err(missing()),
                Err(e) => return Err(e),
            }
        }
    }
    let into_dir = plan.dest.ends_with('/') || resolved.len() > 1 || wildcard;
    let mut out = Out { tar: tar::Builder::new(Vec::new()), hash: Sha256::new(), plan: plan.clone() };
    for src in &resolved {
        let st = root.stat(src)?;
        let base = st.name.clone();
        if plan.unpack && !st.is_dir() && !st.is_symlink() {
            let data = root.read_file(src)?;
            if is_archive(&data) {
                let dest = plan.dest.clone();
                let map = |n: &str| (!n.is_empty() && n != ".").then(|| join(&dest, n));
                if data.starts_with(&[0x1f, 0x8b]) {
                    out.add_tar(flate2::read::GzDecoder::new(&data[..]), &map)?;
                } else {
                    out.add_tar(&data[..], &map)?;
                }
                continue;
            }
        }
        let mut buf = Vec::new();
        root.write_tar(if src.is_empty() { "/" } else { src }, &mut buf)?;
        let dest = plan.dest.clone();
        if st.is_dir() {
            // A directory's contents go into the destination.
            let top = base.clone();
            let src_rel = src.clone();
            let map = move |n: &str| {
                let rest = if src_rel.is_empty() {
                    n
                } else if n == top {
                    return None;
                } else {
                    n.strip_prefix(&format!("{top}/"))?
                };
                if rest.is_empty() || rest == "." {
                    return None;
                }
                let rel = if src_rel.is_empty() { rest.to_string() } else { format!("{src_rel}/{rest}") };
                if ignored(&rel) {
                    return None;
                }
                Some(join(&dest, rest))
            };
            out.add_tar(&buf[..], &map)?;
        } else {
            let target = if into_dir { join(&dest, &base) } else { dest.clone() };
            let map = move |_: &str| Some(target.clone());
            out.add_tar(&buf[..], &map)?;
        }
    }
    let hash = hex::encode(out.hash.finalize());
    let mut tar = out.tar.into_inner().map_err(|e| Error::io("finish the copy archive", e))?;
    tar.flush().ok();
    Ok(CopyTar { tar, hash })
}

/// Resolve `user[:group]` (names or numbers) through the root's
/// `/etc/passwd` and `/etc/group` (`--chown`).
pub(crate) fn resolve_owner(root_dir: &Path, spec: &str) -> Result<(u32, u32)> {
    let root = ContainerRoot::open_dir(root_dir)?;
    let read = |p: &str| root.read_file(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let (u, g) = spec.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((spec, None));
    let find = |file: &str, name: &str, field: usize| -> Option<(u32, Option<u32>)> {
        read(file).lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() > field && f[0] == name).map(
            |f| (f[2].parse().unwrap_or(0), f.get(3).and_then(|g| g.parse().ok()).filter(|_| file == "etc/passwd")),
        )
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => find("etc/passwd", u, 3).ok_or_else(|| {
            Error::invalid("--chown", format!("unable to find user {u}: no matching entries in passwd file"))
        })?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                find("etc/group", g, 2)
                    .ok_or_else(|| {
                        Error::invalid(
                            "--chown",
                            format!("unable to find group {g}: no matching entries in group file"),
                        )
                    })?
                    .0
            }
        },
        None => primary.unwrap_or(uid),
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<(String, Option<String>, u32, u64)> {
        let mut ar = tar::Archive::new(tar);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    link,
                    e.header().mode().unwrap(),
                    e.header().uid().unwrap(),
                )
            })
            .collect()
    }

    fn plan(sources: &[&str], dest: &str) -> CopyPlan {
        CopyPlan {
            keyword: "COPY".into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            owner: (0, 0),
            mode: None,
            unpack: false,
        }
    }

    #[test]
    fn sources_wildcards_ignore_links_and_hash() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("dir/sub")).unwrap();
        std::fs::write(r.join("dir/a.txt"), "a").unwrap();
        std::fs::write(r.join("dir/sub/b.log"), "b").unwrap();
        std::fs::write(r.join("top.txt"), "t").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", r.join("dir/link")).unwrap();
        let ig = DockerIgnore::parse("**/*.log\n");
        // A directory's contents go under the destination; ignored files stay out; links stay links.
        let t = make_tar(r, Some(&ig), &plan(&["dir"], "/dst")).unwrap();
        let n = names(&t.tar);
        let paths: Vec<&str> = n.iter().map(|x| x.0.as_str()).collect();
        assert!(
            paths.contains(&"dst/a.txt") && paths.contains(&"dst/sub") && !paths.contains(&"dst/sub/b.log"),
            "{n:?}"
        );
        let link = n.iter().find(|x| x.0 == "dst/link").unwrap();
        assert_eq!(link.1.as_deref(), Some("/etc/shadow"));
        // Wildcards copy into the destination directory; a file to a file name.
        let t = make_tar(r, None, &plan(&["*.txt"], "/w")).unwrap();
        assert_eq!(names(&t.tar)[0].0, "w/top.txt");
        let mut p = plan(&["top.txt"], "/renamed");
        p.mode = Some(0o600);
        p.owner = (7, 8);
        let t2 = make_tar(r, None, &p).unwrap();
        assert_eq!(names(&t2.tar), vec![("renamed".into(), None, 0o600, 7)]);
        // The hash follows content.
        let before = make_tar(r, None, &plan(&["top.txt"], "/x")).unwrap().hash;
        std::fs::write(r.join("top.txt"), "changed").unwrap();
        assert_ne!(make_tar(r, None, &plan(&["top.txt"], "/x")).unwrap().hash, before);
        // Missing, ignored and escaping sources are named.
        let e = make_tar(r, None, &plan(&["nope.txt"], "/x")).unwrap_err().to_string();
        assert!(e.contains("nope.txt"), "{e}");
        let e = make_tar(r, Some(&ig), &plan(&["dir/sub/b.log"], "/x")).unwrap_err().to_string();
        assert!(e.contains("excluded by .dockerignore"), "{e}");
        let e = make_tar(r, None, &plan(&["../../etc/passwd"], "/x")).unwrap_err().to_string();
        assert!(e.contains("outside the build context"), "{e}");
    }

    #[test]
    fn add_unpacks_local_archives() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(2);
        b.append_data(&mut h, "in/x", &b"hi"[..]).unwrap();
        std::fs::write(d.path().join("a.tgz"), b.into_inner().unwrap().finish().unwrap()).unwrap();
        let mut p = plan(&["a.tgz"], "/opt/");
        p.unpack = true;
        let t = make_tar(d.path(), None, &p).unwrap();
        assert_eq!(names(&t.tar).last().unwrap().0, "opt/in/x");
        p.unpack = false;
        let t = make_tar(d.path(), None, &p).unwrap();
        assert_eq!(names(&t.tar)[0].0, "opt/a.tgz");
    }
}
