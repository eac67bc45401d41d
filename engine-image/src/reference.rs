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
    /// Parse and normalize a reference the way Docker does (distribution's
    /// grammar, as [`oci_spec::distribution::Reference`] parses it); the
    /// default tag is `latest` when neither tag nor digest is given. On top of
    /// that grammar: bracketed IPv6 registries (`[::1]:5000/x`), which it
    /// predates, are accepted; `registry-1.docker.io` is Docker Hub too; tags
    /// are ASCII; digests are `sha256:` (what the store holds).
    ///
    /// The grammar is matched by hand, not by `oci_spec`'s parser: that one
    /// compiles a Unicode-aware regular expression on first use, 16 MiB of
    /// allocations at its peak that stayed resident in every daemon (the
    /// lifecycle manager's resident memory with 50 containers went from 20
    /// to 32 MiB). A test checks both agree on a corpus and on fuzzed input.
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
        let r = grammar::parse(&parsed).map_err(|e| {
            // Docker says why a name with capitals is refused.
            let lower = s.to_ascii_lowercase();
            if e == grammar::INVALID && lower != s && grammar::parse(&lower).is_ok() {
                bad(s, "repository name must be lowercase")
            } else {
                bad(s, e)
            }
        })?;
        if let Some(d) = &r.digest {
            crate::digest::hex_of(d).map_err(|e| bad(s, e.to_string()))?;
        }
        let grammar::Parsed { registry, repository, tag, digest } = r;
        let (registry, repository) = match (ipv6_host, registry.as_str()) {
            (Some(host), _) => (host, repository),
            // Docker Hub's API host is Docker Hub.
            (None, "registry-1.docker.io") if repository.contains('/') => (DOCKER_HUB.to_string(), repository),
            (None, "registry-1.docker.io") => (DOCKER_HUB.to_string(), format!("library/{repository}")),
            (None, _) => (registry, repository),
        };
        Ok(Reference { registry, repository, tag, digest })
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

/// distribution's reference grammar, matched by hand (see [`Reference::parse`]
/// for why): the same language and the same normalisation as
/// `oci_spec::distribution::Reference`'s parser, for ASCII input.
mod grammar {
    /// What distribution says for input outside the grammar.
    pub(super) const INVALID: &str = "invalid reference format";
    const NAME_MAX: usize = 255;

    /// A reference as distribution's grammar splits and normalises it.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Parsed {
        pub(super) registry: String,
        pub(super) repository: String,
        pub(super) tag: Option<String>,
        pub(super) digest: Option<String>,
    }

    /// `name [":" tag] ["@" digest]`.
    pub(super) fn parse(s: &str) -> Result<Parsed, &'static str> {
        if s.is_empty() {
            return Err("repository name must have at least one component");
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) if is_digest(digest) => (rest, Some(digest)),
            Some(_) => return Err(INVALID),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it ends a host.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if tag.is_some_and(|t| !is_tag(t)) {
            return Err(INVALID);
        }
        let valid = match name.split_once('/') {
            Some((host, path)) if is_domain(host) && is_remote_name(path) => true,
            _ => is_remote_name(name),
        };
        if !valid {
            return Err(INVALID);
        }
        let (registry, repository) = split_domain(name);
        if repository.len() > NAME_MAX {
            return Err("repository name must not be more than 255 characters");
        }
        if let Some((algorithm, hex)) = digest.and_then(|d| d.split_once(':')) {
            let want = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return Err("unsupported digest algorithm"),
            };
            if hex.len() != want {
                return Err("invalid checksum digest length");
            }
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(Parsed { registry, repository, tag, digest: digest.map(str::to_owned) })
    }

    /// Docker's split: the first component names a registry if it has a
    /// `.` or `:` or is `localhost`; otherwise the name is Docker Hub's.
    fn split_domain(name: &str) -> (String, String) {
        let (mut domain, remainder) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest.to_string()),
            _ => (super::DOCKER_HUB, name.to_string()),
        };
        if domain == "index.docker.io" {
            domain = super::DOCKER_HUB;
        }
        if domain == super::DOCKER_HUB && !remainder.contains('/') {
            return (domain.to_string(), format!("library/{remainder}"));
        }
        (domain.to_string(), remainder)
    }

    fn lower_alnum(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit()
    }

    /// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any run of `-`.
    fn is_path_component(c: &str) -> bool {
        let b = c.as_bytes();
        if b.is_empty() || !lower_alnum(b[0]) || !lower_alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if lower_alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !lower_alnum(b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                return false;
            }
        }
        true
    }

    fn is_remote_name(path: &str) -> bool {
        path.split('/').all(is_path_component)
    }

    /// `host[:port]`, host = dot-separated `[a-zA-Z0-9]` labels with inner `-`.
    fn is_domain(d: &str) -> bool {
        let (host, port) = match d.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (d, None),
        };
        let label = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        host.split('.').all(label) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()))
    }

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    fn is_tag(t: &str) -> bool {
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let b = t.as_bytes();
        !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
    }

    /// `algorithm ":" hex{32,}`, algorithm = `[A-Za-z][A-Za-z0-9]*` parts
    /// joined by one of `-_+.`.
    fn is_digest(d: &str) -> bool {
        let Some((algorithm, hex)) = d.split_once(':') else { return false };
        let part = |p: &str| {
            let b = p.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
        };
        algorithm.split(['-', '_', '+', '.']).all(part) && hex.len() >= 32 && hex.bytes().all(|x| x.is_ascii_hexdigit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::distribution::Reference as OciReference;

    /// The hand-matched grammar and `oci_spec`'s regular expression agree:
    /// same inputs accepted, same registry, repository, tag and digest.
    fn agrees(s: &str) {
        let ours = grammar::parse(s);
        let theirs = s.parse::<OciReference>();
        match (&ours, &theirs) {
            (Ok(o), Ok(t)) => assert_eq!(
                (o.registry.as_str(), o.repository.as_str(), o.tag.as_deref(), o.digest.as_deref()),
                (t.registry(), t.repository(), t.tag(), t.digest()),
                "{s:?}"
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("{s:?}: ours {ours:?}, oci_spec {theirs:?}"),
        }
    }

    #[test]
    fn grammar_agrees_with_oci_spec() {
        let hex = "0a".repeat(32);
        let corpus = [
            "busybox",
            "busybox:1.36",
            "user/app",
            "docker.io/busybox",
            "index.docker.io/library/busybox",
            "localhost/app:v1",
            "localhost:5000/a/b/c",
            "127.0.0.1:5000/bb",
            "localhost",
            "localhost:5000",
            "example.com",
            "example.com:5000/team/app:1.0-rc_1",
            "a__b/c---d/e.f_g",
            "a___b",
            "a-_b",
            "a._b",
            "a..b",
            "a.b",
            "-a",
            "a-",
            "a/b_",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:-x",
            "a:_x",
            "a:.x",
            "UPPER",
            "Upper/Case",
            "Registry.Example.com/x",
            "reg-.com/x",
            "-reg.com/x",
            "reg.com:/x",
            "reg.com:50a/x",
            "a:b/c",
            "a:b:c",
            "host:5000/a:tag",
            "a@sha256:12",
            "a b",
            "a:t t",
            "a@",
            "@sha256:0",
            "a:tag@",
            ":tag",
            "test.com:tag",
            "test.com:5000",
            "foo_bar.com:8080",
            "foo.com/bar:5000/x",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        ];
        for s in corpus {
            agrees(s);
        }
        for extra in [
            format!("a@sha256:{hex}"),
            format!("a:t@sha256:{hex}"),
            format!("a@sha512:{}", "0".repeat(128)),
            format!("a@sha384:{}", "0".repeat(96)),
            format!("a@sha256:{}", "0".repeat(63)),
            format!("a@md5:{}", "0".repeat(32)),
            format!("a@sha256+b64u.x-y_z:{}", "0".repeat(64)),
            format!("a:{}", "t".repeat(128)),
            format!("a:{}", "t".repeat(129)),
            format!("a/{}", "b".repeat(247)),
            format!("a/{}", "b".repeat(254)),
            "b".repeat(255),
        ] {
            agrees(&extra);
        }
    }

    /// Fuzzed: strings made of the grammar's tokens, checked against `oci_spec`.
    #[test]
    fn grammar_agrees_with_oci_spec_fuzzed() {
        const TOKENS: [&str; 24] = [
            "a",
            "z",
            "0",
            "9",
            "A",
            ".",
            "_",
            "__",
            "-",
            "--",
            ":",
            "/",
            "@",
            "5000",
            "localhost",
            "docker.io",
            "index.docker.io",
            "sha256:",
            "sha512:",
            "0123456789abcdef0123456789abcdef",
            "+",
            " ",
            "é",
            "x.y",
        ];
        bolero::check!().with_type::<Vec<u8>>().for_each(|bytes: &Vec<u8>| {
            let s: String = bytes.iter().take(24).map(|b| TOKENS[*b as usize % TOKENS.len()]).collect();
            // Unicode tags: oci_spec's `\w` takes them, Docker's grammar (and ours) is ASCII.
            if s.is_ascii() {
                agrees(&s);
            }
        });
    }
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
