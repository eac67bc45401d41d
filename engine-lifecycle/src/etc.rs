//! A container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`:
//! files in its bundle, bind-mounted over the image's, as docker gives
//! them. Hosts files of containers on a user-defined network list each
//! other (names and aliases) and are rewritten by the manager whenever a
//! container joins or leaves the network: see the crate docs for why.

use engine_core::network::EndpointInfo;
use engine_core::{ContainerConfig, ContainerInfo, NetworkMode, Result};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The three files, by their place in the container.
pub(crate) const FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Where the bundle keeps the file mounted on `dest` (`/etc/hosts` → `<bundle>/hosts`).
pub(crate) fn bundle_file(bundle: &Path, dest: &str) -> PathBuf {
    bundle.join(dest.trim_start_matches("/etc/"))
}

/// The container's hostname (default: the first 12 characters of its id).
pub(crate) fn hostname(id: &str, config: &ContainerConfig) -> String {
    config.hostname.clone().unwrap_or_else(|| id.chars().take(12).collect())
}

/// The files the user did not mount over themselves (a `-v x:/etc/hosts` wins).
pub(crate) fn wanted(config: &ContainerConfig) -> Vec<&'static str> {
    FILES.iter().copied().filter(|f| !config.mounts.iter().any(|m| m.target().trim_end_matches('/') == *f)).collect()
}

const LOCAL: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
                     ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// A peer as its neighbours' hosts files list it: its address on the
/// shared network, its name, its aliases there, its hostname.
fn peer_line(peer: &ContainerInfo, ep: &EndpointInfo) -> Option<String> {
    let ip = ep.ipv4?.addr();
    let mut names = vec![peer.name.clone()];
    names.extend(ep.aliases.iter().cloned());
    let h = hostname(&peer.id, &peer.config);
    names.push(h);
    names.dedup();
    let mut seen = Vec::new();
    names.retain(|n| {
        let new = !seen.contains(n);
        seen.push(n.clone());
        new
    });
    Some(format!("{ip}\t{}\n", names.join(" ")))
}

/// The container a hosts file is for (it may not be recorded yet).
pub(crate) struct Me<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub networks: &'a std::collections::BTreeMap<String, EndpointInfo>,
}

/// `/etc/hosts` for `me`: localhost, `--add-host` lines, its own address
/// and hostname, and (on user-defined networks) every peer on the same
/// network by name and alias. Host mode: the host's file plus `--add-host`.
pub(crate) fn hosts(me: &Me<'_>, all: &[ContainerInfo], host_hosts: &str) -> String {
    let mut s = String::new();
    if me.config.network == NetworkMode::Host {
        s.push_str(host_hosts);
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
    } else {
        s.push_str(LOCAL);
    }
    for (name, ip) in &me.config.extra_hosts {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    if me.config.network == NetworkMode::Host {
        return s;
    }
    let h = hostname(me.id, me.config);
    match me.networks.values().find_map(|e| e.ipv4) {
        Some(ip) => s.push_str(&format!("{}\t{h}\n", ip.addr())),
        None => s.push_str(&format!("127.0.1.1\t{h}\n")),
    }
    for ep in me.networks.values().filter(|e| e.network != "bridge") {
        for peer in all.iter().filter(|p| p.id != me.id) {
            if let Some(pep) = peer.networks.values().find(|p| p.network_id == ep.network_id) {
                if let Some(line) = peer_line(peer, pep) {
                    s.push_str(&line);
                }
            }
        }
    }
    s
}

/// `/etc/resolv.conf`: `--dns`/`--dns-search`/`--dns-option` when given,
/// else the host's, without loopback name servers (they mean nothing in the
/// container's namespace); docker's public fallbacks when none remain.
/// Host mode: the host's file as is.
pub(crate) fn resolv_conf(config: &ContainerConfig, host: &str) -> String {
    if config.network == NetworkMode::Host && config.dns.is_empty() {
        return host.to_string();
    }
    let mut servers: Vec<String> = config.dns.iter().map(IpAddr::to_string).collect();
    let mut search = config.dns_search.clone();
    let mut options = config.dns_options.clone();
    let mut host_servers = Vec::new();
    for l in host.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(ip) = w.next().and_then(|a| a.parse::<IpAddr>().ok()).filter(|ip| !ip.is_loopback()) {
                    host_servers.push(ip.to_string());
                }
            }
            Some("search") if config.dns_search.is_empty() => search = w.map(str::to_owned).collect(),
            Some("options") if config.dns_options.is_empty() => options.extend(w.map(str::to_owned)),
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = host_servers;
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s = String::new();
    for n in servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

/// Replace a file's contents in place (it is bind-mounted: a rename would
/// leave the container's view on the old inode).
pub(crate) fn write_in_place(path: &Path, text: &str) -> Result<()> {
    let io = |e| engine_core::Error::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\noptions edns0\n";
        let c = ContainerConfig::default();
        assert_eq!(resolv_conf(&c, host), "nameserver 10.0.0.2\nsearch lan\noptions edns0\n");
        assert_eq!(resolv_conf(&c, "nameserver 127.0.0.53\n"), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let c = c.dns(vec!["10.9.9.9".parse().unwrap()]).dns_search(vec!["corp".into()]);
        assert_eq!(resolv_conf(&c, host), "nameserver 10.9.9.9\nsearch corp\noptions edns0\n");
    }
}
