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

    e.ok(&["volume", "rm", "pv1", "pv2"]);
    assert!(!p.root.join("volumes/pv1").exists() && !p.root.join("volumes/pv2").exists());
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
