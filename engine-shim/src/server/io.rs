//! A process's stdio as the shim holds it: pipes or a pty master, the
//! reader that logs and fans out output, and the stdin writers.

use super::sys;
use crate::log::LineSplitter;
use bytes::Bytes;
use engine_core::{ConsoleSize, Error, LogDriver, Output, Result, StdStream, StdioSpec};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, watch};

/// Chunks kept for slow attach clients before they lag (and skip).
const FANOUT_CAPACITY: usize = 128;
/// Output of an exec held for its first attach client.
const REPLAY_LIMIT: usize = 64 * 1024;
/// Bytes read at once (into a buffer on the stack, so a quiet process's
/// pump holds none).
const READ_CHUNK: usize = 8 * 1024;

/// Stdio prepared before the runtime creates the process.
pub(crate) struct Prepared {
    pub(crate) console: Option<(UnixListener, PathBuf)>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some((_, p)) = &self.console {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("create stdio pipe", e.into()))
}

/// Make the pipes (or the console socket) for a new process; the
/// [`StdioSpec`] goes to the runtime, the [`Prepared`] half stays here.
pub(crate) fn prepare(terminal: bool, open_stdin: bool, console_path: PathBuf) -> Result<(StdioSpec, Prepared)> {
    if terminal {
        let _ = std::fs::remove_file(&console_path);
        let l = UnixListener::bind(&console_path)
            .map_err(|e| Error::io(format!("bind console socket {}", console_path.display()), e))?;
        let spec = StdioSpec { console_socket: Some(console_path.clone()), ..Default::default() };
        return Ok((spec, Prepared { console: Some((l, console_path)), stdin: None, stdout: None, stderr: None }));
    }
    let (in_r, in_w) = if open_stdin { pipe().map(|(r, w)| (Some(r), Some(w)))? } else { (None, None) };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let spec = StdioSpec { stdin: in_r, stdout: Some(out_w), stderr: Some(err_w), console_socket: None };
    Ok((spec, Prepared { console: None, stdin: in_w, stdout: Some(out_r), stderr: Some(err_r) }))
}

/// The log as the pump writes it (locked per entry).
struct LogRef<'a>(&'a SharedLog);

type SharedLog = Arc<Mutex<Option<Box<dyn LogDriver>>>>;

enum Stdin {
    Pipe(pipe::Sender),
    Pty,
}

/// Where live output goes. The channel (its [`FANOUT_CAPACITY`] slots) exists
/// only while an attach client listens: output nobody listens to is not kept
/// either way, and a client only gets what is read after it subscribed.
enum Fanout {
    /// No client listens.
    Idle,
    /// Clients listen.
    Open(broadcast::Sender<Output>),
    /// The output has closed (EOF on every stream).
    Closed,
}

/// The live stdio of one process.
pub(crate) struct Io {
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
    stdin: tokio::sync::Mutex<Option<Stdin>>,
    out: Mutex<Fanout>,
    replay: Mutex<Option<(Vec<Output>, usize)>>,
    drained: watch::Sender<bool>,
    log: SharedLog,
}

impl Io {
    /// Start serving the prepared stdio; `master` is the pty received over
    /// the console socket. Output goes to `log` (if any) and to attach
    /// clients; with `replay`, output is held for the first client.
    pub(crate) fn start(
        mut prep: Prepared,
        master: Option<OwnedFd>,
        open_stdin: bool,
        log: Option<Box<dyn LogDriver>>,
        replay: bool,
    ) -> Result<Arc<Io>> {
        let (drained, _) = watch::channel(false);
        let mut io = Io {
            pty: None,
            stdin: tokio::sync::Mutex::new(None),
            out: Mutex::new(Fanout::Idle),
            replay: Mutex::new(replay.then(|| (Vec::new(), 0))),
            drained,
            log: Arc::new(Mutex::new(log)),
        };
        let src = if let Some(m) = master {
            sys::set_nonblocking(&m).map_err(|e| Error::io("set pty master non-blocking", e))?;
            // SAFETY: `m` is an OwnedFd that the AsyncFd owns from here on.
            let afd =
                Arc::new(unsafe { AsyncFd::register(m) }.map_err(|e| Error::io("register pty master", e.into()))?);
            io.pty = Some(afd.clone());
            if open_stdin {
                io.stdin = tokio::sync::Mutex::new(Some(Stdin::Pty));
            }
            Source::Pty(afd)
        } else {
            if let Some(w) = prep.stdin.take() {
                let s = pipe::Sender::from_owned_fd(w).map_err(|e| Error::io("register stdin pipe", e))?;
                io.stdin = tokio::sync::Mutex::new(Some(Stdin::Pipe(s)));
            }
            let rd = |f: Option<OwnedFd>| -> Result<pipe::Receiver> {
                let f = f.ok_or_else(|| Error::Other("stdio pipe missing".into()))?;
                pipe::Receiver::from_owned_fd(f).map_err(|e| Error::io("register output pipe", e))
            };
            Source::Pipes(rd(prep.stdout.take())?, rd(prep.stderr.take())?)
        };
        let io = Arc::new(io);
        tokio::spawn(pump(io.clone(), src));
        Ok(io)
    }

    /// Reopen the log at its path (a rotator renamed the file): entries
    /// from now on go to the new file. Without a log it is refused.
    pub(crate) fn reopen_log(&self) -> Result<()> {
        match self.log.lock().unwrap().as_mut() {
            Some(l) => {
                l.flush()?;
                l.reopen()
            }
            None => Err(Error::Unsupported("the container has no log to reopen".into())),
        }
    }

    /// Subscribe to live output. `None` once the output has closed. The
    /// first subscriber of an exec also gets what was held for it.
    pub(crate) fn subscribe(&self) -> Option<(Vec<Output>, broadcast::Receiver<Output>)> {
        let mut out = self.out.lock().unwrap();
        let rx = match &*out {
            Fanout::Closed => return None,
            Fanout::Open(tx) => tx.subscribe(),
            Fanout::Idle => {
                let (tx, rx) = broadcast::channel(FANOUT_CAPACITY);
                *out = Fanout::Open(tx);
                rx
            }
        };
        let held = self.replay.lock().unwrap().take().map(|(v, _)| v).unwrap_or_default();
        Some((held, rx))
    }

    /// Held output of an exec whose output closed before anyone attached.
    pub(crate) fn take_replay(&self) -> Vec<Output> {
        self.replay.lock().unwrap().take().map(|(v, _)| v).unwrap_or_default()
    }

    /// Wait until the output has closed (EOF on every stream).
    pub(crate) async fn drained(&self) {
        let mut rx = self.drained.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Write to the process's stdin.
    pub(crate) async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        let mut g = self.stdin.lock().await;
        match &mut *g {
            Some(Stdin::Pipe(p)) => p.write_all(data).await.map_err(|e| Error::io("write to stdin", e)),
            Some(Stdin::Pty) => match &self.pty {
                Some(m) => write_pty(m, data).await,
                None => Ok(()),
            },
            None => Err(Error::conflict("process", "stdin", "stdin is not open")),
        }
    }

    /// Close stdin: EOF on a pipe, `^D` on a terminal.
    pub(crate) async fn close_stdin(&self) -> Result<()> {
        let mut g = self.stdin.lock().await;
        match g.take() {
            Some(Stdin::Pipe(p)) => drop(p),
            Some(Stdin::Pty) => {
                if let Some(m) = &self.pty {
                    write_pty(m, &[4]).await?;
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Resize the terminal.
    pub(crate) fn resize(&self, size: ConsoleSize) -> Result<()> {
        match &self.pty {
            Some(m) => sys::set_winsize(m.get_ref(), size).map_err(|e| Error::io("resize terminal", e)),
            None => Err(Error::conflict("process", "terminal", "the process has no terminal")),
        }
    }

    fn emit(&self, stream: StdStream, data: &[u8]) {
        let out = Output { stream, data: Bytes::copy_from_slice(data) };
        {
            let mut r = self.replay.lock().unwrap();
            if let Some((held, size)) = r.as_mut() {
                if *size + data.len() <= REPLAY_LIMIT {
                    *size += data.len();
                    held.push(out.clone());
                }
            }
        }
        let mut fanout = self.out.lock().unwrap();
        if let Fanout::Open(tx) = &*fanout {
            if tx.receiver_count() > 0 {
                let _ = tx.send(out);
            } else {
                // The last client left: free the channel until one comes.
                *fanout = Fanout::Idle;
            }
        }
    }
}

async fn write_pty(m: &AsyncFd<OwnedFd>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        let mut g = m.writable().await.map_err(|e| Error::io("write to terminal", e))?;
        match g.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(Error::io("write to terminal", e)),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

enum Source {
    Pipes(pipe::Receiver, pipe::Receiver),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// Read one chunk with `read` into a buffer on the stack and hand what was
/// read to `got` (nothing on EOF or error). The buffer lives only in this
/// call, never in the pump's task, so a quiet process's pump holds none.
fn read_chunk(
    read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    got: impl FnOnce(&[u8]),
) -> std::io::Result<usize> {
    let mut buf = [0u8; READ_CHUNK];
    let n = read(&mut buf)?;
    if n > 0 {
        got(&buf[..n]);
    }
    Ok(n)
}

/// Read until EOF; log and fan out each chunk as it is read. Never waits
/// on clients: the fan-out drops chunks for clients that lag.
async fn pump(io: Arc<Io>, src: Source) {
    let mut split_out = LineSplitter::new(StdStream::Stdout);
    let mut split_err = LineSplitter::new(StdStream::Stderr);
    // The log is shared with `Io::reopen_log` (a rotator's reopen request).
    let shared = io.log.clone();
    let has_log = shared.lock().unwrap().is_some();
    let mut log = LogRef(&shared);
    let write_log = |log: &mut LogRef<'_>, e: engine_core::LogEntry| {
        if let Some(l) = log.0.lock().unwrap().as_mut() {
            if let Err(err) = l.write(&e) {
                tracing::warn!("log write failed: {err}");
            }
        }
    };
    match src {
        Source::Pipes(out, err) => {
            let (mut out_open, mut err_open) = (true, true);
            while out_open || err_open {
                let (which, ready) = tokio::select! {
                    r = out.readable(), if out_open => (StdStream::Stdout, r),
                    r = err.readable(), if err_open => (StdStream::Stderr, r),
                };
                let (pipe, splitter) =
                    if which == StdStream::Stdout { (&out, &mut split_out) } else { (&err, &mut split_err) };
                let r = ready.and_then(|_| {
                    read_chunk(
                        |buf| pipe.try_read(buf),
                        |data| {
                            if has_log {
                                let now = std::time::SystemTime::now();
                                splitter.push(data, now, &mut |e| write_log(&mut log, e));
                            }
                            io.emit(which, data);
                        },
                    )
                });
                let n = match r {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    _ => 0,
                };
                if n == 0 {
                    splitter.finish(&mut |e| write_log(&mut log, e));
                    if which == StdStream::Stdout {
                        out_open = false;
                    } else {
                        err_open = false;
                    }
                }
            }
        }
        Source::Pty(m) => loop {
            let mut g = match m.readable().await {
                Ok(g) => g,
                Err(_) => break,
            };
            let r = g.try_io(|fd| {
                read_chunk(
                    |buf| nix::unistd::read(fd.get_ref(), buf).map_err(std::io::Error::from),
                    |data| {
                        if has_log {
                            let now = std::time::SystemTime::now();
                            split_out.push(data, now, &mut |e| write_log(&mut log, e));
                        }
                        io.emit(StdStream::Stdout, data);
                    },
                )
            });
            let n = match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(_)) => 0, // EIO: every slave end closed
                Err(_would_block) => continue,
            };
            if n == 0 {
                split_out.finish(&mut |e| write_log(&mut log, e));
                break;
            }
        },
    }
    if let Some(l) = shared.lock().unwrap().as_mut() {
        let _ = l.flush();
    }
    *io.out.lock().unwrap() = Fanout::Closed;
    io.drained.send_replace(true);
}
