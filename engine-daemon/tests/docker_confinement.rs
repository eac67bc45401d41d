//! Docker's default confinement and its options, through the real docker CLI
//! against engined. Each expected value is what dockerd (20.10+, runc, its
//! default seccomp profile, no AppArmor) answers for the same command; where
//! the engine differs on purpose (`--privileged` gives what the engine holds),
//! the test says so.

mod common;
use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// dockerd's CapEff for a default container: its 14 capabilities.
const DOCKERD_DEFAULT_CAPEFF: &str = "00000000a80425fb";
/// CAP_NET_ADMIN is bit 12; CAP_SYS_ADMIN bit 21.
const NET_ADMIN: u64 = 1 << 12;
const SYS_ADMIN: u64 = 1 << 21;

/// Load `bb:latest`: busybox plus the static `secprobe` helper at /bin/secprobe
/// (busybox has no keyctl/add_key applets).
fn load_probe_image(e: &Engined) {
    let rootfs = e.dir.path().join("rootfs-probe");
    engine_image::build::busybox_rootfs(&rootfs).expect("busybox rootfs");
    engine_init::write_executable(&rootfs.join("bin/secprobe"), engine_init::PROBE).expect("secprobe");
    let tar = e.dir.path().join("probe.tar");
    engine_image::build::image_from_dir(&rootfs, "bb:latest", &tar, &Default::default()).expect("archive");
    e.ok(&["load", "-i", tar.to_str().unwrap()]);
}

fn field(s: &str, k: &str) -> String {
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{k}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {k} in {s}"))
}

/// `docker run --rm <flags> bb grep -E 'Seccomp|NoNewPrivs|CapEff' /proc/self/status`:
/// (CapEff, NoNewPrivs, Seccomp).
fn status(e: &Engined, flags: &[&str]) -> (String, String, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "grep", "-E", "Seccomp|NoNewPrivs|CapEff", "/proc/self/status"]);
    let s = e.ok(&args);
    (field(&s, "CapEff"), field(&s, "NoNewPrivs"), field(&s, "Seccomp"))
}

/// What the engine holds: CapEff & CapBnd of engined (its lifecycle manager runs in it).
fn engine_caps(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let f = |k: &str| u64::from_str_radix(&field(&s, k), 16).unwrap();
    f("CapEff") & f("CapBnd")
}

fn hex(mask: u64) -> String {
    format!("{mask:016x}")
}

#[test]
fn default_container_is_confined_as_under_dockerd() {
    let e = Engined::start();
    load_probe_image(&e);
    // dockerd: CapEff: 00000000a80425fb, NoNewPrivs: 0, Seccomp: 2 (and, on kernels
    // that show it, Seccomp_filters: 1).
    assert_eq!(status(&e, &[]), (DOCKERD_DEFAULT_CAPEFF.into(), "0".into(), "2".into()));
    let s = e.ok(&["run", "--rm", "bb", "cat", "/proc/self/status"]);
    if s.contains("Seccomp_filters:") {
        assert_eq!(field(&s, "Seccomp_filters"), "1", "{s}");
    }

    // Calls the default profile blocks fail with EPERM (errno 1).
    let o = e.docker(&["run", "--rm", "bb", "secprobe", "keyctl", "add_key", "request_key", "unshare-user"]);
    assert_eq!(
        out(&o),
        "keyctl: errno 1\nadd_key: errno 1\nrequest_key: errno 1\nunshare-user: errno 1\n",
        "{}",
        show(&o)
    );
    let o = e.docker(&["run", "--rm", "bb", "unshare", "-U", "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(err(&o).contains("Operation not permitted"), "{}", show(&o));

    // Masked paths read empty (those this kernel has); read-only ones are read-only.
    let script = "for p in /proc/keys /proc/interrupts /proc/timer_list /proc/kcore /proc/sched_debug; do \
                  [ -e $p ] && echo masked $p $(wc -c < $p); done; echo firmware $(ls -A /sys/firmware | wc -l); \
                  echo x > /proc/sys/kernel/domainname || echo sys-ro; \
                  grep -E ' /sys | /proc/sys ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1";
    let o = e.docker(&["run", "--rm", "bb", "sh", "-c", script]);
    let s = out(&o);
    assert!(s.contains("masked /proc/keys 0\n") && s.contains("masked /proc/interrupts 0\n"), "{}", show(&o));
    for l in s.lines().filter(|l| l.starts_with("masked ")) {
        assert!(l.ends_with(" 0"), "{l} is not empty: {}", show(&o));
    }
    assert!(s.contains("firmware 0\n") && s.contains("sys-ro\n"), "{}", show(&o));
    assert!(s.contains("/sys ro\n") && s.contains("/proc/sys ro\n"), "{}", show(&o));

    // /dev has the default devices only, as under dockerd (no -t: no console).
    let o = e.docker(&["run", "--rm", "bb", "ls", "/dev"]);
    let devs: Vec<String> = out(&o).lines().map(|l| l.trim().to_string()).collect();
    for d in ["full", "null", "random", "tty", "urandom", "zero", "pts", "shm", "mqueue"] {
        assert!(devs.iter().any(|x| x == d), "{d} missing: {devs:?}");
    }
    for d in ["kmsg", "loop-control", "fuse", "kvm", "mem", "sda", "vda"] {
        assert!(!devs.iter().any(|x| x == d), "host device {d} in a default container: {devs:?}");
    }

    // An exec'd process is confined the same way.
    e.ok(&["run", "-d", "--name", "c1", "bb", "sleep", "100"]);
    let s = e.ok(&["exec", "c1", "grep", "-E", "Seccomp|NoNewPrivs|CapEff", "/proc/self/status"]);
    assert_eq!((field(&s, "CapEff"), field(&s, "Seccomp")), (DOCKERD_DEFAULT_CAPEFF.into(), "2".into()));
    // Inspect says what is true.
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "c1"])).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(hc["Privileged"], false);
    assert!(hc["CapAdd"].is_null() && hc["CapDrop"].is_null() && hc["SecurityOpt"].is_null(), "{hc}");
    assert!(hc["MaskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/keys"), "{hc}");
    let info = e.ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert_eq!(info.trim(), r#"["name=seccomp,profile=default"]"#);
    e.ok(&["rm", "-f", "c1"]);
}

#[test]
fn capability_and_security_options_change_what_dockerd_changes() {
    let e = Engined::start();
    load_probe_image(&e);
    let default = u64::from_str_radix(DOCKERD_DEFAULT_CAPEFF, 16).unwrap();
    // --cap-drop ALL: CapEff 0.
    assert_eq!(status(&e, &["--cap-drop", "ALL"]).0, hex(0));
    // --cap-add NET_ADMIN adds exactly that bit (also as cap_net_admin, lower case).
    assert_eq!(status(&e, &["--cap-add", "NET_ADMIN"]).0, hex(default | NET_ADMIN));
    assert_eq!(status(&e, &["--cap-add", "cap_net_admin"]).0, hex(default | NET_ADMIN));
    // --cap-drop ALL --cap-add CHOWN: just CHOWN; --cap-drop CHOWN: the default minus bit 0.
    assert_eq!(status(&e, &["--cap-drop", "ALL", "--cap-add", "CHOWN"]).0, hex(1));
    assert_eq!(status(&e, &["--cap-drop", "chown"]).0, hex(default & !1));
    // The seccomp profile follows the capabilities: CAP_SYS_ADMIN allows unshare
    // (not keyctl, which is never allowed).
    let o = e.docker(&["run", "--rm", "--cap-add", "SYS_ADMIN", "bb", "secprobe", "unshare-user", "keyctl"]);
    assert_eq!(out(&o), "unshare-user: ok\nkeyctl: errno 1\n", "{}", show(&o));
    assert_eq!(status(&e, &["--cap-add", "SYS_ADMIN"]).0, hex(default | SYS_ADMIN));

    // --security-opt no-new-privileges: NoNewPrivs 1, rest unchanged.
    assert_eq!(
        status(&e, &["--security-opt", "no-new-privileges"]),
        (DOCKERD_DEFAULT_CAPEFF.into(), "1".into(), "2".into())
    );
    assert_eq!(status(&e, &["--security-opt", "no-new-privileges=false"]).1, "0");
    // seccomp=unconfined: Seccomp 0, keyctl reaches the kernel.
    assert_eq!(status(&e, &["--security-opt", "seccomp=unconfined"]).2, "0");
    let o = e.docker(&["run", "--rm", "--security-opt", "seccomp=unconfined", "bb", "secprobe", "keyctl"]);
    assert_eq!(out(&o), "keyctl: ok\n", "{}", show(&o));
    // A profile file (the CLI sends its content): mkdir denied with EPERM, the rest allowed.
    let profile = e.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = e.docker(&["run", "--rm", "--security-opt", &opt, "bb", "sh", "-c", "mkdir /tmp/d; secprobe keyctl"]);
    assert!(err(&o).contains("Operation not permitted") && out(&o) == "keyctl: ok\n", "{}", show(&o));
    // systempaths=unconfined (the CLI sends MaskedPaths and ReadonlyPaths as []):
    // nothing masked, /proc/sys writable, seccomp and capabilities unchanged.
    let o = e.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        "bb",
        "sh",
        "-c",
        "grep -cE ' /proc/(keys|sys|timer_list) ' /proc/self/mounts; grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out(&o), "0\nSeccomp:\t2\n", "{}", show(&o));
    // apparmor=unconfined is accepted (there is no AppArmor); what cannot be honoured is refused.
    assert_eq!(status(&e, &["--security-opt", "apparmor=unconfined"]).2, "2");
    for (flags, want) in [
        (vec!["--cap-add", "FOO"], r#"invalid CapAdd: unknown capability: "CAP_FOO""#),
        (vec!["--cap-drop", "BAR"], r#"invalid CapDrop: unknown capability: "CAP_BAR""#),
        (vec!["--security-opt", "label=disable"], "label=disable"),
        (vec!["--security-opt", "apparmor=docker-default"], "apparmor=docker-default"),
        (vec!["--security-opt", r#"seccomp={"defaultAction":"SCMP_ACT_NOPE"}"#], "seccomp profile"),
    ] {
        let mut args = vec!["run", "--rm", "--name", "bad"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["bb", "true"]);
        let o = e.docker(&args);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {}", show(&o));
        assert!(err(&o).contains(want), "{flags:?}: {}", show(&o));
    }
    // The API answers 400 for a bad capability, and nothing was created.
    let (code, body) =
        e.http("POST", "/v1.41/containers/create?name=bad", br#"{"Image":"bb","HostConfig":{"CapAdd":["FOO"]}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(r#"unknown capability: \"CAP_FOO\""#), "{body}");
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(std::fs::read_dir(e.data_root().join("containers")).map(|d| d.count()).unwrap_or(0), 0);

    // Inspect reports the options as given.
    e.ok(&[
        "create",
        "--name",
        "c2",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "MKNOD",
        "--security-opt",
        "no-new-privileges",
        "bb",
    ]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "c2"])).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(hc["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["CAP_MKNOD"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
}

#[test]
fn privileged_devices_sysctls_groups_init() {
    let e = Engined::start();
    load_probe_image(&e);
    // --privileged: every capability the engine holds (dockerd asks for all the
    // kernel knows, and fails where one is withheld, as CAP_SYS_RESOURCE is here),
    // no seccomp, host devices, writable /sys and /proc/sys, nothing masked.
    let (capeff, nnp, seccomp) = status(&e, &["--privileged"]);
    assert_eq!((capeff, nnp, seccomp), (hex(engine_caps(e.pid())), "0".into(), "0".into()));
    let script = "ls /dev; grep -E ' /sys | /proc/sys ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1; \
                  echo keys $(wc -c < /proc/keys)";
    let o = e.docker(&["run", "--rm", "--privileged", "bb", "sh", "-c", script]);
    let s = out(&o);
    let host_devs: Vec<String> = ["kmsg", "loop-control", "fuse", "kvm", "loop0"]
        .iter()
        .filter(|d| std::fs::metadata(format!("/dev/{d}")).is_ok())
        .map(|d| d.to_string())
        .collect();
    assert!(!host_devs.is_empty());
    for d in &host_devs {
        assert!(s.lines().any(|l| l == d), "host device {d} missing: {}", show(&o));
    }
    assert!(s.contains("/sys rw\n") && !s.contains("/proc/sys ro"), "{}", show(&o));
    assert!(!s.contains("keys 0\n"), "/proc/keys masked in a privileged container: {}", show(&o));
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["inspect", e.ok(&["create", "--privileged", "bb"]).trim()])).unwrap();
    assert_eq!(v[0]["HostConfig"]["Privileged"], true);

    // --device host:container: the node is there and usable; nothing else is added.
    let o = e.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "bb",
        "sh",
        "-c",
        "echo x > /dev/mynull && ls -l /dev/mynull",
    ]);
    assert!(out(&o).starts_with("crw") && out(&o).contains(" 1,   3 "), "{}", show(&o));
    // Read-only permission: opening for writing is refused by the device cgroup
    // (/dev/loop-control: opening it does nothing to the host).
    let o = e.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop-control:/dev/lc:r",
        "bb",
        "sh",
        "-c",
        ": < /dev/lc && echo read-ok; : > /dev/lc && echo write-ok",
    ]);
    assert_eq!(out(&o), "read-ok\n", "{}", show(&o));
    assert!(err(&o).contains("Operation not permitted"), "{}", show(&o));
    let o = e.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop-control:/dev/lc",
        "bb",
        "sh",
        "-c",
        ": > /dev/lc && echo write-ok",
    ]);
    assert_eq!(out(&o), "write-ok\n", "{}", show(&o));
    let o = e.docker(&["run", "--rm", "--device", "/dev/nosuchdevice", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("/dev/nosuchdevice"), "{}", show(&o));

    // --sysctl: namespaced ones are set; others are refused by the daemon (400).
    let o = e.docker(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.shmmax=12345",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "bb",
        "cat",
        "/proc/sys/kernel/shmmax",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(out(&o), "12345\n1\n", "{}", show(&o));
    let (code, body) =
        e.http("POST", "/v1.41/containers/create", br#"{"Image":"bb","HostConfig":{"Sysctls":{"vm.swappiness":"1"}}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("vm.swappiness"), "{body}");
    let (code, body) = e.http(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image":"bb","HostConfig":{"NetworkMode":"host","Sysctls":{"net.ipv4.ip_forward":"1"}}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("net.ipv4.ip_forward"), "{body}");

    // --group-add: a number, and a name from the image's /etc/group.
    let o = e.docker(&["run", "--rm", "--group-add", "1234", "--group-add", "nogroup", "bb", "id", "-G"]);
    let ids = out(&o);
    let groups: Vec<&str> = ids.split_whitespace().collect();
    assert!(groups.contains(&"1234") && groups.contains(&"65534"), "{}", show(&o));
    // ... also for an exec as another user.
    e.ok(&["run", "-d", "--name", "grouped", "--group-add", "1234", "bb", "sleep", "1000"]);
    let ids = e.ok(&["exec", "-u", "nobody", "grouped", "id", "-G"]);
    assert_eq!(ids.split_whitespace().collect::<Vec<_>>(), ["65534", "1234"], "{ids}");
    e.ok(&["rm", "-f", "grouped"]);
    let o = e.docker(&["run", "--rm", "--name", "nogroup", "--group-add", "nosuchgroup", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("nosuchgroup"), "{}", show(&o));

    // --init: the command is not pid 1; the init forwards SIGTERM (sleep as pid 1
    // would ignore it and be SIGKILLed: 137), so stop ends it with 143.
    let o = e.docker(&["run", "--rm", "--init", "bb", "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline"]);
    let s = out(&o);
    assert_ne!(s.lines().next(), Some("1"), "{}", show(&o));
    assert!(s.contains("/sbin/engine-init -- sh -c"), "{}", show(&o));
    // With a terminal the command is in the foreground process group.
    let o = e.docker(&["run", "--rm", "-t", "--init", "bb", "sh", "-c", "ps -o pid,pgid,comm | grep ' ps$'; tty"]);
    assert!(o.status.success() && out(&o).contains("/dev/pts/"), "{}", show(&o));
    e.ok(&["run", "-d", "--init", "--name", "sleeper", "bb", "sleep", "1000"]);
    e.ok(&["stop", "-t", "60", "sleeper"]);
    let code = e.ok(&["inspect", "-f", "{{.State.ExitCode}}", "sleeper"]);
    assert_eq!(code.trim(), "143");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "sleeper"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["Init"], true);
    assert_eq!(v[0]["Path"], "sleep");
    // Nothing of the failed creates was left behind.
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!names.contains("nogroup"), "{names}");
}

#[test]
fn engine_cli_takes_the_same_options() {
    let e = Engined::start();
    load_probe_image(&e);
    let o = e.engine(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "kill",
        "--security-opt",
        "no-new-privileges",
        "bb",
        "grep",
        "-E",
        "CapEff|NoNewPrivs",
        "/proc/self/status",
    ]);
    let s = out(&o);
    assert_eq!((field(&s, "CapEff"), field(&s, "NoNewPrivs")), (hex(1 << 5), "1".into()), "{}", show(&o));
    let o = e.engine(&["run", "--rm", "--cap-add", "NOPE", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains(r#"unknown capability: "CAP_NOPE""#), "{}", show(&o));
    let o = e.engine(&["run", "--rm", "--sysctl", "kernel.hostname=x", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("kernel.hostname"), "{}", show(&o));
    let o = e.engine(&[
        "run",
        "--rm",
        "--init",
        "--device",
        "/dev/null:/dev/n2",
        "bb",
        "sh",
        "-c",
        "ls /dev/n2; cat /proc/1/cmdline | head -c 17",
    ]);
    assert_eq!(out(&o), "/dev/n2\n/sbin/engine-init", "{}", show(&o));
    // A profile path is read by the CLI and sent as JSON, as the docker CLI does.
    let profile = e.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = e.engine(&["run", "--rm", "--security-opt", &opt, "bb", "mkdir", "/tmp/d"]);
    assert!(err(&o).contains("Operation not permitted"), "{}", show(&o));
    let o = e.engine(&["run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "bb", "true"]);
    assert!(!o.status.success() && err(&o).contains("/nonexistent.json"), "{}", show(&o));
    let o = e.engine(&["run", "--rm", "--privileged", "bb", "grep", "Seccomp:", "/proc/self/status"]);
    assert_eq!(out(&o), "Seccomp:\t0\n", "{}", show(&o));
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
}

/// The docker CLI sends every `HostConfig` key; those engined does not
/// implement must hold their zero value, or the create is refused naming the
/// key (dockerd would honour them: silently dropping one would run a container
/// other than the one asked for). `--oom-score-adj` is honoured.
#[test]
fn host_config_settings_the_engine_cannot_honour_are_refused() {
    let e = Engined::start();
    load_probe_image(&e);
    // Raising the score needs no privilege (this host withholds CAP_SYS_RESOURCE).
    assert_eq!(e.ok(&["run", "--rm", "--oom-score-adj", "500", "bb", "cat", "/proc/self/oom_score_adj"]).trim(), "500");
    e.ok(&["create", "--name", "oom", "--oom-score-adj", "300", "bb"]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "oom"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["OomScoreAdj"], 300);
    e.ok(&["rm", "oom"]);
    // --cgroup-parent: the container's cgroup is made under it (an absolute
    // cgroupfs path); a relative one is refused.
    let parent = format!("/engine-test-cgparent-{}", std::process::id());
    let id = e.ok(&["run", "-d", "--cgroup-parent", &parent, "bb", "sleep", "60"]);
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", id.trim()]);
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    e.ok(&["rm", "-f", id.trim()]);
    remove_cgroup_parent(&parent);
    assert!(cg.lines().any(|l| l.contains(&format!(":{parent}/"))), "{cg}");
    let o = e.docker(&["run", "--rm", "--cgroup-parent", "relative", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("not an absolute cgroup path"), "{}", show(&o));
    for (flags, key) in [
        (vec!["--oom-score-adj", "1001"], "HostConfig.OomScoreAdj"),
        (vec!["--shm-size", "1g"], "HostConfig.ShmSize"),
        (vec!["--ulimit", "nofile=10:10"], "HostConfig.Ulimits"),
        (vec!["--pid", "host"], "HostConfig.PidMode"),
        (vec!["--cpu-quota", "50000"], "HostConfig.CpuQuota"),
        (vec!["--memory-reservation", "10m"], "HostConfig.MemoryReservation"),
        // Top-level keys of the create body, outside HostConfig.
        (vec!["--health-cmd", "true"], "Healthcheck"),
        (vec!["--domainname", "example.test"], "Domainname"),
    ] {
        let mut args = vec!["run", "--rm", "--name", "bad"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["bb", "true"]);
        let o = e.docker(&args);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {}", show(&o));
        assert!(err(&o).contains(key), "{flags:?}: {}", show(&o));
    }
    let (code, body) =
        e.http("POST", "/v1.41/containers/create?name=bad", br#"{"Image":"bb","HostConfig":{"IpcMode":"host"}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("HostConfig.IpcMode"), "{body}");
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(std::fs::read_dir(e.data_root().join("containers")).map(|d| d.count()).unwrap_or(0), 0);
}

/// `--cgroupns` as dockerd takes it: the default is the host's cgroup
/// namespace on a v1 or hybrid host and a private one on a cgroup v2 host;
/// `private` and `host` choose. Either way `/sys/fs/cgroup` shows the
/// container's own cgroup (its memory limit), read-only.
#[test]
fn cgroup_namespace_modes_as_under_dockerd() {
    let e = Engined::start();
    load_probe_image(&e);
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap().to_string_lossy().into_owned();
    let limit = if unified { "/sys/fs/cgroup/memory.max" } else { "/sys/fs/cgroup/memory/memory.limit_in_bytes" };
    let script = format!(
        "readlink /proc/self/ns/cgroup; cat {limit}; touch {limit} 2>/dev/null && echo writable; cat /proc/self/cgroup"
    );
    // (in the host's namespace, every path is the root)
    let probe = |mode: Option<&str>| -> (bool, bool) {
        let mut args = vec!["run", "--rm", "-m", "64m"];
        if let Some(m) = mode {
            args.extend(["--cgroupns", m]);
        }
        args.extend(["bb", "sh", "-c", &script]);
        let s = e.ok(&args);
        let mut lines = s.lines();
        let ns = lines.next().unwrap_or_default();
        assert_eq!(lines.next(), Some("67108864"), "{mode:?}: not the container's own memory cgroup: {s}");
        let rest: Vec<&str> = lines.collect();
        assert!(!rest.contains(&"writable"), "{mode:?}: the cgroup mount is writable: {s}");
        let all_root = rest.iter().all(|l| l.ends_with(":/"));
        (ns == host_ns, all_root)
    };
    assert_eq!(probe(Some("private")), (false, true), "--cgroupns=private");
    assert_eq!(probe(Some("host")), (true, false), "--cgroupns=host");
    assert_eq!(probe(None), if unified { (false, true) } else { (true, false) }, "the default");
    e.ok(&["create", "--name", "cgns", "bb"]);
    e.ok(&["create", "--name", "cgns-private", "--cgroupns", "private", "bb"]);
    let mode = |n: &str| e.ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", n]).trim().to_string();
    assert_eq!(mode("cgns"), if unified { "private" } else { "host" });
    assert_eq!(mode("cgns-private"), "private");
    e.ok(&["rm", "cgns", "cgns-private"]);
    let (code, body) = e.http(
        "POST",
        "/v1.41/containers/create?name=bad",
        br#"{"Image":"bb","HostConfig":{"CgroupnsMode":"shared"}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("HostConfig.CgroupnsMode") && body.contains("shared"), "{body}");
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
}
