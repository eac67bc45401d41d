//! # engine-client
//!
//! A typed async client for engined's Docker-compatible REST API over a unix
//! socket, and the `engine` command line built on it.
//!
//! - Errors are typed from the answer: 404 is [`engine_core::Error::NotFound`],
//!   409 [`engine_core::Error::Conflict`], 400 [`engine_core::Error::InvalidInput`].
//! - An exit code is a value ([`Client::wait`], [`ExecOutput::exit_code`]), never an error.
//! - Streams (logs, events, attach, pull/push/load progress) own their
//!   connection and do not borrow the client.
//! - [`frames`] (Docker's 8-byte stream framing) and [`models`] (the API's
//!   JSON bodies) are re-exported from `engine-api`, the wire-types crate
//!   engined uses too.
//!
//! ```no_run
//! use engine_client::{Client, models::ContainerConfigBody, models::StrSlice};
//! # async fn demo() -> engine_core::Result<()> {
//! let client = Client::new("/run/engine/engined.sock");
//! let config = ContainerConfigBody {
//!     image: Some("busybox:latest".into()),
//!     cmd: Some(StrSlice(vec!["sh".into(), "-c".into(), "exit 3".into()])),
//!     ..Default::default()
//! };
//! let created = client.create_container(Some("demo"), &config).await?;
//! let wait = client.wait_ready(&created.id, "next-exit").await?;
//! client.start(&created.id).await?;
//! assert_eq!(wait.exit_code().await?, 3);
//! client.remove_container(&created.id, true).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
// The wire types moved to `engine-api`; these paths stay for compatibility.
pub use engine_api::{frames, jsonstream, models};

pub use client::{
    encode_registry_auth, error_from_response, error_from_status, AttachIo, AttachParams, BuildParams, Client,
    CommitParams, ExecOutput, LogsParams, PendingWait, DEFAULT_SOCKET,
};
// Moved to `engine-api`; re-exported for compatibility.
pub use engine_api::{split_tag, API_VERSION, ERROR_KIND_HEADER};
