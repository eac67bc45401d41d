//! The wire between the host (monitor) and the guest (agent), and between
//! the `engine-vm` command line and a container's monitor.
//!
//! One virtio-serial port carries frames: `kind: u8`, `stream: u32` (0 is
//! the container's init, others its exec'd processes), `len: u32` (little
//! endian), then `len` bytes of payload.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Largest payload a frame may carry.
pub const MAX_FRAME: usize = 1 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Agent → host: booted, modules loaded, root mounted. Payload: the guest's kernel release.
    Hello = 1,
    /// Host → agent: run a process (JSON [`ProcessSpec`]); stream 0 is the init.
    Spawn = 2,
    /// Host → agent: bytes for the process's stdin.
    Stdin = 3,
    /// Host → agent: the process's stdin is closed.
    StdinEof = 4,
    /// Agent → host: bytes the process wrote to stdout (or its terminal).
    Stdout = 5,
    /// Agent → host: bytes the process wrote to stderr.
    Stderr = 6,
    /// Agent → host: the process ended; payload: `i32` exit code (`128 + n` for signal `n`).
    Exit = 7,
    /// Host → agent: send a signal; payload: `i32` signal, `u8` all (every process of the guest).
    Signal = 8,
    /// Agent → host: the process could not be started; payload: the message.
    Error = 9,
    /// Agent → host: the process runs; payload: `i32` pid inside the guest.
    Started = 10,
    /// Host → agent: the terminal's size; payload: `u16` rows, `u16` cols.
    Resize = 11,
    /// Host → agent: set up the container (JSON [`ContainerSpec`]).
    Setup = 12,
    /// Agent → host: the container's mounts are in place.
    Ready = 13,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        [Hello, Spawn, Stdin, StdinEof, Stdout, Stderr, Exit, Signal, Error, Started, Resize, Setup, Ready]
            .into_iter()
            .find(|k| *k as u8 == b)
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: Kind,
    /// The process it is about (0: the init).
    pub stream: u32,
    /// The payload.
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame.
    pub fn new(kind: Kind, stream: u32, data: impl Into<Vec<u8>>) -> Frame {
        Frame { kind, stream, data: data.into() }
    }

    /// Encode and write the frame whole.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(9 + self.data.len());
        buf.push(self.kind as u8);
        buf.extend_from_slice(&self.stream.to_le_bytes());
        buf.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        buf.extend_from_slice(&self.data);
        w.write_all(&buf)?;
        w.flush()
    }

    /// Read one frame; `None` at a clean end of stream.
    pub fn read_from(r: &mut impl Read) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 9];
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated frame header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let kind = Kind::from_u8(head[0])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unknown frame kind {}", head[0])))?;
        let stream = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
        }
        let mut data = vec![0u8; len];
        r.read_exact(&mut data)?;
        Ok(Some(Frame { kind, stream, data }))
    }

    /// The payload's leading `i32`.
    pub fn int(&self) -> i32 {
        self.data.get(..4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(-1)
    }
}

/// A process to run in the guest (from the OCI spec's `process`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessSpec {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Run on a terminal.
    pub terminal: bool,
    /// The whole OCI `process` of an exec (capabilities, no_new_privs,
    /// rlimits...), handed to the guest's runtime as `exec --process`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<serde_json::Value>,
}

/// The container as the agent sets it up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    /// 9p tags to mount under `/mnt/<tag>` (the sources of bind mounts).
    pub shares: Vec<String>,
    /// The bundle's OCI spec rewritten for the guest (root `/rootfs`, bind
    /// sources under `/mnt/<tag>`): the guest's copy of this project's Linux
    /// runtime builds the container from it (namespaces, cgroups, mounts,
    /// capabilities, seccomp, no_new_privs, masked paths).
    pub oci: serde_json::Value,
    /// The interfaces and routes the guest configures (none: loopback only).
    #[serde(default)]
    pub network: crate::net::Network,
}

/// A request to a container's monitor on its control socket (one JSON line;
/// the reply is one JSON [`Reply`] line; after an accepted `Exec` the
/// connection carries frames for the exec'd process).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Request {
    /// Start the init.
    Start,
    /// Signal the init (or, with `all`, every process of the guest).
    Kill {
        /// The signal number.
        signal: i32,
        /// Every process.
        all: bool,
    },
    /// Run another process in the container.
    Exec(ProcessSpec),
}

/// A monitor's reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        Frame::new(Kind::Stdout, 3, b"hello".to_vec()).write_to(&mut buf).unwrap();
        Frame::new(Kind::Exit, 0, 7i32.to_le_bytes().to_vec()).write_to(&mut buf).unwrap();
        let mut r = &buf[..];
        assert_eq!(Frame::read_from(&mut r).unwrap(), Some(Frame::new(Kind::Stdout, 3, b"hello".to_vec())));
        assert_eq!(Frame::read_from(&mut r).unwrap().unwrap().int(), 7);
        assert_eq!(Frame::read_from(&mut r).unwrap(), None);
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut r = &[99u8, 0, 0, 0, 0, 0, 0, 0, 0][..];
        assert!(Frame::read_from(&mut r).is_err());
        let mut r = &[5u8, 0, 0][..];
        assert!(Frame::read_from(&mut r).is_err());
    }
}
