//! Docker image references: parsing and normalization.

use engine_core::{Error, Result};
use std::fmt;

/// The registry Docker Hub references resolve to.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalized image reference:
/// `[registry[:port]/]repository[:tag][@sha256:digest]`.
///
/// ```
/// use engine_image::Reference;
/// let r: Reference = "busybox".parse()?;
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// let r = Reference::parse("127.0.0.1:5000/bb")?;
/// assert_eq!((r.registry(), r.repository(), r.tag()), ("127.0.0.1:5000", "bb", Some("latest")));
/// assert!(r.is_loopback());
/// let d = format!("sha256:{}", "0".repeat(64));
/// let r = Reference::parse(&format!("quay.io/a/b@{d}"))?;
/// assert_eq!(r.digest(), Some(d.as_str()));
/// assert_eq!(r.tag(), None);
/// assert!(Reference::parse("Upper/Case").unwrap_err().to_string().contains("Upper/Case"));
/// # Ok::<(), engine_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn bad(reference: &str, why: impl Into<String>) -> Error {
    Error::invalid(format!("image reference {reference:?}"), why)
}

impl Reference {
    /// Parse and normalize a reference; the default tag is `latest` when
    /// neither tag nor digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(bad(s, "empty"));
        }
        if s.len() > 4096 {
            return Err(bad(s, "too long"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                crate::digest::hex_of(d).map_err(|e| bad(s, e.to_string()))?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(name_tag[last_slash + i + 1..].to_string())),
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad(s, format!("tag {t:?} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")));
            }
        }
        let (registry, repo) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if registry.is_empty() || registry.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(bad(s, format!("registry {registry:?} is not a host[:port]")));
        }
        let repo = if registry == DOCKER_HUB && !repo.contains('/') { format!("library/{repo}") } else { repo };
        if repo.is_empty() {
            return Err(bad(s, "no repository name"));
        }
        for comp in repo.split('/') {
            let ok = !comp.is_empty()
                && comp.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
                && comp.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && comp.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
            if !ok {
                return Err(bad(
                    s,
                    format!("repository component {comp:?} must be lowercase letters, digits and separators (._-)"),
                ));
            }
        }
        if repo.len() > 255 {
            return Err(bad(s, "repository name longer than 255 characters"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry, repository: repo, tag, digest })
    }

    /// The registry host (and port), `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
    /// The tag or digest to ask the registry for (digest wins).
    pub fn object(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
    /// `registry/repository:tag` (without a digest), if there is a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }
    /// A copy with another digest and no tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }
    /// The short form Docker shows: `busybox:latest` for
    /// `docker.io/library/busybox:latest`, `user/app:1` for Docker Hub user
    /// repos, the full form for other registries.
    ///
    /// ```
    /// let r = engine_image::Reference::parse("busybox")?;
    /// assert_eq!(r.familiar(), "busybox:latest");
    /// let r = engine_image::Reference::parse("127.0.0.1:5000/a/b:1")?;
    /// assert_eq!(r.familiar(), "127.0.0.1:5000/a/b:1");
    /// # Ok::<(), engine_core::Error>(())
    /// ```
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        if self.registry != DOCKER_HUB {
            return full;
        }
        let rest = &full[DOCKER_HUB.len() + 1..];
        rest.strip_prefix("library/").filter(|r| !r.contains('/')).unwrap_or(rest).to_string()
    }
    /// The host to connect to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
    /// True for registries on a loopback address (`127.0.0.0/8`, `localhost`,
    /// `::1`), which are spoken to in plain HTTP.
    pub fn is_loopback(&self) -> bool {
        host_is_loopback(&self.registry)
    }
}

/// True if `host[:port]` names a loopback address.
pub fn host_is_loopback(hostport: &str) -> bool {
    let host = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport)
    };
    if host == "localhost" || host == "::1" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn normalize() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
            ("localhost/app:v1", "localhost/app:v1"),
            ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"),
            ("127.0.0.1:5000/bb", "127.0.0.1:5000/bb:latest"),
            ("[::1]:5000/bb:x", "[::1]:5000/bb:x"),
        ];
        for (i, o) in cases {
            assert_eq!(Reference::parse(i).unwrap().to_string(), o, "{i}");
        }
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{d}"));
        assert_eq!(r.object(), d);
        assert!(Reference::parse("[::1]:5000/bb").unwrap().is_loopback());
        assert!(Reference::parse("127.3.4.5/x").unwrap().is_loopback());
        assert!(!Reference::parse("example.com/x").unwrap().is_loopback());
        for b in ["", "UPPER", "a//b", "a:", "a:-x", "a@sha256:12", "-a", "a/b_"] {
            let e = Reference::parse(b).unwrap_err();
            assert!(e.is_invalid_input(), "{b}: {e}");
            assert!(e.to_string().contains(&format!("{b:?}")), "{e}");
        }
    }
}
