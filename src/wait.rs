//! Wait strategies: when is a started container ready?

use crate::Container;
use engine_core::{ContainerState, Error, LogOptions, Result, StdStream};
use futures::StreamExt;
use std::fmt;
use std::time::Duration;

/// What [`crate::Engine::run`] waits for after starting a container. Several
/// strategies run in order; all share the startup timeout.
///
/// ```
/// use engine::WaitFor;
/// let w = WaitFor::stdout("ready");
/// assert_eq!(w.to_string(), "stdout line containing \"ready\"");
/// ```
///
/// A container that stops before it is ready fails the wait at once with
/// [`Error::UnexpectedExit`](crate::Error::UnexpectedExit), not a timeout.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WaitFor {
    /// A line on stdout containing this text.
    StdoutLine(String),
    /// A line on stderr containing this text.
    StderrLine(String),
    /// The container's exit, with this exit code if given.
    Exit(Option<i32>),
    /// A command, exec'd in the container every `interval` until it exits 0.
    Command {
        /// The command.
        cmd: Vec<String>,
        /// Pause between attempts.
        interval: Duration,
    },
    /// A fixed pause.
    Duration(Duration),
    /// The host port `port`/tcp is published on accepts a TCP connection
    /// (tried every `interval`).
    Port {
        /// The container port (published with `publish`).
        port: u16,
        /// Pause between attempts.
        interval: Duration,
    },
    /// An HTTP `GET path` to the host port `port`/tcp is published on
    /// answers with `status` (tried every `interval`).
    Http {
        /// The container port (published with `publish`).
        port: u16,
        /// The request path (`/health`).
        path: String,
        /// The status to wait for (200 by default).
        status: u16,
        /// Pause between attempts.
        interval: Duration,
    },
}

impl WaitFor {
    /// A line on stdout containing `text`.
    pub fn stdout(text: impl Into<String>) -> Self {
        WaitFor::StdoutLine(text.into())
    }
    /// A line on stderr containing `text`.
    pub fn stderr(text: impl Into<String>) -> Self {
        WaitFor::StderrLine(text.into())
    }
    /// The container's exit, whatever its code.
    pub fn exit() -> Self {
        WaitFor::Exit(None)
    }
    /// The container's exit with `code` (another code is an
    /// [`Error::UnexpectedExit`](crate::Error::UnexpectedExit)).
    pub fn exit_code(code: i32) -> Self {
        WaitFor::Exit(Some(code))
    }
    /// `cmd` succeeding (exit 0) in the container, tried every 100 ms.
    pub fn command<I, S>(cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        WaitFor::Command { cmd: cmd.into_iter().map(Into::into).collect(), interval: Duration::from_millis(100) }
    }
    /// A fixed pause.
    pub fn duration(d: Duration) -> Self {
        WaitFor::Duration(d)
    }
    /// The published host port of container port `port`/tcp accepting a
    /// TCP connection, tried every 100 ms (testcontainers' "listening port").
    ///
    /// ```
    /// use engine::WaitFor;
    /// assert_eq!(WaitFor::port(80).to_string(), "published port 80/tcp to accept a connection");
    /// ```
    pub fn port(port: u16) -> Self {
        WaitFor::Port { port, interval: Duration::from_millis(100) }
    }
    /// `GET path` on the published host port of container port `port`
    /// answering 200, tried every 100 ms (testcontainers' `HttpWaitStrategy`).
    ///
    /// ```
    /// use engine::WaitFor;
    /// let w = WaitFor::http(8080, "/health").with_status(204);
    /// assert_eq!(w.to_string(), "GET /health on published port 8080/tcp to answer 204");
    /// ```
    pub fn http(port: u16, path: impl Into<String>) -> Self {
        WaitFor::Http { port, path: path.into(), status: 200, interval: Duration::from_millis(100) }
    }
    /// For [`WaitFor::http`]: wait for this status instead of 200 (other
    /// strategies are returned unchanged).
    pub fn with_status(self, status: u16) -> Self {
        match self {
            WaitFor::Http { port, path, interval, .. } => WaitFor::Http { port, path, status, interval },
            other => other,
        }
    }

    /// One attempt at a published port: `Ok(None)` connected (no request),
    /// `Ok(Some(status))` answered, `Err` refused or cut short.
    async fn probe(c: &Container, port: u16, path: Option<&str>) -> Result<std::io::Result<Option<u16>>> {
        let host_port = c.host_port(port).ok_or_else(|| {
            Error::invalid(
                format!("wait for port {port}"),
                "the container does not publish it (ContainerBuilder::publish)",
            )
        })?;
        let request = path.map(|p| format!("GET {p} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        let attempt = move || -> std::io::Result<Option<u16>> {
            use std::io::{Read, Write};
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host_port));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            let Some(req) = request else { return Ok(None) };
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(req.as_bytes())?;
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.contains(&b'\n') && head.len() < 4096 {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
            status.map(Some).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
        };
        match &c.host_netns {
            // On a thread of its own inside the driver's host namespace.
            Some(ns) => engine_network::Netns::open(ns)?.run(move || Ok(attempt())).await,
            None => tokio::task::spawn_blocking(attempt).await.map_err(|e| Error::Other(format!("port probe: {e}"))),
        }
    }

    /// Poll a published port until `done` accepts the probe's answer; an
    /// error once the container has stopped.
    async fn poll_port(
        &self,
        c: &Container,
        port: u16,
        path: Option<&str>,
        interval: Duration,
        done: impl Fn(Option<u16>) -> bool,
    ) -> Result<()> {
        loop {
            match Self::probe(c, port, path).await? {
                Ok(answer) if done(answer) => return Ok(()),
                Ok(answer) => tracing::debug!(port, ?answer, "not ready yet"),
                Err(e) => tracing::debug!(port, "not ready yet: {e}"),
            }
            let st = c.inspect().await?.state;
            if !matches!(st, ContainerState::Running | ContainerState::Restarting) {
                let code = c.inspect().await.ok().and_then(|i| i.exit_code);
                return Err(Error::UnexpectedExit {
                    id: c.name().to_string(),
                    code,
                    expected: format!("({st:?}) before {self}"),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    pub(crate) async fn wait(&self, c: &Container) -> Result<()> {
        match self {
            WaitFor::StdoutLine(t) | WaitFor::StderrLine(t) => {
                let want = if matches!(self, WaitFor::StdoutLine(_)) { StdStream::Stdout } else { StdStream::Stderr };
                let opts = LogOptions::default()
                    .stdout(want == StdStream::Stdout)
                    .stderr(want == StdStream::Stderr)
                    .follow(true);
                let mut logs = c.manager().logs(c.id(), opts).await?;
                while let Some(e) = logs.next().await {
                    if String::from_utf8_lossy(&e?.line).contains(t.as_str()) {
                        return Ok(());
                    }
                }
                let code = c.inspect().await.ok().and_then(|i| i.exit_code);
                Err(Error::UnexpectedExit {
                    id: c.name().to_string(),
                    code,
                    expected: format!("before printing {t:?} on {}", want.as_str()),
                })
            }
            WaitFor::Exit(want) => {
                let st = c.wait().await?;
                match want {
                    Some(w) if *w != st.code => Err(Error::UnexpectedExit {
                        id: c.name().to_string(),
                        code: Some(st.code),
                        expected: format!("expected {w}"),
                    }),
                    _ => Ok(()),
                }
            }
            WaitFor::Command { cmd, interval } => loop {
                match c.exec(cmd.clone()).await {
                    Ok(o) if o.exit_code == 0 => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.is_conflict() => {
                        let code = c.inspect().await.ok().and_then(|i| i.exit_code);
                        return Err(Error::UnexpectedExit {
                            id: c.name().to_string(),
                            code,
                            expected: format!("before {cmd:?} succeeded ({e})"),
                        });
                    }
                    Err(e) => tracing::debug!("readiness command: {e}"),
                }
                tokio::time::sleep(*interval).await;
            },
            WaitFor::Duration(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            WaitFor::Port { port, interval } => self.poll_port(c, *port, None, *interval, |_| true).await,
            WaitFor::Http { port, path, status, interval } => {
                self.poll_port(c, *port, Some(path), *interval, |a| a == Some(*status)).await
            }
        }
    }
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitFor::StdoutLine(t) => write!(f, "stdout line containing {t:?}"),
            WaitFor::StderrLine(t) => write!(f, "stderr line containing {t:?}"),
            WaitFor::Exit(None) => write!(f, "exit"),
            WaitFor::Exit(Some(c)) => write!(f, "exit with code {c}"),
            WaitFor::Command { cmd, .. } => write!(f, "command {cmd:?} to succeed"),
            WaitFor::Duration(d) => write!(f, "{d:?} to pass"),
            WaitFor::Port { port, .. } => write!(f, "published port {port}/tcp to accept a connection"),
            WaitFor::Http { port, path, status, .. } => {
                write!(f, "GET {path} on published port {port}/tcp to answer {status}")
            }
        }
    }
}
