//! The unix socket: creation (mode 0660, group), peer-credential checks, and
//! one HTTP/1.1 connection task per client (with upgrades for hijacking);
//! and the optional TCP socket with TLS (client certificates required with
//! `--tlsverify`, as dockerd does it).

use crate::api::State;
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
    let cred = stream.peer_cred().ok().map(|c| (c.uid(), c.gid()));
    serve_http(st, stream, allowed, cred).await
}

/// HTTP/1.1 (with upgrades) on one connection; `allowed` false answers 403
/// to every request, naming the peer's `cred` (uid, gid).
async fn serve_http<IO>(st: Arc<State>, io: IO, allowed: bool, cred: Option<(u32, u32)>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let st = st.clone();
        async move {
            let mut resp = if allowed {
                crate::authz::handle(st, req).await
            } else {
                let (uid, gid) = cred.unwrap_or((u32::MAX, u32::MAX));
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
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// TLS for a TCP socket, as dockerd's `--tls` / `--tlsverify` take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate of the CA that signs clients' certificates
    /// (required with `verify_clients`).
    pub ca: Option<PathBuf>,
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// Accept only clients with a certificate signed by `ca` (`--tlsverify`).
    pub verify_clients: bool,
}

/// A TCP socket that speaks the API over TLS.
pub struct TlsListener {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    addr: std::net::SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TlsListener {
    /// The address it listens on (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(what.to_string(), format!("{}: {e}", path.display()))
}

fn server_config(tls: &TlsFiles) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| tls_err("--tlscert", &tls.cert, e))?;
    if certs.is_empty() {
        return Err(tls_err("--tlscert", &tls.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| tls_err("--tlskey", &tls.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("TLS", e.to_string()))?;
    let builder = if tls.verify_clients {
        let ca = tls.ca.as_ref().ok_or_else(|| Error::invalid("--tlsverify", "needs --tlscacert"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err("--tlscacert", ca, e))? {
            roots.add(c.map_err(|e| tls_err("--tlscacert", ca, e))?).map_err(|e| tls_err("--tlscacert", ca, e))?;
        }
        if roots.is_empty() {
            return Err(tls_err("--tlscacert", ca, "no certificate in the file"));
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_err("--tlscacert", ca, e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| tls_err("--tlskey", &tls.key, e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Listen on `addr` (`host:port`; port 0 picks a free one) for TLS clients.
/// The certificate files are read and checked now: a bad one is an error
/// naming it, before anything listens.
pub async fn bind_tls(addr: &str, tls: &TlsFiles) -> Result<TlsListener> {
    let cfg = server_config(tls)?;
    let listener = tokio::net::TcpListener::bind(addr).await.context(|| format!("binding tcp://{addr}"))?;
    let addr = listener.local_addr().context(|| format!("address of tcp://{addr}"))?;
    Ok(TlsListener { listener, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), addr })
}

/// Accept TLS connections forever; a failed handshake (no certificate, an
/// unknown CA) ends that connection only.
pub(crate) async fn serve_tls(state: Arc<State>, l: TlsListener) {
    loop {
        let (tcp, peer) = match l.listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(addr = %l.addr, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (st, acceptor) = (state.clone(), l.acceptor.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve_http(st, tls, true, None).await,
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
