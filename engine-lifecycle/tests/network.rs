//! The create-flow with networking: the manager makes the container's
//! namespace, the bridge driver attaches it before the runtime's create, and
//! remove (or a failed create) gives everything back. The driver's host side
//! is a namespace this test makes, so the machine's networking is untouched.

mod common;
use common::*;
use engine_core::network::{NetworkDriver, NetworkSpec, PortBinding};
use engine_core::{LifecycleManager, ListFilter, NetworkMode, WaitCondition};
use engine_lifecycle::Manager;
use engine_network::{BridgeDriver, Netns, NetnsFile};
use std::net::Ipv4Addr;
use std::sync::Arc;

struct Host {
    driver: Arc<BridgeDriver>,
    ns: NetnsFile,
}

async fn host(env: &Env) -> Host {
    let ns = NetnsFile::create(&env.dir.path().join("hostns")).await.unwrap();
    let driver = BridgeDriver::builder(env.dir.path().join("network"))
        .host_netns(ns.path())
        .resolv_conf(env.dir.path().join("no-resolv.conf"))
        .open()
        .await
        .unwrap();
    Host { driver: Arc::new(driver), ns }
}

async fn ruleset(ns: &Netns) -> String {
    ns.run(|| {
        Ok(String::from_utf8(std::process::Command::new("nft").args(["list", "ruleset"]).output().unwrap().stdout)
            .unwrap())
    })
    .await
    .unwrap()
}

async fn links(ns: &Netns) -> Vec<String> {
    ns.run(|| {
        let out = std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split(':').nth(1).unwrap().trim().to_string())
            .collect())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_container_is_attached_before_create_and_released_on_remove() {
    let env = Env::new().await;
    let h = host(&env).await;
    let hns = h.ns.open().unwrap();
    let mgr = Manager::new(env.config("engine-runc").network_driver(h.driver.clone())).await.unwrap();
    // A server on the host side, listening before the container starts.
    let l = hns
        .run(|| {
            let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7500)).unwrap();
            l.set_nonblocking(true).unwrap();
            Ok(l)
        })
        .await
        .unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = l.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, format!("host saw {}\n", peer.ip()).as_bytes()).await.unwrap();
    });
    let baseline = links(&hns).await;

    let mut cfg = sh("ip -4 -o addr show eth0; ip -o link show lo; nc 172.17.0.1 7500 </dev/null");
    cfg.network = NetworkMode::Bridge;
    cfg.ports = PortBinding::parse("0:80").unwrap();
    let info = mgr.create(cfg).await.unwrap();
    let ep = info.networks["bridge"].clone();
    let ip = ep.ipv4.unwrap().addr();
    assert_eq!(ep.ipv4.unwrap().to_string(), "172.17.0.2/16");
    assert!(ep.ports[0].host_port != 0);
    assert_eq!(mgr.inspect(&info.id).await.unwrap().networks, info.networks, "kept in the record");
    assert!(ruleset(&hns).await.contains(&format!("dnat ip to {ip}:80")));
    assert!(env.root().join("netns").join(&info.id).exists());

    mgr.start(&info.id).await.unwrap();
    let exit = mgr.wait(&info.id, WaitCondition::NotRunning).await.unwrap();
    let log = log_text(&mgr, &info.id).await.unwrap();
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("inet 172.17.0.2/16"), "{log}");
    assert!(log.contains("lo: <LOOPBACK,UP"), "{log}");
    assert!(log.contains(&format!("host saw {ip}")), "{log}");
    server.await.unwrap();

    mgr.remove(&info.id, false).await.unwrap();
    assert!(h.driver.inspect_network("bridge").await.unwrap().endpoints.is_empty(), "lease released");
    assert!(!env.root().join("netns").join(&info.id).exists(), "namespace file removed");
    assert!(!ruleset(&hns).await.contains("dnat ip to"), "port unpublished");
    let mut now = links(&hns).await;
    now.retain(|l| l != "engine0");
    assert_eq!(now, baseline, "no veth left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_settings_that_cannot_be_honoured_fail_create_and_leave_nothing() {
    let env = Env::new().await;
    let h = host(&env).await;
    let hns = h.ns.open().unwrap();
    let mgr = Manager::new(env.config("engine-runc").network_driver(h.driver.clone())).await.unwrap();
    h.driver.create_network(NetworkSpec::new("appnet")).await.unwrap();
    let rules = ruleset(&hns).await;
    let before = links(&hns).await;

    // Ports without a network to publish them on.
    let mut cfg = sh("true");
    cfg.ports = PortBinding::parse("8080:80").unwrap();
    assert!(mgr.create(cfg).await.unwrap_err().is_invalid_input());
    // An unknown network.
    let mut cfg = sh("true");
    cfg.network = NetworkMode::Network("nope".into());
    assert!(mgr.create(cfg).await.unwrap_err().is_not_found());
    // A host port already taken: attach fails after the namespace was made.
    let squat = hns.run(|| Ok(std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap())).await.unwrap();
    let mut cfg = sh("true");
    cfg.network = NetworkMode::Network("appnet".into());
    cfg.ports = PortBinding::parse(&format!("{}:80", squat.local_addr().unwrap().port())).unwrap();
    let e = mgr.create(cfg).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    // A container the runtime cannot create (a mount target under a
    // file): attached first, then undone.
    let mut cfg = sh("true");
    cfg.network = NetworkMode::Network("appnet".into());
    cfg.ports = PortBinding::parse("0:80").unwrap();
    cfg.mounts.push(engine_core::MountSpec::Bind {
        source: env.dir.path().to_owned(),
        target: "/bin/busybox/sub".into(),
        read_only: false,
    });
    let e = mgr.create(cfg).await.unwrap_err();
    assert!(!e.is_not_found() && !e.is_invalid_input(), "failed in the runtime, not before: {e}");

    assert!(mgr.list(ListFilter::default().all(true)).await.unwrap().is_empty());
    assert!(h.driver.inspect_network("appnet").await.unwrap().endpoints.is_empty(), "no lease left");
    assert_eq!(links(&hns).await, before, "no veth left");
    assert_eq!(ruleset(&hns).await, rules, "no rule left");
    let netns_dir = env.root().join("netns");
    assert!(std::fs::read_dir(&netns_dir).map(|d| d.count()).unwrap_or(0) == 0, "no namespace file left");

    // Without a driver, bridge mode is refused rather than silently isolated.
    drop(mgr);
    let plain = Manager::new(env.config("engine-runc")).await.unwrap();
    let mut cfg = sh("true");
    cfg.network = NetworkMode::Bridge;
    assert!(matches!(plain.create(cfg).await.unwrap_err(), engine_core::Error::Unsupported(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cut_short_after_the_attach_is_swept_by_the_next_manager() {
    let env = Env::new().await;
    let h = host(&env).await;
    let hns = h.ns.open().unwrap();
    let mgr = Manager::new(env.config("engine-runc").network_driver(h.driver.clone())).await.unwrap();
    h.driver.default_network().await.unwrap();
    let before = links(&hns).await;
    drop(mgr);
    // As a manager that died between attach and writing the record leaves
    // it: a namespace file under the root, an endpoint, a published port.
    let id = engine_core::random_hex64();
    let dir = env.root().join("netns");
    std::fs::create_dir_all(&dir).unwrap();
    let ns = NetnsFile::create(&dir.join(&id)).await.unwrap();
    let req =
        engine_core::network::AttachRequest::new(&id, ns.path()).publish(PortBinding::parse("0:80").unwrap().remove(0));
    h.driver.attach("bridge", req).await.unwrap();
    std::mem::forget(ns); // the crash: nobody cleans up
    assert!(ruleset(&hns).await.contains("dnat ip to"));

    let _mgr = Manager::new(env.config("engine-runc").network_driver(h.driver.clone())).await.unwrap();
    assert!(!dir.join(&id).exists(), "namespace file swept");
    assert!(h.driver.inspect_network("bridge").await.unwrap().endpoints.is_empty(), "lease released");
    assert!(!ruleset(&hns).await.contains("dnat ip to"), "port unpublished");
    assert_eq!(links(&hns).await, before, "no veth left");
}
