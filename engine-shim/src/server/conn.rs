//! The gRPC server's connections: unix streams that count themselves, so
//! the shim trims its memory when its last client leaves.

use super::sys;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};

/// How long the shim must have had no client before it trims its memory
/// (so the trim comes after the connection's teardown code ran).
const TRIM_DELAY: Duration = Duration::from_millis(200);

/// Counts open connections; trims memory once none is left for a while.
#[derive(Clone)]
pub(crate) struct Idle {
    open: Arc<AtomicUsize>,
    generation: Arc<AtomicUsize>,
    enabled: bool,
}

impl Idle {
    pub(crate) fn new(enabled: bool) -> Self {
        Idle { open: Arc::new(AtomicUsize::new(0)), generation: Arc::new(AtomicUsize::new(0)), enabled }
    }

    /// Trim after [`TRIM_DELAY`] unless a client connects meanwhile.
    pub(crate) fn schedule_trim(&self) {
        if !self.enabled {
            return;
        }
        let gen = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_DELAY).await;
            if me.generation.load(Ordering::SeqCst) == gen && me.open.load(Ordering::SeqCst) == 0 {
                sys::trim_memory();
            }
        });
    }
}

/// Accepted connections as a stream for `serve_with_incoming`.
pub(crate) struct Incoming {
    listener: UnixListener,
    idle: Idle,
}

impl Incoming {
    pub(crate) fn new(listener: UnixListener, idle: Idle) -> Self {
        Incoming { listener, idle }
    }
}

impl futures::Stream for Incoming {
    type Item = std::io::Result<Conn>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.listener.poll_accept(cx) {
            Poll::Ready(Ok((s, _))) => {
                self.idle.open.fetch_add(1, Ordering::SeqCst);
                self.idle.generation.fetch_add(1, Ordering::SeqCst);
                Poll::Ready(Some(Ok(Conn { inner: s, idle: self.idle.clone() })))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One client connection.
pub(crate) struct Conn {
    inner: UnixStream,
    idle: Idle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.idle.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.schedule_trim();
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
