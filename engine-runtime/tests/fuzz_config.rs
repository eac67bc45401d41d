//! Fuzzing (bolero) of `config.json` loading and validation, the path
//! `engine-runc create` takes before it touches the system: parse
//! ([`load_spec`]), then the process, namespace, rootfs and seccomp plans.
//! In `cargo test` it runs random inputs for a few seconds; under
//! `cargo bolero test fuzz_config_json` it runs as a coverage-guided fuzzer.
//! Inputs whose first byte is 0 are fed raw; the others edit a valid config
//! (runc's default `spec`), so the validation past the parser is reached.

use engine_runtime::linux::{load_spec, namespaces::NsPlan, process::ProcPlan, rootfs::RootfsPlan};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// A cursor over the fuzzer's bytes: every choice the mutator makes is read
/// from the input, so an input replays exactly.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value of any JSON type, biased towards the odd ones (empty, huge,
/// negative, hostile paths).
fn any_value(c: &mut Cursor, keys: &[&str], strings: &[&str], depth: usize) -> Value {
    match c.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(c.byte().is_multiple_of(2)),
        2 => json!(c.i64()),
        3 => [json!(u64::MAX), json!(-1), json!(0), json!(1u64 << 53), json!(i64::MIN), json!(u32::MAX as u64 + 1)]
            [c.below(6)]
        .clone(),
        4 => match c.below(3) {
            0 => json!(strings[c.below(strings.len())]),
            1 => json!("a".repeat(usize::from(c.byte()) * 40)),
            _ => json!(String::from_utf8_lossy(&(0..c.below(24)).map(|_| c.byte()).collect::<Vec<_>>())),
        },
        5 => Value::Array((0..c.below(4)).map(|_| any_value(c, keys, strings, depth + 1)).collect()),
        _ => Value::Object(
            (0..c.below(4))
                .map(|_| (keys[c.below(keys.len())].to_string(), any_value(c, keys, strings, depth + 1)))
                .collect(),
        ),
    }
}

/// Apply a few input-chosen edits to `v`: replace, add or remove a value at a
/// path chosen by descending the tree.
fn mutate(v: &mut Value, c: &mut Cursor, keys: &[&str], strings: &[&str]) {
    for _ in 0..1 + c.below(6) {
        if c.done() {
            return;
        }
        // Choose the path on a shared walk, then edit through a JSON pointer.
        let mut ptr = String::new();
        let mut at = &*v;
        loop {
            let stop = c.below(4) == 0;
            match at {
                Value::Object(m) if !m.is_empty() && !stop => {
                    let k = m.keys().nth(c.below(m.len())).unwrap();
                    ptr.push('/');
                    ptr.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    at = &m[k];
                }
                Value::Array(a) if !a.is_empty() && !stop => {
                    let i = c.below(a.len());
                    ptr.push_str(&format!("/{i}"));
                    at = &a[i];
                }
                _ => break,
            }
        }
        let at = v.pointer_mut(&ptr).unwrap();
        match (c.below(3), &mut *at) {
            (0, Value::Object(m)) => {
                m.insert(keys[c.below(keys.len())].to_string(), any_value(c, keys, strings, 0));
            }
            (1, Value::Object(m)) if !m.is_empty() => {
                let k = m.keys().nth(c.below(m.len())).unwrap().clone();
                m.remove(&k);
            }
            (0, Value::Array(a)) => a.push(any_value(c, keys, strings, 0)),
            _ => *at = any_value(c, keys, strings, 0),
        }
    }
}

const KEYS: &[&str] = &[
    "ociVersion",
    "process",
    "args",
    "env",
    "cwd",
    "user",
    "uid",
    "gid",
    "umask",
    "additionalGids",
    "capabilities",
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
    "rlimits",
    "type",
    "hard",
    "soft",
    "terminal",
    "consoleSize",
    "height",
    "width",
    "noNewPrivileges",
    "oomScoreAdj",
    "root",
    "path",
    "readonly",
    "hostname",
    "domainname",
    "mounts",
    "destination",
    "source",
    "options",
    "linux",
    "namespaces",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "devices",
    "major",
    "minor",
    "fileMode",
    "resources",
    "cgroupsPath",
    "seccomp",
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "syscalls",
    "names",
    "action",
    "errnoRet",
    "index",
    "value",
    "valueTwo",
    "op",
    "listenerPath",
    "flags",
    "sysctl",
    "maskedPaths",
    "readonlyPaths",
    "rootfsPropagation",
    "personality",
    "domain",
    "hooks",
    "prestart",
    "createRuntime",
    "timeout",
    "annotations",
    "memory",
    "limit",
    "pids",
    "cpu",
    "shares",
    "quota",
];

const STRINGS: &[&str] = &[
    "",
    "/",
    ".",
    "..",
    "../../..",
    "/proc/self/fd/3",
    "/proc/self/exe",
    "rootfs",
    "/dev/null",
    "mount",
    "pid",
    "user",
    "network",
    "ipc",
    "uts",
    "cgroup",
    "time",
    "bind",
    "rbind",
    "ro",
    "nosuid",
    "proc",
    "tmpfs",
    "CAP_SYS_ADMIN",
    "CAP_NOPE",
    "RLIMIT_NOFILE",
    "RLIMIT_NOPE",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_NOTIFY",
    "SCMP_ARCH_X86_64",
    "SCMP_CMP_EQ",
    "getcwd",
    "no-such-syscall",
    "net.ipv4.ip_forward",
    "kernel.shm_rmid_forced",
    "1.0.2",
    "\u{0}",
    "a\u{0}b",
    "c",
    "b",
    "p",
    "LINUX32",
    "private",
    "rslave",
    "-1",
    "0:0",
    "1000",
];

/// What `engine-runc create` checks before cloning; must never panic.
fn validate(bundle: &Path) -> engine_core::Result<()> {
    let spec = load_spec(bundle)?;
    if let Some(p) = spec.process() {
        ProcPlan::new(p)?;
    }
    let linux = spec.linux().as_ref();
    NsPlan::new(linux.and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]))?;
    RootfsPlan::new(&spec, bundle, false)?;
    if let Some(s) = linux.and_then(|l| l.seccomp().as_ref()) {
        engine_runtime::seccomp::compile(s)?;
    }
    Ok(())
}

fn check(bundle: &Path, seed: &Value, input: &[u8]) {
    let data = match input.split_first() {
        Some((0, raw)) => raw.to_vec(),
        _ => {
            let mut v = seed.clone();
            mutate(&mut v, &mut Cursor(input), KEYS, STRINGS);
            serde_json::to_vec(&v).unwrap()
        }
    };
    std::fs::write(bundle.join("config.json"), &data).unwrap();
    if let Err(e) = validate(bundle) {
        // A refusal is fine; it must say something.
        assert!(!e.to_string().is_empty());
    }
}

fn bundle() -> (tempfile::TempDir, Value) {
    let dir = tempfile::Builder::new().prefix("fuzz-bundle-").tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    let mut seed = serde_json::to_value(oci_spec::runtime::Spec::default()).unwrap();
    seed["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}],
    });
    seed["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]);
    (dir, seed)
}

#[test]
fn fuzz_config_json() {
    let (dir, seed) = bundle();
    let path = dir.path().to_path_buf();
    let runs = std::sync::atomic::AtomicUsize::new(0);
    bolero::check!().with_test_time(Duration::from_secs(4)).with_max_len(2048).for_each(|input: &[u8]| {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        check(&path, &seed, input)
    });
    assert!(runs.into_inner() > 50, "the fuzzer hardly ran");
}

#[test]
fn the_unmodified_seed_is_valid() {
    let (dir, seed) = bundle();
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&seed).unwrap()).unwrap();
    validate(dir.path()).unwrap();
}
