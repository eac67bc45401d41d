//! The TLS TCP socket, as dockerd has it: the real docker CLI with
//! `--tlsverify` and a client certificate works over loopback; no
//! certificate, or one from another CA, is refused; a TCP socket without TLS
//! is refused at start.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A CA, and a certificate it signs for `cn` with these extensions.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn signed(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The `addr=` engined logged for its TLS socket.
fn tls_addr(log: &str) -> String {
    let mut plain = String::new();
    let mut esc = false;
    for c in log.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let line = plain.lines().find(|l| l.contains("API listening on TLS")).unwrap_or_else(|| panic!("{plain}"));
    line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).unwrap().to_string()
}

#[test]
fn docker_cli_over_tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    ca(d, "ca");
    signed(d, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    signed(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
    ca(d, "otherca");
    signed(d, "otherca", "stranger", "extendedKeyUsage=clientAuth\n");
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let e = Engined::start_with(&[
        "-H",
        "tcp://127.0.0.1:0",
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("server.pem"),
        "--tlskey",
        &p("server-key.pem"),
    ]);
    let host = format!("tcp://{}", tls_addr(&e.log()));
    let docker = |tls: &[String], args: &[&str]| {
        Command::new(docker_cli())
            .args(tls)
            .args(["-H", &host])
            .args(args)
            .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    let with = |cert: &str| {
        vec![
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            p("ca.pem"),
            "--tlscert".into(),
            p(&format!("{cert}.pem")),
            "--tlskey".into(),
            p(&format!("{cert}-key.pem")),
        ]
    };
    // With a client certificate from the CA: the API, containers included.
    let o = docker(&with("client"), &["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.41", "{}", show(&o));
    e.load_busybox();
    let o = docker(&with("client"), &["run", "--rm", "bb", "echo", "over-tls"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "over-tls\n", "{}", show(&o));
    // No client certificate: refused.
    let o = docker(&["--tls".into(), "--tlscacert".into(), p("ca.pem")], &["version"]);
    assert!(!o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("1.41"), "{}", show(&o));
    // A certificate from another CA: refused.
    let mut stranger = with("stranger");
    stranger[2] = p("ca.pem");
    let o = docker(&stranger, &["ps"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(e.log().contains("TLS handshake refused"), "{}", e.log());
}

#[test]
fn a_tcp_socket_without_tls_or_with_bad_files_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_engined"))
            .args(["--data-root", &dir.path().join("data").to_string_lossy()])
            .args(["--exec-root", &dir.path().join("run").to_string_lossy()])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["-H", "tcp://127.0.0.1:0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing an unauthenticated TCP socket"), "{}", show(&o));
    let o = run(&["-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscert", "/nonexistent.pem", "--tlskey", "/x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tlscacert"), "{}", show(&o));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let j = junk.to_string_lossy();
    let o = run(&["-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", &j, "--tlscert", &j, "--tlskey", &j]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.pem"), "{}", show(&o));
}
