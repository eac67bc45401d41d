//! The crate's error, convertible into [`engine_core::Error`].

use std::time::Duration;

/// What went wrong talking to a plugin. Every variant names the plugin; the
/// ones about a call name the method too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No socket or spec file names the plugin.
    #[error("plugin \"{name}\" not found")]
    NotFound {
        /// The plugin's name.
        name: String,
    },
    /// A spec file that cannot be used, or an invalid plugin name.
    #[error("plugin {name}: {reason}")]
    BadSpec {
        /// The plugin's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something the spec asks for that this engine does not implement.
    #[error("plugin {name}: not supported: {what}")]
    Unsupported {
        /// The plugin's name.
        name: String,
        /// What is not supported.
        what: String,
    },
    /// The plugin could not be reached or dropped the connection.
    #[error("plugin {name} at {addr} is unreachable ({method}): {reason}")]
    Unreachable {
        /// The plugin's name.
        name: String,
        /// Its address.
        addr: String,
        /// The method being called.
        method: String,
        /// The connection error.
        reason: String,
    },
    /// The plugin did not answer in time.
    #[error("plugin {name} did not answer {method} within {after:?}")]
    Timeout {
        /// The plugin's name.
        name: String,
        /// The method being called.
        method: String,
        /// The bound that passed.
        after: Duration,
    },
    /// The plugin answered something that is not the protocol.
    #[error("plugin {name} answered {method} with an invalid response: {reason}")]
    BadAnswer {
        /// The plugin's name.
        name: String,
        /// The method called.
        method: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The plugin answered with an error of its own (`{"Err": "..."}`).
    #[error("plugin {name}: {method}: {message}")]
    Remote {
        /// The plugin's name.
        name: String,
        /// The method called.
        method: String,
        /// The plugin's own message.
        message: String,
    },
    /// The plugin does not implement the interface it was asked for.
    #[error("plugin {name} does not implement {interface} (it implements {implements:?})")]
    NotImplemented {
        /// The plugin's name.
        name: String,
        /// The interface asked for (`VolumeDriver`).
        interface: String,
        /// What its activation said it implements.
        implements: Vec<String>,
    },
}

impl PluginError {
    /// The plugin's own message for [`PluginError::Remote`].
    pub fn remote_message(&self) -> Option<&str> {
        match self {
            PluginError::Remote { message, .. } => Some(message),
            _ => None,
        }
    }
}

impl From<PluginError> for engine_core::Error {
    fn from(e: PluginError) -> Self {
        use engine_core::Error;
        match e {
            PluginError::NotFound { name } => Error::not_found("plugin", name),
            PluginError::BadSpec { .. } | PluginError::NotImplemented { .. } => Error::invalid("plugin", e.to_string()),
            PluginError::Unsupported { .. } => Error::Unsupported(e.to_string()),
            PluginError::Unreachable { ref name, .. } => Error::unavailable(format!("plugin {name}"), e.to_string()),
            PluginError::Timeout { name, method, after } => {
                Error::Timeout { what: format!("plugin {name} to answer {method}"), after }
            }
            PluginError::BadAnswer { .. } | PluginError::Remote { .. } => Error::Other(e.to_string()),
        }
    }
}
