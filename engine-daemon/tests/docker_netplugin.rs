//! Network plugins (Docker's remote network driver, plugin protocol v1)
//! through the real docker CLI: `docker network create -d testnet`, where
//! testnet is `engine-plugin/tests/fixtures/testplugin.py`, a separate
//! process on a socket in a discovery directory of the test's own. The
//! plugin makes its bridges and veths with `ip` inside the test's host
//! namespace (engined's `--network-host-netns`); traffic stays between the
//! test's containers.

mod common;
#[path = "../../engine-plugin/tests/support/testplugin.rs"]
mod testplugin;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use testplugin::TestPlugin;

/// A networked engined pointed at a plugin directory, and the network
/// plugin `testnet` making its interfaces in engined's host namespace.
struct Setup {
    plugins: tempfile::TempDir,
    e: Engined,
    net: TestPlugin,
}

impl Setup {
    fn new() -> Setup {
        Self::with(false)
    }

    /// With `remote`, the manager and the plugins' user is a separate
    /// engine-lifecycled (`engined --lifecycle`), and testnet is a log
    /// plugin too.
    fn with(remote: bool) -> Setup {
        let plugins = tempfile::Builder::new().prefix("p").rand_bytes(5).tempdir_in("/tmp").unwrap();
        let socks = plugins.path().join("run");
        let specs = plugins.path().join("etc");
        std::fs::create_dir_all(&socks).unwrap();
        std::fs::create_dir_all(&specs).unwrap();
        let (socks_s, specs_s) = (socks.display().to_string(), specs.display().to_string());
        let args = ["--plugin-socket-dir", &socks_s, "--plugin-spec-dir", &specs_s, "--plugin-timeout", "3s"];
        let e = if remote { Engined::start_remote_networked_with(&args) } else { Engined::start_networked_with(&args) };
        let ns = e.host_netns.as_ref().unwrap().path().display().to_string();
        let implements = if remote { "NetworkDriver,LogDriver" } else { "NetworkDriver" };
        let net = TestPlugin::start(&socks, &plugins.path().join("work"), "testnet", implements, &["--netns", &ns]);
        e.load_busybox();
        Setup { plugins, e, net }
    }

    /// The NetworkDriver calls the plugin answered, in order: (method, body).
    fn calls(&self) -> Vec<(String, Value)> {
        self.net
            .calls()
            .into_iter()
            .filter_map(|(m, b)| m.strip_prefix("NetworkDriver.").map(|m| (m.to_string(), b)))
            .collect()
    }

    fn methods(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.0).collect()
    }

    /// Link names in the test's host namespace.
    fn host_links(&self) -> Vec<String> {
        self.e.host_links()
    }

    /// The container network namespace files engined holds.
    fn netns_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.e.data_root().join("netns"))
            .map(|rd| rd.flatten().map(|d| d.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn inspect_net(&self, n: &str) -> Value {
        let v: Value = serde_json::from_str(&self.e.ok(&["network", "inspect", n])).unwrap();
        v[0].clone()
    }

    fn ip_of(&self, c: &str, net: &str) -> String {
        let v: Value = serde_json::from_str(&self.e.ok(&["inspect", c])).unwrap();
        v[0]["NetworkSettings"]["Networks"][net]["IPAddress"].as_str().unwrap().to_string()
    }

    /// Wait (bounded) until container `c` listens on tcp `port`.
    fn wait_listening(&self, c: &str, port: u16) {
        let hex = format!(":{port:04X}");
        let ok = eventually(20, || {
            let o = self.e.docker(&["exec", c, "cat", "/proc/net/tcp", "/proc/net/tcp6"]);
            String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&hex) && f[3] == "0A"
            })
        });
        assert!(ok, "{c} never listened on {port}");
    }

    /// `from` reaches `to`'s web server (see [`serve`]) at `addr`.
    fn reaches(&self, from: &str, to: &str, addr: &str) {
        self.wait_listening(to, 7000);
        let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {addr} 7000");
        let got = self.e.ok(&["exec", from, "sh", "-c", &get]);
        assert!(got.contains("200 OK") && got.contains(&format!("pong-{to}")), "{from} -> {to} at {addr}: {got}");
    }
}

/// A container command serving "pong-<name>" over HTTP on port 7000.
fn serve(name: &str) -> String {
    format!("mkdir -p /www && echo pong-{name} > /www/index.html && httpd -p 7000 -h /www && exec sleep 1000")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plugin_network_end_to_end_with_every_call_in_order() {
    let s = Setup::new();
    let e = &s.e;
    // An unknown driver is a plugin not found, as with dockerd.
    let o = e.docker(&["network", "create", "-d", "nosuchplugin", "x1"]);
    assert!(!o.status.success() && stderr(&o).contains("nosuchplugin"), "{}", show(&o));

    let id = e.ok(&["network", "create", "-d", "testnet", "-o", "color=blue", "--label", "l=1", "n1"]);
    let id = id.trim();
    let n = s.inspect_net("n1");
    assert_eq!(n["Driver"], "testnet", "{n}");
    assert_eq!(n["Id"], id);
    assert_eq!(n["Options"]["color"], "blue", "{n}");
    assert_eq!(n["Labels"]["l"], "1", "{n}");
    let subnet = n["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().to_string();
    let gateway = n["IPAM"]["Config"][0]["Gateway"].as_str().unwrap().to_string();
    assert_eq!(subnet, "172.18.0.0/16", "the engine's IPAM: the first free user subnet");
    assert!(e.ok(&["network", "ls", "--filter", "driver=testnet", "--format", "{{.Name}}"]).contains("n1"));
    // A bridge network beside it takes a subnet of its own.
    e.ok(&["network", "create", "br1"]);
    let b = s.inspect_net("br1");
    assert_eq!(b["Driver"], "bridge");
    assert_ne!(b["IPAM"]["Config"][0]["Subnet"], subnet.as_str(), "{b}");

    e.ok(&["run", "-d", "--name", "ca", "--network", "n1", "bb", "sh", "-c", &serve("ca")]);
    e.ok(&["run", "-d", "--name", "cb", "--network", "n1", "bb", "sh", "-c", &serve("cb")]);
    let (ipa, ipb) = (s.ip_of("ca", "n1"), s.ip_of("cb", "n1"));
    assert!(ipa.starts_with("172.18.") && ipb.starts_with("172.18.") && ipa != ipb, "{ipa} {ipb}");
    // By address and by name, both ways.
    s.reaches("ca", "cb", &ipb);
    s.reaches("cb", "ca", "ca");
    // Inside: eth0 with the engine's address, the plugin's MAC, its gateway and route.
    let addr = e.ok(&["exec", "ca", "ip", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ipa}/16")), "{addr}");
    assert!(addr.contains("link/ether 02:ee:"), "the plugin's MAC: {addr}");
    let routes = e.ok(&["exec", "ca", "ip", "route"]);
    assert!(routes.contains(&format!("default via {gateway} dev eth0")), "{routes}");
    assert!(routes.contains(&format!("10.213.0.0/24 via {gateway} dev eth0")), "{routes}");
    let v: Value = serde_json::from_str(&e.ok(&["inspect", "ca"])).unwrap();
    let ep = &v[0]["NetworkSettings"]["Networks"]["n1"];
    assert_eq!(ep["Gateway"], gateway.as_str(), "{ep}");
    assert!(ep["MacAddress"].as_str().unwrap().starts_with("02:ee:"), "{ep}");
    let n = s.inspect_net("n1");
    assert_eq!(n["Containers"].as_object().unwrap().len(), 2, "{n}");
    // Published ports: the remote driver publishes none; refused, nothing made.
    let links = s.host_links();
    let o = e.docker(&["run", "-d", "--name", "pp", "--network", "n1", "-p", "80", "bb", "sleep", "1"]);
    assert!(!o.status.success() && stderr(&o).contains("published ports"), "{}", show(&o));
    assert_eq!(s.host_links(), links);

    // One at a time (the CLI removes a list concurrently): the calls' order is checked.
    e.ok(&["rm", "-f", "ca"]);
    e.ok(&["rm", "-f", "cb"]);
    e.ok(&["network", "rm", "n1"]);
    assert!(!e.ok(&["network", "ls", "--format", "{{.Name}}"]).contains("n1"));

    let calls = s.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    let first = s.net.methods();
    assert_eq!(first[0], "Plugin.Activate", "{first:?}");
    assert_eq!(
        methods,
        [
            "GetCapabilities",
            "CreateNetwork",
            "CreateEndpoint",
            "Join",
            "EndpointOperInfo",
            "CreateEndpoint",
            "Join",
            "EndpointOperInfo",
            "Leave",
            "DeleteEndpoint",
            "Leave",
            "DeleteEndpoint",
            "DeleteNetwork"
        ],
        "{calls:?}"
    );
    // What they carried.
    let body = |i: usize| &calls[i].1;
    assert_eq!(body(1)["NetworkID"], id);
    assert_eq!(body(1)["Options"]["com.docker.network.generic"]["color"], "blue");
    assert_eq!(body(1)["IPv4Data"][0]["Pool"], subnet.as_str());
    assert_eq!(body(1)["IPv4Data"][0]["Gateway"], format!("{gateway}/16"));
    assert_eq!(body(2)["NetworkID"], id);
    assert_eq!(body(2)["Interface"]["Address"], format!("{ipa}/16"));
    assert_eq!(body(2)["Interface"]["MacAddress"], "");
    assert_eq!(body(3)["EndpointID"], body(2)["EndpointID"]);
    assert!(body(3)["SandboxKey"].as_str().unwrap().contains("/netns/"), "{}", body(3));
    assert_eq!(body(12)["NetworkID"], id);
    // Nothing of the plugin's or the engine's stays in the host namespace.
    let links = s.host_links();
    assert!(!links.iter().any(|l| l.starts_with("th") || l.starts_with("tc") || l.starts_with("tb")), "{links:?}");
    assert!(s.netns_files().is_empty(), "{:?}", s.netns_files());
    let _ = &s.plugins;
}

#[test]
fn plugin_network_survives_restart_and_a_dead_or_broken_plugin_leaves_nothing() {
    let mut s = Setup::new();
    s.e.ok(&["network", "create", "-d", "testnet", "n1"]);
    s.e.ok(&["run", "-d", "--name", "ca", "--network", "n1", "bb", "sh", "-c", &serve("ca")]);
    let ipa = s.ip_of("ca", "n1");

    // engined restarts (containers keep running); the network and its
    // plugin are found again by name.
    s.e.kill9();
    s.e.spawn();
    let n = s.inspect_net("n1");
    assert_eq!(n["Driver"], "testnet", "{n}");
    s.e.ok(&["run", "-d", "--name", "cb", "--network", "n1", "bb", "sh", "-c", &serve("cb")]);
    s.reaches("cb", "ca", &ipa);
    let ipb = s.ip_of("cb", "n1");
    assert_ne!(ipa, ipb, "the lease of ca survived the restart");
    // A running container on the default bridge joins and leaves n1.
    s.e.ok(&["run", "-d", "--name", "cz", "bb", "sleep", "1000"]);
    s.e.ok(&["network", "connect", "n1", "cz"]);
    let eth1 = s.e.ok(&["exec", "cz", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet {}/16", s.ip_of("cz", "n1"))), "{eth1}");
    s.reaches("cz", "ca", &ipa);
    s.e.ok(&["network", "disconnect", "n1", "cz"]);
    let o = s.e.docker(&["exec", "cz", "ip", "link", "show", "eth1"]);
    assert!(!o.status.success(), "eth1 outlived the disconnect: {}", show(&o));
    assert!(s.e.ok(&["exec", "cz", "ip", "-o", "-4", "addr", "show", "eth0"]).contains("inet 172.17."));
    s.e.ok(&["rm", "-f", "cz"]);

    // The state a failed run must leave as it was.
    let before = |s: &Setup| {
        (s.host_links(), s.netns_files(), s.inspect_net("n1")["Containers"].clone(), s.e.ok(&["ps", "-aq"]))
    };
    let snap = before(&s);

    // Broken answers: garbage, an error of its own, a hang (bounded).
    for (ctl, want) in [
        (json!({"garbage": ["NetworkDriver.Join"]}), "NetworkDriver.Join"),
        (json!({"err": {"NetworkDriver.CreateEndpoint": "no room here"}}), "no room here"),
        (json!({"hang": ["NetworkDriver.Join"]}), "to answer NetworkDriver.Join"),
    ] {
        s.net.set_control(ctl.clone());
        let o = s.e.docker(&["run", "--name", "cc", "--network", "n1", "bb", "true"]);
        assert!(!o.status.success(), "{ctl}: {}", show(&o));
        let err = stderr(&o);
        assert!(err.contains("testnet") && err.contains(want), "{ctl}: {err}");
        assert_eq!(before(&s), snap, "{ctl}: something was left behind");
    }
    s.net.set_control(json!({}));
    let calls = s.methods();
    // The garbage Join was followed by DeleteEndpoint (rollback).
    let j = calls.iter().position(|m| m == "Join").unwrap();
    assert!(calls[j..].contains(&"DeleteEndpoint".to_string()), "{calls:?}");

    // The plugin dies: a clear error naming it and the call, nothing left.
    s.net.kill();
    let o = s.e.docker(&["run", "--name", "cc", "--network", "n1", "bb", "true"]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("plugin testnet") && err.contains("NetworkDriver.CreateEndpoint"), "{err}");
    assert_eq!(before(&s), snap, "a dead plugin: something was left behind");

    // It comes back: the network works again.
    s.net.restart();
    let got = s.e.ok(&["run", "--rm", "--network", "n1", "bb", "sh", "-c", "ip -o -4 addr show eth0"]);
    assert!(got.contains("inet 172.18."), "{got}");
    s.e.ok(&["rm", "-f", "ca", "cb"]);
    s.e.ok(&["network", "rm", "n1"]);
    let links = s.host_links();
    assert!(!links.iter().any(|l| l.starts_with("th") || l.starts_with("tc") || l.starts_with("tb")), "{links:?}");
}

#[test]
fn plugin_networks_and_log_plugins_through_a_separate_engine_lifecycled() {
    let s = Setup::with(true);
    let e = &s.e;
    e.ok(&["network", "create", "-d", "testnet", "n1"]);
    assert_eq!(s.inspect_net("n1")["Driver"], "testnet");
    let script = format!("echo hello-plugin-log; {}", serve("ca"));
    let id =
        e.ok(&["run", "-d", "--name", "ca", "--network", "n1", "--log-driver", "testnet", "bb", "sh", "-c", &script]);
    let id = id.trim();
    e.ok(&["run", "-d", "--name", "cb", "--network", "n1", "bb", "sh", "-c", &serve("cb")]);
    s.reaches("cb", "ca", &s.ip_of("ca", "n1"));
    // The log plugin got the container's line through its FIFO.
    let got = || std::fs::read_to_string(s.net.root.join("logs").join(format!("{id}.jsonl"))).unwrap_or_default();
    assert!(eventually(20, || got().contains("hello-plugin-log")), "{}", got());
    e.ok(&["rm", "-f", "ca"]);
    e.ok(&["rm", "-f", "cb"]);
    e.ok(&["network", "rm", "n1"]);
    // Volume plugins stay refused there, saying why.
    let o = e.docker(&["volume", "create", "-d", "testnet", "v1"]);
    assert!(!o.status.success() && stderr(&o).contains("not served with --lifecycle"), "{}", show(&o));
    let m = s.methods();
    for want in ["CreateNetwork", "CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "DeleteNetwork"] {
        assert!(m.iter().any(|x| x == want), "{want} missing: {m:?}");
    }
    let links = s.host_links();
    assert!(!links.iter().any(|l| l.starts_with("th") || l.starts_with("tc") || l.starts_with("tb")), "{links:?}");
}
