//! A decoder for a stream of concatenated JSON values (Docker's progress and
//! event streams), whatever the chunk boundaries.

use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// Decodes one JSON value at a time from a byte stream; whitespace between
/// values (Docker ends each with `\r\n`) is skipped.
#[derive(Debug)]
pub struct JsonDecoder<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonDecoder<T> {
    fn default() -> Self {
        JsonDecoder(PhantomData)
    }
}

/// Largest single JSON value accepted.
const MAX_VALUE: usize = 16 << 20;

impl<T: DeserializeOwned> tokio_util::codec::Decoder for JsonDecoder<T> {
    type Item = T;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, std::io::Error> {
        let skip = src.iter().take_while(|b| b.is_ascii_whitespace()).count();
        src.advance(skip);
        if src.is_empty() {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(src).into_iter::<T>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                src.advance(used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                if src.len() > MAX_VALUE {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "JSON value too large"));
                }
                Ok(None)
            }
            Some(Err(e)) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn values_split_anywhere() {
        let wire = b"{\"status\":\"a\"}\r\n{\"status\":\"b\"}\n";
        let mut d = JsonDecoder::<serde_json::Value>::default();
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in wire {
            buf.extend_from_slice(&[*b]);
            while let Some(v) = d.decode(&mut buf).unwrap() {
                got.push(v["status"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(got, ["a", "b"]);
    }
}
