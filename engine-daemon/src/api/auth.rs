//! `POST /auth` (`docker login`): check credentials against the registry's `/v2/`.

use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Resp};
use engine_core::{Error, Result};
use http::StatusCode;
use serde_json::json;

#[derive(serde::Deserialize, Default)]
struct AuthBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .map(|(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host })
        .unwrap_or(host);
    h == "localhost" || h.starts_with("127.") || h == "[::1]" || h == "::1"
}

/// The registry host of a login's server address (`https://index.docker.io/v1/` is Docker Hub).
fn registry_host(server: &str) -> String {
    let s = server.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() || host == "index.docker.io" || host == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        host.to_string()
    }
}

fn challenge_param(h: &str, key: &str) -> Option<String> {
    let i = h.find(&format!("{key}=\""))?;
    let rest = &h[i + key.len() + 2..];
    Some(rest[..rest.find('"')?].to_string())
}

pub(crate) async fn login(st: &State, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: AuthBody = convert::parse_body(&data, "auth config")?;
    let host = registry_host(&b.serveraddress);
    let scheme = if is_loopback(&host) { "http" } else { "https" };
    let url = format!("{scheme}://{host}/v2/");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Other(format!("http client: {e}")))?;
    let unavailable =
        |e: reqwest::Error| Error::Registry { reference: host.clone(), message: format!("GET {url}: {e}") };
    let resp = client.get(&url).basic_auth(&b.username, Some(&b.password)).send().await.map_err(unavailable)?;
    let ok = match resp.status().as_u16() {
        200..=299 => true,
        401 => {
            let challenge =
                resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if challenge.to_ascii_lowercase().starts_with("bearer") {
                let realm = challenge_param(&challenge, "realm").unwrap_or_default();
                let mut req = client.get(&realm).basic_auth(&b.username, Some(&b.password));
                if let Some(svc) = challenge_param(&challenge, "service") {
                    req = req.query(&[("service", svc)]);
                }
                req.send().await.map_err(unavailable)?.status().is_success()
            } else {
                false
            }
        }
        s => {
            return Err(Error::Registry { reference: host, message: format!("GET {url}: HTTP {s}") });
        }
    };
    if !ok {
        return Ok(h::error_status(
            StatusCode::UNAUTHORIZED,
            format!("Get \"{url}\": unauthorized: incorrect username or password"),
        ));
    }
    Ok(h::json(StatusCode::OK, &json!({"Status": "Login Succeeded", "IdentityToken": ""})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "registry-1.docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://localhost:5000/"), "localhost:5000");
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost") && !is_loopback("example.com:5000"));
        let c = r#"Bearer realm="http://127.0.0.1:1/token",service="reg""#;
        assert_eq!(challenge_param(c, "realm").as_deref(), Some("http://127.0.0.1:1/token"));
        assert_eq!(challenge_param(c, "service").as_deref(), Some("reg"));
    }
}
