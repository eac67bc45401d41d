//! Bodies every resource shares: string lists, error and id responses.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A string list that Docker also accepts as a single string (`Cmd`, `Entrypoint`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StrSlice(pub Vec<String>);

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        // Decode through `Value` first so a wrong type names the field, not "untagged".
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(StrSlice(vec![s])),
            Value::Array(_) => match serde_json::from_value::<OneOrMany>(v) {
                Ok(OneOrMany::Many(v)) => Ok(StrSlice(v)),
                Ok(OneOrMany::One(s)) => Ok(StrSlice(vec![s])),
                Err(_) => Err(serde::de::Error::custom("expected a string or an array of strings")),
            },
            other => Err(serde::de::Error::custom(format!("expected a string or an array of strings, got {other}"))),
        }
    }
}

/// `{"message": "..."}`: every error response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, fit to print after "Error response from daemon: ".
    pub message: String,
}

/// `{"Id": ...}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdResponse {
    /// The id.
    pub id: String,
}
