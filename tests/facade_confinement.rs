//! The facade's builder gives docker's default confinement and its options,
//! in real containers: the same values dockerd gives for the same flags.

mod common;

use engine::{ContainerBuilder, DeviceMapping, Engine, SeccompProfile, WaitFor};
use engine_core::ListFilter;

const IMAGE: &str = "busybox:confine";

async fn engine_in(root: &std::path::Path) -> Engine {
    let e = common::builder(root).build().await.unwrap();
    e.busybox_image(IMAGE).await.unwrap();
    e
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fc").tempdir_in("/tmp").unwrap()
}

/// Run `b` to completion; its stdout.
async fn output(engine: &Engine, b: ContainerBuilder) -> String {
    let c = engine.run(b.wait_for(WaitFor::exit_code(0))).await.unwrap();
    let out = c.stdout().await.unwrap();
    c.remove().await.unwrap();
    out
}

fn status(s: &str, k: &str) -> String {
    s.lines().find_map(|l| l.strip_prefix(&format!("{k}:"))).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn grep_status() -> ContainerBuilder {
    ContainerBuilder::new(IMAGE).cmd(["grep", "-E", "Seccomp|NoNewPrivs|CapEff", "/proc/self/status"])
}

/// CapEff & CapBnd of this process (the facade's manager runs in it).
fn own_caps() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let f = |k: &str| u64::from_str_radix(&status(&s, k), 16).unwrap();
    format!("{:016x}", f("CapEff") & f("CapBnd"))
}

#[tokio::test(flavor = "multi_thread")]
async fn builder_confinement_matches_dockerd() {
    let dir = tmp();
    let engine = engine_in(dir.path()).await;

    // Default: docker's 14 capabilities, seccomp filter, no no_new_privs.
    let s = output(&engine, grep_status()).await;
    assert_eq!(
        (status(&s, "CapEff"), status(&s, "NoNewPrivs"), status(&s, "Seccomp")),
        ("00000000a80425fb".into(), "0".into(), "2".into()),
        "{s}"
    );
    // The default profile answers EPERM to unshare(CLONE_NEWUSER).
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["unshare", "-U", "true"]).wait_for(WaitFor::exit_code(1)))
        .await
        .unwrap();
    assert!(c.stderr().await.unwrap().contains("Operation not permitted"));
    c.remove().await.unwrap();
    // Masked paths read empty.
    let s = output(&engine, ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "wc -c < /proc/keys; ls -A /sys/firmware"]))
        .await;
    assert_eq!(s, "0\n");

    // cap_drop(ALL) + cap_add: exactly the added bit; no_new_privileges; unconfined.
    let s = output(&engine, grep_status().cap_drop("ALL").cap_add("net_admin").no_new_privileges(true)).await;
    assert_eq!((status(&s, "CapEff"), status(&s, "NoNewPrivs")), (format!("{:016x}", 1u64 << 12), "1".into()));
    let s = output(&engine, grep_status().seccomp(SeccompProfile::Unconfined)).await;
    assert_eq!(status(&s, "Seccomp"), "0");
    // A profile file in docker's format: mkdir denied with EPERM, the rest allowed.
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let c = engine
        .run(
            ContainerBuilder::new(IMAGE)
                .cmd(["mkdir", "/tmp/d"])
                .seccomp(SeccompProfile::from_file(&profile).unwrap())
                .wait_for(WaitFor::exit_code(1)),
        )
        .await
        .unwrap();
    assert!(c.stderr().await.unwrap().contains("Operation not permitted"));
    c.remove().await.unwrap();
    // Privileged: what this process holds, no seccomp.
    let s = output(&engine, grep_status().privileged(true)).await;
    assert_eq!((status(&s, "CapEff"), status(&s, "Seccomp")), (own_caps(), "0".into()));
    // A device, a sysctl, a group, the init.
    let b = ContainerBuilder::new(IMAGE)
        .cmd(["sh", "-c", "ls /dev/mynull; cat /proc/sys/kernel/shmmni; id -G; head -c 17 /proc/1/cmdline"])
        .device(DeviceMapping::new("/dev/null", "/dev/mynull", "rwm").unwrap())
        .sysctl("kernel.shmmni", "999")
        .group_add("4321")
        .init(true);
    assert_eq!(output(&engine, b).await, "/dev/mynull\n999\n0 4321\n/sbin/engine-init");

    // Bad input: a clear error, and nothing is left.
    let before = engine.containers().list(ListFilter::default().all(true)).await.unwrap().len();
    let e = engine.create(ContainerBuilder::new(IMAGE).cap_add("FOO")).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains(r#"unknown capability: "CAP_FOO""#), "{e}");
    let e = engine.create(ContainerBuilder::new(IMAGE).sysctl("kernel.hostname", "x")).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("kernel.hostname"), "{e}");
    let e = engine.create(ContainerBuilder::new(IMAGE).group_add("nosuchgroup")).await.unwrap_err();
    assert!(e.to_string().contains("nosuchgroup"), "{e}");
    let e = engine
        .create(ContainerBuilder::new(IMAGE).seccomp(SeccompProfile::Custom(r#"{"defaultAction":"X"}"#.into())))
        .await
        .unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("seccomp profile"), "{e}");
    let after = engine.containers().list(ListFilter::default().all(true)).await.unwrap().len();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_dir(dir.path().join("containers")).map(|d| d.count()).unwrap_or(0), 0);
}

/// The cgroup namespace: docker's default (the host's on a v1 or hybrid host,
/// a private one on cgroup v2), or the one the builder asks for. In each,
/// `/sys/fs/cgroup` shows the container's own cgroup.
#[tokio::test(flavor = "multi_thread")]
async fn cgroup_namespace_default_and_builder_modes() {
    use engine::CgroupnsMode;
    let dir = tmp();
    let engine = engine_in(dir.path()).await;
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap().to_string_lossy().into_owned();
    let limit = if unified { "/sys/fs/cgroup/memory.max" } else { "/sys/fs/cgroup/memory/memory.limit_in_bytes" };
    let script = format!("readlink /proc/self/ns/cgroup; cat {limit}; cat /proc/self/cgroup");
    for (mode, private) in
        [(CgroupnsMode::Private, true), (CgroupnsMode::Host, false), (CgroupnsMode::Default, unified)]
    {
        let s =
            output(&engine, ContainerBuilder::new(IMAGE).memory(64 << 20).cgroupns(mode).cmd(["sh", "-c", &script]))
                .await;
        let mut lines = s.lines();
        assert_eq!(lines.next() != Some(host_ns.as_str()), private, "{mode:?}: {s}");
        assert_eq!(lines.next(), Some("67108864"), "{mode:?}: not its own memory cgroup: {s}");
        assert_eq!(lines.all(|l| l.ends_with(":/")), private, "{mode:?}: {s}");
    }
    assert!(engine.containers().list(ListFilter::default().all(true)).await.unwrap().is_empty());
}
