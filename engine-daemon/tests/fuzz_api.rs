//! Fuzzing (bolero) of the Docker API's container create body: parse
//! ([`parse_create_body`]) and conversion to the engine's `ContainerConfig`
//! ([`container_config`]) must refuse bad input with an error, never panic.
//! In `cargo test` it runs random inputs for a few seconds; under
//! `cargo bolero test fuzz_create_body` it runs as a coverage-guided fuzzer.
//! Inputs whose first byte is 0 are fed raw; the others edit a full body
//! (every HostConfig option the daemon reads), so the conversion is reached.

#![recursion_limit = "256"]

use engine_daemon::convert::{container_config, parse_create_body};
use serde_json::{json, Value};
use std::time::Duration;

#[path = "../../engine-runtime/tests/support/json_mutate.rs"]
mod json_mutate;
use json_mutate::*;

const KEYS: &[&str] = &[
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "User",
    "WorkingDir",
    "Hostname",
    "Domainname",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "AttachStdin",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
    "HostConfig",
    "NetworkingConfig",
    "Binds",
    "Mounts",
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "TmpfsOptions",
    "SizeBytes",
    "Mode",
    "Tmpfs",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "CpusetCpus",
    "PidsLimit",
    "NetworkMode",
    "AutoRemove",
    "RestartPolicy",
    "Name",
    "MaximumRetryCount",
    "Runtime",
    "ReadonlyRootfs",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "Devices",
    "PathOnHost",
    "PathInContainer",
    "CgroupPermissions",
    "DeviceCgroupRules",
    "GroupAdd",
    "Sysctls",
    "Init",
    "MaskedPaths",
    "ReadonlyPaths",
    "ConsoleSize",
    "LogConfig",
    "Config",
    "PortBindings",
    "HostIp",
    "HostPort",
    "80/tcp",
    "EndpointsConfig",
    "Ulimits",
    "Soft",
    "Hard",
    "ShmSize",
    "Dns",
    "ExtraHosts",
];

const STRINGS: &[&str] = &[
    "",
    "/",
    "..",
    "../../etc",
    "busybox",
    "busybox:latest",
    "a@sha256:00",
    "UPPER",
    "-1",
    "0",
    "9999999999999999999",
    "ALL",
    "all",
    "CAP_SYS_ADMIN",
    "NET_ADMIN",
    "NOPE",
    "seccomp=unconfined",
    "seccomp",
    "seccomp=",
    "no-new-privileges",
    "no-new-privileges:true",
    "no-new-privileges=maybe",
    "apparmor=unconfined",
    "label=disable",
    "/dev/null",
    "/dev/null:/dev/x:rwm",
    "/dev/null:rw",
    "c 1:3 rwm",
    "a *:* m",
    "x y z",
    "/tmp:/data:ro",
    "/tmp:/data:bogus",
    "vol:/data",
    ":",
    "::",
    "a:b:c:d",
    "bind",
    "volume",
    "tmpfs",
    "npipe",
    "size=1k",
    "size=-1",
    "mode=0777",
    "net.ipv4.ip_forward",
    "kernel.shm_rmid_forced",
    "vm.swappiness",
    "no",
    "always",
    "on-failure",
    "unless-stopped",
    "on-failure:3",
    "host",
    "none",
    "bridge",
    "container:x",
    "SIGKILL",
    "SIGNOPE",
    "99",
    "1.5",
    "0-1",
    "1,2",
    "x",
    "json-file",
    "nobody",
    "1000:1000",
    "root:wheel",
    "\u{0}",
    "80/tcp",
    "80/udp",
    "65536/tcp",
    "1-2/tcp",
    "127.0.0.1",
    "::1",
    "8080",
];

fn seed() -> Value {
    json!({
        "Image": "busybox", "Cmd": ["sh", "-c", "true"], "Entrypoint": ["/bin/sh"], "Env": ["A=1", "B"],
        "User": "1000:1000", "WorkingDir": "/srv", "Hostname": "h", "Domainname": "", "Tty": true, "OpenStdin": true,
        "StdinOnce": false, "Labels": {"a": "b"}, "StopSignal": "SIGTERM", "StopTimeout": 3,
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
        // Health checks are not run by this engine: only a null one converts.
        "Healthcheck": null,
        "HostConfig": {
            "Binds": ["/tmp:/data:ro"],
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096, "Mode": 448}},
                       {"Type": "bind", "Source": "/tmp", "Target": "/b", "ReadOnly": true}],
            "Tmpfs": {"/run": "size=1k"}, "Memory": 67108864, "MemorySwap": -1, "NanoCpus": 500000000,
            "CpuShares": 512, "CpusetCpus": "0", "PidsLimit": 10, "NetworkMode": "none", "AutoRemove": false,
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}, "ReadonlyRootfs": true,
            "Privileged": false, "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}],
            "GroupAdd": ["10"], "Sysctls": {"kernel.shm_rmid_forced": "1"},
            "Init": true, "MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": ["/proc/sys"], "ConsoleSize": [24, 80],
            "LogConfig": {"Type": "json-file", "Config": {}},
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
        },
        "NetworkingConfig": {"EndpointsConfig": {}},
    })
}

fn check(seed: &Value, input: &[u8]) {
    let body = match input.split_first() {
        Some((0, raw)) => raw.to_vec(),
        _ => {
            let mut v = seed.clone();
            mutate(&mut v, &mut Cursor(input), KEYS, STRINGS);
            serde_json::to_vec(&v).unwrap()
        }
    };
    if let Ok(b) = parse_create_body(&body) {
        if let Err(e) = container_config(&b, Some("fuzzed".into())) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn fuzz_create_body() {
    let seed = seed();
    let runs = std::sync::atomic::AtomicUsize::new(0);
    bolero::check!().with_test_time(Duration::from_secs(4)).with_max_len(2048).for_each(|input: &[u8]| {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        check(&seed, input)
    });
    assert!(runs.into_inner() > 50, "the fuzzer hardly ran");
}

#[test]
fn the_unmodified_seed_converts() {
    let body = parse_create_body(&serde_json::to_vec(&seed()).unwrap()).unwrap();
    container_config(&body, Some("seed".into())).unwrap();
}
