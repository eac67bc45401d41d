//! Networking of a VM container, as Kata Containers does it: the lifecycle
//! manager makes the container's network namespace and the network driver
//! puts its veth (`eth0`) there, as for `engine-runc`; the monitor then
//! creates a tap device in that namespace for each interface, joins tap and
//! interface with `tc` (an ingress qdisc on both, each one's ingress
//! redirected by `mirred` to the other's egress) and hands the tap to QEMU
//! (`-netdev tap,fd=N`) behind a virtio-net device with the interface's MAC.
//! The agent gives the guest's interface the same name, address, MTU and
//! routes ([`guest::configure`]), so the guest is the container's endpoint on
//! the network and everything outside it (bridge, published ports, name
//! resolution through `/etc/hosts`) is unchanged.
//!
//! IPv4 only: an interface with a global IPv6 address is refused.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// One interface of the container, as the guest configures it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The name in the container's namespace (`eth0`), given to the guest's interface.
    pub name: String,
    /// Its MAC address (`02:42:ac:11:00:02`), the guest's virtio-net device's.
    pub mac: String,
    /// Its MTU.
    pub mtu: u32,
    /// IPv4 addresses with their prefix length.
    pub addresses: Vec<(Ipv4Addr, u8)>,
}

/// A route of the container's namespace (beyond those its addresses imply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network (`0.0.0.0` with prefix 0 for the default route).
    pub destination: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface.
    pub device: String,
}

/// The container's network as the guest sets it up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Interfaces (none: the guest has loopback only).
    pub interfaces: Vec<Interface>,
    /// Routes.
    pub routes: Vec<Route>,
}

/// The host's side: taking over a network namespace for a VM.
pub mod host {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::path::Path;
    use std::process::Command;

    /// The name of the tap device paired with interface number `i`.
    pub fn tap_name(i: usize) -> String {
        format!("tap{i}_vm")
    }

    fn run(args: &[&str]) -> Result<String, String> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("running {} (Debian package iproute2): {e}", args[0]))?;
        if !out.status.success() {
            return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Enter the network namespace at `netns` (this thread; call it while
    /// the process has only one), read its interfaces and routes, pair each
    /// interface with a tap device (tc mirred both ways), and return to the
    /// namespace the thread was in. The taps' fds go to QEMU; a tap goes
    /// away when the last of them closes.
    pub fn take_over(netns: &Path) -> Result<(Network, Vec<OwnedFd>), String> {
        use nix::sched::{setns, CloneFlags};
        let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| format!("own network namespace: {e}"))?;
        let target = std::fs::File::open(netns).map_err(|e| format!("network namespace {}: {e}", netns.display()))?;
        setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| format!("entering {}: {e}", netns.display()))?;
        let r = take_over_here();
        setns(&own, CloneFlags::CLONE_NEWNET).map_err(|e| format!("leaving {}: {e}", netns.display()))?;
        r
    }

    fn take_over_here() -> Result<(Network, Vec<OwnedFd>), String> {
        let links: serde_json::Value =
            serde_json::from_str(&run(&["ip", "-j", "addr", "show"])?).map_err(|e| format!("ip addr: {e}"))?;
        let mut net = Network::default();
        for l in links.as_array().into_iter().flatten() {
            let name = l["ifname"].as_str().unwrap_or_default().to_string();
            // A tap of an earlier run of the container goes with its QEMU;
            // skip one still being torn down.
            if l["link_type"] == "loopback" || name.is_empty() || (name.starts_with("tap") && name.ends_with("_vm")) {
                continue;
            }
            let mut iface = Interface {
                name: name.clone(),
                mac: l["address"].as_str().unwrap_or_default().to_string(),
                mtu: l["mtu"].as_u64().unwrap_or(1500) as u32,
                addresses: Vec::new(),
            };
            for a in l["addr_info"].as_array().into_iter().flatten() {
                let local = a["local"].as_str().unwrap_or_default();
                let prefix = a["prefixlen"].as_u64().unwrap_or(32) as u8;
                match a["family"].as_str() {
                    Some("inet") => {
                        let ip = local.parse().map_err(|e| format!("address {local} of {name}: {e}"))?;
                        iface.addresses.push((ip, prefix));
                    }
                    Some("inet6") if a["scope"] != "link" => {
                        return Err(format!(
                        "interface {name} has the IPv6 address {local}/{prefix}: the vm runtime configures IPv4 only"
                    ))
                    }
                    _ => {}
                }
            }
            net.interfaces.push(iface);
        }
        let routes: serde_json::Value =
            serde_json::from_str(&run(&["ip", "-j", "-4", "route", "show"])?).map_err(|e| format!("ip route: {e}"))?;
        for r in routes.as_array().into_iter().flatten() {
            // The kernel's own routes come with the addresses.
            if r["protocol"] == "kernel" {
                continue;
            }
            let dst = r["dst"].as_str().unwrap_or_default();
            let (destination, prefix) = match dst {
                "default" => (Ipv4Addr::UNSPECIFIED, 0),
                d => match d.split_once('/') {
                    Some((a, p)) => (a.parse().ok().unwrap_or(Ipv4Addr::UNSPECIFIED), p.parse().unwrap_or(32)),
                    None => (d.parse().map_err(|e| format!("route to {d}: {e}"))?, 32),
                },
            };
            let gateway = r["gateway"].as_str().map(|g| g.parse()).transpose().map_err(|e| format!("gateway: {e}"))?;
            let device = r["dev"].as_str().unwrap_or_default().to_string();
            net.routes.push(Route { destination, prefix, gateway, device });
        }
        let mut taps = Vec::new();
        for (i, iface) in net.interfaces.iter().enumerate() {
            let tap = tap_name(i);
            taps.push(open_tap(&tap)?);
            let mtu = iface.mtu.to_string();
            run(&["ip", "link", "set", &tap, "mtu", &mtu, "up"])?;
            for (from, to) in [(iface.name.as_str(), tap.as_str()), (tap.as_str(), iface.name.as_str())] {
                // An earlier run's (a container started again keeps its
                // namespace) goes first, with its filter.
                let _ = run(&["tc", "qdisc", "del", "dev", from, "ingress"]);
                run(&["tc", "qdisc", "add", "dev", from, "ingress"])?;
                run(&[
                    "tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match", "u8",
                    "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
                ])?;
            }
        }
        Ok((net, taps))
    }

    /// A new tap device `name` (not persistent: it goes with its last fd).
    fn open_tap(name: &str) -> Result<OwnedFd, String> {
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| format!("/dev/net/tun: {e}"))?;
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF with a valid ifreq on an open /dev/net/tun.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &req) } < 0 {
            return Err(format!("creating tap device {name}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the fd is ours (into_raw_fd gives up the File's ownership).
        Ok(unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(tun)) })
    }
}

/// The guest's side: configuring the interfaces the agent finds by MAC.
pub mod guest {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    const RTF_UP: libc::c_ushort = 0x0001;
    const RTF_GATEWAY: libc::c_ushort = 0x0002;

    /// The kernel's `struct rtentry` (SIOCADDRT).
    #[repr(C)]
    struct RtEntry {
        rt_pad1: libc::c_ulong,
        rt_dst: libc::sockaddr,
        rt_gateway: libc::sockaddr,
        rt_genmask: libc::sockaddr,
        rt_flags: libc::c_ushort,
        rt_pad2: libc::c_short,
        rt_pad3: libc::c_ulong,
        rt_pad4: *mut libc::c_void,
        rt_metric: libc::c_short,
        rt_dev: *mut libc::c_char,
        rt_mtu: libc::c_ulong,
        rt_window: libc::c_ulong,
        rt_irtt: libc::c_ushort,
    }

    fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_in and sockaddr have the same size; any bytes are a valid sockaddr.
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
    }

    fn mask(prefix: u8) -> Ipv4Addr {
        Ipv4Addr::from(if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) })
    }

    fn ifreq(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
            *d = s as libc::c_char;
        }
        req
    }

    fn ioctl(sock: &OwnedFd, op: libc::c_ulong, arg: *mut libc::c_void, what: &str) -> Result<(), String> {
        // SAFETY: `arg` points to the struct `op` takes, alive for the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), op, arg) } < 0 {
            return Err(format!("{what}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn up(sock: &OwnedFd, name: &str) -> Result<(), String> {
        let mut req = ifreq(name);
        ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut _ as *mut _, &format!("flags of {name}"))?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        ioctl(sock, libc::SIOCSIFFLAGS, &mut req as *mut _ as *mut _, &format!("bringing {name} up"))
    }

    /// The guest's interface with MAC `mac` (waits for its driver to probe it).
    fn find(mac: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            for e in std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
                let a = std::fs::read_to_string(e.path().join("address")).unwrap_or_default();
                if a.trim().eq_ignore_ascii_case(mac) {
                    return Ok(e.file_name().to_string_lossy().into_owned());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no network interface with MAC {mac} in the guest after {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Bring loopback up and configure `net`'s interfaces and routes.
    pub fn configure(net: &Network) -> Result<(), String> {
        // SAFETY: socket(2); the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a new fd of ours.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        up(&sock, "lo")?;
        for iface in &net.interfaces {
            let found = find(&iface.mac, Duration::from_secs(10))?;
            if found != iface.name {
                let mut req = ifreq(&found);
                for (d, s) in
                    // SAFETY: writing the newname member of a zeroed union.
                    unsafe { req.ifr_ifru.ifru_newname.iter_mut() }
                        .zip(iface.name.bytes().take(libc::IFNAMSIZ - 1))
                {
                    *d = s as libc::c_char;
                }
                ioctl(&sock, libc::SIOCSIFNAME, &mut req as *mut _ as *mut _, &format!("renaming {found}"))?;
            }
            let name = iface.name.as_str();
            let mut req = ifreq(name);
            req.ifr_ifru.ifru_mtu = iface.mtu as libc::c_int;
            ioctl(&sock, libc::SIOCSIFMTU, &mut req as *mut _ as *mut _, &format!("MTU of {name}"))?;
            for (i, (ip, prefix)) in iface.addresses.iter().enumerate() {
                // Further addresses go on labels (eth0:1), as ifconfig adds them.
                let label = if i == 0 { name.to_string() } else { format!("{name}:{i}") };
                let mut req = ifreq(&label);
                req.ifr_ifru.ifru_addr = sockaddr(*ip);
                ioctl(&sock, libc::SIOCSIFADDR, &mut req as *mut _ as *mut _, &format!("address {ip} of {label}"))?;
                let mut req = ifreq(&label);
                req.ifr_ifru.ifru_netmask = sockaddr(mask(*prefix));
                ioctl(&sock, libc::SIOCSIFNETMASK, &mut req as *mut _ as *mut _, &format!("prefix of {label}"))?;
            }
            up(&sock, name)?;
        }
        for r in &net.routes {
            let dev = std::ffi::CString::new(r.device.clone()).map_err(|e| e.to_string())?;
            let mut rt = RtEntry {
                rt_pad1: 0,
                rt_dst: sockaddr(r.destination),
                rt_gateway: sockaddr(r.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                rt_genmask: sockaddr(mask(r.prefix)),
                rt_flags: RTF_UP | if r.gateway.is_some() { RTF_GATEWAY } else { 0 },
                rt_pad2: 0,
                rt_pad3: 0,
                rt_pad4: std::ptr::null_mut(),
                rt_metric: 0,
                rt_dev: dev.as_ptr() as *mut libc::c_char,
                rt_mtu: 0,
                rt_window: 0,
                rt_irtt: 0,
            };
            let what = format!("route to {}/{} via {:?} on {}", r.destination, r.prefix, r.gateway, r.device);
            ioctl(&sock, libc::SIOCADDRT, &mut rt as *mut _ as *mut _, &what)?;
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn masks() {
            assert_eq!(mask(0), Ipv4Addr::UNSPECIFIED);
            assert_eq!(mask(16), Ipv4Addr::new(255, 255, 0, 0));
            assert_eq!(mask(32), Ipv4Addr::BROADCAST);
        }
    }
}
