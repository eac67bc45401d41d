//! The bridge driver against real kernel objects, inside namespaces the
//! tests create (see `common`): the machine's own networking is untouched.

mod common;

use common::*;
use engine_core::network::{AttachRequest, IpPrefix, NetworkDriver, NetworkSpec, PortBinding, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn ip4(ep: &engine_core::network::EndpointInfo) -> Ipv4Addr {
    match ep.ipv4.unwrap().addr() {
        IpAddr::V4(a) => a,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_on_one_network_talk_and_leave_nothing() {
    let mut lab = Lab::new().await;
    let before = lab.snapshot().await;
    let (p1, ns1) = lab.container("a").await;
    let (p2, ns2) = lab.container("b").await;
    let d = lab.driver();
    let net = d.create_network(NetworkSpec::new("appnet")).await.unwrap();
    assert_eq!(net.ipam[0].subnet, "172.18.0.0/16".parse::<IpPrefix>().unwrap(), "first user pool subnet");
    let e1 = d.attach("appnet", AttachRequest::new("c1", &p1)).await.unwrap();
    let e2 = d.attach(&net.id[..8], AttachRequest::new("c2", &p2)).await.unwrap();
    assert_eq!(e1.ipv4.unwrap().to_string(), "172.18.0.2/16");
    assert_eq!(e2.ipv4.unwrap().to_string(), "172.18.0.3/16");
    assert_eq!(e1.gateway4, Some(Ipv4Addr::new(172, 18, 0, 1)));
    assert_eq!(e1.mac.to_string(), "02:42:ac:12:00:02");
    assert_eq!(e1.interface, "eth0");
    let _s2 = serve_tcp(&ns2, 7000, "b").await;
    assert_eq!(tcp_get(&ns1, sa(ip4(&e2), 7000), OK_TIMEOUT).await.unwrap(), format!("b {}", ip4(&e1)));
    // Loopback is up in the container, too.
    let _s1 = serve_tcp(&ns1, 7001, "a").await;
    assert_eq!(tcp_get(&ns1, sa(Ipv4Addr::LOCALHOST, 7001), OK_TIMEOUT).await.unwrap(), "a 127.0.0.1");
    let info = d.inspect_network("appnet").await.unwrap();
    assert_eq!(info.endpoints.len(), 2);
    assert_eq!(info.endpoints["c2"], e2);
    d.detach("appnet", &cid("c1")).await.unwrap();
    d.detach("appnet", &cid("c2")).await.unwrap();
    assert!(d.detach("appnet", &cid("c2")).await.unwrap_err().is_not_found());
    d.remove_network("appnet").await.unwrap();
    assert_eq!(lab.snapshot().await, before, "links, rules and records as before");
    assert!(!nft_ruleset(&lab.host_ns()).await.contains("engine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_isolated_from_each_other() {
    let mut lab = Lab::new().await;
    let (pa, nsa) = lab.container("a").await;
    let (pb, nsb) = lab.container("b").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("red")).await.unwrap();
    d.create_network(NetworkSpec::new("blue").subnet("10.77.0.0/24".parse().unwrap())).await.unwrap();
    let ea = d.attach("red", AttachRequest::new("ca", &pa)).await.unwrap();
    let eb = d.attach("blue", AttachRequest::new("cb", &pb)).await.unwrap();
    assert_eq!(eb.ipv4.unwrap().to_string(), "10.77.0.2/24");
    let _sa = serve_tcp(&nsa, 7000, "a").await;
    let _sb = serve_tcp(&nsb, 7000, "b").await;
    // Each reaches the host (its gateway) side; neither reaches the other.
    let _hs = serve_tcp(&lab.host_ns(), 7100, "host").await;
    assert_eq!(tcp_get(&nsa, sa(ea.gateway4.unwrap(), 7100), OK_TIMEOUT).await.unwrap(), format!("host {}", ip4(&ea)));
    assert!(tcp_get(&nsa, sa(ip4(&eb), 7000), FAIL_TIMEOUT).await.is_err(), "red reached blue");
    assert!(tcp_get(&nsb, sa(ip4(&ea), 7000), FAIL_TIMEOUT).await.is_err(), "blue reached red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_reach_the_container_from_everywhere() {
    let mut lab = Lab::new().await;
    let (p1, ns1) = lab.container("web").await;
    let (p2, ns2) = lab.container("cli").await;
    let (p3, ns3) = lab.container("oth").await;
    let d = lab.driver();
    let def = d.default_network().await.unwrap();
    assert_eq!(def.name, "bridge");
    assert_eq!(def.interface.as_deref(), Some("engine0"));
    assert_eq!(def.ipam[0].subnet.to_string(), "172.17.0.0/16");
    d.create_network(NetworkSpec::new("other")).await.unwrap();
    let mut req = AttachRequest::new("web", &p1)
        .publish(PortBinding::parse("0:80").unwrap().remove(0))
        .publish(PortBinding::parse("5353:53/udp").unwrap().remove(0))
        .publish(PortBinding::parse("[::1]:5354:53/udp").unwrap().remove(0));
    for b in PortBinding::parse("127.0.0.1:9100-9101:9000-9001").unwrap() {
        req = req.publish(b);
    }
    let web = d.attach("bridge", req).await.unwrap();
    // 0:80 on 0.0.0.0 and on :: (the host namespace has IPv6), same port.
    assert_eq!(web.ports.len(), 6);
    let hp = web.ports[0].host_port;
    assert_ne!(hp, 0);
    assert_eq!(web.ports[0].host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!((web.ports[1].host_ip, web.ports[1].host_port), (IpAddr::V6(Ipv6Addr::UNSPECIFIED), hp));
    assert_eq!((web.ports[2].protocol, web.ports[2].host_port), (Protocol::Udp, 5353));
    assert_eq!((web.ports[3].host_ip, web.ports[3].host_port), (IpAddr::V6(Ipv6Addr::LOCALHOST), 5354));
    assert_eq!((web.ports[5].host_port, web.ports[5].container_port), (9101, 9001));
    let cli = d.attach("bridge", AttachRequest::new("cli", &p2)).await.unwrap();
    let oth = d.attach("other", AttachRequest::new("oth", &p3)).await.unwrap();
    let _tcp = serve_tcp(&ns1, 80, "web").await;
    let _tcp2 = serve_tcp(&ns1, 9001, "web9001").await;
    let _udp = serve_udp(&ns1, 53, "dns").await;
    let host = lab.host_ns();
    let gw = web.gateway4.unwrap();
    // From the host, on 127.0.0.1 (the container sees the gateway) and on
    // its own address (the container sees that address).
    assert_eq!(tcp_get(&host, sa(Ipv4Addr::LOCALHOST, hp), OK_TIMEOUT).await.unwrap(), format!("web {gw}"));
    assert_eq!(tcp_get(&host, sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("web {HOST_ADDR}"));
    // On ::1 too (the IPv6 proxy; the container sees the gateway).
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, hp));
    assert_eq!(tcp_get(&host, v6, OK_TIMEOUT).await.unwrap(), format!("web {gw}"));
    assert_eq!(tcp_get(&host, sa(Ipv4Addr::LOCALHOST, 9101), OK_TIMEOUT).await.unwrap(), format!("web9001 {gw}"));
    // Bound to 127.0.0.1 only: not on the host's other address.
    assert!(tcp_get(&host, sa(HOST_ADDR, 9101), FAIL_TIMEOUT).await.is_err());
    assert_eq!(udp_get(&host, sa(Ipv4Addr::LOCALHOST, 5353), OK_TIMEOUT).await.unwrap(), format!("dns {gw}"));
    // udp on an IPv6 host address: the proxy relays it (the container sees the gateway).
    let udp6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 5354));
    assert_eq!(udp_get(&host, udp6, OK_TIMEOUT).await.unwrap(), format!("dns {gw}"));
    // From another machine (the outside namespace).
    assert_eq!(tcp_get(&lab.outside_ns(), sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("web {OUTSIDE_ADDR}"));
    // From a neighbour on the same network, and from another network.
    assert_eq!(tcp_get(&ns2, sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("web {gw}"));
    // (leaving its own network, its traffic is masqueraded like any outbound)
    let _ = oth;
    assert_eq!(tcp_get(&ns3, sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("web {gw}"));
    // Hairpin: the container through its own published port.
    assert_eq!(tcp_get(&ns1, sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("web {gw}"));
    let _ = cli;
    // Unpublished on detach: the port is free again and DNAT is gone.
    d.detach("bridge", &cid("web")).await.unwrap();
    assert!(tcp_get(&host, sa(Ipv4Addr::LOCALHOST, hp), FAIL_TIMEOUT).await.is_err());
    assert!(tcp_get(&host, v6, FAIL_TIMEOUT).await.is_err(), "the IPv6 proxy outlived the endpoint");
    assert!(udp_get(&host, udp6, FAIL_TIMEOUT).await.is_err(), "the IPv6 udp proxy outlived the endpoint");
    let rules = nft_ruleset(&host).await;
    assert!(!rules.contains("dnat ip to"), "{rules}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masquerade_shows_the_outside_only_the_host() {
    let mut lab = Lab::new().await;
    let (p1, ns1) = lab.container("a").await;
    let (p2, ns2) = lab.container("i").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("out")).await.unwrap();
    d.create_network(NetworkSpec::new("closed").internal(true)).await.unwrap();
    let e = d.attach("out", AttachRequest::new("a", &p1)).await.unwrap();
    let ei = d.attach("closed", AttachRequest::new("i", &p2)).await.unwrap();
    assert_eq!(ei.gateway4, None, "an internal network has no way out");
    let _srv = serve_tcp(&lab.outside_ns(), 7400, "outside").await;
    let seen = tcp_get(&ns1, sa(OUTSIDE_ADDR, 7400), OK_TIMEOUT).await.unwrap();
    assert_eq!(seen, format!("outside {HOST_ADDR}"), "the outside saw {seen}, container is {}", ip4(&e));
    assert!(tcp_get(&ns2, sa(OUTSIDE_ADDR, 7400), FAIL_TIMEOUT).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_restart_and_are_freed_on_detach() {
    let mut lab = Lab::new().await;
    let (p1, ns1) = lab.container("a").await;
    let (p2, ns2) = lab.container("b").await;
    let (p3, _) = lab.container("c").await;
    let (p4, _) = lab.container("d").await;
    let (p5, _) = lab.container("e").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("keep")).await.unwrap();
    let e1 = d.attach("keep", AttachRequest::new("a", &p1).publish(PortBinding::new(Protocol::Tcp, 80))).await.unwrap();
    let e2 = d.attach("keep", AttachRequest::new("b", &p2)).await.unwrap();
    let hp = e1.ports[0].host_port;
    let before = d.inspect_network("keep").await.unwrap();
    // Restart: a new driver on the same state directory.
    drop(lab.driver.take());
    // Meanwhile container b's interface goes (as when its namespace dies;
    // deleting it by hand is synchronous, namespace teardown is not).
    let h2 = ns2.netlink().await.unwrap();
    let i = futures::TryStreamExt::try_next(&mut h2.link().get().match_name("eth0").execute()).await.unwrap().unwrap();
    h2.link().del(i.header.index).execute().await.unwrap();
    lab.driver = Some(lab.open_driver().await);
    let d = lab.driver();
    let after = d.inspect_network("keep").await.unwrap();
    assert_eq!(after.endpoints["a"], before.endpoints["a"], "a's lease, MAC and port kept");
    assert!(!after.endpoints.contains_key("b"), "b's lease released: its namespace is gone");
    let _srv = serve_tcp(&ns1, 80, "a").await;
    let host = lab.host_ns();
    assert_eq!(tcp_get(&host, sa(HOST_ADDR, hp), OK_TIMEOUT).await.unwrap(), format!("a {HOST_ADDR}"));
    // The published port is still held: a host process cannot take it.
    let taken = host.run(move || Ok(std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, hp)).is_err())).await.unwrap();
    assert!(taken, "host port {hp} was free after the restart");
    // No double allocation: the next endpoint gets b's freed address, not a's.
    let e3 = d.attach("keep", AttachRequest::new("c", &p3)).await.unwrap();
    assert_eq!(e3.ipv4, e2.ipv4);
    let e4 = d.attach("keep", AttachRequest::new("d", &p4)).await.unwrap();
    assert_ne!(e4.ipv4, e1.ipv4);
    assert_ne!(e4.ipv4, e3.ipv4);
    // Detach frees: the next attach takes a's address.
    d.detach("keep", &cid("a")).await.unwrap();
    let e5 = d.attach("keep", AttachRequest::new("e", &p5)).await.unwrap();
    assert_eq!(e5.ipv4, e1.ipv4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_and_changes_nothing() {
    let mut lab = Lab::new().await;
    let (p1, _) = lab.container("a").await;
    let (p2, _) = lab.container("b").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("used").subnet("10.60.0.0/16".parse().unwrap())).await.unwrap();
    d.attach("used", AttachRequest::new("a", &p1).publish(PortBinding::new(Protocol::Tcp, 80).host_port(8080)))
        .await
        .unwrap();
    // A host port held by a host process.
    let host = lab.host_ns();
    let squatter = host.run(|| Ok(std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap())).await.unwrap();
    let busy = squatter.local_addr().unwrap().port();
    let before = lab.snapshot().await;
    let d = lab.driver();

    let e = d
        .attach("used", AttachRequest::new("b", &p2).publish(PortBinding::new(Protocol::Tcp, 80).host_port(busy)))
        .await
        .unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("already in use"), "{e}");
    // A port the engine already published.
    let e = d
        .attach("used", AttachRequest::new("b", &p2).publish(PortBinding::new(Protocol::Tcp, 81).host_port(8080)))
        .await
        .unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("8080"), "{e}");
    // Overlapping subnets.
    let e = d.create_network(NetworkSpec::new("ovl").subnet("10.60.5.0/24".parse().unwrap())).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("overlaps 10.60.0.0/16 of network used"), "{e}");
    // Invalid specs.
    assert!(PortBinding::parse("80:x/tcp").unwrap_err().is_invalid_input());
    for (spec, needle) in [
        (NetworkSpec::new("bad").subnet("10.61.0.1/24".parse().unwrap()), "host bits"),
        (
            NetworkSpec::new("bad").subnet("10.61.0.0/24".parse().unwrap()).gateway("10.62.0.1".parse().unwrap()),
            "gateway",
        ),
        (NetworkSpec::new("bad").gateway("10.62.0.1".parse().unwrap()), "needs a subnet"),
        (NetworkSpec::new("bad name!"), "network name"),
        (NetworkSpec::new("bad").driver("macvlan"), "driver"),
        (NetworkSpec::new("bad").option(engine_network::OPT_BRIDGE_NAME, "a-name-far-too-long"), "bridge name"),
    ] {
        let e = d.create_network(spec).await.unwrap_err();
        assert!(e.is_invalid_input() && e.to_string().contains(needle), "{needle}: {e}");
    }
    let e = d.create_network(NetworkSpec::new("used")).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let e = d.attach("used", AttachRequest::new("b", &p2).ipv4(Ipv4Addr::new(10, 99, 0, 2))).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("10.99.0.2"), "{e}");
    let e = d.attach("used", AttachRequest::new("b", &p2).interface("this-name-is-too-long")).await.unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    let e = d.attach("used", AttachRequest::new("b", lab.dir.path().join("nope"))).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = d.attach("used", AttachRequest::new("b", lab.dir.path())).await.unwrap_err();
    assert!(e.is_invalid_input() || matches!(e, engine_core::Error::Io { .. }), "{e}");
    let e = d.attach("used", AttachRequest::new("a", &p2)).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("already attached"), "{e}");
    // Unknown network; a network that still has endpoints.
    assert!(d.attach("nope", AttachRequest::new("b", &p2)).await.unwrap_err().is_not_found());
    let e = d.remove_network("used").await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("active endpoints"), "{e}");
    assert_eq!(lab.snapshot().await, before, "a failed call left something behind");
    drop(squatter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_half_way_through_attach_is_undone() {
    let mut lab = Lab::new().await;
    let (p1, ns1) = lab.container("a").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("one")).await.unwrap();
    d.create_network(NetworkSpec::new("two")).await.unwrap();
    d.attach("one", AttachRequest::new("a", &p1)).await.unwrap();
    let before = lab.snapshot().await;
    let links_in = |ns: engine_network::Netns| async move {
        let h = ns.netlink().await.unwrap();
        let mut s = h.link().get().execute();
        let mut n = 0;
        while futures::TryStreamExt::try_next(&mut s).await.unwrap().is_some() {
            n += 1;
        }
        n
    };
    let in_container = links_in(ns1.clone()).await;
    // The veth is made and moved before the name clash inside the
    // container shows: all of it, the lease and the port must be undone.
    let e = lab
        .driver()
        .attach("two", AttachRequest::new("a2", &p1).publish(PortBinding::new(Protocol::Tcp, 80).host_port(8081)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("eth0"), "{e}");
    assert_eq!(lab.snapshot().await, before);
    assert_eq!(links_in(ns1.clone()).await, in_container);
    // The port was released: it can be published now.
    lab.driver()
        .attach(
            "two",
            AttachRequest::new("a2", &p1)
                .interface("eth1")
                .publish(PortBinding::new(Protocol::Tcp, 80).host_port(8081)),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_cut_short_by_a_crash_is_undone_on_restart() {
    let mut lab = Lab::new().await;
    let (p1, _ns1) = lab.container("a").await;
    let (p2, _ns2) = lab.container("b").await;
    let d = lab.driver();
    let net = d.create_network(NetworkSpec::new("crash")).await.unwrap();
    d.attach("crash", AttachRequest::new("a", &p1)).await.unwrap();
    let mid = lab.snapshot().await;
    let eb =
        d.attach("crash", AttachRequest::new("b", &p2).publish(PortBinding::new(Protocol::Tcp, 80))).await.unwrap();
    drop(lab.driver.take());
    // As if the process died between writing the lease and finishing:
    // the record still says "attaching".
    let rec = lab.state.join("networks").join(format!("{}.json", net.id));
    let text = std::fs::read_to_string(&rec).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["endpoints"]["b"]["state"] = "attaching".into();
    std::fs::write(&rec, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    lab.driver = Some(lab.open_driver().await);
    let info = lab.driver().inspect_network("crash").await.unwrap();
    assert!(!info.endpoints.contains_key("b"));
    let now = lab.snapshot().await;
    assert_eq!(now.links, mid.links, "b's veth {:?} removed", eb.host_interface);
    assert_eq!(now.rules, mid.rules, "b's port rules removed");
    assert_eq!(now.networks, mid.networks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attaches_get_distinct_addresses_and_ports() {
    let mut lab = Lab::new().await;
    let mut paths = Vec::new();
    for i in 0..6 {
        paths.push(lab.container(&format!("p{i}")).await.0);
    }
    let d = lab.driver();
    d.create_network(NetworkSpec::new("busy")).await.unwrap();
    let eps = futures::future::join_all(paths.iter().enumerate().map(|(i, p)| {
        d.attach("busy", AttachRequest::new(format!("c{i}"), p).publish(PortBinding::new(Protocol::Tcp, 80)))
    }))
    .await;
    let eps: Vec<_> = eps.into_iter().map(|e| e.unwrap()).collect();
    let mut ips: Vec<_> = eps.iter().map(|e| e.ipv4.unwrap()).collect();
    let mut ports: Vec<_> = eps.iter().map(|e| e.ports[0].host_port).collect();
    ips.sort();
    ips.dedup();
    ports.sort();
    ports.dedup();
    assert_eq!((ips.len(), ports.len()), (6, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_attach_detach_cycles_leave_nothing_behind() {
    let mut lab = Lab::new().await;
    let (p, ns) = lab.container("cyc").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("cycle")).await.unwrap();
    let before = lab.snapshot().await;
    let links_in = |ns: engine_network::Netns| async move {
        let h = ns.netlink().await.unwrap();
        let mut s = h.link().get().execute();
        let mut n = 0;
        while futures::TryStreamExt::try_next(&mut s).await.unwrap().is_some() {
            n += 1;
        }
        n
    };
    let in_container = links_in(ns.clone()).await;
    for i in 0..40 {
        let ep = lab
            .driver()
            .attach(
                "cycle",
                AttachRequest::new(format!("c{i}"), &p)
                    .publish(PortBinding::new(Protocol::Tcp, 80))
                    .publish(PortBinding::new(Protocol::Udp, 53)),
            )
            .await
            .unwrap();
        assert_eq!(ep.ipv4.unwrap().to_string(), "172.18.0.2/16", "the lease is reused, not leaked");
        lab.driver().detach("cycle", &cid(&format!("c{i}"))).await.unwrap();
    }
    assert_eq!(lab.snapshot().await, before);
    assert_eq!(links_in(ns).await, in_container);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_network_steps_aside_from_a_subnet_the_host_routes() {
    let lab = Lab::new().await;
    // As if docker0 held 172.17.0.0/16 on this host.
    let h = lab.host_ns().netlink().await.unwrap();
    let i = futures::TryStreamExt::try_next(&mut h.link().get().match_name("to-out").execute()).await.unwrap().unwrap();
    h.address().add(i.header.index, "172.17.0.1".parse().unwrap(), 16).execute().await.unwrap();
    let def = lab.driver().default_network().await.unwrap();
    assert_eq!(def.ipam[0].subnet.to_string(), "172.18.0.0/16");
    let user = lab.driver().create_network(NetworkSpec::new("next")).await.unwrap();
    assert_eq!(user.ipam[0].subnet.to_string(), "172.19.0.0/16");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flow_follows_its_port_to_the_next_container() {
    let mut lab = Lab::new().await;
    let (p1, ns1) = lab.container("u1").await;
    let (p2, ns2) = lab.container("u2").await;
    let d = lab.driver();
    d.create_network(NetworkSpec::new("udp")).await.unwrap();
    let publish = || PortBinding::parse("5353:53/udp").unwrap().remove(0);
    d.attach("udp", AttachRequest::new("u1", &p1).publish(publish())).await.unwrap();
    let _s1 = serve_udp(&ns1, 53, "first").await;
    let _s2 = serve_udp(&ns2, 53, "second").await;
    // One client socket, one source port: one conntrack entry.
    let client = lab
        .host_ns()
        .run(|| {
            let s = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            s.set_read_timeout(Some(OK_TIMEOUT)).unwrap();
            s.connect((Ipv4Addr::LOCALHOST, 5353)).unwrap();
            Ok(s)
        })
        .await
        .unwrap();
    let ask = |s: &std::net::UdpSocket| {
        s.send(b"hi").unwrap();
        let mut b = [0u8; 64];
        let n = s.recv(&mut b).unwrap();
        String::from_utf8_lossy(&b[..n]).split(' ').next().unwrap().to_string()
    };
    assert_eq!(tokio::task::block_in_place(|| ask(&client)), "first");
    d.detach("udp", &cid("u1")).await.unwrap();
    // Another container, another address, the same published port.
    d.attach("udp", AttachRequest::new("u2", &p2).ipv4(Ipv4Addr::new(172, 18, 0, 9)).publish(publish())).await.unwrap();
    assert_eq!(tokio::task::block_in_place(|| ask(&client)), "second", "the old flow was forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_localnet_does_not_open_the_hosts_loopback_to_containers() {
    let mut lab = Lab::new().await;
    let (p, ns) = lab.container("evil").await;
    let d = lab.driver();
    let ep = d.default_network().await.unwrap();
    let ep = d.attach(&ep.id, AttachRequest::new("evil", &p)).await.unwrap();
    let gw = ep.gateway4.unwrap();
    // A host service on its loopback only.
    let host = lab.host_ns();
    let l = host
        .run(|| {
            let l = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 7300)).unwrap();
            l.set_nonblocking(true).unwrap();
            Ok(l)
        })
        .await
        .unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let _srv = tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = l.accept().await else { return };
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"host-loopback\n").await;
        }
    });
    // A container that routes 127.0.0.2 to its gateway (what CVE-2020-8558
    // abuses: the bridge has route_localnet=1 for published ports).
    let script = format!(
        "ip route del local 127.0.0.0/8 dev lo table local \
         && ip route add 127.0.0.2/32 via {gw} dev eth0 && sysctl -qw net.ipv4.conf.eth0.route_localnet=1"
    );
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", p.display()))
        .args(["sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let target = sa(Ipv4Addr::new(127, 0, 0, 2), 7300);
    assert!(tcp_get(&ns, target, FAIL_TIMEOUT).await.is_err(), "a container reached the host's loopback");
    // The check is real: without the driver's input rule the same packets get through.
    let table = lab.driver().nft_table().to_string();
    host.run(move || {
        let st = std::process::Command::new("nft").args(["flush", "chain", "inet", &table, "input"]).status().unwrap();
        assert!(st.success());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(tcp_get(&ns, target, OK_TIMEOUT).await.unwrap(), "host-loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_range_takes_its_first_free_port() {
    let mut lab = Lab::new().await;
    let (p1, _) = lab.container("r1").await;
    let (p2, _) = lab.container("r2").await;
    let (p3, _) = lab.container("r3").await;
    let host = lab.host_ns();
    // 8200 taken by a host process, 8201 by the first container.
    let _squat = host.run(|| Ok(std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8200)).unwrap())).await.unwrap();
    let d = lab.driver();
    d.create_network(NetworkSpec::new("range")).await.unwrap();
    let spec = || PortBinding::parse("8200-8202:80").unwrap().remove(0);
    let a = d.attach("range", AttachRequest::new("r1", &p1).publish(spec())).await.unwrap();
    let b = d.attach("range", AttachRequest::new("r2", &p2).publish(spec())).await.unwrap();
    assert_eq!((a.ports[0].host_port, b.ports[0].host_port), (8201, 8202));
    let e = d.attach("range", AttachRequest::new("r3", &p3).publish(spec())).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("80/tcp"), "{e}");
    // UDP ports are a space of their own.
    let u = d
        .attach("range", AttachRequest::new("r3", &p3).publish(PortBinding::parse("8200:80/udp").unwrap().remove(0)))
        .await
        .unwrap();
    assert_eq!(u.ports[0].host_port, 8200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_network_routes_nats_and_publishes_ipv6() {
    use std::net::Ipv6Addr;
    let mut lab = Lab::new().await;
    let (pa, nsa) = lab.container("a6").await;
    let (pb, nsb) = lab.container("b6").await;
    let d = lab.driver();
    let net = d.create_network(NetworkSpec::new("dual").subnet("fd42:1::/64".parse().unwrap())).await.unwrap();
    assert_eq!(net.ipam.len(), 2, "{:?}", net.ipam);
    assert_eq!(net.ipam[1].gateway, Some("fd42:1::1".parse().unwrap()));
    let a = d.attach("dual", AttachRequest::new("a", &pa).publish(PortBinding::new(Protocol::Tcp, 80))).await.unwrap();
    let b = d.attach("dual", AttachRequest::new("b", &pb)).await.unwrap();
    assert_eq!(a.ipv6.unwrap().to_string(), "fd42:1::2/64");
    assert_eq!(b.ipv6.unwrap().to_string(), "fd42:1::3/64");
    assert_eq!(a.gateway6, Some("fd42:1::1".parse().unwrap()));
    let a6 = a.ipv6.unwrap().addr();
    let any6 = |port| sa(Ipv6Addr::UNSPECIFIED, port);
    let _s = serve_tcp_on(&nsa, any6(80), "a").await;
    // Neighbours over IPv6.
    assert_eq!(tcp_get(&nsb, sa(a6, 80), OK_TIMEOUT).await.unwrap(), format!("a {}", b.ipv6.unwrap().addr()));
    // Outbound over IPv6 is masqueraded too.
    let _o = serve_tcp_on(&lab.outside_ns(), any6(7400), "outside").await;
    assert_eq!(tcp_get(&nsa, sa(OUTSIDE_ADDR6, 7400), OK_TIMEOUT).await.unwrap(), format!("outside {HOST_ADDR6}"));
    // The published port answers on the host's IPv6 address as well.
    let hp = a.ports[0].host_port;
    assert_eq!(tcp_get(&lab.outside_ns(), sa(HOST_ADDR6, hp), OK_TIMEOUT).await.unwrap(), format!("a {OUTSIDE_ADDR6}"));
    // Bad IPv6 input.
    let e = d.create_network(NetworkSpec::new("v6bad").subnet("fd42:1:0:0:1::/80".parse().unwrap())).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("overlaps"), "{e}");
    let e = d.create_network(NetworkSpec::new("v6bad").subnet("fd43::/32".parse().unwrap())).await.unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    d.detach("dual", &cid("a")).await.unwrap();
    d.detach("dual", &cid("b")).await.unwrap();
    d.remove_network("dual").await.unwrap();
    assert!(!nft_ruleset(&lab.host_ns()).await.contains("engine"));
}

/// A container id for detach.
fn cid(id: &str) -> engine_core::ContainerId {
    engine_core::ContainerId::new(id).unwrap()
}
