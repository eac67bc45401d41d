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

#[path = "support/json_mutate.rs"]
mod json_mutate;
use json_mutate::*;

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
