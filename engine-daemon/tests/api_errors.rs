//! Bad input over raw HTTP: Docker-style errors with the right status, and nothing created.

mod common;
use common::*;

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("not a Docker error body: {body:?}"))
}

fn nothing_created(e: &Engined) {
    let (st, body) = e.http("GET", "/v1.41/containers/json?all=1", b"");
    assert_eq!(st, 200);
    assert_eq!(body.trim(), "[]", "a container was left behind");
    let dir = e.data_root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&dir).map(|r| r.flatten().map(|d| d.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "state left in {}: {left:?}", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(e.dir.path().to_str().unwrap()), "a mount was left behind");
}

#[test]
fn bad_create_requests_get_docker_errors_and_create_nothing() {
    let e = Engined::start();
    e.load_busybox();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1.41/containers/create", b"{not json".to_vec(), 400, "malformed JSON"),
        ("/v1.41/containers/create", b"".to_vec(), 400, "empty"),
        ("/v1.41/containers/create", br#"{"Image":"bb","Tty":"yes"}"#.to_vec(), 400, "Tty"),
        (
            "/v1.41/containers/create",
            br#"{"Image":"bb","HostConfig":{"Memory":"lots"}}"#.to_vec(),
            400,
            "HostConfig.Memory",
        ),
        ("/v1.41/containers/create", br#"{"Image":"bb","Cmd":[1,2]}"#.to_vec(), 400, "Cmd"),
        ("/v1.41/containers/create", br#"{"Image":"bb","HostConfig":{"Memory":-1}}"#.to_vec(), 400, "Memory"),
        (
            "/v1.41/containers/create",
            br#"{"Image":"bb","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#.to_vec(),
            400,
            "restart policy",
        ),
        ("/v1.41/containers/create", br#"{"Image":"bb","Env":["=x"]}"#.to_vec(), 400, "environment variable"),
        ("/v1.41/containers/create", br#"{"Image":"bb","WorkingDir":"relative"}"#.to_vec(), 400, "absolute path"),
        ("/v1.41/containers/create?name=bad%20name", br#"{"Image":"bb"}"#.to_vec(), 400, "Invalid container name"),
        ("/v1.41/containers/create?name=-x", br#"{"Image":"bb"}"#.to_vec(), 400, "Invalid container name"),
        ("/v1.41/containers/create", br#"{"Image":"Not A/Reference"}"#.to_vec(), 400, "invalid reference format"),
        (
            "/v1.41/containers/create",
            br#"{"Image":"127.0.0.1:1/nope"}"#.to_vec(),
            404,
            "No such image: 127.0.0.1:1/nope:latest",
        ),
        (
            "/v1.41/containers/create",
            br#"{"Image":"bb","HostConfig":{"NetworkMode":"mynet"}}"#.to_vec(),
            // 400, not 404: the docker CLI pulls the image on any 404 from create.
            400,
            "network mynet not found",
        ),
        ("/containers/create", br#"{"Image":"bb","HostConfig":{"Binds":["/no/such/dir:/x"]}}"#.to_vec(), 400, ""),
        // Without a network driver, -p is refused, naming the option.
        (
            "/containers/create",
            br#"{"Image":"bb","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8080"}]}}}"#.to_vec(),
            400,
            "--network-driver bridge",
        ),
        (
            "/containers/create",
            br#"{"Image":"bb","HostConfig":{"NetworkMode":"host","PortBindings":{"80/tcp":null}}}"#.to_vec(),
            400,
            "network mode",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (st, resp) = e.http("POST", path, &body);
        assert_eq!(st, status, "{path} {}: {resp}", String::from_utf8_lossy(&body));
        let m = message(&resp);
        assert!(m.contains(needle), "{path} {}: {m:?} lacks {needle:?}", String::from_utf8_lossy(&body));
        nothing_created(&e);
    }
    // A HostConfig key engined does not implement is refused unless it holds
    // its zero value (the docker CLI sends every key, zeros included).
    let (st, resp) =
        e.http("POST", "/v1.41/containers/create", br#"{"Image":"bb","HostConfig":{"Also":1,"ShmSize":0}}"#);
    assert_eq!(st, 400, "{resp}");
    assert!(message(&resp).contains("HostConfig.Also"), "{resp}");
    nothing_created(&e);
    // The same for a top-level key (a field of a newer API, a health check).
    let (st, resp) = e.http("POST", "/v1.41/containers/create", br#"{"Image":"bb","FutureField":{"x":[1]}}"#);
    assert_eq!(st, 400, "{resp}");
    assert!(message(&resp).contains("field FutureField"), "{resp}");
    nothing_created(&e);
    // Zero-valued unknown keys are accepted, at the top level and in HostConfig.
    let (st, resp) = e.http(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image":"bb","FutureField":{"x":[]},"Healthcheck":null,"HostConfig":{"Also":0,"Ulimits":[],"MemorySwappiness":-1}}"#,
    );
    assert_eq!(st, 201, "{resp}");
    let id = serde_json::from_str::<serde_json::Value>(&resp).unwrap()["Id"].as_str().unwrap().to_string();
    let (st, _) = e.http("DELETE", &format!("/containers/{id}?force=1"), b"");
    assert_eq!(st, 204);
    // An oversized JSON body is refused before it is parsed.
    let mut big = br#"{"Image":"bb","Env":[""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 << 20));
    big.extend_from_slice(br#""]}"#);
    let (st, resp) = e.http("POST", "/v1.41/containers/create", &big);
    assert_eq!(st, 413, "{resp}");
    assert!(message(&resp).contains("limit"));
    nothing_created(&e);
}

#[test]
fn unknown_objects_and_state_conflicts() {
    let e = Engined::start();
    e.load_busybox();
    for (method, path, status, needle) in [
        ("GET", "/v1.41/containers/nosuch/json", 404, "No such container: nosuch"),
        ("POST", "/v1.41/containers/nosuch/start", 404, "No such container: nosuch"),
        ("DELETE", "/v1.41/containers/nosuch", 404, "No such container: nosuch"),
        ("GET", "/v1.41/images/nosuch/json", 404, "No such image"),
        ("DELETE", "/v1.41/images/nosuch", 404, "No such image"),
        ("GET", "/v1.41/networks/nosuch", 404, "network nosuch not found"),
        ("GET", "/v1.41/volumes/nosuch", 404, "no such volume"),
        ("GET", "/v1.41/plugins/nosuch/json", 404, "not found"),
        ("GET", "/v1.41/exec/nosuch/json", 404, "No such exec instance"),
        ("GET", "/v1.41/no/such/route", 404, "page not found"),
        ("POST", "/v1.41/containers/nosuch/exec", 404, ""),
        ("POST", "/v1.41/images/bb/tag?repo=Bad%20Repo&tag=x", 400, "invalid reference format"),
        ("POST", "/v1.41/images/create?fromImage=UPPER&tag=x", 400, "invalid reference format"),
        ("POST", "/v1.41/containers/nosuch/wait?condition=whenever", 400, "invalid condition"),
    ] {
        let body: &[u8] = if path.ends_with("/exec") { br#"{"Cmd":["true"]}"# } else { b"" };
        let (st, resp) = e.http(method, path, body);
        assert_eq!(st, status, "{method} {path}: {resp}");
        assert!(message(&resp).contains(needle), "{method} {path}: {resp}");
    }
    // Start twice: 304. Stop twice: 304. Exec in a stopped container: 409.
    let (st, resp) = e.http("POST", "/containers/create?name=c1", br#"{"Image":"bb","Cmd":["sleep","100"]}"#);
    assert_eq!(st, 201, "{resp}");
    assert_eq!(e.http("POST", "/containers/c1/start", b"").0, 204);
    assert_eq!(e.http("POST", "/containers/c1/start", b"").0, 304);
    let (st, resp) = e.http("DELETE", "/containers/c1", b"");
    assert_eq!(st, 409, "{resp}");
    assert_eq!(e.http("POST", "/containers/c1/kill", b"").0, 204);
    let (st, resp) = e.http("POST", "/containers/c1/wait", b"");
    assert_eq!(st, 200);
    assert_eq!(resp.trim(), r#"{"Error":null,"StatusCode":137}"#);
    assert_eq!(e.http("POST", "/containers/c1/stop", b"").0, 304);
    let (st, resp) = e.http("POST", "/containers/c1/exec", br#"{"Cmd":["true"]}"#);
    assert_eq!(st, 409, "{resp}");
    assert!(message(&resp).contains("is not running"));
    let (st, resp) = e.http("POST", "/containers/create?name=c1", br#"{"Image":"bb"}"#);
    assert_eq!(st, 409, "{resp}");
    assert!(message(&resp).contains("already in use"));
    // Ping, both verbs and both path forms, with the negotiation headers.
    let (st, body) = e.http("GET", "/_ping", b"");
    assert_eq!((st, body.as_str()), (200, "OK"));
    let (st, _) = e.http("HEAD", "/v1.41/_ping", b"");
    assert_eq!(st, 200);
}

#[test]
fn socket_mode_and_peer_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let e = Engined::start();
    let mode = std::fs::metadata(&e.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    // Let anyone connect at the file level, so the peer-credential check is what refuses.
    std::fs::set_permissions(&e.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", &docker_cli(), "-H", &e.host(), "version"])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("permission denied"), "{}", show(&o));
    // Root is still served.
    assert!(e.docker(&["version"]).status.success());
    // An allowed uid is served.
    let e2 = Engined::start_with(&["--allow-uid", "65534"]);
    std::fs::set_permissions(&e2.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", &docker_cli(), "-H", &e2.host(), "info"])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn second_daemon_on_a_live_socket_is_refused_and_stale_socket_is_replaced() {
    let mut e = Engined::start();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_engined"))
        .args(["-H", &e.host(), "--data-root"])
        .arg(e.dir.path().join("other"))
        .arg("--exec-root")
        .arg(e.dir.path().join("other-run"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another daemon is listening"), "{}", show(&o));
    e.kill9();
    assert!(e.sock.exists(), "SIGKILL leaves the socket file");
    e.spawn();
    assert!(e.docker(&["version"]).status.success());
    // SIGTERM: engined removes its socket and pid file and exits 0.
    let pid = e.pid() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(eventually(10, || !e.sock.exists()), "socket left after SIGTERM");
    assert!(eventually(10, || !e.dir.path().join("run/engined.pid").exists()), "pid file left after SIGTERM");
    e.kill9();
}

#[test]
fn broken_uploads_leave_nothing() {
    use std::io::{Read, Write};
    let e = Engined::start();
    // A load whose body breaks off half-way.
    let mut s = std::os::unix::net::UnixStream::connect(&e.sock).unwrap();
    s.write_all(b"POST /v1.41/images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n").unwrap();
    s.write_all(&[0u8; 5000]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    drop(s);
    // Garbage that is not a tar.
    let (st, body) = e.http("POST", "/v1.41/images/load?quiet=1", b"this is not a tar archive at all");
    assert!(st >= 400 || body.contains("error"), "{st} {body}");
    // An empty import.
    let (st, body) = e.http("POST", "/v1.41/images/create?fromSrc=-&repo=x", b"");
    assert_eq!(st, 400, "{body}");
    let tmp = e.data_root().join("tmp");
    assert!(
        eventually(10, || std::fs::read_dir(&tmp).map(|d| d.count() == 0).unwrap_or(true)),
        "temp files left in {}",
        tmp.display()
    );
    let (st, body) = e.http("GET", "/v1.41/images/json", b"");
    assert_eq!((st, body.trim()), (200, "[]"));
}
