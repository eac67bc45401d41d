//! secprobe: a test helper that tries system calls docker's default seccomp
//! profile blocks and prints what the kernel answered, one line per call:
//! `<call>: ok` or `<call>: errno <n>`. Static (glibc, std only), so it runs in
//! any image. Built only with the `probe` feature; for tests.
//!
//! Usage: `secprobe unshare-user|unshare-mount|keyctl|add_key|request_key ...`.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_long};

extern "C" {
    fn syscall(n: c_long, ...) -> c_long;
    fn unshare(flags: c_int) -> c_int;
}

#[cfg(target_arch = "x86_64")]
const SYS: (c_long, c_long, c_long) = (248, 249, 250);
#[cfg(target_arch = "aarch64")]
const SYS: (c_long, c_long, c_long) = (217, 218, 219);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("secprobe: add_key/request_key/keyctl numbers for this architecture");

const CLONE_NEWNS: c_int = 0x0002_0000;
const CLONE_NEWUSER: c_int = 0x1000_0000;
const KEY_SPEC_PROCESS_KEYRING: c_long = -2;
const KEYCTL_GET_KEYRING_ID: c_long = 0;

fn main() {
    let ty = CString::new("user").unwrap();
    let desc = CString::new("secprobe").unwrap();
    let payload = b"x";
    let mut code = 0;
    for call in std::env::args().skip(1) {
        let r: c_long = unsafe {
            match call.as_str() {
                "unshare-user" => unshare(CLONE_NEWUSER) as c_long,
                "unshare-mount" => unshare(CLONE_NEWNS) as c_long,
                "keyctl" => syscall(SYS.2, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1 as c_long),
                "add_key" => syscall(
                    SYS.0,
                    ty.as_ptr(),
                    desc.as_ptr(),
                    payload.as_ptr() as *const c_char,
                    payload.len() as c_long,
                    KEY_SPEC_PROCESS_KEYRING,
                ),
                "request_key" => syscall(SYS.1, ty.as_ptr(), desc.as_ptr(), std::ptr::null::<c_char>(), 0 as c_long),
                other => {
                    eprintln!("secprobe: unknown call {other}");
                    std::process::exit(2);
                }
            }
        };
        if r < 0 {
            println!("{call}: errno {}", std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
            code = 1;
        } else {
            println!("{call}: ok");
        }
    }
    std::process::exit(code);
}
