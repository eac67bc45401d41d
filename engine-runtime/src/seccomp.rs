//! Seccomp filters from an OCI `linux.seccomp` section.
//!
//! The filter is compiled with [`libseccomp`] in the runtime's parent process,
//! before the container's init is cloned: [`compile`] validates the profile
//! (actions, architectures, flags, argument conditions) and turns it into
//! classic BPF. [`Filter::load`] then installs that program with the raw
//! `seccomp(2)` system call. Loading allocates nothing and takes no lock, so it
//! is safe in the container init right before `execve`.
//!
//! Semantics follow runc's:
//! - a syscall name the host's libseccomp does not know is skipped with a
//!   debug log (profiles list syscalls of newer kernels);
//! - a rule whose action equals the default action is skipped;
//! - `ERRNO` without `errnoRet` returns `EPERM`, `TRACE` without it `EPERM`;
//! - argument conditions on distinct argument indexes are ANDed in one rule;
//!   when an index repeats, each condition becomes a rule of its own (ORed);
//! - `SCMP_CMP_MASKED_EQ` takes the mask from `value` and the datum from
//!   `valueTwo`;
//! - a `SCMP_ACT_NOTIFY` rule requests a user notification listener; its file
//!   descriptor is returned by [`Filter::load_with_listener`], and
//!   [`send_to_agent`] hands it to the agent at `listenerPath` as runc does.
//!
//! Loading needs either `no_new_privs` set on the process or `CAP_SYS_ADMIN`
//! in its user namespace; the runtime sets `no_new_privs` when the process
//! config asks for it (it is not set here).
//!
//! ```
//! use engine_runtime::seccomp;
//! let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(r#"{
//!     "defaultAction": "SCMP_ACT_ALLOW",
//!     "architectures": ["SCMP_ARCH_X86_64"],
//!     "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
//! }"#).unwrap();
//! let filter = seccomp::compile(&profile)?;
//! assert!(filter.instructions() > 0);
//! // filter.load() in the container init, right before execve.
//! # Ok::<(), engine_core::Error>(())
//! ```

use engine_core::{Error, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 4;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 8;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 32;

/// A compiled seccomp program, ready to load.
#[derive(Clone, Debug)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_uint,
    notify: bool,
    skipped: Vec<String>,
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::invalid(what, reason)
}

fn lib_err(what: &str, e: libseccomp::error::SeccompError) -> Error {
    Error::Other(format!("seccomp: {what}: {e}"))
}

/// The libseccomp architecture for an OCI one.
fn arch(a: Arch) -> Result<ScmpArch> {
    Ok(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        other => {
            return Err(invalid(
                "linux.seccomp.architectures",
                format!("architecture {other} is not supported by this runtime's libseccomp"),
            ))
        }
    })
}

/// The libseccomp action for an OCI action and its `errnoRet`.
fn action(a: LinuxSeccompAction, errno_ret: Option<u32>, what: &str) -> Result<ScmpAction> {
    let code = |default: u32| -> Result<u32> {
        let v = errno_ret.unwrap_or(default);
        if v > u16::MAX as u32 {
            return Err(invalid(what, format!("errnoRet {v} does not fit in 16 bits")));
        }
        Ok(v)
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(code(libc::EPERM as u32)? as i32),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(code(libc::EPERM as u32)? as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(arg: &LinuxSeccompArg, what: &str) -> Result<ScmpArgCompare> {
    if arg.index() > 5 {
        return Err(invalid(what, format!("argument index {} is out of range (0-5)", arg.index())));
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(arg.value()), arg.value_two().unwrap_or_default())
        }
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// Validate an OCI seccomp profile and compile it to a BPF program.
///
/// Runs in the runtime's parent process, before the container's init exists,
/// so a bad profile fails `create` with a message naming the offending
/// action, architecture, flag or argument, and nothing is left behind.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(s.default_action(), s.default_errno_ret(), "linux.seccomp.defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib_err("creating the filter", e))?;
    // We load the program ourselves; never let libseccomp set no_new_privs.
    ctx.set_ctl_nnp(false).map_err(|e| lib_err("clearing the no_new_privs attribute", e))?;
    // A binary tree on the syscall number instead of a linear chain
    // (libseccomp >= 2.5). The kernel walks the program once per syscall
    // number and architecture when the filter is loaded, to build its cache
    // of always-allowed syscalls; with docker's default profile (about 370
    // syscalls, three architectures) that walk made loading cost about 1 ms
    // per container, and about 0.4 ms with the tree. An older libseccomp keeps
    // the chain, which is only slower.
    if let Err(e) = ctx.set_ctl_optimize(2) {
        tracing::debug!("seccomp: no binary-tree optimisation in this libseccomp: {e}");
    }

    let mut flags: libc::c_uint = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            // The init is single-threaded when it loads the filter.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
        };
    }

    for a in s.architectures().iter().flatten() {
        let sa = arch(*a)?;
        if sa == ScmpArch::Native {
            continue;
        }
        match ctx.add_arch(sa) {
            Ok(_) => {}
            Err(e) => {
                return Err(invalid("linux.seccomp.architectures", format!("architecture {a} cannot be added: {e}")))
            }
        }
    }

    let mut notify = matches!(default, ScmpAction::Notify);
    let mut skipped = Vec::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let what = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &what)?;
        if act == default {
            tracing::debug!(names = ?rule.names(), "seccomp: rule action equals the default action; skipped");
            continue;
        }
        if act == ScmpAction::Notify {
            notify = true;
        }
        let args = rule.args().as_deref().unwrap_or(&[]);
        let conds = args.iter().map(|a| compare(a, &what)).collect::<Result<Vec<_>>>()?;
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let sys = match ScmpSyscall::from_name(name) {
                Ok(sys) => sys,
                Err(_) => {
                    tracing::debug!(syscall = %name, "seccomp: unknown syscall name; skipped");
                    skipped.push(name.clone());
                    continue;
                }
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, sys).map(|_| ())
            } else if repeated {
                conds.iter().try_for_each(|c| ctx.add_rule_conditional(act, sys, &[*c]).map(|_| ()))
            } else {
                ctx.add_rule_conditional(act, sys, &conds).map(|_| ())
            };
            res.map_err(|e| invalid(&what, format!("rule for syscall {name:?} ({:?}) rejected: {e}", rule.action())))?;
        }
    }

    if notify {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // TSYNC and NEW_LISTENER are exclusive without TSYNC_ESRCH; the init is
        // single-threaded, so TSYNC has nothing to synchronise.
        flags &= !SECCOMP_FILTER_FLAG_TSYNC;
    }

    let program = export(&ctx)?;
    if program.is_empty() || program.len() > u16::MAX as usize {
        return Err(Error::Other(format!("seccomp: compiled program has {} instructions", program.len())));
    }
    Ok(Filter { program, flags, notify, skipped })
}

/// [`compile`], through a cache of compiled programs in the directory `dir`
/// (made 0700 if missing; the runtime keeps it in its own state root).
///
/// Compiling docker's default profile with libseccomp takes 5-15 ms, as much
/// as the rest of a container's create; most containers on a host share a
/// handful of profiles. An entry is keyed by the SHA-256 of the profile's
/// JSON, the libseccomp version and the cache format, so a different profile
/// or library never reuses a program. Entries are written whole (temp file,
/// rename); an unreadable or malformed one is compiled again and replaced. A
/// profile that fails to compile is never cached. Without a usable directory
/// it compiles as [`compile`] does.
pub fn compile_cached(s: &LinuxSeccomp, dir: &std::path::Path) -> Result<Filter> {
    use sha2::Digest;
    let json = serde_json::to_vec(s).map_err(|e| Error::Other(format!("seccomp: encoding the profile: {e}")))?;
    let lib = libseccomp::ScmpVersion::current().map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro));
    let mut h = sha2::Sha256::new();
    h.update(CACHE_MAGIC);
    h.update(lib.as_deref().unwrap_or("unknown").as_bytes());
    h.update([0]);
    h.update(&json);
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(&key);
    if let Ok(bytes) = std::fs::read(&path) {
        if let Some(f) = Filter::decode(&bytes) {
            return Ok(f);
        }
    }
    let f = compile(s)?;
    let store = || -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        if std::fs::read_dir(dir)?.count() > CACHE_MAX_ENTRIES {
            // Many distinct profiles: start over rather than grow without bound.
            for e in std::fs::read_dir(dir)?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let tmp = dir.join(format!(".{key}.{}", std::process::id()));
        std::fs::write(&tmp, f.encode())?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = store() {
        tracing::debug!(dir = %dir.display(), "seccomp: not caching the compiled filter: {e}");
    }
    Ok(f)
}

/// Version 2: programs compiled as a binary tree (version 1 entries, linear
/// chains, are compiled again).
const CACHE_MAGIC: &[u8; 8] = b"ENGSCMP2";
/// The cache directory's name under a runtime's state root: `@` is not
/// allowed in a container id, so it never collides with a container's.
pub const CACHE_DIR: &str = "@seccomp-cache";
const CACHE_MAX_ENTRIES: usize = 256;

impl Filter {
    /// The cache form: magic, flags, notify, instruction count, instructions,
    /// then the skipped syscall names, newline-separated.
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(20 + self.program.len() * 8);
        b.extend_from_slice(CACHE_MAGIC);
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.push(self.notify as u8);
        b.extend_from_slice(&(self.program.len() as u32).to_le_bytes());
        for i in &self.program {
            b.extend_from_slice(&i.code.to_le_bytes());
            b.push(i.jt);
            b.push(i.jf);
            b.extend_from_slice(&i.k.to_le_bytes());
        }
        b.extend_from_slice(self.skipped.join("\n").as_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Filter> {
        let rest = b.strip_prefix(CACHE_MAGIC.as_slice())?;
        let flags = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?);
        let notify = match rest.get(4)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let n = u32::from_le_bytes(rest.get(5..9)?.try_into().ok()?) as usize;
        if n == 0 || n > u16::MAX as usize {
            return None;
        }
        let body = rest.get(9..9 + n * 8)?;
        let program = body
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let names = std::str::from_utf8(&rest[9 + n * 8..]).ok()?;
        let skipped = if names.is_empty() { Vec::new() } else { names.split('\n').map(str::to_string).collect() };
        Some(Filter { program, flags, notify, skipped })
    }
}

/// Export the BPF program through a memfd (libseccomp 2.5 has no in-memory export).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("seccomp: memfd_create", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(&fd).map_err(|e| lib_err("exporting the BPF program", e))?;
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("seccomp: rewinding the memfd", e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| Error::io("seccomp: reading the BPF program", e))?;
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSN != 0 {
        return Err(Error::Other(format!(
            "seccomp: exported program is {} bytes, not whole instructions",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Filter {
    /// Install the filter on the calling thread (and with `SECCOMP_FILTER_FLAG_TSYNC`
    /// on all its threads). Call it in the container init right before `execve`:
    /// it allocates nothing. A filter with a `SCMP_ACT_NOTIFY` rule must be loaded
    /// with [`Filter::load_with_listener`] instead, which hands back the listener.
    pub fn load(&self) -> Result<()> {
        let fd = self.load_with_listener()?;
        drop(fd);
        Ok(())
    }

    /// Install the filter and return the user-notification listener when the
    /// filter has a `SCMP_ACT_NOTIFY` rule (send it to `listenerPath`).
    pub fn load_with_listener(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog { len: self.program.len() as u16, filter: self.program.as_ptr() as *mut _ };
        // SAFETY: prog points at our program, valid for the duration of the call.
        let rc = unsafe {
            libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, self.flags, &prog as *const libc::sock_fprog)
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            let hint =
                if e.raw_os_error() == Some(libc::EACCES) { " (needs no_new_privs or CAP_SYS_ADMIN)" } else { "" };
            return Err(Error::io(format!("seccomp: loading the filter{hint}"), e));
        }
        if self.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 && rc > 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a fresh fd we own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
        }
        Ok(None)
    }

    /// Number of BPF instructions.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// True when the filter has a `SCMP_ACT_NOTIFY` rule or default.
    pub fn needs_listener(&self) -> bool {
        self.notify
    }

    /// The `seccomp(2)` flags the filter is loaded with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Syscall names the host's libseccomp did not know, skipped at compile time.
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }
}

/// Hand a user-notification listener to a seccomp agent at `listener_path`
/// (`linux.seccomp.listenerPath`), the way runc does: one message on the unix
/// socket carrying the fd (`SCM_RIGHTS`) and a JSON body
/// `{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}` where
/// `state` is the container's OCI state.
pub fn send_to_agent(
    listener_path: &std::path::Path,
    listener: &OwnedFd,
    pid: i32,
    metadata: &str,
    state: &serde_json::Value,
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let body = serde_json::json!({
        "ociVersion": "1.0.2",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    })
    .to_string();
    let conn = std::os::unix::net::UnixStream::connect(listener_path)
        .map_err(|e| Error::io(format!("seccomp: connecting to the agent at {}", listener_path.display()), e))?;
    let fds = [listener.as_raw_fd()];
    let iov = [std::io::IoSlice::new(body.as_bytes())];
    sendmsg::<()>(conn.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(|e| Error::io(format!("seccomp: sending the listener to {}", listener_path.display()), e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    /// Run `f` in a forked child with the filter loaded; returns the child's exit code.
    /// The child only makes raw syscalls after fork (test processes are threaded).
    pub(super) fn in_child(filter: &Filter, f: fn() -> i32) -> i32 {
        // SAFETY: the child calls only async-signal-safe functions (prctl, seccomp, syscalls, _exit).
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let prog =
                    libc::sock_fprog { len: filter.program.len() as u16, filter: filter.program.as_ptr() as *mut _ };
                let rc = libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, filter.flags, &prog);
                if rc < 0 {
                    libc::_exit(200);
                }
                libc::_exit(f());
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            }
        }
    }

    pub(super) fn getppid_errno() -> i32 {
        // SAFETY: raw syscall without arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getppid) };
        if rc < 0 {
            // SAFETY: reading errno of this thread.
            unsafe { *libc::__errno_location() }
        } else {
            0
        }
    }

    fn dup3_conditions() -> i32 {
        // dup3(0, 100, 0) vs dup3(0, 101, 0): only newfd 100 is denied.
        // SAFETY: raw syscalls on fd numbers the child owns.
        unsafe {
            let a = libc::syscall(libc::SYS_dup3, 0, 100, 0);
            let ea = if a < 0 { *libc::__errno_location() } else { 0 };
            let b = libc::syscall(libc::SYS_dup3, 0, 101, 0);
            let eb = if b < 0 { *libc::__errno_location() } else { 0 };
            if ea == libc::EXDEV && eb == 0 {
                0
            } else {
                1
            }
        }
    }

    #[test]
    fn errno_action_returns_errno() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, getppid_errno), 38);
        // Without errnoRet: EPERM.
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, getppid_errno), libc::EPERM);
    }

    #[test]
    fn default_errno_and_allow_list() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,
                "syscalls":[{"names":["exit","exit_group","seccomp","prctl"],"action":"SCMP_ACT_ALLOW"}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, getppid_errno), libc::EACCES);
    }

    #[test]
    fn kill_process_kills_with_sigsys() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, getppid_errno), 128 + libc::SIGSYS);
    }

    #[test]
    fn argument_conditions() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["dup3"],"action":"SCMP_ACT_ERRNO","errnoRet":18,
                "args":[{"index":1,"value":100,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, dup3_conditions), 0);
        // Masked equality: mask 0xff00 of newfd (100 = 0x64) equals 0 → denied; 101 too.
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["dup3"],"action":"SCMP_ACT_ERRNO","errnoRet":18,
                "args":[{"index":1,"value":1,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        ))
        .unwrap();
        // 100 & 1 == 0 → denied; 101 & 1 == 1 → allowed.
        assert_eq!(in_child(&f, dup3_conditions), 0);
    }

    #[test]
    fn repeated_index_conditions_are_ored() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["dup3"],"action":"SCMP_ACT_ERRNO","errnoRet":18,
                "args":[{"index":1,"value":100,"op":"SCMP_CMP_EQ"},{"index":1,"value":7,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(in_child(&f, dup3_conditions), 0);
    }

    #[test]
    fn unknown_syscall_is_skipped() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_syscall_xyz","getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        assert_eq!(f.skipped_syscalls(), ["no_such_syscall_xyz"]);
        assert_eq!(in_child(&f, getppid_errno), libc::EPERM);
    }

    #[test]
    fn unknown_action_and_arch_are_errors() {
        let bad: std::result::Result<LinuxSeccomp, _> =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_FOO","syscalls":[]}"#);
        assert!(bad.is_err());
        let bad: std::result::Result<LinuxSeccomp, _> =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#);
        assert!(bad.is_err());
        let e =
            compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_SH"]}"#)).unwrap_err();
        assert!(e.to_string().contains("ScmpArchSh") || e.to_string().contains("SCMP_ARCH_SH"), "{e}");
    }

    #[test]
    fn bad_argument_index_is_named() {
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["dup3"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("syscalls[0]") && e.to_string().contains("index 6"), "{e}");
    }

    #[test]
    fn notify_sets_listener_flag() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap();
        assert!(f.needs_listener());
        assert_eq!(f.flags() & SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_NEW_LISTENER);
        assert_eq!(f.flags() & SECCOMP_FILTER_FLAG_TSYNC, 0);
    }

    #[test]
    fn agent_receives_fd_and_state() {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let agent = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 65536];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
            let n = msg.bytes;
            let got_fd = msg.cmsgs().unwrap().any(|c| matches!(c, ControlMessageOwned::ScmRights(f) if f.len() == 1));
            (String::from_utf8_lossy(&buf[..n]).into_owned(), got_fd)
        });
        let (r, _w) = nix::unistd::pipe().unwrap();
        let state =
            serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"});
        send_to_agent(&path, &r, 42, "meta", &state).unwrap();
        let (body, got_fd) = agent.join().unwrap();
        assert!(got_fd);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "meta");
        assert_eq!(v["state"]["id"], "c1");
        let e = send_to_agent(&dir.path().join("nobody"), &r, 1, "", &state).unwrap_err();
        assert!(e.to_string().contains("nobody"), "{e}");
    }

    #[test]
    fn notify_reaches_a_listener() {
        use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap();
        let mut sv = [0i32; 2];
        // SAFETY: socketpair fills sv with two fds we own.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) };
        assert_eq!(r, 0);
        let prog = libc::sock_fprog { len: f.program.len() as u16, filter: f.program.as_ptr() as *mut _ };
        // SAFETY: the child makes only raw system calls (no allocation) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls on stack memory; see above.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let fd = libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, f.flags, &prog) as i32;
                if fd < 0 {
                    libc::_exit(200);
                }
                let mut byte = [0u8; 1];
                let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
                let mut cbuf = [0u64; 8];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
                *(libc::CMSG_DATA(c) as *mut i32) = fd;
                if libc::sendmsg(sv[1], &msg, 0) < 0 {
                    libc::_exit(201);
                }
                let rc = libc::syscall(libc::SYS_getppid);
                libc::_exit(if rc < 0 { *libc::__errno_location() } else { 0 });
            }
        }
        // SAFETY: the child has its own copy; close ours.
        unsafe { libc::close(sv[1]) };
        let mut buf = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(sv[0], &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
        let listener = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => Some(fds[0]),
                _ => None,
            })
            .expect("the child sent its listener");
        let req = ScmpNotifReq::receive(listener).unwrap();
        assert_eq!(req.pid as i32, pid);
        assert_eq!(req.data.syscall, ScmpSyscall::from_name("getppid").unwrap());
        ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty()).respond(listener).unwrap();
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            libc::close(listener);
            libc::close(sv[0]);
        }
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), libc::EXDEV);
    }

    #[test]
    fn multiple_architectures() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        let single = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        assert!(f.instructions() > single.instructions());
        assert_eq!(in_child(&f, getppid_errno), libc::EPERM);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn profile(errno: u32) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "no_such_syscall_x"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
        }))
        .unwrap()
    }

    #[test]
    fn a_cached_program_is_the_compiled_one_and_keyed_by_the_profile() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let a = compile(&profile(1)).unwrap();
        let first = compile_cached(&profile(1), &dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let again = compile_cached(&profile(1), &dir).unwrap();
        for f in [&first, &again] {
            assert_eq!(f.encode(), a.encode());
            assert_eq!(f.skipped_syscalls(), ["no_such_syscall_x"]);
        }
        // Another profile: another entry, another program.
        let b = compile_cached(&profile(2), &dir).unwrap();
        assert_ne!(b.encode(), a.encode());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        // A damaged entry is compiled again and replaced.
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            std::fs::write(e.path(), b"ENGSCMP1garbage").unwrap();
        }
        assert_eq!(compile_cached(&profile(1), &dir).unwrap().encode(), a.encode());
        // A bad profile is an error and is not cached.
        let bad: LinuxSeccomp =
            serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))
            .unwrap();
        assert!(compile_cached(&bad, &dir).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    /// Run the classic BPF program on a syscall number (x86_64, no
    /// arguments): its return value and how many instructions it took.
    fn run(prog: &[libc::sock_filter], nr: u32) -> (u32, usize) {
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
        loop {
            let i = prog[pc];
            steps += 1;
            let class = i.code & 0x07;
            match class {
                // BPF_LD | BPF_W | BPF_ABS: a field of seccomp_data.
                0x00 if i.code == 0x20 => {
                    a = match i.k {
                        0 => nr,
                        4 => AUDIT_ARCH_X86_64,
                        _ => 0, // instruction pointer and arguments: zero
                    };
                    pc += 1;
                }
                // BPF_JMP
                0x05 => {
                    let op = i.code & 0xf0;
                    let taken = match op {
                        0x00 => {
                            pc += 1 + i.k as usize; // BPF_JA
                            continue;
                        }
                        0x10 => a == i.k,     // JEQ
                        0x20 => a > i.k,      // JGT
                        0x30 => a >= i.k,     // JGE
                        0x40 => a & i.k != 0, // JSET
                        _ => panic!("jump op {op:#x}"),
                    };
                    pc += 1 + if taken { i.jt as usize } else { i.jf as usize };
                }
                // BPF_ALU | BPF_AND | BPF_K
                0x04 if i.code & 0xf0 == 0x50 => {
                    a &= i.k;
                    pc += 1;
                }
                // BPF_RET | BPF_K
                0x06 => return (i.k, steps),
                _ => panic!("instruction {:#x}", i.code),
            }
        }
    }

    /// Docker's default profile has about 370 syscalls and three
    /// architectures. Compiled as a chain, a syscall near the end walked past
    /// every rule before it, and so did the kernel's per-syscall cache walk
    /// at load time; as a tree, every decision takes a few dozen steps.
    #[test]
    fn a_large_allow_list_compiles_to_a_shallow_tree_that_decides_like_the_profile() {
        let names: Vec<String> =
            (0..330).filter_map(|nr| ScmpSyscall::from(nr).get_name().ok()).filter(|n| n != "getppid").collect();
        assert!(names.len() > 300, "{} syscall names known", names.len());
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let f = compile(&p).unwrap();
        let getppid = libc::SYS_getppid as u32;
        let mut deepest = 0;
        for nr in 0..460u32 {
            let (ret, steps) = run(&f.program, nr);
            deepest = deepest.max(steps);
            let named = ScmpSyscall::from(nr as i32).get_name().ok();
            let allowed = named.as_ref().is_some_and(|n| names.contains(n));
            if allowed {
                assert_eq!(ret, libc::SECCOMP_RET_ALLOW, "syscall {nr} ({named:?}) should be allowed");
            } else {
                assert_eq!(ret, libc::SECCOMP_RET_ERRNO | 1, "syscall {nr} ({named:?}) should fail with EPERM");
            }
        }
        assert!(run(&f.program, getppid).0 != libc::SECCOMP_RET_ALLOW);
        assert!(deepest < 64, "a decision took {deepest} instructions of {}", f.instructions());
        // And the kernel agrees with the emulation on one denied syscall.
        assert_eq!(super::tests::in_child(&f, super::tests::getppid_errno), libc::EPERM);
    }
}
