//! The Docker Engine API's JSON bodies, as engined sends and accepts them
//! (API 1.41 shapes), one module per resource. Both the daemon and the client
//! use these types, so the two cannot drift apart. Every type is also
//! re-exported here, so `engine_api::models::HostConfig` names it whatever
//! module it lives in.
//!
//! Every field of a request body is optional and `null` is accepted where
//! Docker accepts it; unknown fields are ignored.

pub mod common;
pub mod containers;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod progress;
pub mod system;

pub use common::*;
pub use containers::*;
pub use events::*;
pub use exec::*;
pub use images::*;
pub use networks::*;
pub use progress::*;
pub use system::*;
