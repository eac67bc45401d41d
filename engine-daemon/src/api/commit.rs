//! `POST /commit` (`docker commit`): a container's changes as a new image
//! layer on top of its image, with the container's run config, the
//! `changes` (Dockerfile lines) and the body's config applied.

use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use engine_core::{Error, Result};
use http::StatusCode;
use serde_json::{json, Value};

/// `POST /commit?container=..&repo=..&tag=..&comment=..&author=..&pause=..&changes=..`.
pub(crate) async fn commit(st: &State, q: &Query, body: Incoming) -> Result<Resp> {
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("query parameter container", "a container is required"))?;
    let tag = match q.get("repo").filter(|r| !r.is_empty()) {
        Some(repo) => {
            let t = format!("{repo}:{}", q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest"));
            convert::validate_reference(&t)?;
            Some(t)
        }
        None => None,
    };
    let raw = h::read_limited(body, st.config.max_json_body).await.map_err(|e| match e {
        h::BodyError::TooLarge(n) => Error::invalid("request body", format!("larger than {n} bytes")),
        h::BodyError::Read(s) => Error::invalid("request body", s),
    })?;
    let config = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(b)) => Some(b),
        _ => None,
    };
    let options = engine_build::CommitOptions::default()
        .tag(tag.clone())
        .changes(q.all("changes").to_vec())
        .config(config)
        .comment(q.get("comment").filter(|c| !c.is_empty()).map(str::to_string))
        .author(q.get("author").filter(|a| !a.is_empty()).map(str::to_string))
        .pause(q.get("pause").is_none_or(|p| !matches!(p, "0" | "false" | "False")));
    let img = engine_build::commit_container(st.manager.as_ref(), st.images.as_ref(), container, options).await?;
    if let Some(t) = &tag {
        st.events.image("tag", &img.id, Some(&convert::familiar(t)));
    }
    Ok(h::json(StatusCode::CREATED, &json!({ "Id": img.id })))
}
