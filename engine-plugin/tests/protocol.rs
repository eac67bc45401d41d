//! The protocol against a real plugin process (`fixtures/testplugin.py`)
//! on a unix socket, discovered the way dockerd discovers plugins.

#[path = "support/testplugin.rs"]
mod testplugin;

use engine_core::{VolumeCreate, VolumeDriver};
use engine_plugin::{Discovery, PluginError, PluginVolumeDriver, Plugins, VolumeRouter};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testplugin::TestPlugin;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }
    fn sockets(&self) -> std::path::PathBuf {
        self.dir.path().join("run")
    }
    fn specs(&self) -> std::path::PathBuf {
        self.dir.path().join("etc")
    }
    fn plugin(&self, name: &str, implements: &str) -> TestPlugin {
        TestPlugin::start(&self.sockets(), &self.dir.path().join("work"), name, implements, &[])
    }
    fn plugins(&self, timeout: Duration) -> Arc<Plugins> {
        Arc::new(Plugins::new(Discovery::new([self.sockets()], [self.specs()])).with_timeout(timeout))
    }
}

#[tokio::test]
async fn activation_by_socket_and_by_spec_file() {
    let env = Env::new();
    let p = env.plugin("vols", "VolumeDriver");
    let plugins = env.plugins(Duration::from_secs(10));
    let active = plugins.get("vols", "VolumeDriver").await.unwrap();
    assert_eq!(active.manifest().implements, ["VolumeDriver"]);
    assert_eq!(p.methods(), ["Plugin.Activate"]);
    // Asking for an interface it does not implement names both.
    let e = plugins.get("vols", "NetworkDriver").await.unwrap_err();
    assert!(matches!(e, PluginError::NotImplemented { .. }), "{e}");
    assert!(e.to_string().contains("vols") && e.to_string().contains("NetworkDriver"), "{e}");

    // The same plugin through a .spec file elsewhere, and a .json one.
    std::fs::create_dir_all(env.specs()).unwrap();
    std::fs::write(env.specs().join("byspec.spec"), format!("unix://{}\n", p.socket.display())).unwrap();
    std::fs::write(
        env.specs().join("byjson.json"),
        json!({"Name": "byjson", "Addr": format!("unix://{}", p.socket.display())}).to_string(),
    )
    .unwrap();
    for n in ["byspec", "byjson"] {
        let a = plugins.get(n, "VolumeDriver").await.unwrap();
        assert_eq!(a.name(), n);
    }
    let names: Vec<String> = plugins.scan().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["byjson", "byspec", "vols"]);

    let e = plugins.get("absent", "VolumeDriver").await.unwrap_err();
    assert_eq!(e.to_string(), "plugin \"absent\" not found");
    assert!(engine_core::Error::from(e).is_not_found());
}

#[tokio::test]
async fn errors_name_the_plugin_and_the_method() {
    let env = Env::new();
    let mut p = env.plugin("faulty", "VolumeDriver");
    let bound = Duration::from_millis(1500);
    let plugins = env.plugins(bound);
    let drv = PluginVolumeDriver::new(plugins.clone(), "faulty");
    drv.create(VolumeCreate::named("v1")).await.unwrap();

    // The plugin's own Err, surfaced.
    let e = drv.create(VolumeCreate::named("v2").opt("reject", "1")).await.unwrap_err();
    assert_eq!(e.to_string(), "plugin faulty: VolumeDriver.Create: option reject is not accepted");
    p.set_control(json!({"err": {"VolumeDriver.Remove": "disk on fire"}}));
    let e = drv.remove("v1").await.unwrap_err();
    assert_eq!(e.to_string(), "plugin faulty: VolumeDriver.Remove: disk on fire");

    // Garbage.
    p.set_control(json!({"garbage": ["VolumeDriver.Mount"]}));
    let e = drv.mount("v1", "c1").await.unwrap_err().to_string();
    assert!(e.contains("plugin faulty answered VolumeDriver.Mount with an invalid response"), "{e}");

    // A hung plugin: an error within the bound, not a hang.
    p.set_control(json!({"hang": ["VolumeDriver.Get"]}));
    let t = Instant::now();
    let e = drv.get("v1").await.unwrap_err();
    let took = t.elapsed();
    assert!(took >= bound && took < bound + Duration::from_secs(3), "{took:?}");
    assert!(matches!(e, engine_core::Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("plugin faulty to answer VolumeDriver.Get"), "{e}");

    // A plugin that dies while answering, then one that is gone.
    p.set_control(json!({"die": ["VolumeDriver.List"]}));
    let e = drv.list().await.unwrap_err().to_string();
    assert!(e.contains("plugin faulty") && e.contains("VolumeDriver.List"), "{e}");
    p.kill();
    let t = Instant::now();
    let e = drv.get("v1").await.unwrap_err();
    assert!(t.elapsed() < bound, "a dead plugin is refused at once");
    assert!(e.to_string().contains("plugin faulty") && e.to_string().contains("unreachable"), "{e}");

    // Back again: the same registry reaches it (a fresh connection per call).
    p.set_control(json!({}));
    p.restart();
    assert_eq!(drv.get("v1").await.unwrap().name, "v1");
}

#[tokio::test]
async fn router_records_owners_and_keeps_them_across_reopen() {
    let env = Env::new();
    let p = env.plugin("store", "VolumeDriver");
    let plugins = env.plugins(Duration::from_secs(10));
    let state = env.dir.path().join("state");
    let local: Arc<dyn VolumeDriver> =
        Arc::new(engine_volume::LocalDriver::open(env.dir.path().join("local")).unwrap());
    let router = VolumeRouter::open(local.clone(), plugins.clone(), &state).unwrap();
    let v = router.create(VolumeCreate::named("pv").driver("store").label("k", "v")).await.unwrap();
    assert_eq!((v.driver.as_str(), v.labels["k"].as_str()), ("store", "v"));
    let mp = router.mount("pv", "ctr1").await.unwrap();
    assert_eq!(mp, p.root.join("volumes/pv/data"));
    assert_eq!(router.get("pv").await.unwrap().users, ["ctr1"]);
    // A name has one owner.
    assert!(router.create(VolumeCreate::named("pv").driver("local")).await.unwrap_err().is_conflict());
    router.create(VolumeCreate::named("lv")).await.unwrap();
    assert!(router.create(VolumeCreate::named("lv").driver("store")).await.unwrap_err().is_conflict());
    // Using it without naming a driver finds its owner.
    assert_eq!(router.create(VolumeCreate::named("pv")).await.unwrap().driver, "store");
    assert!(router.remove("pv").await.unwrap_err().is_conflict());
    router.unmount("pv", "ctr1").await.unwrap();

    // Reopened (an engine restart): still the plugin's.
    drop(router);
    let router = VolumeRouter::open(local, plugins, &state).unwrap();
    let all: Vec<(String, String)> = router.list().await.unwrap().into_iter().map(|v| (v.name, v.driver)).collect();
    assert_eq!(all, [("lv".to_string(), "local".to_string()), ("pv".into(), "store".into())]);
    assert_eq!(router.get("pv").await.unwrap().labels["k"], "v");
    router.remove("pv").await.unwrap();
    assert!(!p.root.join("volumes/pv").exists());
    assert!(router.get("pv").await.unwrap_err().is_not_found());
    let anon = router.create(VolumeCreate::anonymous().driver("store")).await.unwrap();
    assert!(anon.is_anonymous() && anon.driver == "store");
}

#[tokio::test]
async fn streamed_answers_are_read_to_the_end() {
    use tokio::io::AsyncReadExt;
    let env = Env::new();
    let _p = env.plugin("streamer", "LogDriver");
    let plugins = env.plugins(Duration::from_secs(10));
    let p = plugins.get("streamer", "LogDriver").await.unwrap();
    let mut s = p.client().call_stream("Test.Stream", &json!({"Lines": 5000})).await.unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).await.unwrap();
    assert_eq!(all.lines().count(), 5000);
    assert_eq!(all.lines().last(), Some("line 4999"));
    // An unknown method: the plugin's 404, naming plugin and method.
    let e = p.client().call_stream("Test.Nothing", &json!({})).await.unwrap_err().to_string();
    assert!(e.contains("plugin streamer answered Test.Nothing") && e.contains("404"), "{e}");
}

#[tokio::test]
async fn a_plugin_on_tcp_named_by_a_spec_file() {
    let env = Env::new();
    // The plugin listens on 127.0.0.1 and writes `tcp://127.0.0.1:PORT` to
    // `<spec dir>/tcpplug.spec` once listening.
    let _p = TestPlugin::start(&env.specs(), &env.dir.path().join("work"), "tcpplug", "VolumeDriver", &["--tcp"]);
    std::fs::rename(env.specs().join("tcpplug.sock"), env.specs().join("tcpplug.spec")).unwrap();
    let plugins = env.plugins(Duration::from_secs(10));
    let spec = plugins.discovery().lookup("tcpplug").await.unwrap();
    assert!(matches!(&spec.addr, engine_plugin::PluginAddr::Tcp(a) if a.starts_with("127.0.0.1:")), "{spec:?}");
    let drv = PluginVolumeDriver::new(plugins, "tcpplug");
    drv.create(VolumeCreate::named("overtcp")).await.unwrap();
    assert_eq!(drv.list().await.unwrap()[0].name, "overtcp");
}
