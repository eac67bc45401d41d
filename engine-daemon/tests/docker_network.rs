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

/// The link names and the nftables ruleset of the test's host namespace: what a
/// failed create must leave as it was.
fn host_side(e: &Engined) -> (String, String) {
    let ns = e.host_netns.as_ref().unwrap().path().display().to_string();
    let run = |args: &[&str]| {
        let o = std::process::Command::new("nsenter").arg(format!("--net={ns}")).args(args).output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
        out(&o)
    };
    // Names only: a bridge's operational state may change meanwhile.
    let links = run(&["ip", "-o", "link", "show"]);
    let mut names: Vec<&str> =
        links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap()).collect();
    names.sort();
    (names.join(" "), run(&["nft", "list", "ruleset"]))
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
    // (and on :: as docker does where the host has IPv6; the test's namespace does)
    let hp = addr.port();
    assert!(
        [format!("0.0.0.0:{hp}->80/tcp, [::]:{hp}->80/tcp"), format!("0.0.0.0:{hp}->80/tcp, :::{hp}->80/tcp")]
            .contains(&ps.trim().to_string()),
        "{ps}"
    );
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
    let host_before = host_side(&e);
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
    assert_eq!(host_side(&e), host_before, "a refused create changed the host side");

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

    // -P with the image's own EXPOSE (tcp and udp).
    let rootfs = e.dir.path().join("svc-rootfs");
    engine_image::build::busybox_rootfs(&rootfs).unwrap();
    let tar = e.dir.path().join("svc.tar");
    let opts = engine_image::build::ImageOptions::default()
        .exposed_ports(vec!["8081/tcp".into(), "9999/udp".into()])
        .cmd(Some(vec!["sh".into(), "-c".into(), httpd(8081, "exposed")]));
    engine_image::build::image_from_dir(&rootfs, "svc:1", &tar, &opts).unwrap();
    e.ok(&["load", "-i", tar.to_str().unwrap()]);
    e.ok(&["run", "-d", "--name", "svc", "-P", "svc:1"]);
    wait_listening(&e, "svc", 8081, false);
    let ports = e.ok(&["port", "svc"]);
    assert!(ports.contains("8081/tcp -> 0.0.0.0:") && ports.contains("9999/udp -> 0.0.0.0:"), "{ports}");
    assert!(http_get(&e, mapped(&e, "svc", "8081/tcp")).contains("exposed"));

    // Removing frees the port: a new container takes 18080 again.
    e.ok(&["rm", "-f", "local"]);
    e.ok(&["run", "-d", "--name", "local2", "-p", "127.0.0.1:18080:8080", "bb", "sh", "-c", &httpd(8080, "again")]);
    wait_listening(&e, "local2", 8080, false);
    assert!(http_get(&e, "127.0.0.1:18080".parse().unwrap()).contains("again"));
}

#[test]
fn user_networks_resolve_names_and_aliases() {
    let e = Engined::start_networked();
    e.load_busybox();
    let id = e.ok(&["network", "create", "--label", "team=a", "appnet"]).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ls = e.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["appnet bridge", "bridge bridge", "host host", "none null"] {
        assert!(ls.lines().any(|l| l == want), "{want}: {ls}");
    }
    let ls = e.ok(&["network", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(ls.trim(), &id[..12]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "--network-alias",
        "database",
        "bb",
        "sh",
        "-c",
        &httpd(80, "from-db"),
    ]);
    wait_listening(&e, "db", 80, false);
    // By name and by alias, from another container on the network.
    for target in ["db", "database"] {
        let o = e.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "bb",
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {target} 80"),
        ]);
        assert!(out(&o).contains("from-db"), "{target}: {}", show(&o));
    }
    // Hosts files are kept current: db lists a neighbour while it lives.
    e.ok(&["run", "-d", "--name", "web2", "--network", "appnet", "bb", "sleep", "1000"]);
    let hosts = e.ok(&["exec", "db", "cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l.ends_with("\tweb2") || l.contains("\tweb2 ")), "{hosts}");
    assert!(e.ok(&["exec", "web2", "cat", "/etc/hosts"]).contains(" database"));
    e.ok(&["rm", "-f", "web2"]);
    assert!(!e.ok(&["exec", "db", "cat", "/etc/hosts"]).contains("web2"));
    // network inspect lists the endpoint with dockerd's fields.
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["network", "inspect", "appnet"])).unwrap();
    let c = v[0]["Containers"].as_object().unwrap();
    assert_eq!(c.len(), 1, "{v}");
    let ep = c.values().next().unwrap();
    assert_eq!(ep["Name"], "db");
    let subnet = v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().to_string();
    let db_ip = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "db"]).trim().to_string();
    assert!(ep["IPv4Address"].as_str().unwrap().starts_with(&format!("{db_ip}/")), "{ep}");
    let aliases = e.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks.appnet.Aliases}}", "db"]);
    assert!(aliases.contains("database"), "{aliases}");

    // container:db shares db's namespace: its localhost is db's httpd.
    let o = e.docker(&[
        "run",
        "--rm",
        "--network",
        "container:db",
        "bb",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80; hostname",
    ]);
    assert!(out(&o).contains("from-db"), "{}", show(&o));
    // ... and its hostname.
    let db_host = e.ok(&["exec", "db", "hostname"]);
    assert!(out(&o).ends_with(&db_host), "{}", show(&o));

    // /etc files: --add-host, --dns, --hostname.
    let o = e.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--hostname",
        "hh",
        "--add-host",
        "foo:10.1.1.1",
        "--dns",
        "10.0.0.53",
        "bb",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname",
    ]);
    assert!(o.contains("127.0.0.1\tlocalhost") && o.contains("10.1.1.1\tfoo") && o.contains("\thh\n"), "{o}");
    assert!(o.contains("nameserver 10.0.0.53\n") && !o.contains("nameserver 127."), "{o}");
    assert!(o.ends_with("hh\n"), "{o}");

    // --ip on a network with a chosen subnet.
    e.ok(&["network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", "fixed"]);
    e.ok(&["run", "-d", "--name", "pinned", "--network", "fixed", "--ip", "10.77.0.50", "bb", "sleep", "1000"]);
    let f = e.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.fixed.IPAddress}} {{.NetworkSettings.Networks.fixed.Gateway}}",
        "pinned",
    ]);
    assert_eq!(f.trim(), "10.77.0.50 10.77.0.254");

    // Bad input: clear errors with dockerd's codes, nothing left behind.
    let nets_before = e.ok(&["network", "ls", "-q"]);
    let ps_before = e.ok(&["ps", "-aq"]);
    let host_before = host_side(&e);
    let o = e.docker(&["network", "rm", "appnet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("has active endpoints"), "{}", show(&o));
    let (st, _) = e.http("DELETE", "/v1.41/networks/appnet", b"");
    assert_eq!(st, 403);
    let o = e.docker(&["network", "create", "--subnet", "10.77.0.128/25", "overlap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("Pool overlaps"), "{}", show(&o));
    let (st, body) = e.http(
        "POST",
        "/v1.41/networks/create",
        format!(r#"{{"Name":"o2","IPAM":{{"Config":[{{"Subnet":"{subnet}"}}]}}}}"#).as_bytes(),
    );
    assert_eq!(st, 403, "{body}");
    let o = e.docker(&["network", "create", "appnet"]);
    assert!(err(&o).contains("network with name appnet already exists"), "{}", show(&o));
    let (st, _) = e.http("POST", "/v1.41/networks/create", br#"{"Name":"appnet"}"#);
    assert_eq!(st, 409);
    let o = e.docker(&["run", "--rm", "--network", "nosuch", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("network nosuch not found") && !err(&o).contains("Unable to find image"), "{}", show(&o));
    let o = e.docker(&["run", "--rm", "--network", "container:nosuch", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let o = e.docker(&["network", "rm", "bridge"]);
    assert!(err(&o).contains("pre-defined network"), "{}", show(&o));
    let (st, _) = e.http("GET", "/v1.41/networks/nosuch", b"");
    assert_eq!(st, 404);
    assert_eq!(e.ok(&["network", "ls", "-q"]), nets_before);
    assert_eq!(e.ok(&["ps", "-aq"]), ps_before);
    assert_eq!(host_side(&e), host_before, "refused requests changed the host side");

    // rm and prune.
    e.ok(&["rm", "-f", "db", "pinned"]);
    assert_eq!(e.ok(&["network", "rm", "appnet"]).trim(), "appnet");
    e.ok(&["network", "create", "spare"]);
    let pruned = e.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("fixed") && pruned.contains("spare"), "{pruned}");
    let ls = e.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["bridge", "host", "none"]);
    // Only the default bridge is left on the host side.
    let (links, _) = host_side(&e);
    assert_eq!(links, "engine0 lo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_get_host_port_flow() {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::CreateContainerOptionsBuilder;
    // (The harness blocks on a runtime of its own: off the async workers.)
    let e = tokio::task::spawn_blocking(|| {
        let e = Engined::start_networked();
        e.load_busybox();
        e
    })
    .await
    .unwrap();
    let d = bollard::Docker::connect_with_unix(e.sock.to_str().unwrap(), 60, bollard::API_DEFAULT_VERSION).unwrap();
    // What testcontainers sends: exposed ports and PublishAllPorts.
    let body = ContainerCreateBody {
        image: Some("bb:latest".into()),
        cmd: Some(vec!["sh".into(), "-c".into(), httpd(8000, "via-bollard")]),
        exposed_ports: Some(vec!["8000/tcp".to_string()]),
        host_config: Some(HostConfig { publish_all_ports: Some(true), ..Default::default() }),
        ..Default::default()
    };
    let c = d.create_container(Some(CreateContainerOptionsBuilder::default().name("tc1").build()), body).await.unwrap();
    d.start_container(&c.id, None).await.unwrap();
    let info = d.inspect_container(&c.id, None).await.unwrap();
    let ports = info.network_settings.unwrap().ports.unwrap();
    let binding = ports["8000/tcp"].as_ref().unwrap().iter().find(|b| b.host_ip.as_deref() == Some("0.0.0.0")).unwrap();
    let port: u16 = binding.host_port.as_ref().unwrap().parse().unwrap();
    let listed = d.list_containers(None::<bollard::query_parameters::ListContainersOptions>).await.unwrap();
    let p = &listed[0].ports.as_ref().unwrap()[0];
    assert_eq!((p.private_port, p.public_port), (8000, Some(port)));
    let e2 = std::sync::Arc::new(e);
    let e3 = e2.clone();
    tokio::task::spawn_blocking(move || wait_listening(&e3, "tc1", 8000, false)).await.unwrap();
    let ns = e2.host_netns.as_ref().unwrap().open().unwrap();
    let page = ns
        .run(move || {
            let mut s =
                TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(10)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            Ok(r)
        })
        .await
        .unwrap();
    assert!(page.contains("via-bollard"), "{page}");
    d.remove_container(
        &c.id,
        Some(bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build()),
    )
    .await
    .unwrap();
    // Engined's Drop runs docker CLI commands: off the async workers.
    tokio::task::spawn_blocking(move || drop(e2)).await.unwrap();
}

#[test]
fn engine_cli_publishes_and_joins_networks() {
    let e = Engined::start_networked();
    e.load_busybox();
    let ok = |args: &[&str]| {
        let o = e.engine(args);
        assert!(o.status.success(), "engine {args:?}: {}\n{}", show(&o), e.log());
        out(&o)
    };
    ok(&["run", "-d", "--name", "ecli", "-p", "127.0.0.1:0:80", "bb", "sh", "-c", &httpd(80, "engine-cli")]);
    wait_listening(&e, "ecli", 80, false);
    let p = ok(&["port", "ecli", "80"]);
    let addr: SocketAddr = p.trim().parse().unwrap_or_else(|_| panic!("engine port: {p}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert!(http_get(&e, addr).contains("engine-cli"));
    assert!(ok(&["port", "ecli"]).starts_with("80/tcp -> 127.0.0.1:"));
    // --network with an alias; the alias resolves from a neighbour.
    e.ok(&["network", "create", "enet"]);
    ok(&["run", "-d", "--name", "eone", "--network", "enet", "--network-alias", "svc", "bb", "sleep", "1000"]);
    let o = ok(&["run", "--rm", "--network", "enet", "bb", "ping", "-c", "1", "-W", "5", "svc"]);
    assert!(o.contains("1 packets received"), "{o}");
    // A bad spec is refused by the CLI before anything is made.
    let o = e.engine(&["run", "-p", "80:99999", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("port spec"), "{}", show(&o));
}

/// In the test's host namespace: link names, iptables rules and chains
/// (iptables-save, counters dropped), the nftables ruleset (counters
/// dropped), host-local's lease files and the CNI driver's cached results.
fn cni_host_state(e: &Engined) -> Vec<String> {
    let ns = e.host_netns.as_ref().unwrap().path().display().to_string();
    let run = |args: &[&str]| {
        let o = std::process::Command::new("nsenter").arg(format!("--net={ns}")).args(args).output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
        out(&o)
    };
    let mut state: Vec<String> = run(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| format!("link {}", n.split('@').next().unwrap()))
        .collect();
    state.extend(
        run(&["iptables-save"])
            .lines()
            .filter(|l| l.starts_with("-A") || l.starts_with(':'))
            .map(|l| format!("iptables {}", l.split(" [").next().unwrap())),
    );
    state.extend(
        run(&["nft", "list", "ruleset"]).lines().map(|l| format!("nft {}", l.split(" counter").next().unwrap())),
    );
    for d in [e.dir.path().join("ipam/cninet"), e.data_root().join("network/cni/endpoints")] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            state.extend(rd.flatten().map(|f| format!("file {}", f.path().display())));
        }
    }
    state.sort();
    state
}

#[test]
fn cni_network_through_the_docker_cli() {
    let mut e = Engined::start_cni(|dir| {
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"cninet","plugins":[
  {{"type":"bridge","bridge":"cnibr0","isGateway":true,"ipMasq":true,"hairpinMode":true,
    "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.233.0.0/24"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],
             "dataDir":"{}"}}}},
  {{"type":"portmap","capabilities":{{"portMappings":true}},"snat":true}},
  {{"type":"firewall"}},
  {{"type":"tuning","sysctl":{{"net.ipv4.conf.eth0.rp_filter":"2"}}}}]}}"#,
            dir.join("ipam").display()
        );
        std::fs::write(dir.join("net.d/10-cninet.conflist"), conf).unwrap();
    });
    e.load_busybox();
    let ls = e.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["cninet cni", "bridge cni", "host host", "none null"] {
        assert!(ls.lines().any(|l| l == want), "{want}: {ls}");
    }
    // The default network is a conflist the driver wrote (Debian's plugins too).
    let o = e.ok(&["run", "--rm", "bb", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(o.contains("inet 10.88."), "{o}");
    assert!(e.dir.path().join("net.d/engine-bridge.conflist").exists());

    // A first container makes the bridge and the plugins' shared chains
    // (CNI keeps them for the next one); what a container adds must go.
    e.ok(&["run", "--rm", "--network", "cninet", "-p", "0:81", "bb", "true"]);
    let before = cni_host_state(&e);

    e.ok(&["run", "-d", "--name", "web", "--network", "cninet", "-p", "0:80", "bb", "sh", "-c", &httpd(80, "via-cni")]);
    wait_listening(&e, "web", 80, false);
    let ip = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.cninet.IPAddress}}", "web"]).trim().to_string();
    assert!(ip.starts_with("10.233.0."), "host-local's address: {ip}");
    // The tuning plugin ran in the container's namespace; loopback is up
    // (the loopback plugin) though the list does not name it.
    assert_eq!(e.ok(&["exec", "web", "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).trim(), "2");
    let lo = e.ok(&["exec", "web", "ip", "-o", "-4", "addr", "show", "lo"]);
    assert!(lo.contains("inet 127.0.0.1/8"), "{lo}");
    let o = e.ok(&["exec", "web", "sh", "-c", "printf 'GET / HTTP/1.0\r\n\r\n' | nc 127.0.0.1 80"]);
    assert!(o.contains("via-cni"), "{o}");
    // Published by portmap, reached on the host's 127.0.0.1.
    let page = http_get(&e, mapped(&e, "web", "80/tcp"));
    assert!(page.contains("200 OK") && page.contains("via-cni"), "{page}");
    // From the host to the container's address, and from another container.
    assert!(http_get(&e, SocketAddr::new(ip.parse().unwrap(), 80)).contains("via-cni"));
    let o = e.ok(&["run", "--rm", "--network", "cninet", "bb", "wget", "-qO-", &format!("http://{ip}/")]);
    assert!(o.contains("via-cni"), "{o}");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["network", "inspect", "cninet"])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 1, "{v}");
    let o = e.docker(&["network", "rm", "cninet"]);
    assert!(err(&o).contains("has active endpoints"), "{}", show(&o));

    // engined killed and started again: the container still serves on
    // its published port, and the new driver DELs it from the cached
    // result when it is removed.
    e.kill9();
    e.spawn();
    let page = http_get(&e, mapped(&e, "web", "80/tcp"));
    assert!(page.contains("via-cni"), "{page}");

    // docker network create writes a conflist; connect and disconnect
    // run ADD and DEL for a second interface; rm removes the network's
    // file, bridge and lease directory.
    e.ok(&["network", "create", "--subnet", "10.234.0.0/24", "extra"]);
    assert!(e.dir.path().join("net.d/engine-extra.conflist").exists());
    e.ok(&["network", "connect", "extra", "web"]);
    let addr = e.ok(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("inet 10.234.0."), "{addr}");
    e.ok(&["network", "disconnect", "extra", "web"]);
    assert_ne!(e.docker(&["exec", "web", "ip", "link", "show", "eth1"]).status.code(), Some(0));
    e.ok(&["network", "rm", "extra"]);
    assert!(!e.dir.path().join("net.d/engine-extra.conflist").exists());
    assert!(!e.data_root().join("network/cni/ipam/extra").exists());

    // rm -f runs DEL: no veth, lease, rule or cached result is left.
    e.ok(&["rm", "-f", "web"]);
    assert_eq!(cni_host_state(&e), before, "DEL left something behind");
}

/// What a container with a published port may leave behind, for `e`: host
/// side links and rules, network namespace files, the network records
/// (leases), mounts and processes that name the test's directory.
fn leftovers(e: &Engined) -> (String, String, Vec<String>, Vec<String>, usize, usize) {
    let (links, rules) = host_side(e);
    let files = |d: std::path::PathBuf| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&d)
            .map(|rd| {
                rd.flatten()
                    .map(|f| {
                        format!("{} {}", f.path().display(), std::fs::read_to_string(f.path()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let dir = e.dir.path().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&dir)).count();
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir)))
        .count();
    (links, rules, files(e.data_root().join("netns")), files(e.data_root().join("network/networks")), mounts, procs)
}

/// IPv6 publishing as docker does it: `-p 0:80` is published on `0.0.0.0`
/// and `::` (same port, both in `docker port`, both answer: 127.0.0.1 and
/// ::1); `-p [::1]:0:8080` on ::1 only; removal closes the IPv6 side too.
#[test]
fn ipv6_publishing_on_loopback_and_every_address() {
    let e = Engined::start_networked();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "web6", "-p", "0:80", "bb", "sh", "-c", &httpd(80, "dual-stack")]);
    wait_listening(&e, "web6", 80, false);
    let v4 = mapped(&e, "web6", "80/tcp");
    let hp = v4.port();
    let p = e.ok(&["port", "web6", "80/tcp"]);
    assert!(p.lines().any(|l| l.trim() == format!("[::]:{hp}")), "docker port lists ::: {p}");
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, hp));
    assert!(http_get(&e, v4).contains("dual-stack"));
    let page = http_get(&e, v6);
    assert!(page.contains("200 OK") && page.contains("dual-stack"), "{page}");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "web6"])).unwrap();
    let ports = &v[0]["NetworkSettings"]["Ports"]["80/tcp"];
    assert_eq!(ports[1]["HostIp"], "::", "{ports}");
    assert_eq!(ports[1]["HostPort"], hp.to_string(), "{ports}");

    // [::1]:0:8080: on ::1 only, not on 127.0.0.1.
    e.ok(&["run", "-d", "--name", "lo6", "-p", "[::1]:0:8080", "bb", "sh", "-c", &httpd(8080, "loopback6")]);
    wait_listening(&e, "lo6", 8080, false);
    let p = e.ok(&["port", "lo6"]);
    let line = p.trim();
    assert!(line.starts_with("8080/tcp -> [::1]:") && p.lines().count() == 1, "{p}");
    let port6: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    assert!(http_get(&e, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port6))).contains("loopback6"));
    let refused = e.in_host_netns(move || {
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port6)), Duration::from_secs(5)).is_err()
    });
    assert!(refused, "[::1] binding also answered on 127.0.0.1:{port6}");

    // udp on [::1]: relayed to the container (its server socket bound in
    // the container's namespace by the test; busybox has no udp server).
    e.ok(&["run", "-d", "--name", "udp6", "-p", "[::1]:0:5353/udp", "bb", "sleep", "1000"]);
    let p = e.ok(&["port", "udp6"]);
    let line = p.trim();
    assert!(line.starts_with("5353/udp -> [::1]:") && p.lines().count() == 1, "{p}");
    let uport: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", "udp6"]).trim().to_string();
    let cns = engine_network::Netns::open(format!("/proc/{pid}/ns/net").as_ref()).unwrap();
    let server = block_on(cns.run(|| Ok(UdpSocket::bind("0.0.0.0:5353").unwrap()))).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client = e.in_host_netns(move || {
        let s = UdpSocket::bind("[::1]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.send_to(b"ping-over-udp6", ("::1", uport)).unwrap();
        s
    });
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping-over-udp6");
    server.send_to(b"pong6", from).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong6");

    // Removed: nothing answers on either family any more.
    e.ok(&["rm", "-f", "web6", "lo6", "udp6"]);
    let gone = e.in_host_netns(move || {
        [v4, v6, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port6))]
            .iter()
            .all(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).is_err())
    });
    assert!(gone, "a published port still answers after docker rm");
}

/// 200 cycles of `docker run -d -p 0:80` and `docker rm -f`, through the
/// API (as the CLI sends them, without its process start-up per call):
/// no interface, namespace, rule, lease, mount or process is left.
#[test]
fn two_hundred_publish_and_remove_cycles_leave_nothing() {
    let e = Engined::start_networked();
    e.load_busybox();
    // One cycle first: the default network's bridge exists from then on.
    e.ok(&["run", "--rm", "-p", "0:80", "bb", "true"]);
    let before = leftovers(&e);
    let start = std::time::Instant::now();
    let create = br#"{"Image":"bb","Cmd":["sleep","1000"],"ExposedPorts":{"80/tcp":{}},
        "HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"0"}]}}}"#;
    let mut ports = std::collections::HashSet::new();
    for i in 0..200 {
        let (st, body) = e.http("POST", "/v1.41/containers/create", create);
        assert_eq!(st, 201, "cycle {i}: {body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"].as_str().unwrap().to_string();
        let (st, body) = e.http("POST", &format!("/v1.41/containers/{id}/start"), b"");
        assert_eq!(st, 204, "cycle {i}: {body}");
        if i % 50 == 0 {
            let (_, body) = e.http("GET", &format!("/v1.41/containers/{id}/json"), b"");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let port = v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"].as_str().unwrap().to_string();
            assert!(port.parse::<u16>().unwrap() > 0, "{body}");
            ports.insert(port);
            // What is counted is really there while the container runs.
            let during = leftovers(&e);
            assert_eq!(during.2.len(), before.2.len() + 1, "its namespace file: {:?}", during.2);
            assert_ne!(during.3, before.3, "its lease is recorded");
            assert!(during.0.split(' ').count() > before.0.split(' ').count(), "its veth");
        }
        let (st, body) = e.http("DELETE", &format!("/v1.41/containers/{id}?force=1"), b"");
        assert_eq!(st, 204, "cycle {i}: {body}");
    }
    let took = start.elapsed();
    assert_eq!(ports.len(), 4, "a host port each time: {ports:?}");
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    let after = leftovers(&e);
    assert_eq!(after.0, before.0, "interfaces left");
    assert_eq!(after.1, before.1, "nftables rules left");
    assert_eq!(after.2, before.2, "network namespace files left");
    assert_eq!(after.3, before.3, "leases left in the network records");
    assert_eq!(after.4, before.4, "mounts left");
    assert_eq!(after.5, before.5, "processes left");
    eprintln!("200 cycles of create -p 0:80, start, rm -f: {took:?}");
}

/// A shell line fetching `/` from `host` port 80 (busybox nc: its wget
/// crashes resolving names in a static build).
fn get(host: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {host} 80")
}

/// `docker network connect/disconnect`: a running container gains an
/// interface on a second network (its neighbours there resolve it by name
/// and alias) and loses it again, leaving the host side as it was.
#[test]
fn network_connect_and_disconnect_a_running_container() {
    let e = Engined::start_networked();
    e.load_busybox();
    e.ok(&["network", "create", "--subnet", "10.78.0.0/24", "back"]);
    e.ok(&["network", "create", "front"]);
    e.ok(&["run", "-d", "--name", "api", "--network", "front", "bb", "sh", "-c", &httpd(80, "from-api")]);
    e.ok(&["run", "-d", "--name", "db", "--network", "back", "bb", "sleep", "1000"]);
    wait_listening(&e, "api", 80, false);
    let host_before = host_side(&e).0;
    // Not on a common network: db cannot resolve api.
    let o = e.docker(&["exec", "db", "sh", "-c", &get("api")]);
    assert!(!out(&o).contains("from-api"), "{}", show(&o));

    e.ok(&["network", "connect", "--alias", "svc", "back", "api"]);
    let ip = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.back.IPAddress}}", "api"]).trim().to_string();
    assert!(ip.starts_with("10.78.0."), "{ip}");
    let front = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "api"]);
    assert!(!front.trim().is_empty(), "still on front");
    let addr = e.ok(&["exec", "api", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    // db reaches api over the new interface, by name and by alias.
    for name in ["api", "svc"] {
        let o = e.ok(&["exec", "db", "sh", "-c", &get(name)]);
        assert!(o.contains("from-api"), "{name}: {o}");
    }
    // api's own hosts file knows db now.
    assert!(e.ok(&["exec", "api", "cat", "/etc/hosts"]).contains("\tdb"));
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["network", "inspect", "back"])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 2, "{v}");
    // Twice: refused, with dockerd's words.
    let o = e.docker(&["network", "connect", "back", "api"]);
    assert!(err(&o).contains("already exists in network back"), "{}", show(&o));
    // Unknown network or container: clear errors.
    let o = e.docker(&["network", "connect", "nosuchnet", "api"]);
    assert!(err(&o).contains("nosuchnet") && err(&o).contains("not found"), "{}", show(&o));
    let o = e.docker(&["network", "connect", "back", "nosuchctr"]);
    assert!(err(&o).contains("nosuchctr"), "{}", show(&o));

    e.ok(&["network", "disconnect", "back", "api"]);
    let o = e.docker(&["exec", "api", "ip", "link", "show", "eth1"]);
    assert_ne!(o.status.code(), Some(0), "eth1 is gone: {}", show(&o));
    assert!(!e.ok(&["exec", "db", "cat", "/etc/hosts"]).contains("api"), "db forgot api");
    let nets = e.ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "api"]);
    assert!(nets.contains("front") && !nets.contains("back"), "{nets}");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["network", "inspect", "back"])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 1, "{v}");
    let o = e.docker(&["network", "disconnect", "back", "api"]);
    assert!(err(&o).contains("is not connected to network back"), "{}", show(&o));
    assert_eq!(host_side(&e).0, host_before, "the host side veth of the second interface is gone");
    // api still serves on front.
    let o = e.ok(&["run", "--rm", "--network", "front", "bb", "sh", "-c", &get("api")]);
    assert!(o.contains("from-api"), "{o}");
}

/// Bad input through the docker CLI and the API, each a clear error with
/// nothing left behind: a host port a host process holds (dockerd fails
/// the start with 500 "address already in use" and keeps the created
/// container; engined refuses the create with 409 naming the port and
/// keeps nothing), host ports that are not numbers, an unknown network
/// with -p.
#[test]
fn bad_port_and_network_input_leaves_nothing() {
    let e = Engined::start_networked();
    e.load_busybox();
    e.ok(&["network", "create", "--subnet", "10.79.0.0/24", "used"]);
    e.ok(&["run", "-d", "--name", "holder", "--network", "used", "bb", "sleep", "1000"]);
    // A host process listens on a port in the (test's) host namespace.
    let listener = e.in_host_netns(|| std::net::TcpListener::bind("0.0.0.0:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let ps_before = e.ok(&["ps", "-aq"]);
    let host_before = host_side(&e);
    let nets_before = e.ok(&["network", "inspect", "used", "bridge"]);
    let netns_files = || std::fs::read_dir(e.data_root().join("netns")).map(|d| d.count()).unwrap_or(0);
    let ns_before = netns_files();

    let o = e.docker(&["run", "-d", "--name", "clash", "-p", &format!("{port}:80"), "bb", "sleep", "1000"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains(&format!("{port}")) && err(&o).contains("already in use"), "{}", show(&o));
    let create = format!(
        r#"{{"Image":"bb","Cmd":["true"],"HostConfig":{{"PortBindings":{{"80/tcp":[{{"HostPort":"{port}"}}]}}}}}}"#
    );
    let (st, body) = e.http("POST", "/v1.41/containers/create", create.as_bytes());
    assert_eq!(st, 409, "{body}");
    assert!(body.contains(&port.to_string()), "{body}");
    // The same on a user network.
    let o = e.docker(&["run", "-d", "--network", "used", "-p", &format!("{port}:80"), "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains(&format!("{port}")), "{}", show(&o));
    // Host ports that are not ports.
    for bad in ["abc", "70000", "-1"] {
        let body = format!(
            r#"{{"Image":"bb","Cmd":["true"],"HostConfig":{{"PortBindings":{{"80/tcp":[{{"HostPort":"{bad}"}}]}}}}}}"#
        );
        let (st, resp) = e.http("POST", "/v1.41/containers/create", body.as_bytes());
        assert_eq!(st, 400, "{bad}: {resp}");
        assert!(resp.contains(bad), "{bad}: {resp}");
    }
    let o = e.docker(&["run", "-d", "-p", "80:80:80:80", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    // -p with an unknown network.
    let o = e.docker(&["run", "-d", "--network", "nosuch", "-p", "0:80", "bb", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(err(&o).contains("nosuch"), "{}", show(&o));

    assert_eq!(e.ok(&["ps", "-aq"]), ps_before, "no container was left");
    assert_eq!(host_side(&e), host_before, "no interface or rule was left");
    assert_eq!(e.ok(&["network", "inspect", "used", "bridge"]), nets_before, "no lease was left");
    assert_eq!(netns_files(), ns_before, "no namespace file was left");
    // The host process still has its port.
    drop(listener);
}

/// Networking with a separate engine-lifecycled (`engined --lifecycle`,
/// `engine-lifecycled --network-driver bridge`): `docker network
/// create/ls/inspect/rm`, `docker run -p` (IPv4 and IPv6), name resolution
/// and `docker network connect/disconnect`, all through the lifecycle
/// service; a network with endpoints cannot be removed.
#[test]
fn networks_and_ports_through_a_separate_engine_lifecycled() {
    let e = Engined::start_remote_networked();
    e.load_busybox();
    assert!(e.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]).lines().any(|l| l == "bridge bridge"));
    e.ok(&["network", "create", "--subnet", "10.79.0.0/24", "remotenet"]);
    let inspect = e.ok(&["network", "inspect", "-f", "{{.Driver}} {{(index .IPAM.Config 0).Subnet}}", "remotenet"]);
    assert_eq!(inspect.trim(), "bridge 10.79.0.0/24");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rweb",
        "--network",
        "remotenet",
        "-p",
        "0:80",
        "bb",
        "sh",
        "-c",
        &httpd(80, "remote-web"),
    ]);
    wait_listening(&e, "rweb", 80, false);
    let addr = mapped(&e, "rweb", "80/tcp");
    assert!(http_get(&e, addr).contains("remote-web"));
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()));
    assert!(http_get(&e, v6).contains("remote-web"));
    let ip = e.ok(&["inspect", "-f", "{{.NetworkSettings.Networks.remotenet.IPAddress}}", "rweb"]);
    assert!(ip.trim().starts_with("10.79.0."), "{ip}");

    // connect/disconnect go to the manager behind the service.
    e.ok(&["run", "-d", "--name", "rcli", "bb", "sleep", "1000"]);
    e.ok(&["network", "connect", "remotenet", "rcli"]);
    let o = e.ok(&["exec", "rcli", "sh", "-c", &get("rweb")]);
    assert!(o.contains("remote-web"), "{o}");
    let members = e.ok(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", "remotenet"]);
    assert!(members.contains("rcli") && members.contains("rweb"), "{members}");
    e.ok(&["network", "disconnect", "remotenet", "rcli"]);
    let o = e.docker(&["exec", "rcli", "ip", "link", "show", "eth1"]);
    assert_ne!(o.status.code(), Some(0), "eth1 outlived disconnect: {}", show(&o));

    // In use: refused, with the reason.
    let o = e.docker(&["network", "rm", "remotenet"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(err(&o).contains("active endpoints"), "{}", show(&o));
    e.ok(&["rm", "-f", "rweb", "rcli"]);
    e.ok(&["network", "rm", "remotenet"]);
    assert!(!e.ok(&["network", "ls", "--format", "{{.Name}}"]).contains("remotenet"));
    let gone = e.in_host_netns(move || TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err());
    assert!(gone, "the published port outlived the container");

    // The driver is engine-lifecycled's: engined refuses a different one,
    // and its own driver options.
    let lc = format!("unix://{}", e.dir.path().join("lc.sock").display());
    let o = engined_output(e.dir.path(), &["--lifecycle", &lc, "--network-driver", "cni"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(err(&o).contains("runs the bridge driver"), "{}", show(&o));
    let o = engined_output(e.dir.path(), &["--lifecycle", &lc, "--network-driver", "bridge", "--bridge-name", "x0"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(err(&o).contains("engine-lifecycled's"), "{}", show(&o));
}

/// `engined --lifecycle --network-driver bridge` in front of an
/// engine-lifecycled without a network driver: refused at start, naming
/// what to do.
#[test]
fn a_separate_engine_lifecycled_without_networking_is_refused() {
    let e = Engined::start_remote();
    let lc = format!("unix://{}", e.dir.path().join("lc.sock").display());
    let o = engined_output(e.dir.path(), &["--lifecycle", &lc, "--network-driver", "bridge"]);
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    assert!(err(&o).contains("has no network driver (start it with --network-driver bridge)"), "{}", show(&o));
}

/// The default routes of container `c` (busybox `ip route` lists all).
fn default_routes(e: &Engined, c: &str) -> String {
    let all = e.ok(&["exec", c, "ip", "route"]);
    all.lines().filter(|l| l.starts_with("default")).map(str::trim).collect::<Vec<_>>().join("\n")
}

/// `docker network disconnect` of the network holding a container's
/// default route: the route moves to a network it is still on (docker's
/// behaviour), and the container still reaches beyond its subnet.
#[test]
fn disconnect_moves_the_default_route_to_a_remaining_network() {
    let e = Engined::start_networked();
    e.load_busybox();
    e.ok(&["network", "create", "--subnet", "10.81.0.0/24", "first"]);
    e.ok(&["network", "create", "--subnet", "10.82.0.0/24", "second"]);
    e.ok(&["run", "-d", "--name", "mover", "--network", "first", "bb", "sleep", "1000"]);
    e.ok(&["network", "connect", "second", "mover"]);
    let routes = default_routes(&e, "mover");
    assert_eq!(routes, "default via 10.81.0.1 dev eth0", "{routes}");
    e.ok(&["network", "disconnect", "first", "mover"]);
    let routes = default_routes(&e, "mover");
    assert_eq!(routes, "default via 10.82.0.1 dev eth1", "{routes}");
    // Off its own subnet: through the new default route (the bridge of
    // `bridge`, which the host holds, answers from outside 10.82.0.0/24).
    let gw = e.ok(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge"]);
    let o = e.ok(&["exec", "mover", "ping", "-c", "1", "-W", "5", gw.trim()]);
    assert!(o.contains("1 packets received"), "{o}");
    // Back on first: second keeps the route.
    e.ok(&["network", "connect", "first", "mover"]);
    let routes = default_routes(&e, "mover");
    assert_eq!(routes, "default via 10.82.0.1 dev eth1", "{routes}");
    e.ok(&["rm", "-f", "mover"]);
}
