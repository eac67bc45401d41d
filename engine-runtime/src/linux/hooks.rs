//! OCI hooks: run with the state JSON on stdin, an optional timeout, and an
//! error that names the hook and carries its output.

use engine_core::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Run `hooks` (of kind `kind`, for messages) in order; the first failure stops.
pub fn run(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    run_with_default_env(kind, hooks, state_json, None)
}

/// [`run`], where a hook without an `env` of its own gets `default_env`
/// (`KEY=VALUE` strings) instead of an empty environment: `startContainer`
/// hooks run in the container and see the container process's environment.
pub fn run_with_default_env(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state_json: &str,
    default_env: Option<&[String]>,
) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, state_json, default_env)?;
    }
    Ok(())
}

fn memfd() -> Result<std::fs::File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"hook-output", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::io("memfd for hook output", e.into()))?;
    Ok(fd.into())
}

fn run_one(kind: &str, h: &Hook, state_json: &str, default_env: Option<&[String]>) -> Result<()> {
    let path = h.path();
    let what = format!("{kind} hook {}", path.display());
    if !path.is_absolute() {
        return Err(Error::invalid(what, "path is not absolute"));
    }
    let mut out = memfd()?;
    let mut cmd = Command::new(path);
    let args = h.args().as_deref().unwrap_or(&[]);
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    let env = match (h.env(), default_env) {
        (Some(own), _) => own.as_slice(),
        (None, Some(d)) => d,
        (None, None) => &[],
    };
    for e in env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Only stdio reaches a hook: not the caller's descriptors this process
    // inherited (or holds for the container), whatever --preserve-fds says.
    // SAFETY: close_range only changes descriptor flags: async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out.try_clone().map_err(|e| Error::io("dup memfd", e))?))
        .stderr(Stdio::from(out.try_clone().map_err(|e| Error::io("dup memfd", e))?));
    let mut child = cmd.spawn().map_err(|e| Error::io(format!("start {what}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    if let Some(t) = h.timeout() {
        if t <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::invalid(what, format!("timeout {t} must be positive")));
        }
        let pidfd =
            rustix::process::pidfd_open(rustix::process::Pid::from_child(&child), rustix::process::PidfdFlags::empty());
        if let Ok(pidfd) = pidfd {
            let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
            let ms = (t as u64 * 1000).min(i32::MAX as u64) as i32;
            let n =
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX))
                    .unwrap_or(1);
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout { what, after: std::time::Duration::from_secs(t as u64) });
            }
            let _ = pidfd.as_raw_fd();
        }
    }
    let status = child.wait().map_err(|e| Error::io(format!("wait for {what}"), e))?;
    if !status.success() {
        let mut text = String::new();
        let _ = out.seek(std::io::SeekFrom::Start(0));
        let _ = Read::by_ref(&mut out).take(4096).read_to_string(&mut text);
        return Err(Error::Other(format!("{what} failed ({status}): {}", text.trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }
    #[test]
    fn stdin_failure_and_timeout() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let h = hook(&format!(r#"{{"path":"/bin/sh","args":["sh","-c","cat > {}"]}}"#, out.display()));
        run("test", Some(&vec![h]), "{\"id\":\"x\"}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}");
        let bad = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let e = run("poststop", Some(&vec![bad]), "{}").unwrap_err().to_string();
        assert!(e.contains("poststop hook /bin/sh") && e.contains("nope"), "{e}");
        let slow = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 10"],"timeout":1}"#);
        let t = std::time::Instant::now();
        let e = run("prestart", Some(&vec![slow]), "{}").unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
