//! A small bearer-token server for the registry's token auth: issues ES256
//! JWTs with an x5c header whose certificate is the registry's root bundle.
#![allow(dead_code)]

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    pub requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

fn openssl(args: &[&str], dir: &Path) {
    let st = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
}

impl TokenServer {
    pub async fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"], dir.path());
        openssl(
            &["req", "-new", "-x509", "-key", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=test-issuer"],
            dir.path(),
        );
        openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der"], dir.path());
        openssl(&["x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der"], dir.path());
        let key_der = std::fs::read(dir.path().join("key.der")).unwrap();
        let cert_der = std::fs::read(dir.path().join("cert.der")).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_der,
            &rng,
        )
        .expect("load ec key");
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)]});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let expect =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let state = Arc::new((key, rng, header, expect, requests.clone()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let (key, rng, header, expect, requests) = &*state;
                            requests.fetch_add(1, Ordering::SeqCst);
                            let authz = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let mut q = req.uri().query().unwrap_or("").to_string();
                            if req.method() == hyper::Method::POST {
                                // OAuth2 refresh-token grant: scopes space-separated in the form
                                use http_body_util::BodyExt;
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let form: std::collections::HashMap<String, String> =
                                    url::form_urlencoded::parse(&body).into_owned().collect();
                                if form.get("grant_type").map(String::as_str) != Some("refresh_token")
                                    || form.get("refresh_token").map(String::as_str) != Some("alice-refresh-token")
                                {
                                    return Ok(hyper::Response::builder()
                                        .status(401)
                                        .body(Full::new(Bytes::from("bad refresh token")))
                                        .unwrap());
                                }
                                let scopes = form.get("scope").cloned().unwrap_or_default();
                                q = scopes
                                    .split(' ')
                                    .map(|s| {
                                        format!(
                                            "scope={}",
                                            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join("&");
                            } else if authz != *expect {
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(401)
                                        .body(Full::new(Bytes::from("bad credentials")))
                                        .unwrap(),
                                );
                            }
                            let mut access = Vec::new();
                            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                                if k == "scope" {
                                    let parts: Vec<&str> = v.split(':').collect();
                                    if parts.len() == 3 {
                                        access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                                    }
                                }
                            }
                            let now =
                                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                            let claims = serde_json::json!({
                                "iss": "test-issuer", "sub": "alice", "aud": "test-registry",
                                "exp": now + 600, "nbf": now - 60, "iat": now - 60,
                                "jti": format!("{now}-{}", requests.load(Ordering::SeqCst)), "access": access,
                            });
                            let input = format!(
                                "{}.{}",
                                b64(header.to_string().as_bytes()),
                                b64(claims.to_string().as_bytes())
                            );
                            let sig = key.sign(rng, input.as_bytes()).unwrap();
                            let token = format!("{input}.{}", b64(sig.as_ref()));
                            let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600})
                                .to_string();
                            Ok(hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenServer { port, cert: dir.path().join("cert.pem"), requests, _dir: dir, task }
    }
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

/// A proxy in front of a registry that answers `fail_first` requests with
/// 503 (and all of them if `fail_first` is usize::MAX), then forwards.
pub struct FaultProxy {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: String, fail_first: usize) -> FaultProxy {
        Self::start_with(upstream, fail_first, |_, b| b).await
    }

    /// Like [`FaultProxy::start`], with `mutate(path, body)` applied to every forwarded body.
    pub async fn start_with(upstream: String, fail_first: usize, mutate: fn(&str, Bytes) -> Bytes) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let reqs = requests.clone();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (reqs, client, upstream) = (reqs.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (reqs, client, upstream) = (reqs.clone(), client.clone(), upstream.clone());
                        async move {
                            let n = reqs.fetch_add(1, Ordering::SeqCst);
                            if n < fail_first {
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(503)
                                        .body(Full::new(Bytes::from("try later")))
                                        .unwrap(),
                                );
                            }
                            let req_path = req.uri().path().to_string();
                            let url = format!(
                                "http://{upstream}{}",
                                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
                            );
                            let mut rb = client.request(req.method().clone(), url);
                            for (k, v) in req.headers() {
                                if k != "host" {
                                    rb = rb.header(k, v);
                                }
                            }
                            let resp = rb.send().await.unwrap();
                            let mut out = hyper::Response::builder().status(resp.status());
                            for (k, v) in resp.headers() {
                                if k != "content-length" {
                                    out = out.header(k, v);
                                }
                            }
                            let body = mutate(req_path.as_str(), resp.bytes().await.unwrap());
                            out = out.header("content-length", body.len());
                            Ok(out.body(Full::new(body)).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultProxy { port, requests, task }
    }
}
