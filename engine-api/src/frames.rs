//! Docker's 8-byte stream framing, in one place for the daemon (encoding) and
//! the client (decoding).
//!
//! A multiplexed stream (attach, exec and logs of a container without a
//! terminal) is a sequence of frames: byte 0 names the stream (0 stdin,
//! 1 stdout, 2 stderr, 3 system error), bytes 1-3 are zero, bytes 4-7 are the
//! payload length as a big-endian `u32`, and the payload follows.
//!
//! ```
//! use engine_api::frames::{encode, FrameDecoder, FrameStream};
//! use tokio_util::codec::Decoder;
//!
//! let wire = encode(FrameStream::Stdout, b"hi\n");
//! assert_eq!(&wire[..], b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n");
//! let mut buf = bytes::BytesMut::from(&wire[..]);
//! let frame = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
//! assert_eq!(frame.stream, FrameStream::Stdout);
//! assert_eq!(&frame.data[..], b"hi\n");
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use engine_core::StdStream;

/// Length of a frame header.
pub const HEADER_LEN: usize = 8;

/// Largest payload the decoder accepts (a corrupt header must not make it
/// buffer gigabytes).
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Which stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameStream {
    /// Standard input (0).
    Stdin,
    /// Standard output (1).
    Stdout,
    /// Standard error (2).
    Stderr,
    /// An error from the daemon itself (3).
    SystemErr,
}

impl FrameStream {
    /// The header byte.
    pub fn byte(self) -> u8 {
        match self {
            FrameStream::Stdin => 0,
            FrameStream::Stdout => 1,
            FrameStream::Stderr => 2,
            FrameStream::SystemErr => 3,
        }
    }
    /// From a header byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => FrameStream::Stdin,
            1 => FrameStream::Stdout,
            2 => FrameStream::Stderr,
            3 => FrameStream::SystemErr,
            _ => return None,
        })
    }
}

impl From<StdStream> for FrameStream {
    fn from(s: StdStream) -> Self {
        match s {
            StdStream::Stdin => FrameStream::Stdin,
            StdStream::Stdout => FrameStream::Stdout,
            StdStream::Stderr => FrameStream::Stderr,
        }
    }
}

/// One decoded frame (or, for a terminal stream, one raw chunk marked stdout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The stream.
    pub stream: FrameStream,
    /// The payload.
    pub data: Bytes,
}

/// Encode one frame: header plus payload.
pub fn encode(stream: FrameStream, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + data.len());
    encode_into(stream, data, &mut b);
    b.freeze()
}

/// Append one frame to `dst`. Payloads longer than `u32::MAX` are split; an
/// empty payload adds nothing (an empty frame carries no data).
pub fn encode_into(stream: FrameStream, data: &[u8], dst: &mut BytesMut) {
    for chunk in data.chunks(u32::MAX as usize) {
        dst.reserve(HEADER_LEN + chunk.len());
        dst.put_u8(stream.byte());
        dst.put_bytes(0, 3);
        dst.put_u32(chunk.len() as u32);
        dst.put_slice(chunk);
    }
}

/// A `tokio_util` decoder for multiplexed streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameDecoder;

impl tokio_util::codec::Decoder for FrameDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let stream = FrameStream::from_byte(src[0]).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad stream byte {} in frame header", src[0]))
        })?;
        let len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
            ));
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let data = src.split_to(len).freeze();
        Ok(Some(Frame { stream, data }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        match self.decode(src)? {
            Some(f) => Ok(Some(f)),
            None if src.is_empty() => Ok(None),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("stream ended inside a frame ({} bytes left over)", src.len()),
            )),
        }
    }
}

/// A decoder for a terminal's raw stream: every chunk is stdout.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl tokio_util::codec::Decoder for RawDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if src.is_empty() {
            return Ok(None);
        }
        let data = src.split().freeze();
        Ok(Some(Frame { stream: FrameStream::Stdout, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn split_across_reads_and_interleaved() {
        let mut wire = BytesMut::new();
        encode_into(FrameStream::Stdout, b"out1\n", &mut wire);
        encode_into(FrameStream::Stderr, b"err1\n", &mut wire);
        encode_into(FrameStream::Stdout, b"", &mut wire);
        assert_eq!(wire.len(), 2 * HEADER_LEN + 10, "an empty payload adds no frame");
        let all = wire.freeze();
        // Feed one byte at a time: the decoder must wait for whole frames.
        let mut dec = FrameDecoder;
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in all.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Frame { stream: FrameStream::Stdout, data: Bytes::from_static(b"out1\n") });
        assert_eq!(got[1], Frame { stream: FrameStream::Stderr, data: Bytes::from_static(b"err1\n") });
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let mut buf = BytesMut::from(&b"\x07\x00\x00\x00\x00\x00\x00\x01x"[..]);
        assert!(FrameDecoder.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"\x01\x00\x00\x00\xff\xff\xff\xff"[..]);
        assert!(FrameDecoder.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"\x01\x00\x00\x00\x00\x00\x00\x05hi"[..]);
        assert!(FrameDecoder.decode_eof(&mut buf).is_err());
    }
}
