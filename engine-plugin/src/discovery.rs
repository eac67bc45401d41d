//! Finding plugins the way dockerd does: sockets in one directory, spec
//! files in others.

use crate::PluginError;
use serde::Deserialize;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// dockerd's socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";
/// dockerd's spec directories, searched in this order.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/docker/plugins", "/usr/lib/docker/plugins"];

/// Where a plugin listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
}

impl std::fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            PluginAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl PluginAddr {
    /// Parse a spec file's URL: `unix:///path/to.sock` or `tcp://host:port`.
    /// `name` is the plugin's, for the error.
    pub fn parse(name: &str, url: &str) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::BadSpec { name: name.to_string(), reason };
        let url = url.trim();
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| bad(format!("{url:?} has no scheme (want unix:// or tcp://)")))?;
        match scheme {
            "unix" => {
                let p = Path::new(rest);
                if !p.is_absolute() {
                    return Err(bad(format!("{url:?}: the socket path must be absolute")));
                }
                Ok(PluginAddr::Unix(p.to_path_buf()))
            }
            "tcp" => {
                let hostport = rest.trim_end_matches('/');
                let u = url::Url::parse(&format!("tcp://{hostport}")).map_err(|e| bad(format!("{url:?}: {e}")))?;
                if u.host_str().is_none() || u.port().is_none() || u.path() != "" && u.path() != "/" {
                    return Err(bad(format!("{url:?}: want tcp://host:port")));
                }
                Ok(PluginAddr::Tcp(hostport.to_string()))
            }
            other => Err(bad(format!("{url:?}: unknown protocol {other:?} (want unix:// or tcp://)"))),
        }
    }
}

/// A discovered plugin: its name, where it listens, and the file that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginSpec {
    /// The name it is asked for by (`--volume-driver NAME`).
    pub name: String,
    /// Where it listens.
    pub addr: PluginAddr,
    /// The socket or spec file it was found by.
    pub found_at: PathBuf,
}

impl PluginSpec {
    /// A spec for a plugin at a known address (no discovery).
    pub fn new(name: impl Into<String>, addr: PluginAddr, found_at: impl Into<PathBuf>) -> Self {
        PluginSpec { name: name.into(), addr, found_at: found_at.into() }
    }
}

/// The directories plugins are discovered in.
///
/// [`Discovery::default`] is dockerd's: sockets in `/run/docker/plugins`,
/// spec files in `/etc/docker/plugins` then `/usr/lib/docker/plugins`.
/// A plugin `NAME` is, first match wins:
/// 1. a unix socket `<socket dir>/NAME.sock` or `<socket dir>/NAME/NAME.sock`;
/// 2. in each spec dir, `NAME.spec` or `NAME/NAME.spec` (one line, a URL:
///    `unix:///path` or `tcp://host:port`), then `NAME.json` or
///    `NAME/NAME.json` (`{"Name": ..., "Addr": URL, "TLSConfig": ...}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    socket_dirs: Vec<PathBuf>,
    spec_dirs: Vec<PathBuf>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery::new([DEFAULT_SOCKET_DIR], DEFAULT_SPEC_DIRS)
    }
}

/// A `.json` spec file, as dockerd reads it.
#[derive(Deserialize)]
struct JsonSpec {
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "TLSConfig", default)]
    tls_config: Option<serde_json::Value>,
}

impl Discovery {
    /// Discovery in the given socket and spec directories (tests use their
    /// own temp dirs; an engine may add or replace dockerd's).
    pub fn new<S: Into<PathBuf>, T: Into<PathBuf>>(
        socket_dirs: impl IntoIterator<Item = S>,
        spec_dirs: impl IntoIterator<Item = T>,
    ) -> Self {
        Discovery {
            socket_dirs: socket_dirs.into_iter().map(Into::into).collect(),
            spec_dirs: spec_dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// Discovery in `socket_dirs` and `spec_dirs`, each list replacing
    /// dockerd's default when not empty (what a command line's
    /// `--plugin-socket-dir`/`--plugin-spec-dir` mean).
    pub fn in_dirs(socket_dirs: &[PathBuf], spec_dirs: &[PathBuf]) -> Self {
        let d = Discovery::default();
        let or = |v: &[PathBuf], def: &[PathBuf]| if v.is_empty() { def.to_vec() } else { v.to_vec() };
        Discovery::new(or(socket_dirs, &d.socket_dirs), or(spec_dirs, &d.spec_dirs))
    }

    /// The socket directories.
    pub fn socket_dirs(&self) -> &[PathBuf] {
        &self.socket_dirs
    }

    /// The spec directories.
    pub fn spec_dirs(&self) -> &[PathBuf] {
        &self.spec_dirs
    }

    /// Find plugin `name`. [`PluginError::NotFound`] when no socket or spec
    /// file names it; [`PluginError::BadSpec`] for an unreadable or
    /// malformed spec file or an invalid name.
    pub async fn lookup(&self, name: &str) -> Result<PluginSpec, PluginError> {
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || this.lookup_blocking(&name))
            .await
            .map_err(|e| PluginError::BadSpec { name: String::new(), reason: e.to_string() })?
    }

    fn lookup_blocking(&self, name: &str) -> Result<PluginSpec, PluginError> {
        validate_name(name)?;
        for dir in &self.socket_dirs {
            for p in candidates(dir, name, "sock") {
                if std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_socket()) {
                    return Ok(PluginSpec::new(name, PluginAddr::Unix(p.clone()), p));
                }
            }
        }
        for dir in &self.spec_dirs {
            for ext in ["spec", "json"] {
                for p in candidates(dir, name, ext) {
                    if !p.is_file() {
                        continue;
                    }
                    return read_spec(name, &p);
                }
            }
        }
        Err(PluginError::NotFound { name: name.to_string() })
    }

    /// Every plugin the directories name, sorted by name, first match per
    /// name as [`Discovery::lookup`] would find it. Spec files that cannot
    /// be read are logged and skipped (one bad file hides no other plugin).
    pub async fn scan(&self) -> Vec<PluginSpec> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.scan_blocking()).await.unwrap_or_default()
    }

    fn scan_blocking(&self) -> Vec<PluginSpec> {
        let mut names = std::collections::BTreeSet::new();
        let entries = |d: &Path| -> Vec<(String, bool)> {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().is_ok_and(|t| t.is_dir())))
                .collect()
        };
        for dir in &self.socket_dirs {
            for (n, is_dir) in entries(dir) {
                let stem = if is_dir { n.clone() } else { n.strip_suffix(".sock").unwrap_or_default().to_string() };
                if !stem.is_empty() {
                    names.insert(stem);
                }
            }
        }
        for dir in &self.spec_dirs {
            for (n, is_dir) in entries(dir) {
                let stem = if is_dir {
                    n.clone()
                } else {
                    n.strip_suffix(".spec").or_else(|| n.strip_suffix(".json")).unwrap_or_default().to_string()
                };
                if !stem.is_empty() {
                    names.insert(stem);
                }
            }
        }
        let mut out = Vec::new();
        for n in names {
            match self.lookup_blocking(&n) {
                Ok(s) => out.push(s),
                Err(PluginError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(plugin = %n, error = %e, "skipping a plugin whose spec cannot be used"),
            }
        }
        out
    }
}

fn candidates(dir: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    [dir.join(format!("{name}.{ext}")), dir.join(name).join(format!("{name}.{ext}"))]
}

/// A plugin name: what dockerd accepts as a file name stem, nothing that
/// walks out of the directories.
fn validate_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(PluginError::BadSpec { name: name.to_string(), reason: "invalid plugin name".into() })
    }
}

fn read_spec(name: &str, path: &Path) -> Result<PluginSpec, PluginError> {
    let bad = |reason: String| PluginError::BadSpec { name: name.to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
    let addr = if path.extension().is_some_and(|e| e == "json") {
        let spec: JsonSpec =
            serde_json::from_str(&text).map_err(|e| bad(format!("{} is not a plugin spec: {e}", path.display())))?;
        if spec.tls_config.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(PluginError::Unsupported {
                name: name.to_string(),
                what: format!("TLSConfig in {} (TLS to plugins is not implemented)", path.display()),
            });
        }
        PluginAddr::parse(name, &spec.addr)?
    } else {
        PluginAddr::parse(name, &text)?
    };
    Ok(PluginSpec::new(name, addr, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_dockerd() {
        assert_eq!(PluginAddr::parse("p", "unix:///run/p.sock\n").unwrap(), PluginAddr::Unix("/run/p.sock".into()));
        assert_eq!(PluginAddr::parse("p", "tcp://127.0.0.1:8080").unwrap(), PluginAddr::Tcp("127.0.0.1:8080".into()));
        for bad in ["/run/p.sock", "unix://rel.sock", "http://x:1", "tcp://nohost", "tcp://h:1/path"] {
            let e = PluginAddr::parse("p", bad).unwrap_err();
            assert!(e.to_string().contains("plugin p"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn finds_sockets_and_specs_in_dockerd_order() {
        let d = tempfile::tempdir().unwrap();
        let (socks, specs) = (d.path().join("run"), d.path().join("etc"));
        std::fs::create_dir_all(socks.join("nested")).unwrap();
        std::fs::create_dir_all(specs.join("deep")).unwrap();
        let _l1 = std::os::unix::net::UnixListener::bind(socks.join("a.sock")).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(socks.join("nested/nested.sock")).unwrap();
        std::fs::write(specs.join("a.spec"), "tcp://127.0.0.1:1").unwrap(); // the socket wins
        std::fs::write(specs.join("b.spec"), "unix:///x/b.sock\n").unwrap();
        std::fs::write(specs.join("c.json"), r#"{"Name":"c","Addr":"tcp://localhost:9"}"#).unwrap();
        std::fs::write(specs.join("deep/deep.spec"), "tcp://localhost:7").unwrap();
        std::fs::write(specs.join("tls.json"), r#"{"Addr":"tcp://h:1","TLSConfig":{"CAFile":"/x"}}"#).unwrap();
        std::fs::write(specs.join("junk.spec"), "nonsense").unwrap();
        std::fs::write(specs.join("README"), "not a plugin").unwrap();
        let disc = Discovery::new([&socks], [&specs]);
        assert_eq!(disc.lookup("a").await.unwrap().addr, PluginAddr::Unix(socks.join("a.sock")));
        assert_eq!(disc.lookup("nested").await.unwrap().addr, PluginAddr::Unix(socks.join("nested/nested.sock")));
        assert_eq!(disc.lookup("b").await.unwrap().addr, PluginAddr::Unix("/x/b.sock".into()));
        assert_eq!(disc.lookup("c").await.unwrap().addr, PluginAddr::Tcp("localhost:9".into()));
        assert_eq!(disc.lookup("deep").await.unwrap().addr, PluginAddr::Tcp("localhost:7".into()));
        assert!(matches!(disc.lookup("tls").await, Err(PluginError::Unsupported { .. })));
        assert!(matches!(disc.lookup("junk").await, Err(PluginError::BadSpec { .. })));
        assert!(matches!(disc.lookup("none").await, Err(PluginError::NotFound { .. })));
        assert!(matches!(disc.lookup("../etc/a").await, Err(PluginError::BadSpec { .. })));
        let names: Vec<String> = disc.scan().await.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b", "c", "deep", "nested"]);
    }
}
