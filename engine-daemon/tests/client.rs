//! engine-client's typed API against engined: typed errors, exit codes as
//! values, owned streams, hijacked attach with half-close.

mod common;
use common::*;
use engine_client::frames::FrameStream;
use engine_client::models::*;
use engine_client::{AttachParams, Client, LogsParams};
use futures::StreamExt;
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

fn cfg(cmd: &[&str]) -> ContainerConfigBody {
    ContainerConfigBody {
        image: Some("bb:latest".into()),
        cmd: Some(StrSlice(cmd.iter().map(|s| s.to_string()).collect())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_end_to_end() {
    let e = Engined::start();
    let c = Client::new(&e.sock);
    assert_eq!(c.ping().await.unwrap(), "1.41");
    // load through the client, from a file.
    let tar = busybox_archive(e.dir.path(), "bb:latest");
    let f = tokio::fs::File::open(&tar).await.unwrap();
    let msgs: Vec<_> = c.load(f, true).await.unwrap().collect().await;
    assert!(
        msgs.iter().any(|m| m.as_ref().unwrap().stream.as_deref() == Some("Loaded image: bb:latest\n")),
        "{msgs:?}"
    );
    assert_eq!(c.list_images().await.unwrap()[0].repo_tags.as_deref(), Some(&["bb:latest".to_string()][..]));

    // Exit code as a value.
    let id = c.create_container(Some("exit3"), &cfg(&["sh", "-c", "echo o; echo e >&2; exit 3"])).await.unwrap().id;
    let wait = c.wait_ready(&id, "next-exit").await.unwrap();
    assert!(c.start(&id).await.unwrap());
    assert_eq!(wait.exit_code().await.unwrap(), 3);
    let frames: Vec<_> = c.logs(&id, &LogsParams::default()).await.unwrap().map(|f| f.unwrap()).collect().await;
    let stdout: Vec<u8> =
        frames.iter().filter(|f| f.stream == FrameStream::Stdout).flat_map(|f| f.data.to_vec()).collect();
    let stderr: Vec<u8> =
        frames.iter().filter(|f| f.stream == FrameStream::Stderr).flat_map(|f| f.data.to_vec()).collect();
    assert_eq!((stdout.as_slice(), stderr.as_slice()), (&b"o\n"[..], &b"e\n"[..]));

    // Typed errors.
    let err = c.inspect_container("nosuch").await.unwrap_err();
    assert!(matches!(err, engine_core::Error::NotFound { kind: "container", ref id } if id == "nosuch"), "{err:?}");
    let err = c
        .create_container(None, &ContainerConfigBody { image: Some("127.0.0.1:1/none".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, engine_core::Error::NotFound { kind: "image", .. }), "{err:?}");
    let err = c.create_container(Some("exit3"), &cfg(&["true"])).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let err = c.create_container(Some("bad name"), &cfg(&["true"])).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");

    // Events stream: start and die of a new container, owned by the stream.
    let mut events = c.events(&HashMap::from([("type".to_string(), vec!["container".to_string()])])).await.unwrap();
    let id2 = c.create_container(None, &cfg(&["true"])).await.unwrap().id;
    let w = c.wait_ready(&id2, "next-exit").await.unwrap();
    c.start(&id2).await.unwrap();
    assert_eq!(w.exit_code().await.unwrap(), 0);
    let mut seen = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await {
        let ev = ev.unwrap();
        if ev.actor.id == id2 {
            seen.push(ev.action.clone());
            if ev.action == "die" {
                assert_eq!(ev.actor.attributes["exitCode"], "0");
                break;
            }
        }
    }
    assert_eq!(seen, ["create", "start", "die"]);
    drop(events);

    // Attach with stdin: half-close closes the container's stdin, output still flows.
    let mut body = cfg(&["sh", "-c", "cat; echo after-eof"]);
    body.open_stdin = Some(true);
    let id3 = c.create_container(None, &body).await.unwrap().id;
    let mut io = c.attach(&id3, AttachParams { stdin: true, ..Default::default() }).await.unwrap();
    let w = c.wait_ready(&id3, "next-exit").await.unwrap();
    c.start(&id3).await.unwrap();
    io.input.write_all(b"through-attach\n").await.unwrap();
    io.input.shutdown().await.unwrap();
    let mut got = Vec::new();
    while let Some(f) = io.output.next().await {
        got.extend_from_slice(&f.unwrap().data);
    }
    assert_eq!(String::from_utf8_lossy(&got), "through-attach\nafter-eof\n");
    assert_eq!(w.exit_code().await.unwrap(), 0);

    // exec with captured output and exit code; conflicts on a stopped container.
    let id4 = c.create_container(None, &cfg(&["sleep", "100"])).await.unwrap().id;
    c.start(&id4).await.unwrap();
    assert!(!c.start(&id4).await.unwrap(), "second start is a no-op (304)");
    let x = c.exec_output(&id4, &["sh", "-c", "echo out; echo err >&2; exit 9"]).await.unwrap();
    assert_eq!((x.exit_code, x.stdout.as_slice(), x.stderr.as_slice()), (9, &b"out\n"[..], &b"err\n"[..]));
    let err = c.remove_container(&id4, false).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    c.kill(&id4, Some("SIGKILL")).await.unwrap();
    assert_eq!(c.wait(&id4).await.unwrap(), 137);
    let err = c.exec_output(&id4, &["true"]).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(!c.stop(&id4, Some(1)).await.unwrap(), "stopping a stopped container is a no-op (304)");
    let all = c.list_containers(true, &HashMap::new()).await.unwrap();
    assert_eq!(all.len(), 4);
    let named =
        c.list_containers(true, &HashMap::from([("name".to_string(), vec!["exit3".to_string()])])).await.unwrap();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].names, ["/exit3"]);
    assert!(named[0].status.starts_with("Exited (3) "), "{}", named[0].status);
    for s in all {
        c.remove_container(&s.id, true).await.unwrap();
    }
    assert!(c.list_containers(true, &HashMap::new()).await.unwrap().is_empty());

    // save streams a docker-archive; tag and remove.
    c.tag_image("bb:latest", "docker.io/library/bb", "t2").await.unwrap();
    let removed = c.remove_image("bb:t2", false).await.unwrap();
    assert_eq!(removed[0]["Untagged"], "bb:t2");
    let mut s = c.save(&["bb:latest"]).await.unwrap();
    let mut n = 0;
    while let Some(chunk) = s.next().await {
        n += chunk.unwrap().len();
    }
    assert!(n > 100_000, "{n}");
    let err = c.inspect_image("nosuch:tag").await.unwrap_err();
    assert!(err.is_not_found());
}
