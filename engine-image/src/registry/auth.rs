//! Registry authentication: credentials from the docker CLI config file
//! and `WWW-Authenticate` challenges (anonymous, basic, bearer token).

use base64::Engine as _;
use engine_core::RegistryAuth;
use std::collections::HashMap;
use std::path::PathBuf;

fn default_docker_config() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

fn auth_key_host(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => crate::DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// Credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub)
/// from a docker CLI config file (`auths.<host>.auth` is base64 `user:pass`;
/// `identitytoken` is kept too). `path` defaults to `~/.docker/config.json`.
pub fn docker_config_auth(path: Option<&std::path::Path>, registry: &str) -> Option<RegistryAuth> {
    let p = path.map(|p| p.to_path_buf()).or_else(default_docker_config)?;
    let bytes = std::fs::read(&p).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let want = auth_key_host(registry);
    let (_, entry) = auths.iter().find(|(k, _)| auth_key_host(k) == want)?;
    let mut out = RegistryAuth::default();
    if let Some(a) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
        let dec = base64::engine::general_purpose::STANDARD.decode(a.trim()).ok()?;
        let s = String::from_utf8(dec).ok()?;
        let (u, pw) = s.split_once(':')?;
        out.username = Some(u.to_string());
        out.password = Some(pw.to_string());
    }
    if let Some(u) = entry.get("username").and_then(|a| a.as_str()) {
        out.username = Some(u.to_string());
    }
    if let Some(pw) = entry.get("password").and_then(|a| a.as_str()) {
        out.password = Some(pw.to_string());
    }
    if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()).filter(|t| !t.is_empty()) {
        out.identity_token = Some(t.to_string());
    }
    if out == RegistryAuth::default() {
        None
    } else {
        Some(out)
    }
}

#[derive(Clone, Debug)]
pub(super) enum Scheme {
    None,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Parse a `WWW-Authenticate` header.
pub(super) fn parse_challenge(h: &str) -> Scheme {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let s2 = s.trim_start_matches([',', ' ']);
        let Some((k, after)) = s2.split_once('=') else { break };
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), v.to_string());
        s = next;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Scheme::Basic,
        "bearer" => match params.get("realm") {
            Some(r) => Scheme::Bearer { realm: r.clone(), service: params.get("service").cloned() },
            None => Scheme::None,
        },
        _ => Scheme::None,
    }
}

pub(super) struct AuthState {
    pub(super) scheme: Scheme,
    pub(super) tokens: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn challenge() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ) {
            Scheme::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_challenge(r#"Basic realm="x""#), Scheme::Basic));
    }
    #[test]
    fn docker_config() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(&p, format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#)).unwrap();
        let a = docker_config_auth(Some(&p), "docker.io").unwrap();
        assert_eq!((a.username.as_deref(), a.password.as_deref()), (Some("alice"), Some("s3cret")));
        assert!(docker_config_auth(Some(&p), "127.0.0.1:5000").is_some());
        assert!(docker_config_auth(Some(&p), "quay.io").is_none());
    }
}
