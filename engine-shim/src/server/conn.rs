//! The gRPC server's connections: unix streams that note their traffic, so
//! the shim trims its memory once no byte has moved for a moment, whether or
//! not a client stays connected (the crate's own client lets its connection
//! go while it only waits for the container's exit; other clients may keep one
//! open with a `Wait` call for the whole life of the container).

use super::service::ShimService;
use super::sys;
use super::Core;
use crate::proto::shim_server::ShimServer;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{UnixListener, UnixStream};

/// How long the shim's connections must have been quiet before it trims its
/// memory (so the trim comes after the request's code ran).
const TRIM_DELAY: Duration = Duration::from_millis(200);

/// Notes traffic; trims memory once there has been none for [`TRIM_DELAY`].
#[derive(Clone)]
pub(crate) struct Idle {
    generation: Arc<AtomicUsize>,
    pending: Arc<AtomicBool>,
    enabled: bool,
}

impl Idle {
    pub(crate) fn new(enabled: bool) -> Self {
        Idle { generation: Arc::new(AtomicUsize::new(0)), pending: Arc::new(AtomicBool::new(false)), enabled }
    }

    /// Something happened: trim once [`TRIM_DELAY`] has passed with nothing
    /// else happening. At most one timer runs at a time.
    pub(crate) fn touch(&self) {
        if !self.enabled {
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let seen = me.generation.load(Ordering::SeqCst);
                tokio::time::sleep(TRIM_DELAY).await;
                if me.generation.load(Ordering::SeqCst) == seen {
                    break;
                }
            }
            me.pending.store(false, Ordering::SeqCst);
            sys::trim_memory();
        });
    }
}

/// The first byte of an exit watch: a client that only waits for the
/// container's init to end sends it instead of HTTP/2's preface (which starts
/// with `P`), and gets one byte ([`WATCH_EXITED`]) when the init has ended,
/// or the end of the stream if the shim goes away first.
pub(crate) const WATCH: u8 = b'W';
/// The byte a watch gets once the init has ended (its exit recorded).
pub(crate) const WATCH_EXITED: u8 = b'X';

/// Serve the gRPC service on `listener`: HTTP/2 on each accepted connection,
/// in a task of its own, until the shim exits; a connection that opens with
/// [`WATCH`] is an exit watch instead, which holds no HTTP/2 state. (Served
/// with hyper directly: tonic's server would add a router, request boxes and
/// layers the shim has no use for, held for every connection and call.)
pub(crate) async fn serve(listener: UnixListener, idle: Idle, core: Arc<Core>, svc: ShimServer<ShimService>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("accept on the shim's socket: {e}");
                continue;
            }
        };
        idle.touch();
        let idle = idle.clone();
        let svc = svc.clone();
        let core = core.clone();
        tokio::spawn(async move {
            match first_byte(&stream).await {
                Some(WATCH) => return watch_exit(stream, &core).await,
                Some(_) => {}
                None => return,
            }
            let conn = Conn { inner: stream, idle };
            let _served = Served::count(&core);
            let r = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(conn), TowerToHyperService::new(svc))
                .await;
            if let Err(e) = r {
                tracing::debug!("serving a client connection: {e}");
            }
        });
    }
}

/// The first byte a client sent, left in the socket (`None`: it closed).
async fn first_byte(stream: &UnixStream) -> Option<u8> {
    loop {
        stream.readable().await.ok()?;
        let mut b = [0u8; 1];
        match stream.try_io(tokio::io::Interest::READABLE, || {
            nix::sys::socket::recv(stream.as_raw_fd(), &mut b, nix::sys::socket::MsgFlags::MSG_PEEK)
                .map_err(std::io::Error::from)
        }) {
            Ok(0) => return None,
            Ok(_) => return Some(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

/// An exit watch: one byte once the init has ended; the client closing its
/// end first ends the watch.
async fn watch_exit(mut stream: UnixStream, core: &Core) {
    let mut b = [0u8; 1];
    if stream.read_exact(&mut b).await.is_err() {
        return;
    }
    let Ok(init) = core.proc(&engine_core::ProcessRef::Init) else { return };
    let closed = async {
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            // Readiness may be left over from the byte read above.
            match stream.try_read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                // Closed, failed, or sent what nobody asked for.
                _ => return,
            }
        }
    };
    let ended = tokio::select! {
        _ = init.wait() => true,
        _ = closed => false,
    };
    if ended {
        let _ = stream.write_all(&[WATCH_EXITED]).await;
    }
}

/// Counts a served HTTP/2 connection while it lives.
struct Served<'a>(&'a AtomicUsize);

impl<'a> Served<'a> {
    fn count(core: &'a Core) -> Self {
        core.served.fetch_add(1, Ordering::Relaxed);
        Served(&core.served)
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client connection.
pub(crate) struct Conn {
    inner: UnixStream,
    idle: Idle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.idle.touch();
    }
}

/// Notes traffic when a poll moved bytes.
fn noted<T>(idle: &Idle, r: Poll<std::io::Result<T>>, moved: bool) -> Poll<std::io::Result<T>> {
    if moved && matches!(r, Poll::Ready(Ok(_))) {
        idle.touch();
    }
    r
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        noted(&self.idle, r, moved)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        noted(&self.idle, r, true)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        noted(&self.idle, r, true)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
