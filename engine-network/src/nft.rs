//! The driver's nftables table, rendered whole from the driver's state and
//! swapped in one transaction (`nft -f -`).

use crate::netns::Netns;
use engine_core::network::{IpPrefix, Protocol};
use engine_core::{Error, IoContext, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

/// One network's part of the table.
pub(crate) struct NetRule {
    pub bridge: String,
    pub subnet: IpPrefix,
    pub subnet6: Option<IpPrefix>,
    pub internal: bool,
}

/// One published port.
pub(crate) struct PortRule {
    pub protocol: Protocol,
    /// `None`: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    /// Also published on the host's IPv6 addresses, to this address.
    pub container_ip6: Option<Ipv6Addr>,
    pub container_port: u16,
}

/// The script that replaces table `inet <table>` with what `nets` and
/// `ports` need, or deletes it when there is no network.
pub(crate) fn render(table: &str, nets: &[NetRule], ports: &[PortRule]) -> String {
    let mut s = String::new();
    // "add" first, so the "delete" succeeds on a first run; both, and the
    // new table, are one transaction: readers see the old rules or the new.
    let _ = writeln!(s, "table inet {table}\ndelete table inet {table}");
    if nets.is_empty() {
        return s;
    }
    let q = |n: &str| format!("\"{n}\"");
    let all: Vec<String> = nets.iter().map(|n| q(&n.bridge)).collect();
    let _ = writeln!(s, "table inet {table} {{");
    // DNAT of published ports, for packets from elsewhere (prerouting) and
    // from the host itself, 127.0.0.1 included (output).
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
    s.push_str("    fib daddr type local jump published\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n");
    s.push_str("    fib daddr type local jump published\n  }\n");
    s.push_str("  chain published {\n");
    for p in ports {
        let dst = match p.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            None => "meta nfproto ipv4".to_string(),
        };
        let _ = writeln!(
            s,
            "    {dst} {proto} dport {hp} dnat ip to {cip}:{cp}",
            proto = p.protocol.as_str(),
            hp = p.host_port,
            cip = p.container_ip,
            cp = p.container_port
        );
        if let (None, Some(c6)) = (p.host_ip, p.container_ip6) {
            let _ = writeln!(
                s,
                // Not ::1, which cannot leave the host: the proxy's.
                "    ip6 daddr != ::1 {proto} dport {hp} dnat ip6 to [{c6}]:{cp}",
                proto = p.protocol.as_str(),
                hp = p.host_port,
                cp = p.container_port
            );
        }
    }
    s.push_str("  }\n");
    s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
    for n in nets {
        let (br, sub) = (q(&n.bridge), n.subnet);
        if !n.internal {
            // Outbound: leaving the network, the host's address stands in.
            let _ = writeln!(s, "    ip saddr {sub} oifname != {br} masquerade");
        }
        // Published ports reached on 127.0.0.1 (route_localnet on the
        // bridge lets them out; the container answers the gateway).
        let _ = writeln!(s, "    oifname {br} ip saddr 127.0.0.0/8 masquerade");
        // Hairpin, and a container reaching a neighbour's published port:
        // without this the answer would bypass the host and its NAT.
        let _ = writeln!(s, "    oifname {br} ip saddr {sub} ct status dnat masquerade");
        if let Some(sub6) = n.subnet6 {
            if !n.internal {
                let _ = writeln!(s, "    ip6 saddr {sub6} oifname != {br} masquerade");
            }
            let _ = writeln!(s, "    oifname {br} ip6 saddr {sub6} ct status dnat masquerade");
        }
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    s.push_str("    ct state established,related accept\n    ct status dnat accept\n");
    for n in nets {
        let br = q(&n.bridge);
        if n.internal {
            let _ = writeln!(s, "    iifname {br} oifname != {br} drop");
            let _ = writeln!(s, "    oifname {br} iifname != {br} drop");
        }
        let others: Vec<&String> = all.iter().filter(|b| **b != br).collect();
        if !others.is_empty() {
            let set = others.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ");
            let _ = writeln!(s, "    iifname {br} oifname {{ {set} }} drop");
        }
    }
    s.push_str("  }\n");
    // route_localnet on a bridge would let containers reach the host's
    // 127.0.0.0/8 services: refuse new connections there.
    s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    let _ = writeln!(
        s,
        "    iifname {{ {} }} ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop",
        all.join(", ")
    );
    s.push_str("  }\n}\n");
    s
}

/// Run `script` through `nft -f -` in the namespace `ns`.
pub(crate) async fn apply(ns: &Netns, script: String) -> Result<()> {
    ns.run(move || {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::unavailable("nft", "the nftables command is not installed (apt-get install nftables)")
                } else {
                    Error::io("run nft", e)
                }
            })?;
        child.stdin.take().expect("piped").write_all(script.as_bytes()).context(|| "write to nft".to_string())?;
        let out = child.wait_with_output().context(|| "wait for nft".to_string())?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "nft refused the engine's ruleset: {}\n{script}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    })
    .await
}
