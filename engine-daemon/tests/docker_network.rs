//! The real docker CLI against an engined with bridge networking whose host
//! side is a network namespace the test made (`--network-host-netns`):
//! published ports, `-P`, udp, user networks and name resolution,
//! `container:` mode, `docker network ...`, bad input. Traffic goes only
//! to loopback and addresses of the namespaces the test made.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A shell line that serves `text` over HTTP on `port` (busybox httpd
/// daemonizes once it listens) and then stays up.
fn httpd(port: u16, text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && httpd -p {port} -h /www && exec sleep 1000")
}

/// True once container `c` has a socket listening on tcp `port` (or bound
/// on udp `port`), IPv4 or IPv6: its /proc/net tables, read through exec.
fn listening(e: &Engined, c: &str, port: u16, udp: bool) -> bool {
    let tables = if udp { "/proc/net/udp /proc/net/udp6" } else { "/proc/net/tcp /proc/net/tcp6" };
    let o = e.docker(&["exec", c, "sh", "-c", &format!("cat {tables}")]);
    let hex = format!(":{port:04X}");
    out(&o).lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&hex) && (udp || f[3] == "0A")
    })
}

/// Wait (bounded) until `c` listens on `port`.
fn wait_listening(e: &Engined, c: &str, port: u16, udp: bool) {
    assert!(eventually(20, || listening(e, c, port, udp)), "{c} never listened on {port}: {}", e.ok(&["logs", c]));
}

/// An HTTP GET from inside the test's host namespace; the answer's body.
fn http_get(e: &Engined, addr: SocketAddr) -> String {
    e.in_host_netns(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r
    })
}

/// `docker port c 80/tcp`'s IPv4 answer as an address.
fn mapped(e: &Engined, c: &str, port: &str) -> SocketAddr {
    let p = e.ok(&["port", c, port]);
    let line = p.lines().find(|l| l.starts_with("0.0.0.0:")).unwrap_or_else(|| panic!("docker port: {p}"));
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn published_ports_tcp_udp_and_publish_all() {
    let e = Engined::start_networked();
    e.load_busybox();
    // -p 0:80: any free host port, shown by docker port, answers on 127.0.0.1.
    e.ok(&["run", "-d", "--name", "web", "-p", "0:80", "bb", "sh", "-c", &httpd(80, "hello-web")]);
    wait_listening(&e, "web", 80, false);
    let addr = mapped(&e, "web", "80/tcp");
    let page = http_get(&e, addr);
    assert!(page.contains("200 OK") && page.contains("hello-web"), "{page}");
    // docker ps shows the mapping, inspect has dockerd's shapes.
    let ps = e.ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{}->80/tcp", addr.port()));
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "web"])).unwrap();
    let ns = &v[0]["NetworkSettings"];
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], addr.port().to_string());
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostIp"], "0.0.0.0");
    let ip = ns["IPAddress"].as_str().unwrap();
    assert!(ip.starts_with("172.17."), "{ns}");
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip);
    assert_eq!(ns["Gateway"], "172.17.0.1");
    assert!(ns["MacAddress"].as_str().unwrap().starts_with("02:42:"), "{ns}");
    assert!(v[0]["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"].is_string(), "{}", v[0]["HostConfig"]);
    // The container's own address answers too, from the host side.
    let page = http_get(&e, SocketAddr::new(ip.parse().unwrap(), 80));
    assert!(page.contains("hello-web"), "{page}");

    // A fixed host port on 127.0.0.1 only.
    e.ok(&["run", "-d", "--name", "local", "-p", "127.0.0.1:18080:8080", "bb", "sh", "-c", &httpd(8080, "local")]);
    wait_listening(&e, "local", 8080, false);
    assert_eq!(e.ok(&["port", "local"]).trim(), "8080/tcp -> 127.0.0.1:18080");
    assert!(http_get(&e, "127.0.0.1:18080".parse().unwrap()).contains("local"));

    // The same host port again: a clear error, nothing left behind.
    let before = e.ok(&["ps", "-aq"]);
    let o = e.docker(&["run", "-d", "--name", "clash", "-p", "127.0.0.1:18080:80", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("18080"), "{}", show(&o));
    assert_eq!(e.ok(&["ps", "-aq"]), before);
    // An invalid port spec never reaches a container.
    let o = e.docker(&["run", "-d", "-p", "80:99999", "bb", "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    let (st, body) = e.http(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image":"bb","Cmd":["true"],"HostConfig":{"PortBindings":{"80/sctp":[{"HostPort":"1"}]}}}"#,
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("sctp"), "{body}");
    assert_eq!(e.ok(&["ps", "-aq"]), before);

    // udp (busybox has no udp server): the test binds the server socket in
    // the container's own namespace; a datagram to the mapped port on
    // 127.0.0.1 reaches it and the answer comes back.
    e.ok(&["run", "-d", "--name", "udp", "-p", "0:5353/udp", "bb", "sleep", "1000"]);
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", "udp"]).trim().to_string();
    let cns = engine_network::Netns::open(format!("/proc/{pid}/ns/net").as_ref()).unwrap();
    let server = block_on(cns.run(|| Ok(UdpSocket::bind("0.0.0.0:5353").unwrap()))).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let p = e.ok(&["port", "udp", "5353/udp"]);
    let port: u16 = p.lines().next().unwrap().rsplit(':').next().unwrap().trim().parse().unwrap();
    let client = e.in_host_netns(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.send_to(b"ping-over-udp", ("127.0.0.1", port)).unwrap();
        s
    });
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping-over-udp");
    server.send_to(b"pong", from).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong");

    // -P: every exposed port (here --expose, as an image's EXPOSE) on a free port.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "--expose",
        "81",
        "--expose",
        "82",
        "bb",
        "sh",
        "-c",
        &httpd(81, "pub-all"),
    ]);
    wait_listening(&e, "all", 81, false);
    let ports = e.ok(&["port", "all"]);
    assert!(ports.contains("81/tcp -> 0.0.0.0:") && ports.contains("82/tcp -> 0.0.0.0:"), "{ports}");
    assert!(http_get(&e, mapped(&e, "all", "81/tcp")).contains("pub-all"));

    // Removing frees the port: a new container takes 18080 again.
    e.ok(&["rm", "-f", "local"]);
    e.ok(&["run", "-d", "--name", "local2", "-p", "127.0.0.1:18080:8080", "bb", "sh", "-c", &httpd(8080, "again")]);
    wait_listening(&e, "local2", 8080, false);
    assert!(http_get(&e, "127.0.0.1:18080".parse().unwrap()).contains("again"));
}
