//! Forgetting the connection-tracking entries NATed to a container, so a
//! published port handed to another container is not shadowed by flows
//! the kernel still remembers (UDP above all: a client that keeps sending
//! keeps its old entry alive). What `conntrack -D -r <ip>` does, over
//! ctnetlink.

use engine_core::{Error, Result};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::net::{IpAddr, Ipv4Addr};

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(format!("conntrack: {what}"), e)
}

fn send(sock: &Socket, inner: ConntrackMessage, flags: u16, seq: u32) -> Result<()> {
    let mut m =
        NetlinkMessage::from(NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0), inner));
    m.header.flags = flags;
    m.header.sequence_number = seq;
    m.finalize();
    let mut buf = vec![0; m.header.length as usize];
    m.serialize(&mut buf);
    sock.send(&buf, 0).map_err(io("send"))?;
    Ok(())
}

/// Each message of one receive; `Ok(false)` once the answer is complete.
fn each(sock: &Socket, mut f: impl FnMut(NetlinkMessage<NetfilterMessage>) -> Result<bool>) -> Result<()> {
    // Bounded: a dump ends with Done, a request with its ack.
    for _ in 0..1_000_000 {
        let (data, _) = sock.recv_from_full().map_err(io("receive"))?;
        let mut off = 0;
        while off < data.len() {
            let m = NetlinkMessage::<NetfilterMessage>::deserialize(&data[off..])
                .map_err(|e| Error::Other(format!("conntrack: bad netlink message: {e}")))?;
            let len = m.header.length as usize;
            if len == 0 {
                return Ok(());
            }
            if !f(m)? {
                return Ok(());
            }
            off += (len + 3) & !3;
        }
    }
    Err(Error::Other("conntrack: no end to the answer".into()))
}

/// Delete every IPv4 entry whose reply comes from `ip` (flows NATed to it);
/// call inside the host's namespace. Returns how many went.
pub(crate) fn forget_flows_to(ip: Ipv4Addr) -> Result<usize> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
    sock.bind_auto().map_err(io("bind"))?;
    sock.connect(&SocketAddr::new(0, 0)).map_err(io("connect"))?;
    send(&sock, ConntrackMessage::Get(vec![]), NLM_F_REQUEST | NLM_F_DUMP, 1)?;
    let mut victims = Vec::new();
    each(&sock, |m| match m.payload {
        NetlinkPayload::Done(_) => Ok(false),
        NetlinkPayload::Error(e) if e.code.is_some() => Err(Error::io("conntrack: dump", e.to_io())),
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
            ..
        }) => {
            let replies_from_ip = attrs.iter().any(|a| match a {
                ConntrackAttribute::CtaTupleReply(t) => t.iter().any(|t| match t {
                    Tuple::Ip(ips) => ips.contains(&IPTuple::SourceAddress(IpAddr::V4(ip))),
                    _ => false,
                }),
                _ => false,
            });
            if replies_from_ip {
                if let Some(orig) = attrs.into_iter().find(|a| matches!(a, ConntrackAttribute::CtaTupleOrig(_))) {
                    victims.push(orig);
                }
            }
            Ok(true)
        }
        _ => Ok(true),
    })?;
    let mut gone = 0;
    for (i, orig) in victims.into_iter().enumerate() {
        send(&sock, ConntrackMessage::Delete(vec![orig]), NLM_F_REQUEST | NLM_F_ACK, 2 + i as u32)?;
        each(&sock, |m| match m.payload {
            NetlinkPayload::Error(e) => match e.code {
                None => {
                    gone += 1;
                    Ok(false)
                }
                // Already gone (timed out meanwhile): fine.
                Some(c) if -c.get() == libc::ENOENT => Ok(false),
                Some(_) => Err(Error::io("conntrack: delete", e.to_io())),
            },
            _ => Ok(true),
        })?;
    }
    Ok(gone)
}
