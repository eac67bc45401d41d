//! The streaming server behind `Exec`, `Attach` and `PortForward`: the RPC
//! hands out a URL with a one-time token; the client (kubelet's proxy,
//! kubectl) connects to it with WebSocket and Kubernetes' channel
//! protocol (`v5.channel.k8s.io` or `v4.channel.k8s.io`): every binary
//! message starts with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 the
//! error channel (a `metav1.Status` JSON carrying the exit code), 4
//! terminal resize (`{"Width":..,"Height":..}`), and with v5, 255 a close
//! signal (`[255, 0]`: stdin ends). Port forwarding uses channel pairs per
//! port (data `2i`, error `2i+1`); the server's first frame on each
//! channel carries the port, little-endian.

use engine_core::{AttachOptions, ConsoleSize, Error, ExecConfig, LifecycleManager, Result, StdStream};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;

/// How long a token waits for its client (containerd's default).
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// The subprotocols served, best first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What a token was issued for.
#[derive(Clone, Debug)]
pub(crate) enum Session {
    /// Run `cmd` in the container.
    Exec { container: String, cmd: Vec<String>, tty: bool, stdin: bool, stdout: bool, stderr: bool },
    /// The container's init's stdio.
    Attach { container: String, stdin: bool, stdout: bool, stderr: bool },
    /// Ports of the pod's network namespace (its sandbox's).
    PortForward { sandbox: String, ports: Vec<u16> },
}

impl Session {
    fn kind(&self) -> &'static str {
        match self {
            Session::Exec { .. } => "exec",
            Session::Attach { .. } => "attach",
            Session::PortForward { .. } => "portforward",
        }
    }
}

/// The server: a TCP listener and the tokens handed out.
pub(crate) struct Streaming {
    base: String,
    listener: Mutex<Option<tokio::net::TcpListener>>,
    tokens: Mutex<HashMap<String, (Instant, Session)>>,
}

impl Streaming {
    /// Serve on `listener` (its address goes into the URLs).
    pub(crate) fn new(listener: tokio::net::TcpListener) -> Result<Arc<Streaming>> {
        let addr = listener.local_addr().map_err(|e| Error::io("streaming server address", e))?;
        Ok(Arc::new(Streaming {
            base: format!("http://{addr}"),
            listener: Mutex::new(Some(listener)),
            tokens: Mutex::new(HashMap::new()),
        }))
    }

    /// A one-time URL for `session`.
    pub(crate) fn url(&self, session: Session) -> String {
        let token = engine_core::random_hex64();
        let kind = session.kind();
        let mut t = self.tokens.lock().unwrap();
        t.retain(|_, (at, _)| at.elapsed() < TOKEN_TTL);
        t.insert(token.clone(), (Instant::now(), session));
        format!("{}/{kind}/{token}", self.base)
    }

    fn take(&self, kind: &str, token: &str) -> Option<Session> {
        let mut t = self.tokens.lock().unwrap();
        match t.remove(token) {
            Some((at, s)) if at.elapsed() < TOKEN_TTL && s.kind() == kind => Some(s),
            _ => None,
        }
    }

    /// Accept clients until the task is dropped.
    pub(crate) async fn serve(self: Arc<Self>, mgr: Arc<dyn LifecycleManager>) {
        let Some(listener) = self.listener.lock().unwrap().take() else { return };
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("streaming server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (this, mgr) = (self.clone(), mgr.clone());
            tokio::spawn(async move {
                if let Err(e) = this.connection(mgr, tcp).await {
                    tracing::debug!("streaming session: {e}");
                }
            });
        }
    }

    // The handshake callback's error type is tungstenite's (an HTTP response).
    #[allow(clippy::result_large_err)]
    async fn connection(self: Arc<Self>, mgr: Arc<dyn LifecycleManager>, tcp: tokio::net::TcpStream) -> Result<()> {
        let picked: Arc<Mutex<Option<(Session, bool)>>> = Arc::default();
        let p = picked.clone();
        let this = self.clone();
        let callback = move |req: &Request, mut resp: Response| -> std::result::Result<Response, ErrorResponse> {
            let refuse = |code: StatusCode, msg: String| {
                let mut r = ErrorResponse::new(Some(msg));
                *r.status_mut() = code;
                r
            };
            let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
            let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let offered: Vec<String> = req
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
                .collect();
            let Some(proto) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)) else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "subprotocols {offered:?}: this server speaks {} over WebSocket (not SPDY)",
                        PROTOCOLS.join(", ")
                    ),
                ));
            };
            let Some(mut session) = this.take(kind, token) else {
                return Err(refuse(StatusCode::NOT_FOUND, format!("{kind} session: unknown, used or expired token")));
            };
            // Port forward: the request may name the ports (`?ports=80,81` or repeated).
            if let (Session::PortForward { ports, .. }, Some(q)) = (&mut session, req.uri().query()) {
                let mut asked = Vec::new();
                for (k, v) in q.split('&').filter_map(|kv| kv.split_once('=')) {
                    if k == "ports" || k == "port" {
                        for p in v.split(',').filter(|p| !p.is_empty()) {
                            match p.parse::<u16>() {
                                Ok(n) if n > 0 => asked.push(n),
                                _ => return Err(refuse(StatusCode::BAD_REQUEST, format!("port {p:?} is not 1-65535"))),
                            }
                        }
                    }
                }
                if !asked.is_empty() {
                    *ports = asked;
                }
            }
            resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto));
            *p.lock().unwrap() = Some((session, *proto == PROTOCOLS[0]));
            Ok(resp)
        };
        let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .map_err(|e| Error::Other(format!("WebSocket handshake: {e}")))?;
        let Some((session, v5)) = picked.lock().unwrap().take() else { return Ok(()) };
        match session {
            Session::Exec { container, cmd, tty, stdin, stdout, stderr } => {
                exec(
                    mgr,
                    ws,
                    v5,
                    container,
                    cmd,
                    tty,
                    AttachOptions::default().stdin(stdin).stdout(stdout).stderr(stderr),
                )
                .await
            }
            Session::Attach { container, stdin, stdout, stderr } => {
                attach(mgr, ws, v5, container, AttachOptions::default().stdin(stdin).stdout(stdout).stderr(stderr))
                    .await
            }
            Session::PortForward { sandbox, ports } => port_forward(mgr, ws, sandbox, ports).await,
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The `metav1.Status` the error channel carries at the end.
fn status_json(code: Option<i32>, err: Option<&str>) -> Vec<u8> {
    let v = match (code, err) {
        (_, Some(msg)) => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError",
        }),
        (Some(0) | None, None) => serde_json::json!({"metadata": {}, "status": "Success"}),
        (Some(c), None) => serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {c}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]},
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What the client sends: stdin, resizes, v5's close signal.
enum Input {
    Stdin(Vec<u8>),
    Resize(ConsoleSize),
    CloseStdin,
}

fn input(m: Message, v5: bool) -> Option<Input> {
    let data = match m {
        Message::Binary(b) => b.to_vec(),
        _ => return None,
    };
    let (&ch, rest) = data.split_first()?;
    match ch {
        STDIN => Some(Input::Stdin(rest.to_vec())),
        RESIZE => {
            let v: serde_json::Value = serde_json::from_slice(rest).ok()?;
            let dim = |k: &str| v.get(k).and_then(|x| x.as_u64()).and_then(|x| u16::try_from(x).ok());
            Some(Input::Resize(ConsoleSize { height: dim("Height")?, width: dim("Width")? }))
        }
        CLOSE if v5 && rest.first() == Some(&STDIN) => Some(Input::CloseStdin),
        _ => None,
    }
}

/// Pump an attach: output to channels 1/2, input from the client; returns
/// once the output ended. `resize` applies a terminal size.
async fn pump<F, Fut>(
    ws: Ws,
    v5: bool,
    att: engine_core::Attach,
    resize: F,
    finish: impl std::future::Future<Output = Vec<u8>>,
) -> Result<()>
where
    F: Fn(ConsoleSize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let (mut tx, mut rx) = ws.split();
    let mut stdin = att.stdin;
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
            match input(m, v5) {
                Some(Input::Stdin(d)) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&d).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(Input::CloseStdin) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Some(Input::Resize(s)) => {
                    if let Err(e) = resize(s).await {
                        tracing::debug!("resize: {e}");
                    }
                }
                None => {}
            }
        }
        // The client went away: the process's stdin ends.
        if let Some(mut w) = stdin.take() {
            let _ = w.shutdown().await;
        }
    });
    let mut output = att.output;
    let mut res = Ok(());
    while let Some(o) = output.next().await {
        let o = match o {
            Ok(o) => o,
            Err(e) => {
                res = Err(e);
                break;
            }
        };
        let ch = if o.stream == StdStream::Stderr { STDERR } else { STDOUT };
        if tx.send(frame(ch, &o.data)).await.is_err() {
            reader.abort();
            return Ok(());
        }
    }
    let status = match &res {
        Ok(()) => finish.await,
        Err(e) => status_json(None, Some(&e.to_string())),
    };
    let _ = tx.send(frame(ERROR, &status)).await;
    let _ = tx.send(Message::Close(None)).await;
    let _ = tx.flush().await;
    // Let the client answer the close before the socket goes: closing it with
    // the client's last frames unread makes the kernel reset the connection,
    // and the client may then lose the status it has not read yet.
    let mut reader = reader;
    if tokio::time::timeout(CLOSE_GRACE, &mut reader).await.is_err() {
        reader.abort();
    }
    res
}

/// How long a closing server waits for the client's close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

async fn refuse(ws: Ws, e: &Error) -> Result<()> {
    let (mut tx, mut rx) = ws.split();
    let _ = tx.send(frame(ERROR, &status_json(None, Some(&e.to_string())))).await;
    let _ = tx.send(Message::Close(None)).await;
    let _ = tx.flush().await;
    // As in `pump`: read until the client's close (bounded), so its frames are
    // not left unread when the socket closes.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(m)) = rx.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    Ok(())
}

async fn exec(
    mgr: Arc<dyn LifecycleManager>,
    ws: Ws,
    v5: bool,
    container: String,
    cmd: Vec<String>,
    tty: bool,
    opts: AttachOptions,
) -> Result<()> {
    let exec_id = match mgr.exec(&container, ExecConfig::default().cmd(cmd).tty(tty).open_stdin(opts.stdin)).await {
        Ok(id) => id,
        Err(e) => return refuse(ws, &e).await,
    };
    let att = match mgr.exec_attach(&exec_id, opts).await {
        Ok(a) => a,
        Err(e) => return refuse(ws, &e).await,
    };
    let (m, id) = (mgr.clone(), exec_id.clone());
    let resize = move |s: ConsoleSize| {
        let (m, id) = (m.clone(), id.clone());
        async move { m.exec_resize(&id, s).await }
    };
    let finish = async move {
        match mgr.exec_wait(&exec_id).await {
            Ok(st) => status_json(Some(st.code), None),
            Err(e) => status_json(None, Some(&e.to_string())),
        }
    };
    pump(ws, v5, att, resize, finish).await
}

async fn attach(
    mgr: Arc<dyn LifecycleManager>,
    ws: Ws,
    v5: bool,
    container: String,
    opts: AttachOptions,
) -> Result<()> {
    let att = match mgr.attach(&container, opts).await {
        Ok(a) => a,
        Err(e) => return refuse(ws, &e).await,
    };
    let (m, id) = (mgr.clone(), container.clone());
    let resize = move |s: ConsoleSize| {
        let (m, id) = (m.clone(), id.clone());
        async move { m.resize(&id, s).await }
    };
    pump(ws, v5, att, resize, async { status_json(Some(0), None) }).await
}

/// A TCP connection to `127.0.0.1:port` made inside the network namespace
/// of process `pid` (a thread of its own enters it; the socket stays in
/// that namespace).
async fn connect_in(pid: i32, port: u16) -> Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = (|| -> std::io::Result<std::net::TcpStream> {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(10))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })();
        let _ = tx.send(r);
    });
    let s = rx
        .await
        .map_err(|_| Error::Other("port forward: the connecting thread died".into()))?
        .map_err(|e| Error::io(format!("connecting to port {port} in the pod"), e))?;
    tokio::net::TcpStream::from_std(s).map_err(|e| Error::io("registering the port forward socket", e))
}

async fn port_forward(mgr: Arc<dyn LifecycleManager>, ws: Ws, sandbox: String, ports: Vec<u16>) -> Result<()> {
    let pid = match mgr.inspect(&sandbox).await.map(|i| i.pid) {
        Ok(Some(pid)) => pid,
        Ok(None) => return refuse(ws, &Error::conflict("pod sandbox", &sandbox, "is not running")).await,
        Err(e) => return refuse(ws, &e).await,
    };
    let (mut tx, mut rx) = ws.split();
    // The server's first frame on each channel names its port.
    for (i, p) in ports.iter().enumerate() {
        let le = p.to_le_bytes();
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            tx.send(frame(ch, &le)).await.map_err(|e| Error::Other(format!("port forward: {e}")))?;
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut writers = HashMap::new();
    let mut tasks = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data, err) = (2 * i as u8, 2 * i as u8 + 1);
        match connect_in(pid, port).await {
            Ok(s) => {
                let (mut r, w) = s.into_split();
                writers.insert(data, w);
                let out = out_tx.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if out.send(frame(data, &buf[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                let _ = out_tx.send(frame(err, e.to_string().as_bytes())).await;
            }
        }
    }
    drop(out_tx);
    let sender = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
        // Every pod connection closed.
        let _ = tx.send(Message::Close(None)).await;
    });
    while let Some(Ok(m)) = rx.next().await {
        match m {
            Message::Binary(b) => {
                if let Some((ch, data)) = b.split_first() {
                    if let Some(w) = writers.get_mut(ch) {
                        if w.write_all(data).await.is_err() {
                            writers.remove(ch);
                        }
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    for t in tasks {
        t.abort();
    }
    sender.abort();
    Ok(())
}
