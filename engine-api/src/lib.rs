//! # engine-api
//!
//! The Docker Engine API's wire types, shared by engined (the server) and
//! `engine-client`, so neither depends on the other:
//!
//! - [`models`]: the JSON bodies (API 1.41 shapes), one module per resource;
//! - [`frames`]: Docker's 8-byte stream framing (attach, exec, logs);
//! - [`jsonstream`]: the decoder for concatenated JSON values (progress and
//!   event streams);
//! - [`API_VERSION`], [`ERROR_KIND_HEADER`] and [`split_tag`]: what both ends
//!   agree on outside the bodies.
//!
//! ```
//! use engine_api::models::{ContainerConfigBody, StrSlice};
//!
//! let body: ContainerConfigBody = serde_json::from_str(r#"{"Image":"busybox","Cmd":"true"}"#).unwrap();
//! assert_eq!(body.cmd, Some(StrSlice(vec!["true".into()])));
//! assert_eq!(engine_api::split_tag("127.0.0.1:5000/bb:v2"), ("127.0.0.1:5000/bb", Some("v2")));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod frames;
pub mod jsonstream;
pub mod models;

/// The API version engined serves and the client speaks (the path prefix).
pub const API_VERSION: &str = "1.41";

/// Response header carrying [`engine_core::Error::kind_name`], so a client
/// can rebuild the daemon's error variant exactly.
pub const ERROR_KIND_HEADER: &str = "x-engine-error-kind";

/// Split `name:tag` (a `:` after the last `/`) from `name`; digests stay in
/// the name. This is how `fromImage`/`tag` and `repo`/`tag` query pairs are
/// formed and read.
pub fn split_tag(reference: &str) -> (&str, Option<&str>) {
    if reference.contains('@') {
        return (reference, None);
    }
    let slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], Some(&reference[slash + i + 1..])),
        None => (reference, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_after_last_slash() {
        assert_eq!(split_tag("127.0.0.1:5000/bb"), ("127.0.0.1:5000/bb", None));
        assert_eq!(split_tag("127.0.0.1:5000/bb:v2"), ("127.0.0.1:5000/bb", Some("v2")));
        assert_eq!(split_tag("bb:latest"), ("bb", Some("latest")));
        assert_eq!(split_tag("bb@sha256:abc"), ("bb@sha256:abc", None));
    }
}
