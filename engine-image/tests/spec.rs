//! Image config to runtime spec (Docker's rules).

use engine_core::ContainerConfig;
use engine_image::spec::{self, apply_image_config, resolve_user};
use oci_spec::image::ImageConfiguration;

fn image(cfg: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap()
}

fn rootfs() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("etc")).unwrap();
    std::fs::write(
        d.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(d.path().join("etc/group"), "root:x:0:\nusers:x:100:alice\nalice:x:1000:\nwheel:x:10:alice,bob\n")
        .unwrap();
    d
}

fn ids(u: &oci_spec::runtime::User) -> (u32, u32, Vec<u32>) {
    (u.uid(), u.gid(), u.additional_gids().clone().unwrap_or_default())
}

#[test]
fn users_resolve_through_the_image_files() {
    let r = rootfs();
    assert_eq!(ids(&resolve_user(r.path(), "").unwrap()), (0, 0, vec![]));
    assert_eq!(ids(&resolve_user(r.path(), "alice").unwrap()), (1000, 1000, vec![100, 10]));
    assert_eq!(ids(&resolve_user(r.path(), "bob").unwrap()), (1001, 100, vec![10]));
    assert_eq!(ids(&resolve_user(r.path(), "1000").unwrap()), (1000, 1000, vec![100, 10]));
    assert_eq!(ids(&resolve_user(r.path(), "alice:wheel").unwrap()), (1000, 10, vec![100]));
    assert_eq!(ids(&resolve_user(r.path(), "4242:4343").unwrap()), (4242, 4343, vec![]));
    assert_eq!(ids(&resolve_user(r.path(), "4242").unwrap()), (4242, 0, vec![]));
    let e = resolve_user(r.path(), "mallory").unwrap_err();
    assert!(e.to_string().contains("mallory") && e.to_string().contains("passwd"), "{e}");
    let e = resolve_user(r.path(), "alice:nogroup").unwrap_err();
    assert!(e.to_string().contains("nogroup"), "{e}");
}

#[test]
fn passwd_symlinked_out_of_the_rootfs_is_read_inside() {
    let r = tempfile::tempdir().unwrap();
    std::fs::create_dir(r.path().join("etc")).unwrap();
    // /etc/passwd -> /etc/passwd of the host: resolved inside the rootfs (missing there)
    std::os::unix::fs::symlink("/etc/passwd", r.path().join("etc/passwd")).unwrap();
    assert!(resolve_user(r.path(), "root").is_err(), "host passwd not read");
}

#[test]
fn entrypoint_cmd_env_workdir_rules() {
    let r = rootfs();
    let img = image(serde_json::json!({
        "Entrypoint": ["/bin/ep"], "Cmd": ["default"], "Env": ["PATH=/img/bin", "A=1"],
        "WorkingDir": "/work", "User": "alice", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}}, "Labels": {"l": "v"}, "StopSignal": "SIGQUIT"
    }));
    let run = |c: ContainerConfig| {
        let mut s = oci_spec::runtime::Spec::default();
        apply_image_config(&mut s, &img, r.path(), &c).unwrap();
        s.process().clone().unwrap()
    };
    let p = run(ContainerConfig::default());
    assert_eq!(p.args().clone().unwrap(), vec!["/bin/ep", "default"]);
    assert_eq!(p.env().clone().unwrap(), vec!["PATH=/img/bin", "A=1"]);
    assert_eq!(p.cwd().to_str(), Some("/work"));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    // cmd override keeps the entrypoint
    let p = run(ContainerConfig::default().cmd(Some(vec!["x".into()])));
    assert_eq!(p.args().clone().unwrap(), vec!["/bin/ep", "x"]);
    // entrypoint override drops the image cmd
    let p = run(ContainerConfig::default().entrypoint(Some(vec!["/bin/sh".into()])));
    assert_eq!(p.args().clone().unwrap(), vec!["/bin/sh"]);
    let p = run(ContainerConfig::default()
        .entrypoint(Some(vec!["/bin/sh".into()]))
        .cmd(Some(vec!["-c".into(), "true".into()]))
        .env(vec!["A=2".into(), "B=3".into()])
        .user(Some("1001:10".into()))
        .working_dir(Some("/tmp".into())));
    assert_eq!(p.args().clone().unwrap(), vec!["/bin/sh", "-c", "true"]);
    assert_eq!(p.env().clone().unwrap(), vec!["PATH=/img/bin", "A=2", "B=3"]);
    assert_eq!((p.user().uid(), p.user().gid()), (1001, 10));
    assert_eq!(p.cwd().to_str(), Some("/tmp"));
    assert_eq!(spec::exposed_ports(&img), vec!["53/udp", "80/tcp"]);
    assert_eq!(spec::volumes(&img), vec!["/data"]);
    assert_eq!(spec::labels(&img).get("l").map(String::as_str), Some("v"));
    assert_eq!(spec::stop_signal(&img).unwrap().map(|s| s.number()), Some(3));
    // no command at all is an error; no PATH gets the default
    let bare = image(serde_json::json!({}));
    let mut s = oci_spec::runtime::Spec::default();
    let e = apply_image_config(&mut s, &bare, r.path(), &ContainerConfig::default().image("bare".into())).unwrap_err();
    assert!(e.to_string().contains("no command") && e.to_string().contains("bare"), "{e}");
    let c = ContainerConfig::default().cmd(Some(vec!["/bin/true".into()]));
    apply_image_config(&mut s, &bare, r.path(), &c).unwrap();
    assert_eq!(s.process().clone().unwrap().env().clone().unwrap(), vec![spec::DEFAULT_PATH.to_string()]);
}
