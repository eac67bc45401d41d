//! Docker image references: parsing and normalization.

use engine_core::{Error, Result};
use oci_spec::distribution::{ParseError, Reference as OciReference};
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
    /// Parse and normalize a reference the way Docker does (with
    /// [`oci_spec::distribution::Reference`], distribution's grammar); the
    /// default tag is `latest` when neither tag nor digest is given. On top of
    /// that grammar: bracketed IPv6 registries (`[::1]:5000/x`), which it
    /// predates, are accepted; `registry-1.docker.io` is Docker Hub too; tags
    /// are ASCII; digests are `sha256:` (what the store holds).
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(bad(s, "empty"));
        }
        if s.len() > 4096 {
            return Err(bad(s, "too long"));
        }
        // distribution's grammar has no IPv6 literal host: parse the rest
        // with a stand-in host, then put the literal back.
        const IPV6_STAND_IN: &str = "ipv6-literal.invalid";
        let (ipv6_host, parsed) = match s.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((addr, rest)) => {
                let (port, path) = rest.split_once('/').ok_or_else(|| bad(s, "no repository name"))?;
                if addr.parse::<std::net::Ipv6Addr>().is_err() || !(port.is_empty() || port.starts_with(':')) {
                    return Err(bad(s, format!("registry [{addr}]{port} is not a host[:port]")));
                }
                (Some(format!("[{addr}]{port}")), format!("{IPV6_STAND_IN}{port}/{path}"))
            }
            None => (None, s.to_string()),
        };
        let r: OciReference = parsed.parse().map_err(|e: ParseError| {
            // Docker says why a name with capitals is refused.
            let lower = s.to_ascii_lowercase();
            if e == ParseError::ReferenceInvalidFormat && lower != s && lower.parse::<OciReference>().is_ok() {
                bad(s, ParseError::NameContainsUppercase.to_string())
            } else {
                bad(s, e.to_string())
            }
        })?;
        if let Some(t) = r.tag().filter(|t| !t.is_ascii()) {
            return Err(bad(s, format!("tag {t:?} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")));
        }
        if let Some(d) = r.digest() {
            crate::digest::hex_of(d).map_err(|e| bad(s, e.to_string()))?;
        }
        let (registry, repository) = match (ipv6_host, r.registry()) {
            (Some(host), _) => (host, r.repository().to_string()),
            // Docker Hub's API host is Docker Hub.
            (None, "registry-1.docker.io") if r.repository().contains('/') => {
                (DOCKER_HUB.to_string(), r.repository().to_string())
            }
            (None, "registry-1.docker.io") => (DOCKER_HUB.to_string(), format!("library/{}", r.repository())),
            (None, registry) => (registry.to_string(), r.repository().to_string()),
        };
        Ok(Reference { registry, repository, tag: r.tag().map(str::to_owned), digest: r.digest().map(str::to_owned) })
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

    /// Docker's normalisation at its edges: what `docker pull` accepts and
    /// names the same way, and what it refuses.
    #[test]
    fn edge_cases() {
        let d = format!("sha256:{}", "0a".repeat(32));
        let cases = [
            // A name alone that looks like a host is a Docker Hub repository.
            ("localhost".to_string(), "docker.io/library/localhost:latest".to_string()),
            ("localhost:5000".into(), "docker.io/library/localhost:5000".into()),
            ("example.com".into(), "docker.io/library/example.com:latest".into()),
            ("example.com:5000/team/app:1.0-rc_1".into(), "example.com:5000/team/app:1.0-rc_1".into()),
            ("registry-1.docker.io/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("registry-1.docker.io/user/app:2".into(), "docker.io/user/app:2".into()),
            ("index.docker.io/user/app".into(), "docker.io/user/app:latest".into()),
            ("a__b/c---d/e.f_g".into(), "docker.io/a__b/c---d/e.f_g:latest".into()),
            (format!("busybox@{d}"), format!("docker.io/library/busybox@{d}")),
            (format!("127.0.0.1:5000/x/y:t@{d}"), format!("127.0.0.1:5000/x/y:t@{d}")),
            ("[fe80::1]/x".into(), "[fe80::1]/x:latest".into()),
            ("Registry.Example.com/x".into(), "Registry.Example.com/x:latest".into()),
        ];
        for (i, o) in cases {
            let r = Reference::parse(&i).unwrap_or_else(|e| panic!("{i}: {e}"));
            assert_eq!(r.to_string(), o, "{i}");
        }
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!((r.tag(), r.digest(), r.object()), (None, Some(d.as_str()), d.as_str()));
        assert_eq!(Reference::parse("localhost:5000/a").unwrap().registry(), "localhost:5000");
        assert!(Reference::parse("[::1]:5000/bb").unwrap().is_loopback());
        assert!(Reference::parse("localhost/x").unwrap().is_loopback());

        let long_tag = format!("a:{}", "t".repeat(129));
        let long_repo = format!("a/{}", "b".repeat(255));
        let sha512 = format!("a@sha512:{}", "0".repeat(128));
        let upper_hex = format!("a@sha256:{}", "AB".repeat(32));
        let refused = [
            "a..b",
            "a._b",
            "a b",
            "a:t t",
            "a:tag\u{e9}",
            "a/",
            "/a",
            "a@",
            "[::1]:5000",
            "[zz]:5000/x",
            "[::1]x/y",
            long_tag.as_str(),
            long_repo.as_str(),
            sha512.as_str(),
            upper_hex.as_str(),
        ];
        for b in refused {
            let e = Reference::parse(b).unwrap_err();
            assert!(e.is_invalid_input(), "{b}: {e}");
            assert!(e.to_string().contains(&format!("{b:?}")), "{e}");
        }
        let e = Reference::parse("Busybox").unwrap_err();
        assert!(e.to_string().contains("lowercase"), "{e}");
    }
}
