//! engine-runc namespaces: new ones (pid, uts, ipc, net, mount, cgroup, user
//! with id mappings) and joining an existing one by path.

mod common;
use common::*;
use serde_json::json;

fn ns_link(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap().to_string_lossy().into_owned()
}

#[test]
fn new_namespaces_differ_from_the_host() {
    let b = Bundle::new(&["sh", "-c", "for n in pid uts ipc net mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done; echo pid1=$$; ls /sys/class/net; cat /proc/self/cgroup"]);
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("ns"));
    for n in ["pid", "uts", "ipc", "net", "mnt", "cgroup"] {
        let line = out.lines().find(|l| l.starts_with(&format!("{n} "))).unwrap();
        assert_ne!(line.split(' ').nth(1).unwrap(), ns_link("self", n), "{n} namespace is new");
    }
    assert!(out.contains("pid1=1\n"));
    // A new network namespace has only loopback.
    assert!(out.contains("\nlo\n") && !out.contains("eth0"), "{out}");
    // In its cgroup namespace the container sees itself at the root.
    for l in out.lines().filter(|l| l.contains(":/") && l.split(':').count() == 3) {
        assert!(l.ends_with(":/"), "cgroup namespace root: {l}");
    }
}

#[test]
fn join_network_namespace_by_path() {
    let a = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let ida = unique_id("nsa");
    runc.create(&a, &ida);
    let apid = runc.state(&ida)["pid"].as_i64().unwrap().to_string();
    let mut b = Bundle::new(&["readlink", "/proc/self/ns/net"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{apid}/ns/net"));
        }
    }
    b.write();
    let out = runc.run_ok(&b, &unique_id("nsb"));
    assert_eq!(out.trim(), ns_link(&apid, "net"));
    runc.ok(&["delete", "--force", &ida]);
}

#[test]
fn user_namespace_with_mappings() {
    let mut b = Bundle::new(&["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /bin/busybox"]);
    b.in_user_namespace();
    let runc = Runc::new();
    let id = unique_id("userns");
    let out = runc.run_ok(&b, &id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(lines[1]), "0 100000 65536");
    assert_eq!(norm(lines[2]), "0 100000 65536");
    // Host root's files appear as the overflow user inside.
    assert!(lines[3].contains(" 65534 "), "{out}");
}

#[test]
fn unknown_namespace_type_is_refused() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "bogusns"}));
    b.write();
    let runc = Runc::new();
    let id = unique_id("badns");
    let (code, _, err) = runc.run(&b, &id);
    assert_ne!(code, 0);
    assert!(err.contains("bogusns"), "{err}");
    assert_no_leftovers(&runc, &id, &b, None);
}

#[test]
fn new_user_namespace_with_a_joined_network_namespace() {
    // The pattern of a manager that made the network namespace first (CNI-style)
    // and a container with its own user namespace.
    let a = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let ida = unique_id("netowner");
    runc.create(&a, &ida);
    let apid = runc.state(&ida)["pid"].as_i64().unwrap().to_string();
    let mut b =
        Bundle::new(&["sh", "-c", "readlink /proc/self/ns/net; id -u; cat /proc/self/uid_map; ls /sys/class/net"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{apid}/ns/net"));
        }
    }
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    b.write();
    let out = runc.run_ok(&b, &unique_id("userjoin"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_link(&apid, "net"), "{out}");
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["0", "200000", "65536"]);
    assert!(out.contains("lo"), "{out}");
    runc.ok(&["delete", "--force", &ida]);
}
