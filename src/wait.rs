//! Wait strategies: when is a started container ready?

use crate::Container;
use engine_core::{Error, LogOptions, Result, StdStream};
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
#[derive(Clone, Debug, PartialEq)]
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
    /// The container's exit with `code` (another code is an error).
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

    pub(crate) async fn wait(&self, c: &Container) -> Result<()> {
        match self {
            WaitFor::StdoutLine(t) | WaitFor::StderrLine(t) => {
                let want = if matches!(self, WaitFor::StdoutLine(_)) { StdStream::Stdout } else { StdStream::Stderr };
                let opts = LogOptions {
                    stdout: want == StdStream::Stdout,
                    stderr: want == StdStream::Stderr,
                    follow: true,
                    ..Default::default()
                };
                let mut logs = c.manager().logs(c.id(), opts).await?;
                while let Some(e) = logs.next().await {
                    if String::from_utf8_lossy(&e?.line).contains(t.as_str()) {
                        return Ok(());
                    }
                }
                let code = c.inspect().await.ok().and_then(|i| i.exit_code);
                Err(Error::conflict(
                    "container",
                    c.name(),
                    format!("exited (code {code:?}) before printing {t:?} on {}", want.as_str()),
                ))
            }
            WaitFor::Exit(want) => {
                let st = c.wait().await?;
                match want {
                    Some(w) if *w != st.code => Err(Error::conflict(
                        "container",
                        c.name(),
                        format!("exited with code {}, expected {w}", st.code),
                    )),
                    _ => Ok(()),
                }
            }
            WaitFor::Command { cmd, interval } => loop {
                match c.exec(cmd.clone()).await {
                    Ok(o) if o.exit_code == 0 => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.is_conflict() => {
                        return Err(Error::conflict(
                            "container",
                            c.name(),
                            format!("stopped before {cmd:?} succeeded: {e}"),
                        ))
                    }
                    Err(e) => tracing::debug!("readiness command: {e}"),
                }
                tokio::time::sleep(*interval).await;
            },
            WaitFor::Duration(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
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
        }
    }
}
