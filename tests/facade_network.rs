//! The facade with a network driver: `publish`, `host_port`, `ip`. The
//! driver's host side is a network namespace this test makes, so the
//! machine's own networking is untouched.

use engine::network::{BridgeDriver, NetnsFile};
use engine::{ContainerBuilder, Engine, NetworkMode};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const IMAGE: &str = "busybox:facade-net";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_container_reports_its_host_port_and_address() {
    let dir = tempfile::Builder::new().prefix("fn").tempdir_in("/tmp").unwrap();
    let host = NetnsFile::create(&dir.path().join("hostns")).await.unwrap();
    let driver = BridgeDriver::builder(dir.path().join("network"))
        .host_netns(host.path())
        .resolv_conf(dir.path().join("none"))
        .open()
        .await
        .unwrap();
    let engine = Engine::builder()
        .root(dir.path().join("root"))
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .network_driver(Arc::new(driver))
        .startup_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    engine.busybox_image(IMAGE).await.unwrap();
    // The host side listens before the container starts; the container
    // connects out through its gateway and prints what it got.
    let hns = host.open().unwrap();
    let l = hns
        .run(|| {
            let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7600)).unwrap();
            l.set_nonblocking(true).unwrap();
            Ok(l)
        })
        .await
        .unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = l.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, format!("seen {}\n", peer.ip()).as_bytes()).await.unwrap();
    });
    let b = ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "nc 172.17.0.1 7600 </dev/null"]).publish(80);
    assert_eq!(b.config().network, NetworkMode::Bridge, "publish puts it on the bridge");
    let c = engine.run(b).await.unwrap();
    assert_eq!(c.ip(), Some("172.17.0.2".parse().unwrap()));
    let hp = c.host_port(80).unwrap();
    assert_ne!(hp, 0);
    assert_eq!(c.host_port(81), None);
    assert_eq!(c.wait().await.unwrap().code, 0);
    assert_eq!(c.stdout().await.unwrap(), "seen 172.17.0.2\n");
    server.await.unwrap();
    c.remove().await.unwrap();
    // Without a driver, publishing is refused rather than dropped.
    let plain = Engine::builder()
        .root(dir.path().join("root2"))
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .build()
        .await
        .unwrap();
    plain.busybox_image(IMAGE).await.unwrap();
    let e = plain.run(ContainerBuilder::new(IMAGE).cmd(["true"]).publish(80)).await.unwrap_err();
    assert!(matches!(e, engine::Error::Unsupported(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_port_and_http_on_a_published_service() {
    use engine::WaitFor;
    let dir = tempfile::Builder::new().prefix("fw").tempdir_in("/tmp").unwrap();
    let host = NetnsFile::create(&dir.path().join("hostns")).await.unwrap();
    let driver = BridgeDriver::builder(dir.path().join("network"))
        .host_netns(host.path())
        .resolv_conf(dir.path().join("none"))
        .open()
        .await
        .unwrap();
    let engine = Engine::builder()
        .root(dir.path().join("root"))
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .network_driver(Arc::new(driver))
        .startup_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    engine.busybox_image(IMAGE).await.unwrap();
    // httpd in the foreground: nothing listens until it has started, so
    // the waits really wait.
    let serve = "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www";
    let c = engine
        .run(
            ContainerBuilder::new(IMAGE)
                .cmd(["sh", "-c", serve])
                .publish(80)
                .wait_for(WaitFor::port(80))
                .wait_for(WaitFor::http(80, "/"))
                .wait_for(WaitFor::http(80, "/missing").with_status(404)),
        )
        .await
        .unwrap();
    let port = c.host_port(80).unwrap();
    let page = host
        .open()
        .unwrap()
        .run(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            Ok(r)
        })
        .await
        .unwrap();
    assert!(page.contains("served"), "{page}");
    c.remove().await.unwrap();
    // Waiting on a port it does not publish: a clear error, container gone.
    let e = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sleep", "100"]).publish(80).wait_for(WaitFor::port(81)))
        .await
        .unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("81"), "{e}");
    // A service that exits instead of listening fails the wait at once.
    let e = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["true"]).publish(80).wait_for(WaitFor::http(80, "/")))
        .await
        .unwrap_err();
    assert!(matches!(e, engine::core::Error::UnexpectedExit { .. }), "{e}");
    engine.settle().await;
    let left = engine.containers().list(engine::core::ListFilter::default().all(true)).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// The facade over the CNI driver: Debian's plugins (/usr/lib/cni) give
/// the container its address (host-local) and its published port
/// (portmap); the default network is a conflist the driver writes. The
/// plugins run in a host namespace of the test's own, so their iptables
/// rules never touch the machine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cni_driver_serves_a_published_container() {
    use engine::WaitFor;
    let dir = tempfile::Builder::new().prefix("fc").tempdir_in("/tmp").unwrap();
    let host = NetnsFile::create(&dir.path().join("hostns")).await.unwrap();
    let driver = engine::network::CniDriver::builder(dir.path().join("network"))
        .conf_dir(dir.path().join("net.d"))
        .bin_dirs(vec!["/usr/lib/cni".into()])
        .host_netns(host.path())
        .resolv_conf(dir.path().join("none"))
        .open()
        .await
        .unwrap();
    let engine = Engine::builder()
        .root(dir.path().join("root"))
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .network_driver(Arc::new(driver))
        .startup_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    engine.busybox_image(IMAGE).await.unwrap();
    let serve = "mkdir -p /www && echo served-by-cni > /www/index.html && exec httpd -f -p 80 -h /www";
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", serve]).publish(80).wait_for(WaitFor::http(80, "/")))
        .await
        .unwrap();
    let ip = c.ip().unwrap();
    assert!(ip.to_string().starts_with("10.88."), "host-local's address from the default subnet: {ip}");
    assert!(dir.path().join("net.d/engine-bridge.conflist").exists());
    let port = c.host_port(80).unwrap();
    let hns = host.open().unwrap();
    let page = hns
        .run(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            Ok(r)
        })
        .await
        .unwrap();
    assert!(page.contains("served-by-cni"), "{page}");
    c.remove().await.unwrap();
    // DEL removed the container's veth; the bridge stays for the next one.
    let links = hns
        .run(|| Ok(std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap().stdout))
        .await
        .unwrap();
    let links = String::from_utf8(links).unwrap();
    assert!(!links.contains("veth"), "{links}");
}
