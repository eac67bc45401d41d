//! # engine-network
//!
//! Network drivers behind [`engine_core::NetworkDriver`]. The default,
//! [`BridgeDriver`], is docker's `bridge` driver rebuilt on netlink and
//! nftables; [`CniDriver`] runs standard CNI plugin binaries (Debian's
//! `containernetworking-plugins`) for the networks of a conflist directory;
//! [`RemoteDriver`] is docker's remote driver for network plugins, put
//! beside either by [`NetworkRouter`].
//!
//! ```no_run
//! use engine_core::network::{AttachRequest, NetworkDriver, NetworkSpec, PortBinding};
//! use engine_network::{BridgeDriver, NetnsFile};
//!
//! # async fn demo() -> engine_core::Result<()> {
//! let driver = BridgeDriver::builder("/var/lib/engine/network").open().await?;
//! let net = driver.create_network(NetworkSpec::new("appnet")).await?;
//! // The lifecycle manager makes the container's namespace before create:
//! let ns = NetnsFile::create("/run/engine/netns/web1".as_ref()).await?;
//! let ep = driver
//!     .attach(&net.id, AttachRequest::new("web1", ns.path()).publish(PortBinding::parse("0:80")?.remove(0)))
//!     .await?;
//! println!("{} on {} via host port {}", ep.ipv4.unwrap(), ep.interface, ep.ports[0].host_port);
//! driver.detach(&net.id, &engine_core::ContainerId::new("web1")?).await?;
//! # Ok(()) }
//! ```
//!
//! ## Design, and why
//!
//! **A container's network namespace is a file.** The lifecycle manager
//! creates it (a bind mount of a fresh namespace, [`NetnsFile`]) before
//! the runtime's create and hands its path to both the driver
//! ([`engine_core::network::AttachRequest::netns`]) and the runtime (the
//! OCI spec's network namespace `path`), as CNI and Kubernetes' CRI do.
//! The driver configures it before any container process exists, and the
//! runtime (ours, runc, crun, a VM runtime) needs no network code.
//!
//! **The host namespace is a parameter too.** Everything the driver does
//! on the host side (bridges, veths, rules, sysctls) happens in
//! [`BridgeDriverBuilder::host_netns`], the caller's namespace by default.
//! Each operation runs on a short-lived thread that entered that namespace
//! ([`Netns::run`]), so no tokio worker ever changes namespace; netlink
//! sockets opened there stay there. Tests hand the driver a namespace of
//! their own and leave the machine's networking untouched.
//!
//! **Links over netlink** (`rtnetlink`, from the rust-netlink project that
//! also maintains `netlink-packet-route`): typed messages and kernel
//! errors, no `ip` processes to spawn and parse. Per endpoint: a veth
//! pair, the host end plugged into the network's bridge (hairpin mode on),
//! the peer given a MAC (docker's `02:42` + IPv4), moved into the
//! container's namespace, renamed (`eth0`), addressed, up, with the default
//! route via the bridge's address; loopback up.
//!
//! **Rules in nftables, one table of our own** (`table inet engine`,
//! [`BridgeDriverBuilder::nft_table`]). The table is rendered whole from
//! the driver's state and replaced in one `nft -f -` transaction (add,
//! delete, re-add: atomic), so rules always match the records, a failure
//! leaves the previous rules in place, recovery is "render again", and
//! removing the last network deletes the table: the host's own tables are
//! never touched. We drive the `nft` command rather than netlink because
//! it gives that whole-ruleset transaction for free and is what moby's
//! nftables firewaller uses too; the Rust nftables netlink crates
//! (`rustables`, `nftnl` over libnftnl) are thinner on expressions
//! (`fib`, `ct status`, anonymous sets) and less kept. The `nft` command
//! comes with Debian's `nftables` package. The table holds:
//! masquerade for traffic leaving a network's subnet (internal networks
//! excepted), forward drops between different bridges (isolation) and out
//! of internal networks, DNAT of published ports (`fib daddr type local`
//! in prerouting and output), and the NAT rules for hairpin and localhost.
//! A host whose `forward` policy is drop in another table (docker's
//! iptables rules) still drops: nftables' accept is per table.
//!
//! **Published ports without a proxy.** Connections from other hosts and
//! containers are DNATed in prerouting. Connections from the host itself,
//! to one of its addresses or to 127.0.0.1, are DNATed in output; for
//! 127.0.0.1 the bridge gets `route_localnet=1` (so a packet with a
//! loopback source may leave through it) and such packets are
//! masqueraded to the gateway address so the container can answer. Docker's
//! default is a userland proxy (`docker-proxy`, one process per port); we
//! chose kernel NAT because it needs no process per port (memory per
//! container), keeps working while the manager restarts (the kernel holds
//! it), and has no copy through user space (throughput). The known risk of
//! `route_localnet` (a container reaching the host's 127.0.0.0/8 services)
//! is closed by an input rule dropping new connections from our bridges to
//! 127.0.0.0/8. Hairpin (a container reaching its own published port) and
//! a neighbour's published port work because DNATed traffic back into the
//! same subnet is masqueraded, so answers return through the host's NAT.
//! IPv6: a network is dual-stack when its spec has an IPv6 subnet (docker's
//! `--ipv6 --subnet`): the bridge and each container get an IPv6 address
//! (no duplicate address detection: the driver owns the subnet) and a
//! default route, outbound IPv6 is masqueraded, and a port published on all
//! host addresses is DNATed on the host's IPv6 addresses too (not `::1`).
//! Publishing on IPv6 as docker does, for every network: a tcp port
//! published on all addresses is also published on `::` (same host port;
//! `docker port` lists `0.0.0.0:P` and `[::]:P`) when the host namespace
//! has IPv6, and a binding may name an IPv6 host address (`-p
//! [::1]:8080:80`, `-p [::1]:5353:53/udp`). The IPv6 side is a socket
//! served by a proxy in the driver (docker-proxy's role) to the
//! container's IPv4 address: NAT can take neither `::1` out of the host
//! (IPv6 has no `route_localnet`) nor IPv6 to IPv4. tcp is spliced per
//! connection; udp is relayed per client (one socket towards the container
//! per client address, so answers find their client, dropped after 90 s
//! without an answer, at most 1024 per port). udp on all addresses is
//! published on IPv4 (and DNATed on IPv6 for a dual-stack network).
//! A detach that takes the interface holding the container's default route
//! gives the route to the container's first remaining network (by name)
//! with a gateway, as docker does. On detach the connection-tracking entries NATed to the
//! container are deleted (over ctnetlink, `netlink-packet-netfilter`), so a
//! UDP client that keeps sending follows the port to its next container
//! instead of a remembered, dead address.
//!
//! **Host ports are held.** Each published host port is bound (not
//! listening) in the host namespace while published: a port already in use
//! is a [`engine_core::Error::Conflict`] at attach, host port 0 takes a
//! free port from the kernel, and no host process can take it while the
//! driver is open (a new driver on the same state holds them again).
//!
//! **IPAM on disk.** A network's record (subnet, gateway, and every
//! endpoint with its address, MAC and ports: the leases) is one JSON file
//! under `<state>/networks/`, replaced with [`engine_core::fs::write_atomic`]
//! (temp file, fsync, rename). An endpoint is written as `attaching` before
//! any kernel object exists and `attached` when done; a new driver on the
//! same directory ([`BridgeDriverBuilder::open`]) recreates missing
//! bridges, drops endpoints that never finished or whose veth is gone (their
//! namespace died) and releases their leases, re-holds ports and re-renders
//! the rules. The default network takes `172.17.0.0/16`; user networks the
//! first of `172.18.0.0/16`..`172.31.0.0/16` not used by a network or routed
//! on the host. Sysctls set in the host namespace: `net.ipv4.ip_forward=1`
//! (as docker does), `route_localnet=1` on our bridges only, and, once a
//! dual-stack network exists, `net.ipv6.conf.all.forwarding=1` (as docker
//! does; a host that takes its IPv6 default route from router
//! advertisements then needs `accept_ra=2` on that interface).
//!
//! ## The CNI driver
//!
//! [`CniDriver`] implements the same contract with CNI plugins, the way
//! containerd's CRI and podman 3 do. A network is a network configuration
//! list in a directory (`*.conflist`, or a single plugin's `*.conf`/`*.json`,
//! first file by name wins), its id derived from its name. Attaching runs
//! the list's plugins in order (then the `loopback` plugin for `lo`) with
//! `CNI_COMMAND=ADD`, `CNI_CONTAINERID`, `CNI_NETNS` (the namespace file
//! the manager made), `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH`, the plugin's configuration on stdin with
//! `name`, `cniVersion`, the previous plugin's result as `prevResult` and
//! a `runtimeConfig` holding only the capabilities the plugin declares
//! (`portMappings` for published ports, `mac`); the last result (0.3.0 to
//! 1.x) gives the endpoint's addresses, gateway, MAC, host-side veth and
//! name servers. What a network's plugins cannot do is refused at attach
//! (ports without a `portMappings` plugin, a MAC without `mac`, a `--ip`
//! the IPAM did not honour; `--ip` goes to host-local as `CNI_ARGS IP=`).
//! Plugins run as processes started from a thread inside the host
//! namespace ([`CniDriverBuilder::host_netns`]), so tests keep them and
//! their rules out of the machine's own networking.
//!
//! Before ADD, the attachment (configuration list, runtime arguments) is
//! written under the state directory; after ADD, with its result: the
//! cached result the spec asks runtimes to keep. DEL (plugins in reverse
//! order, with the cached result as `prevResult`) therefore works after a
//! restart or a crash, and with the conflist edited or gone. A failed ADD
//! is followed by a DEL of the whole list, so every plugin frees what it
//! made. A new driver DELs the attachments whose ADD never finished and
//! those whose namespace is gone; for the latter the plugins get a
//! stand-in namespace holding an interface of the container's name with
//! its cached addresses (the bridge plugin finds the addresses whose
//! masquerade rules it must remove on that interface). CHECK is
//! [`CniDriver::check`]. Host ports are held while published, as in the
//! bridge driver (a port in use is a conflict at attach).
//!
//! Networks made through the driver (`docker network create` on a `cni`
//! engined, and the default network when no configuration has its name)
//! are conflists it writes: `bridge` with `host-local` IPAM (leases under
//! the driver's state), `portmap`, `firewall` and `tuning`; removing one
//! removes its file, its bridge and its lease directory. The packet filter
//! is the plugins' choice: Debian's 1.1.1 `portmap`, `firewall` and
//! `bridge` (`ipMasq`) use iptables (`iptables-nft` on Debian 12, so the
//! rules show in the nftables ruleset too). DEL removes a container's
//! rules; the chains the plugins share between containers (portmap's
//! `CNI-HOSTPORT-*`, firewall's `CNI-FORWARD`/`CNI-ADMIN`) stay, as with
//! every CNI runtime. Known limit of those plugins: portmap 1.1.1's CHECK
//! fails for IPv4-only containers when `ip6tables` exists.
//!
//! ## Plugin networks (docker's remote driver)
//!
//! [`RemoteDriver`] serves the networks whose driver is a plugin speaking
//! the `NetworkDriver` interface of Docker's plugin protocol v1 (found and
//! activated through `engine_plugin::Plugins`), so a network plugin written
//! for dockerd works with `docker network create -d <plugin>`, and
//! [`NetworkRouter`] puts it beside the bridge or CNI driver in one engine:
//! `bridge` and the default driver's name go to the default driver, any
//! other name to the plugin of that name, and every other call to the
//! driver that owns the network. What the engine does, as libnetwork does
//! for remote drivers:
//!
//! - IPAM stays the engine's: a subnet (given, or the first free `/16` of
//!   the user pool that no network of either driver and no host route
//!   uses) and gateway go to `CreateNetwork` as `IPv4Data`/`IPv6Data`
//!   (`AddressSpace`, `Pool`, `Gateway` with the pool's prefix), the `-o`
//!   options as `com.docker.network.generic`; each endpoint's address goes
//!   to `CreateEndpoint` (`Interface.Address`, `AddressIPv6`, and
//!   `MacAddress` when `--mac-address` was given). The plugin may fill an
//!   empty field (its own MAC), never change one the engine gave.
//! - `Join` (with `SandboxKey`, the container's namespace file) answers
//!   `InterfaceName.SrcName`, an interface the plugin made in the host
//!   namespace: the engine moves it into the container's namespace,
//!   renames it `DstPrefix` + the first free index (the manager's `ethN`
//!   when free), gives it the MAC, addresses, the `Gateway`/`GatewayIPv6`
//!   default routes and the `StaticRoutes` (type 0 through `NextHop`, 1 on
//!   the link), and brings it and loopback up; then `EndpointOperInfo`.
//!   `DisableGatewayService` is accepted and has nothing to disable (the
//!   engine has no gateway network of its own for such endpoints).
//! - Leaving: `Leave`, the interface moved back to the host namespace under
//!   its `SrcName`, `DeleteEndpoint`, the lease released. A plugin that fails
//!   there is logged and the container's removal goes on (dockerd forces it
//!   too); the interface is then deleted rather than left to nobody.
//! - A failure anywhere in an attach (plugin gone, hung past the plugin
//!   timeout, an `Err`, an answer that is not the protocol: each an error
//!   naming the plugin and the call) undoes what was done: the interface
//!   back to the plugin, `Leave`/`DeleteEndpoint` as far as it got, the
//!   lease released, so nothing stays behind.
//! - Records: one JSON file per plugin network (subnets, options, labels,
//!   every endpoint with its lease, namespace file and `SrcName`), written
//!   atomically before the plugin hears of an endpoint. A plugin network
//!   outlives an engine restart; its plugin is found again by name on
//!   first use. An endpoint whose attach was cut short is listed, so the
//!   manager's recovery detaches it.
//! - Refused: published ports (`-p`) on a plugin network (the remote
//!   driver has no port mapping here), plugins whose `GetCapabilities` scope
//!   is not `local` (swarm), more than one subnet per family.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod bridge;
#[cfg(feature = "cli")]
pub mod cli;
mod cni;
mod conntrack;
mod hostport;
mod ipam;
mod link;
mod netns;
mod nft;
mod record;
mod remote;

pub use bridge::{record_dir, BridgeDriver, BridgeDriverBuilder, DEFAULT_NETWORK, OPT_BRIDGE_NAME};
pub use cni::{CniDriver, CniDriverBuilder};
pub use netns::{remove_netns_file, Netns, NetnsFile};
pub use remote::{NetworkRouter, RemoteDriver, NETWORK_INTERFACE, OPT_GENERIC};
