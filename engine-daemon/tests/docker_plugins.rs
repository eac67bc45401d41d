//! Docker plugins (protocol v1) through the real docker CLI against engined:
//! plugins are separate processes (`engine-plugin/tests/fixtures/testplugin.py`)
//! on unix sockets in a discovery directory of the test's own, found the way
//! dockerd finds them.

mod common;
#[path = "../../engine-plugin/tests/support/testplugin.rs"]
mod testplugin;

use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testplugin::TestPlugin;

/// The plugin dirs of one test, and engined pointed at them.
struct Setup {
    plugins: tempfile::TempDir,
    e: Engined,
}

impl Setup {
    fn new(extra: &[&str]) -> Setup {
        let plugins = tempfile::Builder::new().prefix("p").rand_bytes(5).tempdir_in("/tmp").unwrap();
        let (socks, specs) = (plugins.path().join("run"), plugins.path().join("etc"));
        std::fs::create_dir_all(&socks).unwrap();
        std::fs::create_dir_all(&specs).unwrap();
        let mut args: Vec<String> = vec![
            "--plugin-socket-dir".into(),
            socks.display().to_string(),
            "--plugin-spec-dir".into(),
            specs.display().to_string(),
            "--plugin-timeout".into(),
            "3s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = Engined::start_with(&refs);
        Setup { plugins, e }
    }

    fn sockets(&self) -> PathBuf {
        self.plugins.path().join("run")
    }

    fn plugin(&self, name: &str, implements: &str, extra: &[&str]) -> TestPlugin {
        TestPlugin::start(&self.sockets(), &self.plugins.path().join("work"), name, implements, extra)
    }
}

/// Wait for a condition, polling, at most `secs`.
fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn volume_plugin_serves_docker_run_and_docker_volume() {
    let mut s = Setup::new(&[]);
    let p = s.plugin("testplug", "VolumeDriver", &[]);
    s.e.load_busybox();
    let e = &s.e;

    e.ok(&["volume", "create", "-d", "testplug", "--label", "team=db", "pv1"]);
    assert_eq!(e.ok(&["volume", "inspect", "pv1", "--format", "{{.Driver}} {{.Labels.team}}"]), "testplug db\n");
    let ls = e.ok(&["volume", "ls", "--format", "{{.Driver}}/{{.Name}}"]);
    assert!(ls.lines().any(|l| l == "testplug/pv1"), "{ls}");

    // Data written in the container lands where the plugin's Mount said.
    e.ok(&["run", "--rm", "-v", "pv1:/data", "--volume-driver", "testplug", "bb", "sh", "-c", "echo hello > /data/f"]);
    assert_eq!(std::fs::read_to_string(p.root.join("volumes/pv1/data/f")).unwrap(), "hello\n");
    let calls = p.calls();
    let mount = calls.iter().find(|c| c.0 == "VolumeDriver.Mount").expect("a Mount call");
    assert_eq!(mount.1["Name"], "pv1");
    let id = mount.1["ID"].as_str().unwrap().to_string();
    assert!(calls.iter().any(|c| c.0 == "VolumeDriver.Unmount" && c.1["ID"] == id.as_str()), "{calls:?}");

    // Created on first use by the driver --volume-driver names.
    e.ok(&["run", "--rm", "-v", "pv2:/data", "--volume-driver", "testplug", "bb", "sh", "-c", "echo two > /data/g"]);
    assert_eq!(std::fs::read_to_string(p.root.join("volumes/pv2/data/g")).unwrap(), "two\n");
    // `--mount volume-driver=` too.
    let mount = "type=volume,source=pv3,target=/data,volume-driver=testplug";
    e.ok(&["run", "--rm", "--mount", mount, "bb", "sh", "-c", "echo three > /data/h"]);
    assert_eq!(std::fs::read_to_string(p.root.join("volumes/pv3/data/h")).unwrap(), "three\n");
    // An anonymous volume by the plugin, removed through it by `rm -v`.
    e.ok(&["create", "--name", "anon", "-v", "/data", "--volume-driver", "testplug", "bb", "true"]);
    let m = e.ok(&["inspect", "anon", "--format", "{{range .Mounts}}{{.Name}} {{.Driver}}{{end}}"]);
    let (anon, drv) = m.trim().split_once(' ').unwrap();
    assert_eq!((anon.len(), drv), (64, "testplug"), "{m}");
    assert!(p.root.join("volumes").join(anon).is_dir());
    e.ok(&["rm", "-v", "anon"]);
    assert!(!p.root.join("volumes").join(anon).exists());
    // Without --volume-driver an existing volume is used through its owner.
    assert_eq!(e.ok(&["run", "--rm", "-v", "pv1:/data", "bb", "cat", "/data/f"]), "hello\n");

    // The engine remembers the owner across a restart.
    s.e.kill9();
    s.e.spawn();
    let e = &s.e;
    assert_eq!(e.ok(&["volume", "inspect", "pv1", "--format", "{{.Driver}}"]), "testplug\n");
    assert_eq!(e.ok(&["run", "--rm", "-v", "pv1:/data", "bb", "cat", "/data/f"]), "hello\n");
    // A name has one owner: asking the local driver for it is a conflict.
    let o = e.docker(&["volume", "create", "pv1"]);
    assert!(!o.status.success() && show(&o).contains("already exists with driver testplug"), "{}", show(&o));

    e.ok(&["volume", "rm", "pv1", "pv2", "pv3"]);
    assert_eq!(std::fs::read_dir(p.root.join("volumes")).unwrap().count(), 0);
    let o = e.docker(&["volume", "create", "-d", "nosuch", "x1"]);
    assert!(!o.status.success() && show(&o).contains("plugin \"nosuch\" not found"), "{}", show(&o));
    // The plugin's own error for an option it rejects, and nothing made.
    let o = e.docker(&["volume", "create", "-d", "testplug", "-o", "reject=1", "x2"]);
    assert!(!o.status.success() && show(&o).contains("option reject is not accepted"), "{}", show(&o));
    assert!(!p.root.join("volumes/x2").exists());
    assert!(!e.ok(&["volume", "ls", "-q"]).contains("x2"));
}

#[test]
fn a_dead_hung_or_garbage_plugin_is_a_clear_error_and_keeps_the_container() {
    let s = Setup::new(&[]);
    let mut p = s.plugin("flaky", "VolumeDriver", &[]);
    let e = &s.e;
    e.load_busybox();
    e.ok(&["volume", "create", "-d", "flaky", "keep"]);
    e.ok(&["run", "-d", "--name", "c1", "-v", "keep:/data", "bb", "sh", "-c", "echo kept > /data/f; exec sleep 1000"]);
    let f = p.root.join("volumes/keep/data/f");
    assert!(wait_for(10, || std::fs::read_to_string(&f).is_ok_and(|s| s == "kept\n")));

    // Garbage answer to Unmount: `docker rm -f` fails naming plugin and
    // method; the container stays listed, its data stays.
    p.set_control(json!({"garbage": ["VolumeDriver.Unmount"]}));
    let o = e.docker(&["rm", "-f", "c1"]);
    let msg = show(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("plugin flaky answered VolumeDriver.Unmount with an invalid response"), "{msg}");
    assert!(e.ok(&["ps", "-a", "--format", "{{.Names}}"]).lines().any(|l| l == "c1"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept\n");

    // A hung plugin: an error after the bound (3 s), not a hang.
    p.set_control(json!({"hang": ["VolumeDriver.Unmount"]}));
    let t = Instant::now();
    let o = e.docker(&["rm", "-f", "c1"]);
    let took = t.elapsed();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("plugin flaky to answer VolumeDriver.Unmount"), "{}", show(&o));
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(15), "{took:?}");

    // A dead plugin: refused at once, naming it.
    p.kill();
    let t = Instant::now();
    let o = e.docker(&["run", "--rm", "-v", "keep:/data", "bb", "true"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("plugin flaky") && show(&o).contains("unreachable"), "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let o = e.docker(&["rm", "-f", "c1"]);
    assert!(!o.status.success() && show(&o).contains("plugin flaky"), "{}", show(&o));
    assert!(e.ok(&["ps", "-a", "--format", "{{.Names}}"]).lines().any(|l| l == "c1"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept\n");

    // Garbage to Mount at run: refused, no container left behind.
    p.set_control(json!({"garbage": ["VolumeDriver.Mount"]}));
    p.restart();
    let before = e.ok(&["ps", "-aq"]);
    let o = e.docker(&["run", "--name", "c2", "-v", "keep:/data", "bb", "true"]);
    assert!(!o.status.success() && show(&o).contains("flaky answered VolumeDriver.Mount"), "{}", show(&o));
    assert_eq!(e.ok(&["ps", "-aq"]), before);

    // The plugin back to health: the container goes, the data stays.
    p.set_control(json!({}));
    e.ok(&["rm", "-f", "c1"]);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept\n");
    e.ok(&["volume", "rm", "keep"]);
    assert!(!f.exists());
}

/// engined with an authorization plugin. Dropping it first lets the plugin
/// allow everything (alive again if a test killed it), so that engined's
/// own cleanup (`docker rm -f` of every container) goes through.
struct WithAuthz {
    e: Engined,
    p: TestPlugin,
    _dirs: tempfile::TempDir,
}

impl Drop for WithAuthz {
    fn drop(&mut self) {
        if !self.p.alive() {
            self.p.restart();
        }
        self.p.set_control(json!({"deny": []}));
    }
}

fn base64_json(v: &serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("a base64 string")).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn authorization_plugin_denies_docker_rm_and_allows_the_rest() {
    let dirs = tempfile::Builder::new().prefix("p").rand_bytes(5).tempdir_in("/tmp").unwrap();
    let socks = dirs.path().join("run");
    let p = TestPlugin::start(
        &socks,
        &dirs.path().join("work"),
        "testauthz",
        "authz",
        &["--deny", r"DELETE:^(/v[0-9.]+)?/containers/"],
    );
    let e = Engined::start_with(&[
        "--plugin-socket-dir",
        socks.to_str().unwrap(),
        "--plugin-spec-dir",
        dirs.path().join("etc").to_str().unwrap(),
        "--plugin-timeout",
        "3s",
        "--authorization-plugin",
        "testauthz",
    ]);
    let mut s = WithAuthz { e, p, _dirs: dirs };
    s.e.load_busybox();
    s.e.ok(&["run", "-d", "--name", "keepme", "bb", "sleep", "1000"]);
    assert_eq!(s.e.ok(&["inspect", "keepme", "--format", "{{.State.Running}}"]), "true\n");
    // Hijacked streams (attach, exec) pass the hook too.
    assert_eq!(s.e.ok(&["run", "--rm", "bb", "echo", "through"]), "through\n");
    assert_eq!(s.e.ok(&["exec", "keepme", "echo", "exec"]), "exec\n");

    // docker rm is denied with the plugin's message, as dockerd words it.
    let o = s.e.docker(&["rm", "-f", "keepme"]);
    let msg = show(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("authorization denied by plugin testauthz: denied by testplugin: DELETE /v1."), "{msg}");
    assert!(msg.contains("/containers/keepme?force=1"), "{msg}");
    assert_eq!(s.e.ok(&["inspect", "keepme", "--format", "{{.State.Running}}"]), "true\n");
    let (status, _) = s.e.http("DELETE", "/containers/keepme?force=1", b"");
    assert_eq!(status, 403);

    // The plugin saw requests and responses as dockerd sends them: the
    // create body and the answer, base64.
    let calls = s.p.calls();
    let create_call = |method: &str| {
        calls
            .iter()
            .find(|c| c.0 == method && c.1["RequestURI"].as_str().is_some_and(|u| u.contains("/containers/create")))
            .unwrap_or_else(|| panic!("the create was not shown to the plugin's {method}: {calls:?}"))
    };
    let req = create_call("AuthZPlugin.AuthZReq");
    assert_eq!(req.1["RequestMethod"], "POST");
    assert_eq!(base64_json(&req.1["RequestBody"])["Image"], "bb");
    assert_eq!(req.1["RequestHeaders"]["Content-Type"], "application/json");
    let res = create_call("AuthZPlugin.AuthZRes");
    assert_eq!(res.1["ResponseStatusCode"], 201);
    let id = base64_json(&res.1["ResponseBody"])["Id"].as_str().unwrap().to_string();
    assert!(s.e.ok(&["inspect", "keepme", "--format", "{{.Id}}"]).starts_with(&id));

    // A response can be denied too, after the request was served.
    s.p.set_control(json!({"deny_res": [r"GET:/containers/keepme/json"]}));
    let o = s.e.docker(&["inspect", "--type", "container", "keepme"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        show(&o).contains("authorization denied by plugin testauthz: answer withheld by testplugin"),
        "{}",
        show(&o)
    );
    s.p.set_control(json!({}));

    // A plugin answering garbage, then a dead one: every request refused
    // with a clear error naming it, at once; the container runs on.
    s.p.set_control(json!({"garbage": ["AuthZPlugin.AuthZReq"]}));
    let o = s.e.docker(&["ps"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("plugin testauthz failed with error: plugin testauthz answered AuthZPlugin.AuthZReq with an invalid response"), "{}", show(&o));
    s.p.kill();
    let t = Instant::now();
    let o = s.e.docker(&["ps"]);
    assert!(!o.status.success() && show(&o).contains("plugin testauthz failed with error"), "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    s.p.set_control(json!({}));
    s.p.restart();
    assert_eq!(s.e.ok(&["ps", "--format", "{{.Names}}"]), "keepme\n");

    // engined refuses to start with an authorization plugin it cannot find.
    let o = engined_output(
        s._dirs.path(),
        &["--plugin-socket-dir", socks.to_str().unwrap(), "--authorization-plugin", "absent"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("plugin \"absent\" not found"), "{}", show(&o));
}

#[test]
fn docker_plugin_ls_lists_what_was_discovered() {
    let s = Setup::new(&[]);
    let _vol = s.plugin("testplug", "VolumeDriver", &[]);
    let mut dead = s.plugin("gone", "VolumeDriver", &[]);
    dead.kill();
    // One found by a spec file naming a socket elsewhere.
    let other = tempfile::Builder::new().prefix("q").rand_bytes(5).tempdir_in("/tmp").unwrap();
    let _spec = TestPlugin::start(other.path(), &other.path().join("work"), "byspec", "authz,VolumeDriver", &[]);
    let spec_file = s.plugins.path().join("etc/byspec.spec");
    std::fs::write(&spec_file, format!("unix://{}\n", other.path().join("byspec.sock").display())).unwrap();

    let ls = s.e.ok(&["plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"]);
    assert_eq!(ls, "byspec true\ngone false\ntestplug true\n");
    let types = s.e.ok(&["plugin", "inspect", "byspec", "--format", "{{.Config.Interface.Types}}"]);
    assert_eq!(types, "[docker.authz/1.0 docker.volumedriver/1.0]\n");
    let desc = s.e.ok(&["plugin", "inspect", "gone", "--format", "{{.Config.Description}}"]);
    assert!(desc.contains("gone.sock") && desc.contains("unreachable"), "{desc}");
    let ls = s.e.ok(&["plugin", "ls", "--filter", "capability=authz", "--format", "{{.Name}}"]);
    assert_eq!(ls, "byspec\n");
    let o = s.e.docker(&["plugin", "inspect", "nosuch"]);
    assert!(!o.status.success() && show(&o).contains("nosuch"), "{}", show(&o));
}
