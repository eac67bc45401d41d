//! engine-runc bad input: each case exits non-zero with a message naming the
//! offending value and leaves no state dir, cgroup, mount or process.

mod common;
use common::*;
use serde_json::json;

fn refused(runc: &Runc, b: &Bundle, id: &str, needle: &str, cg: Option<&str>) {
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), id]);
    assert!(!o.status.success(), "create {id} should fail");
    assert!(stderr(&o).contains(needle), "message should name {needle:?}: {}", stderr(&o));
    assert_no_leftovers(runc, id, b, cg);
}

#[test]
fn malformed_config() {
    let b = Bundle::new(&["true"]);
    std::fs::write(b.path().join("config.json"), "{\"ociVersion\": \"1.0.2\", \"process\": [oops").unwrap();
    refused(&Runc::new(), &b, &unique_id("bad"), "config.json", None);
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::new(&["true"]);
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.write();
    refused(&Runc::new(), &b, &unique_id("bad"), "no-such-rootfs", None);
}

#[test]
fn missing_args0_is_reported_before_created() {
    let mut b = Bundle::new(&["no-such-program", "x"]);
    let id = unique_id("bad");
    let cg = b.cgroup_for(&id);
    refused(&Runc::new(), &b, &id, "no-such-program", Some(&cg));
    b.args(&["/bin/not-here"]);
    let id = unique_id("bad");
    let cg = b.cgroup_for(&id);
    refused(&Runc::new(), &b, &id, "/bin/not-here", Some(&cg));
}

#[test]
fn bad_ids() {
    let b = Bundle::new(&["true"]);
    let runc = Runc::new();
    for id in ["a/b", "..", "../escape"] {
        let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), id]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(id), "{id}: {}", stderr(&o));
    }
    assert_eq!(std::fs::read_dir(runc.root.path()).unwrap().count(), 0, "nothing under the state root");
    assert!(!runc.root.path().parent().unwrap().join("escape").exists());
}

#[test]
fn id_in_use() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let id = unique_id("dup");
    let cg = b.cgroup_for(&id);
    runc.create(&b, &id);
    let pid = runc.state(&id)["pid"].as_i64().unwrap();
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&id) && stderr(&o).contains("exists"), "{}", stderr(&o));
    // The first container is untouched.
    let st = runc.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64().unwrap(), pid);
    runc.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

#[test]
fn unknown_namespace() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "nosuchns"}));
    b.write();
    refused(&Runc::new(), &b, &unique_id("bad"), "nosuchns", None);
}

#[test]
fn rlimit_above_host_limit() {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap().trim().parse().unwrap();
    let mut b = Bundle::new(&["true"]);
    let id = unique_id("rlim");
    let cg = b.cgroup_for(&id);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": nr_open + 1}]);
    b.write();
    refused(&Runc::new(), &b, &id, "RLIMIT_NOFILE", Some(&cg));
}

#[test]
fn bad_mount_and_capability() {
    let mut b = Bundle::new(&["true"]);
    let id = unique_id("badmnt");
    let cg = b.cgroup_for(&id);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["bind"]}));
    b.write();
    refused(&Runc::new(), &b, &id, "/no/such/source", Some(&cg));
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_NOT_A_CAP"]);
    b.write();
    refused(&Runc::new(), &b, &unique_id("badcap"), "CAP_NOT_A_CAP", None);
}

#[test]
fn host_sysctl_is_refused() {
    let runc = Runc::new();
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    b.write();
    refused(&runc, &b, &unique_id("sysctl"), "vm.swappiness", None);
    // A net.* sysctl without a network namespace of its own would change the host.
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
    b.write();
    refused(&runc, &b, &unique_id("sysctl"), "net.ipv4.ip_forward", None);
}
