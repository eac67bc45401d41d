//! `process`: args, env, cwd, user and the final exec.

use super::capabilities::CapPlan;
use engine_core::{Error, Result};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The PATH used when `process.env` has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A process spec converted once, in the parent.
#[derive(Debug, Clone)]
pub struct ProcPlan {
    /// `args`, as C strings.
    pub args: Vec<CString>,
    /// `env`, as C strings.
    pub env: Vec<CString>,
    /// The PATH from `env` (or [`DEFAULT_PATH`]).
    pub path: String,
    /// `cwd`.
    pub cwd: PathBuf,
    /// `user.uid`.
    pub uid: u32,
    /// `user.gid`.
    pub gid: u32,
    /// `user.additionalGids`.
    pub additional_gids: Vec<u32>,
    /// `user.umask` (default 0022).
    pub umask: u32,
    /// The capability sets.
    pub caps: CapPlan,
    /// `rlimits`.
    pub rlimits: Vec<oci_spec::runtime::PosixRlimit>,
    /// `noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `terminal`.
    pub terminal: bool,
    /// `consoleSize` as (rows, columns).
    pub console_size: Option<(u16, u16)>,
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(what, format!("{s:?} contains a NUL byte")))
}

impl ProcPlan {
    /// Validate and convert a process spec.
    pub fn new(p: &oci_spec::runtime::Process) -> Result<Self> {
        let args = p.args().as_deref().unwrap_or(&[]);
        if args.is_empty() || args[0].is_empty() {
            return Err(Error::invalid("process.args", "must not be empty"));
        }
        let env: Vec<String> = p.env().clone().unwrap_or_default();
        let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
        if !p.cwd().is_absolute() {
            return Err(Error::invalid("process.cwd", format!("{} is not an absolute path", p.cwd().display())));
        }
        let rlimits = p.rlimits().clone().unwrap_or_default();
        super::rlimits::validate(&rlimits)?;
        let u = p.user();
        Ok(ProcPlan {
            args: args.iter().map(|a| cstring("process.args", a)).collect::<Result<_>>()?,
            env: env.iter().map(|e| cstring("process.env", e)).collect::<Result<_>>()?,
            path,
            cwd: p.cwd().clone(),
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
            umask: u.umask().unwrap_or(0o022),
            caps: CapPlan::new(p.capabilities().as_ref())?,
            rlimits,
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            terminal: p.terminal().unwrap_or(false),
            console_size: p.console_size().map(|b| (b.height() as u16, b.width() as u16)),
        })
    }

    /// Find `args[0]` in the (already entered) root: as a path when it has a
    /// `/`, else along PATH. The error names it, as runc's does.
    pub fn resolve_exe(&self) -> Result<CString> {
        let arg0 = self.args[0].to_str().unwrap_or("");
        if arg0.contains('/') {
            return if is_executable(Path::new(arg0)) {
                Ok(self.args[0].clone())
            } else {
                Err(Error::invalid(
                    "process.args[0]",
                    format!("exec: {arg0:?}: no such executable file in the container"),
                ))
            };
        }
        for dir in self.path.split(':').filter(|d| !d.is_empty()) {
            let cand = Path::new(dir).join(arg0);
            if is_executable(&cand) {
                return cstring("process.args[0]", &cand.to_string_lossy());
            }
        }
        Err(Error::invalid("process.args[0]", format!("exec: {arg0:?}: executable file not found in $PATH")))
    }

    /// Change to `user` (groups, gid, uid) keeping the permitted capabilities.
    pub fn set_user(&self) -> Result<()> {
        let gids: Vec<nix::unistd::Gid> = self.additional_gids.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
        // setgroups is denied in user namespaces whose setgroups file says "deny"; only fail when groups are asked for.
        if let Err(e) = nix::unistd::setgroups(&gids) {
            if !gids.is_empty() {
                return Err(Error::io(format!("setgroups {:?}", self.additional_gids), e.into()));
            }
        }
        let g = nix::unistd::Gid::from_raw(self.gid);
        nix::unistd::setresgid(g, g, g).map_err(|e| Error::io(format!("setgid {}", self.gid), e.into()))?;
        if self.uid != 0 {
            let _ = nix::sys::prctl::set_keepcaps(true);
        }
        let u = nix::unistd::Uid::from_raw(self.uid);
        nix::unistd::setresuid(u, u, u).map_err(|e| Error::io(format!("setuid {}", self.uid), e.into()))?;
        if self.uid != 0 {
            let _ = nix::sys::prctl::set_keepcaps(false);
        }
        Ok(())
    }

    /// Change to `cwd`, creating it if it is missing, and check that it is
    /// inside the container's root (CVE-2024-21626 class: a `cwd` such as
    /// `/proc/self/fd/7` naming a host directory descriptor of the runtime
    /// must not become the process's working directory). The kernel's
    /// `getcwd` reports a directory not reachable from the current root as
    /// `(unreachable)...`: such a cwd is refused.
    pub fn chdir(&self) -> Result<()> {
        if std::env::set_current_dir(&self.cwd).is_err() {
            std::fs::create_dir_all(&self.cwd)
                .map_err(|e| Error::io(format!("create process.cwd {}", self.cwd.display()), e))?;
            std::env::set_current_dir(&self.cwd)
                .map_err(|e| Error::io(format!("chdir to process.cwd {}", self.cwd.display()), e))?;
        }
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: the raw getcwd syscall writes at most buf.len() bytes into buf.
        let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 || buf[0] != b'/' {
            return Err(Error::invalid(
                "process.cwd",
                format!("{} resolves outside the container's root", self.cwd.display()),
            ));
        }
        Ok(())
    }

    /// `execve` the resolved program; returns only on failure.
    pub fn exec(&self, exe: &CString) -> Error {
        match nix::unistd::execve(exe, &self.args, &self.env) {
            Err(e) => Error::io(format!("exec {}", exe.to_string_lossy()), e.into()),
        }
    }
}

fn is_executable(p: &Path) -> bool {
    let ok = nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok();
    ok && std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
}

/// The `personality(2)` value for `linux.personality`.
pub fn personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<libc::c_ulong> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::Unsupported("linux.personality.flags".into()));
    }
    Ok(match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    })
}

/// Write `/proc/self/oom_score_adj`.
pub fn set_oom_score_adj(v: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", v.to_string())
        .map_err(|e| Error::io(format!("set process.oomScoreAdj to {v}"), e))
}

/// Mark every fd from `first` up close-on-exec.
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range only changes fd flags.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn plan_and_resolve() {
        let mut p = oci_spec::runtime::Process::default();
        p.set_args(Some(vec!["sh".into()]));
        p.set_env(Some(vec!["PATH=/nonexistent:/bin".into()]));
        let plan = ProcPlan::new(&p).unwrap();
        assert_eq!(plan.path, "/nonexistent:/bin");
        assert_eq!(plan.resolve_exe().unwrap().to_str().unwrap(), "/bin/sh");
        p.set_args(Some(vec!["no-such-binary-xyz".into()]));
        let e = ProcPlan::new(&p).unwrap().resolve_exe().unwrap_err().to_string();
        assert!(e.contains("no-such-binary-xyz"), "{e}");
        p.set_args(Some(vec![]));
        assert!(ProcPlan::new(&p).unwrap_err().to_string().contains("process.args"));
    }
}
