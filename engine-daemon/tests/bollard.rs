//! bollard (a third-party Docker client: unversioned paths, strict parsing)
//! against engined.

mod common;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListImagesOptions, ListNetworksOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use common::*;
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_drives_engined() {
    let e = Engined::start();
    e.load_busybox();
    let d = Docker::connect_with_unix(e.sock.to_str().unwrap(), 60, bollard::API_DEFAULT_VERSION).unwrap();
    assert_eq!(d.ping().await.unwrap(), "OK");
    let v = d.version().await.unwrap();
    assert_eq!(v.api_version.as_deref(), Some("1.41"));
    let images = d.list_images(None::<ListImagesOptions>).await.unwrap();
    assert_eq!(images[0].repo_tags, ["bb:latest"]);
    let nets = d.list_networks(None::<ListNetworksOptions>).await.unwrap();
    assert!(nets.iter().any(|n| n.name.as_deref() == Some("none")));

    // create, start, wait: bollard turns a non-zero exit into an error carrying the code.
    let body = ContainerCreateBody {
        image: Some("bb:latest".into()),
        cmd: Some(vec!["sh".into(), "-c".into(), "echo from-bollard; exit 3".into()]),
        labels: Some([("org.testcontainers.managed-by".to_string(), "x".to_string())].into()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            publish_all_ports: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c =
        d.create_container(Some(CreateContainerOptionsBuilder::default().name("bol1").build()), body).await.unwrap();
    d.start_container(&c.id, None).await.unwrap();
    // (bollard sends the wait request only when its stream is first polled,
    // after the start: `not-running`, which also answers for a container that
    // has exited already, is the condition that cannot miss the exit.)
    let mut wait =
        d.wait_container(&c.id, Some(WaitContainerOptionsBuilder::default().condition("not-running").build()));
    match wait.next().await.unwrap() {
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => assert_eq!(code, 3),
        other => panic!("expected exit 3, got {other:?}"),
    }
    let logs: Vec<_> = d
        .logs(&c.id, Some(LogsOptionsBuilder::default().stdout(true).stderr(true).build()))
        .map(|l| l.unwrap().to_string())
        .collect()
        .await;
    assert_eq!(logs, ["from-bollard\n"]);
    let info = d.inspect_container(&c.id, None).await.unwrap();
    assert_eq!(info.state.unwrap().exit_code, Some(3));

    // exec with attached output, then its exit code.
    let c2 = d
        .create_container(
            None,
            ContainerCreateBody {
                image: Some("bb".into()),
                cmd: Some(vec!["sleep".into(), "100".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    d.start_container(&c2.id, None).await.unwrap();
    let x = d
        .create_exec(
            &c2.id,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(vec!["sh".into(), "-c".into(), "echo in-exec; exit 4".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match d.start_exec(&x.id, None).await.unwrap() {
        bollard::exec::StartExecResults::Attached { mut output, .. } => {
            let mut got = String::new();
            while let Some(o) = output.next().await {
                got.push_str(&o.unwrap().to_string());
            }
            assert_eq!(got, "in-exec\n");
        }
        other => panic!("not attached: {other:?}"),
    }
    assert_eq!(d.inspect_exec(&x.id).await.unwrap().exit_code, Some(4));

    // A missing container is a 404; removal with v and force, as testcontainers does it.
    let err = d.inspect_container("nosuch", None).await.unwrap_err();
    assert!(matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }), "{err:?}");
    let rm = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    d.remove_container(&c2.id, Some(rm.clone())).await.unwrap();
    d.remove_container(&c.id, Some(rm)).await.unwrap();
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty());
}
