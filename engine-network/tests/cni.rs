//! The CNI driver running Debian's plugins (`containernetworking-plugins`
//! in /usr/lib/cni: bridge, host-local, portmap, firewall, tuning) against
//! real namespaces. The driver's host side is a namespace of the test's
//! own (see `common`): the bridge, veths and every iptables/nftables rule
//! portmap and firewall add live there and go with it, so the machine's
//! own packet filter is never touched. Traffic goes only to addresses of
//! these namespaces and their loopback.

mod common;

use common::*;
use engine_core::network::{AttachRequest, NetworkDriver, NetworkSpec, PortBinding};
use engine_network::CniDriver;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

const PLUGINS: &str = "/usr/lib/cni";

fn ip4(ep: &engine_core::network::EndpointInfo) -> Ipv4Addr {
    match ep.ipv4.unwrap().addr() {
        IpAddr::V4(a) => a,
        _ => unreachable!(),
    }
}

/// A conflist: bridge with host-local, then `extra` plugins.
fn write_conflist(dir: &Path, name: &str, bridge: &str, subnet: &str, ipam_dir: &Path, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[
  {{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":true,"hairpinMode":true,
    "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],
             "dataDir":"{}"}}}}{extra}]}}"#,
        ipam_dir.display()
    );
    std::fs::write(dir.join(format!("10-{name}.conflist")), text).unwrap();
}

const FULL: &str = r#",
  {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
  {"type":"firewall"},
  {"type":"tuning","capabilities":{"mac":true},"sysctl":{"net.ipv4.conf.eth0.rp_filter":"2"}}"#;

async fn open(lab: &Lab, conf: &Path) -> CniDriver {
    CniDriver::builder(lab.dir.path().join("cni-state"))
        .conf_dir(conf)
        .bin_dirs(vec![PathBuf::from(PLUGINS)])
        .host_netns(lab.host.path())
        .resolv_conf(lab.dir.path().join("resolv.conf"))
        .open()
        .await
        .unwrap()
}

/// What CNI may leave on the host side: links, the packet filter
/// (iptables-nft shows in the nftables ruleset; iptables-save as well),
/// host-local's leases, the driver's cached results.
#[derive(Debug, PartialEq)]
struct State {
    links: Vec<String>,
    nft: String,
    iptables: Vec<String>,
    leases: Vec<String>,
    cached: Vec<String>,
}

async fn state(lab: &Lab, ipam_dir: &Path) -> State {
    let snap = lab.snapshot().await;
    let iptables = lab
        .host_ns()
        .run(|| {
            let o = std::process::Command::new("iptables-save").output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // Rules and chains, without comments and counters.
            Ok(String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("-A") || l.starts_with(':'))
                .map(|l| l.split(" [").next().unwrap().to_string())
                .collect::<Vec<_>>())
        })
        .await
        .unwrap();
    let list = |d: PathBuf| -> Vec<String> {
        let mut v: Vec<String> = walk(&d);
        v.sort();
        v
    };
    // Counters change with traffic; the rules are what matters.
    let nft = snap.rules.lines().map(|l| l.split(" counter packets").next().unwrap()).collect::<Vec<_>>().join("\n");
    State {
        links: snap.links,
        nft,
        iptables,
        leases: list(ipam_dir.to_owned()),
        cached: list(lab.dir.path().join("cni-state/cni/endpoints")),
    }
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Lease files of host-local (one per address; not its lock or last-reserved file).
fn leases(s: &State) -> Vec<&String> {
    s.leases.iter().filter(|p| p.rsplit('/').next().unwrap().parse::<Ipv4Addr>().is_ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_network_with_debian_plugins_end_to_end() {
    let mut lab = Lab::new().await;
    let conf = lab.dir.path().join("net.d");
    let ipam_dir = lab.dir.path().join("ipam");
    write_conflist(&conf, "cninet", "cnibr0", "10.230.0.0/24", &ipam_dir, FULL);
    let (pw, _nsw) = lab.container("warm").await;
    let (p1, ns1) = lab.container("one").await;
    let (p2, ns2) = lab.container("two").await;
    let d = open(&lab, &conf).await;
    let nets = d.list_networks().await.unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!((nets[0].name.as_str(), nets[0].driver.as_str()), ("cninet", "cni"));
    assert_eq!(nets[0].ipam[0].subnet.to_string(), "10.230.0.0/24");

    // A first cycle makes the bridge and the plugins' shared chains
    // (portmap's CNI-HOSTPORT-*, firewall's CNI-FORWARD/CNI-ADMIN), which
    // CNI keeps for the next container; what one container adds must go.
    let warm = AttachRequest::new("warm", &pw).publish(PortBinding::parse("0:7000").unwrap().remove(0));
    d.attach("cninet", warm).await.unwrap();
    d.detach("cninet", &cid("warm")).await.unwrap();
    let before = state(&lab, &ipam_dir).await;
    assert!(leases(&before).is_empty(), "{before:?}");
    assert!(before.links.contains(&"cnibr0".to_string()), "{before:?}");

    // host-local gives addresses; portmap publishes a port (any free one).
    let e1 = d
        .attach("cninet", AttachRequest::new("c1", &p1).publish(PortBinding::parse("0:7000").unwrap().remove(0)))
        .await
        .unwrap();
    let e2 = d.attach(&e1.network_id[..10], AttachRequest::new("c2", &p2)).await.unwrap();
    let subnet: engine_core::network::IpPrefix = "10.230.0.0/24".parse().unwrap();
    assert!(subnet.contains(IpAddr::V4(ip4(&e1))) && subnet.contains(IpAddr::V4(ip4(&e2))), "{e1:?} {e2:?}");
    assert_ne!(ip4(&e1), ip4(&e2));
    assert_eq!(e1.gateway4, Some(Ipv4Addr::new(10, 230, 0, 1)));
    assert_eq!(e1.interface, "eth0");
    assert!(e1.host_interface.as_deref().unwrap().starts_with("veth"), "{e1:?}");
    let host_port = e1.ports[0].host_port;
    assert_ne!(host_port, 0);
    let mid = state(&lab, &ipam_dir).await;
    assert_eq!(leases(&mid).len(), 2, "{mid:?}");
    assert!(mid.links.contains(e1.host_interface.as_ref().unwrap()));
    // The tuning plugin ran in the container's namespace.
    let rp = ns1.read_sysctl("net/ipv4/conf/eth0/rp_filter").await.unwrap();
    assert_eq!(rp, "2");

    let _s1 = serve_tcp(&ns1, 7000, "one").await;
    // From the host to the container's address.
    assert_eq!(tcp_get(&lab.host_ns(), sa(ip4(&e1), 7000), OK_TIMEOUT).await.unwrap(), "one 10.230.0.1");
    // From another container on the network.
    assert_eq!(tcp_get(&ns2, sa(ip4(&e1), 7000), OK_TIMEOUT).await.unwrap(), format!("one {}", ip4(&e2)));
    // The published port from the host's 127.0.0.1 (portmap's SNAT to the
    // bridge) and, from the outside namespace, on the host's address.
    let via_lo = tcp_get(&lab.host_ns(), sa(Ipv4Addr::LOCALHOST, host_port), OK_TIMEOUT).await.unwrap();
    assert!(via_lo.starts_with("one "), "{via_lo}");
    let via_host = tcp_get(&lab.outside_ns(), sa(HOST_ADDR, host_port), OK_TIMEOUT).await.unwrap();
    assert_eq!(via_host, format!("one {OUTSIDE_ADDR}"));
    // The port is held: a host process cannot take it.
    let taken = lab.host_ns().run(move || Ok(std::net::TcpListener::bind(("0.0.0.0", host_port)).is_err())).await;
    assert!(taken.unwrap());
    let info = d.inspect_network("cninet").await.unwrap();
    assert_eq!(info.endpoints.len(), 2);
    assert_eq!(info.endpoints["c1"], e1);
    // A fixed address (host-local's CNI_ARGS IP=), and one outside the
    // subnet: host-local refuses, the driver DELs, nothing is left.
    let (p3, _ns3) = lab.container("three").await;
    let e3 = d.attach("cninet", AttachRequest::new("c3", &p3).ipv4(Ipv4Addr::new(10, 230, 0, 77))).await.unwrap();
    assert_eq!(e3.ipv4.unwrap().to_string(), "10.230.0.77/24");
    d.detach("cninet", &cid("c3")).await.unwrap();
    let e = d.attach("cninet", AttachRequest::new("c3", &p3).ipv4(Ipv4Addr::new(10, 9, 9, 9))).await.unwrap_err();
    assert!(e.to_string().contains("10.9.9.9"), "{e}");
    assert_eq!(leases(&state(&lab, &ipam_dir).await).len(), 2, "only c1's and c2's leases");
    // Removing a network with endpoints is refused.
    assert!(d.remove_network("cninet").await.unwrap_err().is_conflict());

    // A new driver on the same state (a restart, or a crash of the
    // manager) knows the endpoints and DELs from the cached results.
    drop(d);
    let d = open(&lab, &conf).await;
    assert_eq!(d.inspect_network("cninet").await.unwrap().endpoints["c1"], e1);
    let taken = lab.host_ns().run(move || Ok(std::net::TcpListener::bind(("0.0.0.0", host_port)).is_err())).await;
    assert!(taken.unwrap(), "the published port is held again");
    d.detach("cninet", &cid("c1")).await.unwrap();
    d.detach("cninet", &cid("c2")).await.unwrap();
    assert!(d.detach("cninet", &cid("c2")).await.unwrap_err().is_not_found());
    assert!(d.check("cninet", "c1").await.unwrap_err().is_not_found());
    let after = state(&lab, &ipam_dir).await;
    assert_eq!(after, before, "DEL left something (links, rules, leases or cached results)");
    let free = lab.host_ns().run(move || Ok(std::net::TcpListener::bind(("0.0.0.0", host_port)).is_ok())).await;
    assert!(free.unwrap(), "the host port is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_failed_add_dead_namespace_and_made_networks_leave_nothing() {
    let mut lab = Lab::new().await;
    let conf = lab.dir.path().join("net.d");
    let ipam_dir = lab.dir.path().join("ipam");
    // The tuning plugin fails (no such sysctl) after bridge and host-local made their part.
    write_conflist(
        &conf,
        "broken",
        "cnibr1",
        "10.231.0.0/24",
        &ipam_dir,
        r#",{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.no_such_sysctl":"1"}}"#,
    );
    write_conflist(&conf, "plain", "cnibr2", "10.232.0.0/24", &ipam_dir, "");
    let (p1, _ns1) = lab.container("one").await;
    let d = open(&lab, &conf).await;
    // A warm-up, so the bridge exists before the baseline.
    d.attach("plain", AttachRequest::new("warm", &p1)).await.unwrap();
    d.detach("plain", &cid("warm")).await.unwrap();
    let e = d.attach("broken", AttachRequest::new("c1", &p1)).await.unwrap_err();
    assert!(e.to_string().contains("tuning") && e.to_string().contains("ADD"), "{e}");
    let before = state(&lab, &ipam_dir).await;
    assert!(leases(&before).is_empty() && before.cached.is_empty(), "a failed ADD left {before:?}");
    assert!(!before.links.iter().any(|l| l.starts_with("veth")), "{before:?}");
    let e = d.attach("broken", AttachRequest::new("c1", &p1)).await.unwrap_err();
    assert!(e.to_string().contains("tuning"), "{e}");
    assert_eq!(state(&lab, &ipam_dir).await, before);
    // Ports on a network without portmap: refused, not dropped.
    let e = d
        .attach("plain", AttachRequest::new("c1", &p1).publish(PortBinding::parse("8080:80").unwrap().remove(0)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("portMappings"), "{e}");
    assert_eq!(state(&lab, &ipam_dir).await, before);

    // A container whose namespace died while the driver was down: the
    // next driver DELs it from the cached result (no netns), freeing its lease.
    let (p2, ns2) = lab.container("two").await;
    drop(ns2);
    let e2 = d.attach("plain", AttachRequest::new("c2", &p2)).await.unwrap();
    // CHECK: every plugin finds what its ADD made. (Not on networks with
    // portmap: Debian's portmap 1.1.1 looks for an IPv6 chain of an
    // IPv4-only container in CHECK and fails.)
    d.check("plain", "c2").await.unwrap();
    assert_eq!(leases(&state(&lab, &ipam_dir).await).len(), 1);
    drop(d);
    let f = lab.containers.pop().unwrap();
    f.remove().unwrap();
    let d = open(&lab, &conf).await;
    assert!(d.inspect_network("plain").await.unwrap().endpoints.is_empty());
    let after = state(&lab, &ipam_dir).await;
    assert_eq!(after, before, "{e2:?}");

    // A network made through the driver: a conflist of Debian's plugins,
    // written to the directory; removing it removes its bridge and leases dir.
    let n = d.create_network(NetworkSpec::new("made").label("k", "v")).await.unwrap();
    assert_eq!(n.driver, "cni");
    assert_eq!(n.labels["k"], "v");
    assert!(conf.join("engine-made.conflist").exists());
    let overlap = d.create_network(NetworkSpec::new("o").subnet("10.232.0.128/25".parse().unwrap())).await;
    assert!(overlap.unwrap_err().to_string().contains("overlaps"));
    let (p3, ns3) = lab.container("three").await;
    let e3 = d
        .attach("made", AttachRequest::new("c3", &p3).publish(PortBinding::parse("0:7100").unwrap().remove(0)))
        .await
        .unwrap();
    let _s = serve_tcp(&ns3, 7100, "three").await;
    let got = tcp_get(&lab.host_ns(), sa(Ipv4Addr::LOCALHOST, e3.ports[0].host_port), OK_TIMEOUT).await.unwrap();
    assert!(got.starts_with("three "), "{got}");
    d.detach("made", &cid("c3")).await.unwrap();
    d.remove_network("made").await.unwrap();
    assert!(!conf.join("engine-made.conflist").exists());
    let bridge = n.interface.unwrap();
    assert!(!lab.snapshot().await.links.contains(&bridge), "{bridge} left behind");
    // CHECK finds a broken endpoint: its veth deleted behind its back.
    let (p5, _ns5) = lab.container("five").await;
    let e5 = d.attach("plain", AttachRequest::new("c5", &p5)).await.unwrap();
    let host_if = e5.host_interface.clone().unwrap();
    let o =
        lab.host_ns().run(move || Ok(std::process::Command::new("ip").args(["link", "del", &host_if]).output())).await;
    assert!(o.unwrap().unwrap().status.success());
    let e = d.check("plain", "c5").await.unwrap_err();
    assert!(e.to_string().contains("CHECK"), "{e}");
    d.detach("plain", &cid("c5")).await.unwrap();
    // A configuration the engine did not write is not removed by it.
    assert!(d.remove_network("plain").await.unwrap_err().is_conflict());
}

/// A container id for detach.
fn cid(id: &str) -> engine_core::ContainerId {
    engine_core::ContainerId::new(id).unwrap()
}
