//! The unix socket: creation (mode 0660, group), peer-credential checks, and
//! one HTTP/1.1 connection task per client (with upgrades for hijacking).

use crate::api::{self, State};
use crate::http as h;
use engine_core::{Error, IoContext, Result};
use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};

/// Who may use the socket besides root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Allowed user ids (root is always allowed).
    pub uids: Vec<u32>,
    /// Allowed group ids: a client whose primary or supplementary group is
    /// one of these is allowed.
    pub gids: Vec<u32>,
}

impl AccessPolicy {
    /// Is a peer with these credentials allowed?
    pub fn allows(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        if uid == 0 || self.uids.contains(&uid) || self.gids.contains(&gid) {
            return true;
        }
        if self.gids.is_empty() {
            return false;
        }
        pid.map(supplementary_groups).unwrap_or_default().iter().any(|g| self.gids.contains(g))
    }
}

fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        })
        .unwrap_or_default()
}

/// Look up a group's gid by name.
pub fn group_gid(name: &str) -> Result<Option<u32>> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        Ok(None) => Ok(None),
        Err(e) => Err(Error::io(format!("looking up group {name}"), std::io::Error::from(e))),
    }
}

/// Create the listening socket at `path`: a stale socket (nobody listening)
/// is removed, a live one is a conflict; the new one gets mode 0660 and the
/// group `gid` (when given).
pub fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() || std::fs::symlink_metadata(path).is_ok() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::conflict("socket", path.display().to_string(), "another daemon is listening on it"))
            }
            Err(_) => {
                tracing::info!(path = %path.display(), "removing stale socket");
                std::fs::remove_file(path).context(|| format!("removing stale socket {}", path.display()))?;
            }
        }
    }
    let listener = UnixListener::bind(path).context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .context(|| format!("chmod 0660 {}", path.display()))?;
    if let Some(g) = gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(g)))
            .map_err(|e| Error::io(format!("chown :{g} {}", path.display()), std::io::Error::from(e)))?;
    }
    Ok(listener)
}

/// Accept connections on `listener` forever.
pub(crate) async fn serve(state: Arc<State>, listener: UnixListener, path: PathBuf) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let st = state.clone();
        tokio::spawn(connection(st, stream));
    }
}

async fn connection(st: Arc<State>, stream: UnixStream) {
    let allowed = match stream.peer_cred() {
        Ok(c) => st.config.access.allows(c.uid(), c.gid(), c.pid()),
        Err(e) => {
            tracing::warn!(error = %e, "no peer credentials; refusing");
            false
        }
    };
    let cred = stream.peer_cred().ok();
    let svc = service_fn(move |req| {
        let st = st.clone();
        async move {
            let mut resp = if allowed {
                api::handle(st, req).await
            } else {
                let (uid, gid) = cred.map(|c| (c.uid(), c.gid())).unwrap_or((u32::MAX, u32::MAX));
                tracing::info!(uid, gid, "refused a client that is not root or in the socket's group");
                h::error_status(
                    StatusCode::FORBIDDEN,
                    format!(
                        "permission denied: uid {uid} (gid {gid}) may not use this socket; it is for root and the socket's group"
                    ),
                )
            };
            h::add_common_headers(&mut resp);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
