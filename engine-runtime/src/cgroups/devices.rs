//! Device access rules (`linux.resources.devices`): v1 `devices.allow` /
//! `devices.deny` lines, and for cgroup v2 an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program attached to the container's cgroup.
//!
//! The v2 program is assembled here (a dozen instruction kinds, the way
//! systemd, LXC and libvirt build theirs) and loaded with `bpf(2)`. Its
//! semantics are those of the v1 controller: rules apply in order, a later
//! rule overrides an earlier one, `a` matches every device, and a request for
//! several accesses (an `O_RDWR` open asks for read and write) is allowed
//! only when each access is. A device no rule matches keeps the default a
//! fresh cgroup inherits: allowed. OCI configs start with `{"allow": false,
//! "access": "rwm"}`, which denies everything not allowed after it.

use engine_core::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The v1 `devices.allow` / `devices.deny` line for a rule: `c 1:3 rwm`.
pub(crate) fn v1_rule(rule: &LinuxDeviceCgroup) -> Result<String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err(Error::invalid(
                "linux.resources.devices",
                "device type \"p\" (FIFO) cannot be used in a device cgroup rule",
            ))
        }
    };
    let num = |v: Option<i64>| v.filter(|n| *n >= 0).map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let access = access_of(rule)?;
    Ok(format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor())))
}

/// The rule's access string, validated (`r`, `w`, `m`; empty means all).
pub(crate) fn access_of(rule: &LinuxDeviceCgroup) -> Result<String> {
    let a = rule.access().as_deref().unwrap_or("");
    if let Some(c) = a.chars().find(|c| !matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::invalid(
            "linux.resources.devices",
            format!("access {a:?} has {c:?}; only 'r', 'w' and 'm' are allowed"),
        ));
    }
    Ok(if a.is_empty() { "rwm".into() } else { a.to_string() })
}

// --- eBPF device program (cgroup v2) ---------------------------------------

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const BPF_ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const BPF_ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const BPF_ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const BPF_JMP_JA: u8 = 0x05; // BPF_JMP | BPF_JA
const BPF_JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD: i32 = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ: i32 = 2; // BPF_DEVCG_ACC_READ
const ACC_WRITE: i32 = 4; // BPF_DEVCG_ACC_WRITE

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (dst & 0xf) | (src << 4), off, imm }
}

/// A rule reduced to what the program tests.
struct Rule {
    typ: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: i32,
    allow: bool,
}

fn rule_of(r: &LinuxDeviceCgroup) -> Result<Rule> {
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DEV_BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
        LinuxDeviceType::P => {
            return Err(Error::invalid(
                "linux.resources.devices",
                "device type \"p\" (FIFO) cannot be used in a device cgroup rule",
            ))
        }
    };
    let num = |v: Option<i64>, what: &str| -> Result<Option<i32>> {
        match v.filter(|n| *n >= 0) {
            None => Ok(None),
            Some(n) if n <= u32::MAX as i64 => Ok(Some(n as u32 as i32)),
            Some(n) => Err(Error::invalid("linux.resources.devices", format!("{what} {n} is out of range"))),
        }
    };
    let mut access = 0;
    for c in access_of(r)?.chars() {
        access |= match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            _ => ACC_WRITE,
        };
    }
    Ok(Rule { typ, major: num(r.major(), "major")?, minor: num(r.minor(), "minor")?, access, allow: r.allow() })
}

/// The program for `rules` (see the module docs for its semantics).
pub(crate) fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let rules = rules.iter().map(rule_of).collect::<Result<Vec<_>>>()?;
    // r1 = ctx: { u32 access_type (access << 16 | type); u32 major; u32 minor; }
    let mut p = vec![
        insn(BPF_LDX_MEM_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(BPF_ALU32_MOV_X, 3, 2, 0, 0),      // w3 = w2
        insn(BPF_ALU32_AND_K, 2, 0, 0, 0xffff), // w2 &= 0xffff: the device type
        insn(BPF_ALU32_RSH_K, 3, 0, 0, 16),     // w3 >>= 16: the requested accesses
        insn(BPF_LDX_MEM_W, 4, 1, 4, 0),        // r4 = ctx->major
        insn(BPF_LDX_MEM_W, 5, 1, 8, 0),        // r5 = ctx->minor
    ];
    // Jumps to patch once the target is known: (instruction index, label).
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        let mut to_bit_end = Vec::new();
        p.push(insn(BPF_ALU32_MOV_X, 6, 3, 0, 0)); // w6 = w3
        p.push(insn(BPF_ALU32_AND_K, 6, 0, 0, bit)); // w6 &= bit
        to_bit_end.push(p.len());
        p.push(insn(BPF_JMP_JEQ_K, 6, 0, 0, 0)); // not requested: next access
                                                 // Later rules override earlier ones: the last matching rule decides.
        for r in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let mut to_rule_end = Vec::new();
            for (reg, v) in [(2u8, r.typ), (4, r.major), (5, r.minor)] {
                if let Some(v) = v {
                    to_rule_end.push(p.len());
                    p.push(insn(BPF_JMP_JNE_K, reg, 0, 0, v));
                }
            }
            if r.allow {
                to_bit_end.push(p.len());
                p.push(insn(BPF_JMP_JA, 0, 0, 0, 0));
            } else {
                p.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, 0)); // r0 = 0: deny
                p.push(insn(BPF_JMP_EXIT, 0, 0, 0, 0));
            }
            let end = p.len();
            for at in to_rule_end {
                p[at].off = jump(at, end)?;
            }
        }
        // No rule matched this access: the inherited default, allowed.
        let end = p.len();
        for at in to_bit_end {
            p[at].off = jump(at, end)?;
        }
    }
    p.push(insn(BPF_ALU64_MOV_K, 0, 0, 0, 1)); // r0 = 1: allow
    p.push(insn(BPF_JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

fn jump(from: usize, to: usize) -> Result<i16> {
    i16::try_from(to as i64 - from as i64 - 1)
        .map_err(|_| Error::invalid("linux.resources.devices", "too many device rules for one eBPF program"))
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr`, as large as any command here uses; unused bytes stay zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().unwrap())
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::io::Result<i64> {
    // SAFETY: attr is a valid, writable buffer of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Load the program for `rules` (the verifier's log in the error if it refuses).
pub(crate) fn load(rules: &[LinuxDeviceCgroup]) -> Result<OwnedFd> {
    let prog = program(rules)?;
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 1 << 16];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1) // log_level
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: PROG_LOAD returns a new fd we own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(Error::io(format!("loading the eBPF device program ({} instructions): {}", prog.len(), text.trim()), e))
        }
    }
}

fn attached(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.get_u32(24) as usize);
    Ok(ids)
}

/// Enforce `rules` on the v2 cgroup `dir`: attach a new device program, then
/// detach the ones attached before (so there is no moment without one).
pub fn attach_device_filter(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = load(rules)?;
    let cg: OwnedFd =
        std::fs::File::open(dir).map_err(|e| Error::io(format!("opening cgroup {}", dir.display()), e))?.into();
    let before = attached(&cg).map_err(|e| Error::io(format!("querying device programs of {}", dir.display()), e))?;
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| Error::io(format!("attaching the eBPF device program to {}", dir.display()), e))?;
    for id in before {
        let mut a = Attr::new();
        a.u32(0, id);
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut a) else { continue };
        // SAFETY: GET_FD_BY_ID returns a new fd we own.
        let old = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut d = Attr::new();
        d.u32(0, cg.as_raw_fd() as u32).u32(4, old.as_raw_fd() as u32).u32(8, BPF_CGROUP_DEVICE);
        if let Err(e) = bpf(BPF_PROG_DETACH, &mut d) {
            tracing::warn!(cgroup = %dir.display(), prog = id, error = %e, "cannot detach an old device program");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn program_shape() {
        // Deny all, allow c 1:3 rwm: per access bit, one allow check (3 jumps + ja) then deny-all.
        let p = program(&[
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":1,"minor":3}"#),
        ])
        .unwrap();
        assert_eq!(p.len(), 6 + 3 * (3 + 4 + 2) + 2);
        assert_eq!(p.last().unwrap().code, BPF_JMP_EXIT);
        // Every jump lands inside the program.
        for (i, ins) in p.iter().enumerate() {
            if matches!(ins.code, BPF_JMP_JEQ_K | BPF_JMP_JNE_K | BPF_JMP_JA) {
                let to = i as i64 + 1 + ins.off as i64;
                assert!(to > i as i64 && to < p.len() as i64, "insn {i} jumps to {to}");
            }
        }
        assert!(program(&[rule(r#"{"allow":true,"type":"p"}"#)]).is_err());
    }

    #[test]
    fn kernel_verifier_accepts_programs() {
        // Needs root (CAP_BPF or CAP_SYS_ADMIN), as every test of this crate.
        let rules = [
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#),
            rule(r#"{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}"#),
            rule(r#"{"allow":false,"type":"c","major":1,"minor":5,"access":"w"}"#),
        ];
        load(&rules).unwrap();
        load(&[]).unwrap();
    }

    #[test]
    fn v1_lines() {
        assert_eq!(v1_rule(&rule(r#"{"allow":false,"access":"rwm"}"#)).unwrap(), "a *:* rwm");
        assert_eq!(v1_rule(&rule(r#"{"allow":true,"type":"c","major":1,"minor":3}"#)).unwrap(), "c 1:3 rwm");
        assert_eq!(v1_rule(&rule(r#"{"allow":true,"type":"b","major":8,"access":"r"}"#)).unwrap(), "b 8:* r");
        let e = v1_rule(&rule(r#"{"allow":true,"type":"c","access":"rx"}"#)).unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
    }
}
