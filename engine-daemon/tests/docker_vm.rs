//! The `vm` runtime (crate `engine-vm`) through the real docker CLI against
//! engined: each container in its own QEMU micro-VM (TCG here, KVM where the
//! host has it). The guest's kernel release and boot id are the VM's, exit
//! codes, stdin, `docker logs`, `docker stop`, `docker exec` and `-t` behave as
//! with engine-runc, bind mounts (read-write and read-only) reach the guest, pause freezes the VM, a memory limit is the guest's memory, writes to the
//! container's root stay in its own layer, and a VM container outlives a
//! SIGKILL of engined and is recovered; VM containers join bridge networks
//! (reached by name, by address and through a published port).
//!
//! Each VM boot takes seconds under emulation, so the checks share a few
//! containers and run one after another in one test.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn has_vm_support() -> bool {
    std::path::Path::new("/usr/bin/qemu-system-x86_64").exists()
        && std::fs::read_dir("/boot")
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-")))
            .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The tests of this file boot VMs one test at a time (each VM is a
/// QEMU under emulation here).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn vm_runtime_through_docker() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !has_vm_support() {
        // install-deps.sh installs both; a machine without them cannot run VMs at all.
        panic!("qemu-system-x86_64 or /boot/vmlinuz-* missing: run scripts/install-deps.sh");
    }
    let mut e = Engined::start();
    e.load_busybox();

    // The guest's kernel and boot id are the VM's own.
    let out =
        e.ok(&["run", "--rm", "--runtime", "vm", "bb", "sh", "-c", "uname -r; cat /proc/sys/kernel/random/boot_id"]);
    let mut lines = out.lines();
    let release = lines.next().unwrap_or_default().to_string();
    let boot_id = lines.next().unwrap_or_default().to_string();
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
    let host_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_string();
    let boot_kernel = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("vmlinuz-").map(str::to_string))
        .collect::<Vec<_>>();
    assert!(boot_kernel.contains(&release), "guest release {release:?} is not one of /boot's {boot_kernel:?}: {out}");
    assert_eq!(boot_id.len(), 36, "{out}");
    assert_ne!(boot_id, host_boot, "the guest must have booted its own kernel");
    if release == host_release {
        eprintln!("note: the host runs the same kernel release; the boot id tells them apart");
    }

    // Exit codes propagate; stdout and stderr are told apart.
    let o = e.docker(&["run", "--rm", "--runtime", "vm", "bb", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert_eq!(stdout(&o), "out\n", "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("err"), "{}", show(&o));

    // stdin reaches the process, and its end is seen.
    let o = e
        .docker_in(&["run", "--rm", "-i", "--runtime", "vm", "bb", "sh", "-c", "cat; echo done"], Some(b"hi\nthere\n"));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(stdout(&o), "hi\nthere\ndone\n");

    // Bind mounts: a directory read-write, a file read-only (shared alone, not its directory).
    let share = e.dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("in.txt"), "from-host\n").unwrap();
    let single = e.dir.path().join("single.txt");
    std::fs::write(&single, "one file\n").unwrap();
    let v1 = format!("{}:/data", share.display());
    let v2 = format!("{}:/etc/single.txt:ro", single.display());
    let script = "cat /data/in.txt; echo from-vm > /data/out.txt; cat /etc/single.txt; echo x > /etc/single.txt && echo wrote-ro; true";
    let out = e.ok(&["run", "--rm", "--runtime", "vm", "-v", &v1, "-v", &v2, "bb", "sh", "-c", script]);
    assert_eq!(out, "from-host\none file\n");
    assert_eq!(std::fs::read_to_string(share.join("out.txt")).unwrap(), "from-vm\n");
    assert_eq!(std::fs::read_to_string(&single).unwrap(), "one file\n");

    // -t: the process runs on a terminal (the guest's pty, relayed to the shim's).
    let o = e.docker(&[
        "run",
        "--rm",
        "-t",
        "--runtime",
        "vm",
        "bb",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo on-a-tty",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(stdout(&o).contains("on-a-tty\r\n"), "{}", show(&o));

    // A terminal's resize reaches the guest's terminal.
    e.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "vmtty",
        "--runtime",
        "vm",
        "bb",
        "sh",
        "-c",
        "while :; do stty size; sleep 0.2; done",
    ]);
    wait_until("the terminal container's output", Duration::from_secs(120), || {
        !stdout(&e.docker(&["logs", "vmtty"])).is_empty()
    });
    let (status, body) = e.http("POST", "/containers/vmtty/resize?h=41&w=101", b"");
    assert_eq!(status, 200, "{body}");
    wait_until("the new size inside the VM", Duration::from_secs(60), || {
        stdout(&e.docker(&["logs", "vmtty"])).contains("41 101")
    });
    e.ok(&["rm", "-f", "vmtty"]);

    // A long-running container: logs, exec, the rootfs, memory, stop.
    let id = e
        .ok(&[
            "run",
            "-d",
            "--name",
            "vm1",
            "--runtime",
            "vm",
            "-m",
            "200m",
            "bb",
            "sh",
            "-c",
            "echo started; echo written > /etc/vm-marker; trap 'echo got-term; exit 3' TERM; while :; do sleep 1; done",
        ])
        .trim()
        .to_string();
    wait_until("the container's first line in docker logs", Duration::from_secs(120), || {
        stdout(&e.docker(&["logs", "vm1"])).contains("started")
    });
    let info: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "vm1"])).unwrap();
    assert_eq!(info[0]["HostConfig"]["Runtime"], "vm", "{info}");
    assert_eq!(info[0]["State"]["Running"], true, "{info}");

    // docker exec runs in the same VM (same boot id, sees the init's file).
    let o = e.docker(&["exec", "vm1", "sh", "-c", "cat /etc/vm-marker; cat /proc/sys/kernel/random/boot_id; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let ex = stdout(&o);
    assert!(ex.starts_with("written\n"), "{ex}");
    assert_ne!(ex.lines().nth(1), Some(host_boot.as_str()), "{ex}");
    let o = e.docker_in(&["exec", "-i", "vm1", "cat"], Some(b"through exec\n"));
    assert_eq!(stdout(&o), "through exec\n", "{}", show(&o));

    let o = e.docker(&["exec", "-t", "vm1", "sh", "-c", "test -t 1 && echo exec-on-a-tty"]);
    assert!(stdout(&o).contains("exec-on-a-tty\r\n"), "{}", show(&o));

    // Stats are the VM's as the host sees it: QEMU's memory, the VM's size as the limit.
    let (status, body) = e.http("GET", "/containers/vm1/stats?stream=false", b"");
    assert_eq!(status, 200, "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    let usage = st["memory_stats"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 16 << 20, "memory usage {usage}: {body}");
    assert_eq!(st["memory_stats"]["limit"].as_u64(), Some(200 << 20), "{body}");

    // A host namespace to join (here another container's network) cannot be
    // entered from a VM: refused with the reason.
    let o = e.docker(&["run", "--rm", "--runtime", "vm", "--network", "container:vm1", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot join"), "{}", show(&o));

    // pause freezes the whole VM; unpause lets it run on.
    e.ok(&["pause", "vm1"]);
    let info: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "vm1"])).unwrap();
    assert_eq!(info[0]["State"]["Paused"], true, "{info}");
    e.ok(&["unpause", "vm1"]);
    assert_eq!(e.ok(&["exec", "vm1", "echo", "thawed"]), "thawed\n");

    // -m is the container's cgroup inside the guest, and the VM gets that
    // much plus room for its own kernel: MemTotal is above the limit and
    // far below the host's.
    let mem = e.ok(&["exec", "vm1", "sh", "-c", "cat /sys/fs/cgroup/memory.max; grep MemTotal /proc/meminfo"]);
    let mut lines = mem.lines();
    assert_eq!(lines.next(), Some("209715200"), "{mem}");
    let kib: u64 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{mem}"));
    assert!(kib > 200 * 1024 && kib <= 360 * 1024, "MemTotal {kib} kB for -m 200m");

    // The write went to the container's own layer, not the host's /etc, and
    // not the image: a fresh container does not see it.
    assert!(!std::path::Path::new("/etc/vm-marker").exists());
    let o = e.docker(&["run", "--rm", "--runtime", "vm", "bb", "sh", "-c", "cat /etc/vm-marker"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));

    // Recovery: engined dies, the VM container runs on and is found again.
    e.kill9();
    let monitor_alive = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c).contains(&format!("/{id}\0"))
                    && String::from_utf8_lossy(&c).contains("monitor")
            })
            .unwrap_or(false)
    });
    assert!(monitor_alive, "the VM monitor of {id} must outlive engined");
    e.spawn();
    wait_until("engined to answer after the restart", Duration::from_secs(60), || {
        e.docker(&["version"]).status.success()
    });
    let info: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "vm1"])).unwrap();
    assert_eq!(info[0]["State"]["Running"], true, "{info}");

    // docker stop: SIGTERM reaches the process inside the VM (its trap runs).
    e.ok(&["stop", "-t", "60", "vm1"]);
    let info: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "vm1"])).unwrap();
    assert_eq!(info[0]["State"]["ExitCode"], 3, "{info}");
    assert!(e.ok(&["logs", "vm1"]).contains("got-term"));
    e.ok(&["rm", "vm1"]);

    // A spec the guest's runtime refuses (a sysctl the guest's kernel does
    // not have) fails the create with the runtime's reason, and nothing is left.
    let o = e.docker(&["run", "--rm", "--runtime", "vm", "--sysctl", "net.ipv4.no_such_knob=1", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no_such_knob"), "{}", show(&o));
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
    // No VM state left: only the boot cache stays in the runtime's root.
    let left: Vec<String> = std::fs::read_dir(e.data_root().join("runtime/vm"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".cache")
        .collect();
    assert!(left.is_empty(), "VM state left behind: {left:?}");
}

/// Inside the VM the container is built by this project's own Linux runtime,
/// as engine-runc builds it on the host: the same capabilities, seccomp
/// filter and no_new_privs in `/proc/self/status`, its own pid namespace
/// (the process is pid 1), its hostname, masked paths, and its cgroup in the
/// guest, whose memory limit the guest's kernel enforces (a process past it
/// is OOM-killed although the VM has room). The guest's init reaps what a
/// double-forking container leaves and reports the container process's own
/// exit status.
#[test]
fn vm_container_is_confined_inside_the_guest() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(has_vm_support(), "qemu-system-x86_64 or /boot/vmlinuz-* missing: run scripts/install-deps.sh");
    let e = Engined::start();
    e.load_busybox();
    let probe = "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; echo pid=$$; hostname; wc -c < /proc/keys";
    let args = |runtime: &'static str| {
        vec![
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--hostname",
            "confined",
            "--cap-drop",
            "NET_RAW",
            "--security-opt",
            "no-new-privileges",
            "bb",
            "sh",
            "-c",
            probe,
        ]
    };
    let on_host = e.ok(&args("engine-runc"));
    let in_vm = e.ok(&args("vm"));
    assert_eq!(in_vm, on_host, "the VM's container differs from engine-runc's");
    assert!(in_vm.contains("NoNewPrivs:\t1\n"), "{in_vm}");
    assert!(in_vm.contains("Seccomp:\t2\n"), "{in_vm}");
    assert!(in_vm.contains("pid=1\nconfined\n0\n"), "{in_vm}");
    // NET_RAW (bit 13) dropped, CHOWN (bit 0) kept.
    let caps = in_vm.lines().find_map(|l| l.strip_prefix("CapEff:\t")).unwrap_or_default();
    let caps = u64::from_str_radix(caps, 16).unwrap_or_else(|_| panic!("{in_vm}"));
    assert_eq!((caps & 1, caps & (1 << 13)), (1, 0), "{in_vm}");

    // The memory and pids limits are the container's cgroup in the guest: a
    // 32 MiB buffer is OOM-killed under -m 16m although the guest has that
    // much memory available, an 8 MiB one is not.
    let script = "grep MemAvailable /proc/meminfo; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; \
                  dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo small=$?; \
                  dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null; echo big=$?; \
                  cat /sys/fs/cgroup/memory.events";
    let out = e.ok(&["run", "--rm", "--runtime", "vm", "-m", "16m", "--pids-limit", "40", "bb", "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    let avail: u64 = lines[0].split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    assert!(avail > 40 * 1024, "the guest has room for 32 MiB and more: MemAvailable {avail} kB: {out}");
    assert_eq!(lines[1..5], ["16777216", "40", "small=0", "big=137"], "{out}");
    assert!(lines.iter().any(|l| l.starts_with("oom_kill ") && *l != "oom_kill 0"), "{out}");

    // Double forks: the orphans are reaped (the guest's init reaps what is
    // reparented to it), and the exit status is the container process's.
    let o = e.docker(&[
        "run",
        "--rm",
        "--runtime",
        "vm",
        "bb",
        "sh",
        "-c",
        "(sh -c 'sleep 0.2; exit 9' &); (sleep 30 &); sleep 1; ps -o stat | grep -c '^Z'; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert_eq!(stdout(&o), "0\n", "{}", show(&o));
}

/// Link names in the test's host network namespace (bridges, the host ends
/// of veths) and the network namespace files engined keeps (each holds a
/// container's veth and, for a VM, its tap).
fn network_state(e: &Engined) -> (Vec<String>, Vec<String>) {
    let links = e.host_links();
    let files = std::fs::read_dir(e.data_root().join("netns"))
        .map(|d| d.flatten().map(|f| f.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    (links, files)
}

/// Networks, as Kata gives them: a VM container on a user-defined bridge
/// network is reached by name and by address from an engine-runc container
/// on the same network, its published port answers on the host's loopback
/// (the test's own host namespace), one on the default bridge reaches its
/// gateway, and removal leaves no tap, veth or namespace behind. The host's
/// network and another container's are refused.
#[test]
fn vm_containers_on_bridge_networks() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(has_vm_support(), "qemu-system-x86_64 or /boot/vmlinuz-* missing: run scripts/install-deps.sh");
    let e = Engined::start_networked();
    e.load_busybox();
    e.ok(&["network", "create", "vmnet"]);

    // The VM container serves one line per connection with nc.
    let serve = "ip -4 -o addr show eth0; ip route; exec nc -ll -p 80 -e echo hello-from-the-vm";
    e.ok(&[
        "run",
        "-d",
        "--name",
        "vmweb",
        "--runtime",
        "vm",
        "--network",
        "vmnet",
        "-p",
        "127.0.0.1:8080:80",
        "bb",
        "sh",
        "-c",
        serve,
    ]);
    wait_until("the VM container to listen on port 80", Duration::from_secs(120), || {
        stdout(&e.docker(&["exec", "vmweb", "cat", "/proc/net/tcp", "/proc/net/tcp6"]))
            .lines()
            .any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(":0050")))
    });
    let ip = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.vmnet.IPAddress}}", "vmweb"]).trim().to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    // The guest's interface has the endpoint's address, and its default route.
    let logs = e.ok(&["logs", "vmweb"]);
    assert!(logs.contains(&format!("inet {ip}/")) && logs.contains("eth0"), "{logs}");
    assert!(logs.contains("default via "), "{logs}");

    // From an engine-runc container on the same network: by name, by address.
    let client = format!("nc vmweb 80 </dev/null; nc {ip} 80 </dev/null");
    let out = e.ok(&["run", "--rm", "--network", "vmnet", "bb", "sh", "-c", &client]);
    assert_eq!(out, "hello-from-the-vm\nhello-from-the-vm\n");

    // The published port, from the (test's) host's loopback.
    let got = e.in_host_netns(|| {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect_timeout(&"127.0.0.1:8080".parse().unwrap(), Duration::from_secs(10))
            .expect("connect to the published port");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r
    });
    assert_eq!(got, "hello-from-the-vm\n");

    // A running VM's devices are fixed: connecting it to another network is refused.
    let o = e.docker(&["network", "connect", "bridge", "vmweb"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("runs in a VM"), "{}", show(&o));

    // Started again (a new VM on the same namespace and veth): reached again.
    e.ok(&["restart", "-t", "1", "vmweb"]);
    wait_until("the restarted VM container to listen", Duration::from_secs(120), || {
        stdout(&e.docker(&["exec", "vmweb", "cat", "/proc/net/tcp", "/proc/net/tcp6"]))
            .lines()
            .any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(":0050")))
    });
    let out = e.ok(&["run", "--rm", "--network", "vmnet", "bb", "sh", "-c", "nc vmweb 80 </dev/null"]);
    assert_eq!(out, "hello-from-the-vm\n");

    // The default bridge: the VM reaches its gateway (a listener in the test's host namespace).
    let listener = e.in_host_netns(|| std::net::TcpListener::bind("0.0.0.0:7601").unwrap());
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(format!("seen {}\n", peer.ip()).as_bytes()).unwrap();
    });
    let out = e.ok(&[
        "run",
        "--rm",
        "--runtime",
        "vm",
        "bb",
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | awk '{print $4}'; nc 172.17.0.1 7601 </dev/null",
    ]);
    server.join().unwrap();
    let mut lines = out.lines();
    let cidr = lines.next().unwrap_or_default();
    assert!(cidr.starts_with("172.17.") && cidr.ends_with("/16"), "{out}");
    assert_eq!(lines.next(), Some(format!("seen {}", cidr.trim_end_matches("/16")).as_str()), "{out}");

    // The host's network and another container's cannot be a VM's.
    for mode in ["host", "container:vmweb"] {
        let o = e.docker(&["run", "--rm", "--runtime", "vm", "--network", mode, "bb", "true"]);
        assert_ne!(o.status.code(), Some(0), "{}", show(&o));
        let msg = String::from_utf8_lossy(&o.stderr);
        assert!(msg.contains("vm runtime cannot"), "{mode}: {}", show(&o));
    }

    // Removal: no tap, veth or namespace file left.
    let (links, _) = network_state(&e);
    assert!(links.iter().any(|l| l.starts_with("veth")), "{links:?}");
    e.ok(&["rm", "-f", "vmweb"]);
    e.ok(&["network", "rm", "vmnet"]);
    let (links, files) = network_state(&e);
    assert!(!links.iter().any(|l| l.starts_with("veth") || l.starts_with("tap")), "{links:?}");
    assert!(files.is_empty(), "network namespaces left: {files:?}");
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");
}
