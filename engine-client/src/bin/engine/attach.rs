//! Attached streams: the process's frames to stdout/stderr, stdin to the
//! process, and docker's detach keys (ctrl-p ctrl-q).

use engine_client::frames::FrameStream;
use engine_core::Result;
use futures::StreamExt;
use std::io::Write;
use tokio::io::AsyncWriteExt;

/// Write a frame to stdout or stderr, as its stream says.
pub(crate) fn write_frame(f: &engine_client::frames::Frame) {
    match f.stream {
        FrameStream::Stderr | FrameStream::SystemErr => {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&f.data);
            let _ = e.flush();
        }
        _ => {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&f.data);
            let _ = o.flush();
        }
    }
}

/// How a [`pump`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// The process's output ended.
    Ended,
    /// The user typed the detach keys (ctrl-p ctrl-q); the process runs on.
    Detached,
}

/// Forward `buf` up to the detach sequence (ctrl-p ctrl-q); `prev_p` carries
/// a ctrl-p seen at the end of the previous read. Returns (bytes to send, detach?).
fn scan_detach(buf: &[u8], prev_p: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(buf.len() + 1);
    for &b in buf {
        if *prev_p {
            *prev_p = false;
            if b == 0x11 {
                return (out, true);
            }
            out.push(0x10);
        }
        if b == 0x10 {
            *prev_p = true;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Copy stdin to the stream (with `interactive`, then half-close; ctrl-p
/// ctrl-q detaches) and the stream's frames to stdout/stderr until the output ends.
pub(crate) async fn pump(io: engine_client::AttachIo, interactive: bool) -> Result<Pumped> {
    use tokio::io::AsyncReadExt;
    let engine_client::AttachIo { mut output, mut input } = io;
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let mut detach_tx = Some(detach_tx);
    let stdin_task = tokio::spawn(async move {
        if interactive {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            let mut prev_p = false;
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (fwd, detach) = scan_detach(&buf[..n], &mut prev_p);
                        if !fwd.is_empty() && input.write_all(&fwd).await.is_err() {
                            break;
                        }
                        if detach {
                            if let Some(tx) = detach_tx.take() {
                                let _ = tx.send(());
                            }
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        }
        let _ = input.shutdown().await;
        // Keep the write half alive until the output ends.
        std::future::pending::<()>().await;
    });
    let mut res = Ok(Pumped::Ended);
    loop {
        tokio::select! {
            f = output.next() => match f {
                Some(Ok(f)) => write_frame(&f),
                Some(Err(e)) => {
                    res = Err(e);
                    break;
                }
                None => break,
            },
            Ok(()) = &mut detach_rx => {
                res = Ok(Pumped::Detached);
                break;
            }
        }
    }
    stdin_task.abort();
    res
}

#[cfg(test)]
mod tests {
    use super::scan_detach;

    #[test]
    fn detach_sequence_across_reads() {
        let mut p = false;
        assert_eq!(scan_detach(b"ab\x10", &mut p), (b"ab".to_vec(), false));
        assert!(p);
        assert_eq!(scan_detach(b"\x11rest", &mut p), (Vec::new(), true));
        let mut p = false;
        assert_eq!(scan_detach(b"\x10x\x10\x11", &mut p), (b"\x10x".to_vec(), true));
    }
}
