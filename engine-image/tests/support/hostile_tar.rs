//! A hostile-archive generator shared by the tar fuzzers (layer unpacking
//! here, `engine-archive`'s `extract_tar`, which includes this file by path):
//! archives built from the fuzzer's bytes with `..`, absolute names and links,
//! symlinked parents, hard links out, GNU/PAX long names, whiteouts, devices
//! and truncation, and a scratch layout whose "outside" is checked untouched.
#![allow(dead_code)]

/// A cursor over the fuzzer's bytes: every choice is read from the input, so
/// an input replays exactly.
pub struct Cursor<'a>(pub &'a [u8]);

impl Cursor<'_> {
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Names and link targets an archive may use to get out of its directory;
/// `@OUT` stands for the absolute path of the sibling directory `outside`.
pub const NAMES: &[&str] = &[
    "a",
    "a/b",
    "d/",
    "d/f",
    "l",
    "l/f",
    "l/sub/f",
    "h",
    "../outside/x",
    "../../outside/x",
    "a/../../outside/y",
    "/",
    "./",
    ".",
    "..",
    "@OUT/abs",
    "/abs",
    "d/.wh.f",
    "d/.wh..wh..opq",
    ".wh.a",
    ".wh.l",
    "dev",
    "p",
    "a//b",
    "a/./b",
    "l/../x",
    "\u{0}n",
    "e\u{301}",
    "x\u{1F600}",
];
pub const TARGETS: &[&str] = &[
    "..",
    "../outside",
    "../../outside",
    "@OUT",
    "@OUT/canary",
    "/",
    "/proc/self/root",
    "a",
    "d",
    "l",
    "h",
    "../outside/canary",
    "l/x",
    "",
    ".",
    "/etc",
];

pub fn pick(c: &mut Cursor, list: &[&str], out: &str) -> String {
    let s = list[c.below(list.len())].replace("@OUT", out);
    if c.below(8) == 0 {
        // A long name, for the GNU and PAX long-name paths.
        format!("{}/{s}", "n".repeat(90 + c.below(120)))
    } else {
        s
    }
}

/// Write `s` into a header field, raw (the tar crate's setters refuse `..`).
pub fn put(field: &mut [u8], s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(field.len());
    field[..n].copy_from_slice(&b[..n]);
}

/// An archive made from the input: entries of every type (file, directory,
/// symlink, hard link, fifo, device, GNU long name and link, PAX path),
/// with names and targets picked to escape, and sometimes truncated.
pub fn hostile_tar(c: &mut Cursor, out: &str) -> Vec<u8> {
    let mut tar = Vec::new();
    let mut entries = 0;
    while !c.done() && entries < 24 {
        entries += 1;
        let name = pick(c, NAMES, out);
        let target = pick(c, TARGETS, out);
        let kind = c.below(9);
        if name.len() > 99 || kind == 7 {
            // A GNU long name ('L') or a PAX path record ('x') for the next entry.
            let (typ, data) = if c.byte().is_multiple_of(2) {
                (b'L', format!("{name}\0").into_bytes())
            } else {
                // "<len> path=<name>\n", where <len> counts its own digits.
                let body = format!(" path={name}\n");
                let mut n = body.len();
                while n.to_string().len() + body.len() != n {
                    n = n.to_string().len() + body.len();
                }
                (b'x', format!("{n}{body}").into_bytes())
            };
            let mut h = tar::Header::new_gnu();
            put(&mut h.as_old_mut().name, "././@LongLink");
            h.set_entry_type(tar::EntryType::new(typ));
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.extend_from_slice(h.as_bytes());
            tar.extend_from_slice(&data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        let mut h = tar::Header::new_gnu();
        put(&mut h.as_old_mut().name, &name);
        let (typ, size) = match kind {
            0 | 7 => (tar::EntryType::Regular, c.below(700)),
            1 => (tar::EntryType::Directory, 0),
            2 => (tar::EntryType::Symlink, 0),
            3 => (tar::EntryType::Link, 0),
            4 => (tar::EntryType::Fifo, 0),
            5 => (tar::EntryType::Char, 0),
            6 => (tar::EntryType::Block, 0),
            _ => (tar::EntryType::new(c.byte()), c.below(64)),
        };
        h.set_entry_type(typ);
        if matches!(kind, 2 | 3) {
            put(&mut h.as_old_mut().linkname, &target);
        }
        if matches!(kind, 5 | 6) {
            let _ = h.set_device_major(1);
            let _ = h.set_device_minor(3);
        }
        h.set_mode([0o644, 0o755, 0o4755, 0o7777, 0o000][c.below(5)]);
        h.set_uid(c.below(3) as u64 * 1000);
        h.set_gid(0);
        h.set_mtime(c.byte() as u64 * 1_000_000);
        h.set_size(size as u64);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend((0..size).map(|i| i as u8));
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    if !c.byte().is_multiple_of(4) {
        tar.extend_from_slice(&[0u8; 1024]);
    } else {
        let cut = tar.len().saturating_sub(c.below(600));
        tar.truncate(cut);
    }
    tar
}

/// Every path under `dir` (relative), sorted.
pub fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// One case's directories: `root` (where the archive goes), its sibling
/// `outside` holding `canary`, both in a fresh directory.
pub struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    pub fn new(base: &std::path::Path) -> Case {
        let dir = tempfile::Builder::new().prefix("case-").tempdir_in(base).unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/canary"), "canary").unwrap();
        Case { dir }
    }
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
    pub fn outside(&self) -> String {
        self.dir.path().join("outside").display().to_string()
    }
    /// Nothing changed beside `root`: `outside` holds only the untouched
    /// canary, and the case directory only `root` and `outside`.
    pub fn assert_nothing_outside(&self, input: &[u8]) {
        let out = self.dir.path().join("outside");
        assert_eq!(tree(&out), vec!["canary".to_string()], "written outside the directory; input {input:?}");
        let canary = std::fs::symlink_metadata(out.join("canary")).unwrap();
        assert!(canary.file_type().is_file() && canary.len() == 6, "canary replaced; input {input:?}");
        let links = std::os::unix::fs::MetadataExt::nlink(&canary);
        assert_eq!(links, 1, "a hard link to a file outside was made; input {input:?}");
        assert_eq!(std::fs::read(out.join("canary")).unwrap(), b"canary", "canary changed; input {input:?}");
        assert_eq!(tree(self.dir.path()).iter().filter(|p| !p.starts_with("root")).count(), 2, "input {input:?}");
    }
}
