//! Hijacked streams: `POST /containers/{id}/attach` and `POST /exec/{id}/start`.
//!
//! The answer is `101 UPGRADED`; then the raw socket carries the process's
//! output (framed unless it has a terminal) one way and raw stdin the other.
//! Without a terminal, a client's write-EOF (half-close) closes the process's
//! stdin and nothing else: output keeps flowing until the process's output
//! ends, and then the daemon closes the connection. With a terminal (as
//! dockerd does it) the process's stdin stays open when the client goes:
//! the detach keys (`detachKeys`, default ctrl-p ctrl-q) or the client's EOF
//! end the attachment and the process runs on.

use super::State;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use bytes::BytesMut;
use engine_api::frames::{encode_into, FrameStream};
use engine_core::{Attach, AttachOptions, Error, LogOptions, Result};
use futures::StreamExt;
use http::{header, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Something to run once the output has ended, before the connection closes
/// (exec: wait for the exit code to be recorded so the client's inspect sees it).
pub(crate) type Finish = Pin<Box<dyn Future<Output = ()> + Send>>;

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// The 101 answer.
pub(crate) fn upgraded_response() -> Resp {
    let mut r = h::status(StatusCode::SWITCHING_PROTOCOLS);
    let hd = r.headers_mut();
    // API 1.41 (what engined advertises) uses raw-stream for both; the frames tell.
    let ct = "application/vnd.docker.raw-stream";
    hd.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    hd.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hd.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    r
}

fn encode(tty: bool, stream: FrameStream, data: &[u8]) -> bytes::Bytes {
    if tty {
        bytes::Bytes::copy_from_slice(data)
    } else {
        let mut b = BytesMut::with_capacity(data.len() + 8);
        encode_into(stream, data, &mut b);
        b.freeze()
    }
}

/// Pump an attachment over an upgraded connection until the output ends.
pub(crate) fn spawn_pump(
    on_upgrade: hyper::upgrade::OnUpgrade,
    attach: Attach,
    tty: bool,
    detach_keys: DetachKeys,
    replay: Option<futures::stream::BoxStream<'static, Result<engine_core::LogEntry>>>,
    finish: Option<Finish>,
    what: String,
) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%what, error = %e, "upgrade failed");
                return;
            }
        };
        let io = TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        let Attach { stdin, mut output } = attach;
        // Ends the output side when the input side detaches (terminal only).
        let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
        // Input: raw bytes to the process's stdin until the client's write-EOF
        // or, with a terminal, the detach keys.
        let input = tokio::spawn(async move {
            match stdin {
                Some(mut stdin) => {
                    let mut buf = vec![0u8; 32 * 1024];
                    let mut scan = tty.then(|| DetachScan::new(detach_keys));
                    let mut detached = false;
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let (fwd, det) = match scan.as_mut() {
                                    Some(sc) => sc.feed(&buf[..n]),
                                    None => (buf[..n].to_vec(), false),
                                };
                                if !fwd.is_empty() && stdin.write_all(&fwd).await.is_err() {
                                    break;
                                }
                                let _ = stdin.flush().await;
                                if det {
                                    detached = true;
                                    break;
                                }
                            }
                        }
                    }
                    if tty {
                        // The process keeps its terminal; only this attachment ends.
                        if detached {
                            tracing::debug!("detach keys read; detaching");
                        }
                        let _ = gone_tx.send(());
                    } else {
                        let _ = stdin.shutdown().await;
                    }
                }
                None => {
                    // Drain and ignore; a half-close is not a detach.
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
        });
        let mut ok = true;
        if let Some(mut replay) = replay {
            while let Some(Ok(e)) = replay.next().await {
                if wr.write_all(&encode(tty, FrameStream::from(e.stream), &e.line)).await.is_err() {
                    ok = false;
                    break;
                }
            }
        }
        let mut input_open = true;
        while ok {
            let next = tokio::select! {
                n = output.next() => n,
                r = &mut gone_rx, if input_open => {
                    if r.is_ok() {
                        // Detached (or the client went) with a terminal: the process runs on.
                        ok = false;
                        break;
                    }
                    input_open = false;
                    continue;
                }
            };
            match next {
                Some(Ok(o)) => {
                    if wr.write_all(&encode(tty, FrameStream::from(o.stream), &o.data)).await.is_err()
                        || wr.flush().await.is_err()
                    {
                        tracing::debug!(%what, "client went away; detaching");
                        ok = false;
                    }
                }
                Some(Err(e)) => {
                    let _ = wr.write_all(&encode(tty, FrameStream::SystemErr, e.to_string().as_bytes())).await;
                    break;
                }
                None => break,
            }
        }
        drop(output);
        if ok {
            if let Some(f) = finish {
                f.await;
            }
        }
        let _ = wr.shutdown().await;
        input.abort();
    });
}

/// `POST /containers/{id}/attach`.
pub(crate) async fn attach(st: &State, id: &str, q: &Query, req: &mut Request<Incoming>) -> Result<Resp> {
    let keys = DetachKeys::parse(q.get("detachKeys").unwrap_or(""))?;
    let info = st.manager.inspect(id).await?;
    let opts = AttachOptions::default().stdin(q.bool("stdin")).stdout(q.bool("stdout")).stderr(q.bool("stderr"));
    let tty = info.config.tty;
    if !wants_upgrade(req) {
        return Err(Error::invalid("attach", "the request must ask for a connection upgrade (Upgrade: tcp)"));
    }
    let replay = if q.bool("logs") {
        Some(st.manager.logs(&info.id, LogOptions::default().stdout(opts.stdout).stderr(opts.stderr)).await?)
    } else {
        None
    };
    let attach = if q.get("stream").is_none() || q.bool("stream") {
        match st.manager.attach(&info.id, opts).await {
            Ok(a) => a,
            // An exited container has no live stdio until it starts again
            // (`docker start -a` attaches first): follow it from its next start.
            Err(e) if e.is_conflict() && info.state == engine_core::ContainerState::Exited => {
                deferred(st, &info.id, opts)
            }
            Err(e) => return Err(e),
        }
    } else {
        Attach { stdin: None, output: futures::stream::empty().boxed() }
    };
    let on_upgrade = hyper::upgrade::on(req);
    spawn_pump(on_upgrade, attach, tty, keys, replay, None, format!("attach {}", info.id));
    Ok(upgraded_response())
}

/// An attachment to a container that is not running yet: output is its log
/// from the next start on (nothing is lost however fast it runs), input goes
/// to its stdin once it runs. Ends when that run ends or the container is removed.
fn deferred(st: &State, id: &str, opts: AttachOptions) -> Attach {
    let (_, mut rx) = st.events.subscribe(None);
    let t0 = std::time::SystemTime::now();
    let manager = st.manager.clone();
    let id = id.to_string();
    let (stdin_w, mut stdin_r) = tokio::io::duplex(64 * 1024);
    let output =
        super::system::async_stream(move |tx: tokio::sync::mpsc::Sender<Result<engine_core::Output>>| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.actor.id == id && ev.action == "start" => break,
                    Ok(ev) if ev.actor.id == id && ev.action == "destroy" => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
            if opts.stdin {
                if let Ok(a) =
                    manager.attach(&id, AttachOptions::default().stdin(true).stdout(false).stderr(false)).await
                {
                    if let Some(mut w) = a.stdin {
                        tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut stdin_r, &mut w).await;
                            let _ = w.shutdown().await;
                        });
                    }
                }
            }
            let lo = LogOptions::default().stdout(opts.stdout).stderr(opts.stderr).follow(true).since(Some(t0));
            match manager.logs(&id, lo).await {
                Ok(mut logs) => {
                    while let Some(e) = logs.next().await {
                        let item = e.map(|e| engine_core::Output { stream: e.stream, data: e.line });
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
    Attach { stdin: if opts.stdin { Some(Box::pin(stdin_w)) } else { None }, output }
}

/// The key sequence that detaches a terminal attachment (`detachKeys`, as
/// docker writes it: `ctrl-p,ctrl-q`, `a,ctrl-@`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DetachKeys(Vec<u8>);

impl DetachKeys {
    /// Parse docker's form; empty means the default, ctrl-p ctrl-q.
    pub(crate) fn parse(s: &str) -> Result<DetachKeys> {
        if s.trim().is_empty() {
            return Ok(DetachKeys(vec![0x10, 0x11]));
        }
        let bad = || Error::invalid("detachKeys", format!("invalid detach keys {s:?}: want keys like ctrl-p,ctrl-q"));
        let mut out = Vec::new();
        for k in s.split(',') {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let &[c] = c.as_bytes() else { return Err(bad()) };
                let c = c.to_ascii_lowercase();
                out.push(match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                });
            } else if k.len() == 1 && k.is_ascii() {
                out.push(k.as_bytes()[0]);
            } else {
                return Err(bad());
            }
        }
        Ok(DetachKeys(out))
    }
}

/// Finds the detach keys in a byte stream across reads; bytes that turn out
/// not to be the sequence are passed on in order.
struct DetachScan {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScan {
    fn new(keys: DetachKeys) -> DetachScan {
        DetachScan { keys: keys.0, matched: 0 }
    }

    /// The bytes to forward, and whether the sequence is complete (what
    /// follows it in `buf` is dropped: the attachment ends there).
    fn feed(&mut self, buf: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(buf.len());
        for &b in buf {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(DetachKeys::parse("").unwrap().0, vec![0x10, 0x11]);
        assert_eq!(DetachKeys::parse("ctrl-a,x,ctrl-@,ctrl-\\").unwrap().0, vec![1, b'x', 0, 28]);
        for bad in ["ctrl-", "ctrl-ab", "xy", "ctrl-1"] {
            let e = DetachKeys::parse(bad).unwrap_err();
            assert!(e.to_string().contains("detach keys"), "{bad}: {e}");
        }
    }

    #[test]
    fn detach_scan_across_reads() {
        let mut sc = DetachScan::new(DetachKeys::parse("").unwrap());
        assert_eq!(sc.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(sc.feed(b"\x11rest"), (Vec::new(), true));
        let mut sc = DetachScan::new(DetachKeys::parse("").unwrap());
        assert_eq!(sc.feed(b"\x10x\x10\x10\x11"), (b"\x10x\x10".to_vec(), true));
    }
}
