//! Against a real registry (Debian's docker-registry on loopback): push,
//! pull, auth (none, htpasswd, bearer tokens), bad input.

mod common;
#[path = "common/token.rs"]
mod token;
use common::*;
use engine_core::{ArchiveFormat, ImageStore, Progress, RegistryAuth};
use engine_image::build::{self, ImageOptions};
use engine_image::unpack::Compression;
use engine_image::{RegistryOptions, Store};
use std::path::Path;

fn quick() -> RegistryOptions {
    RegistryOptions::default().retry_delay(std::time::Duration::from_millis(20))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn assert_clean(root: &Path) {
    assert_eq!(count(&root.join("blobs/sha256")), 0, "no blobs left");
    assert_eq!(count(&root.join("snapshots")), 0, "no snapshots left");
    assert_eq!(count(&root.join("tmp")), 0, "no temp files left");
}

/// A 3-layer image: busybox, a layer with varied metadata, a layer that deletes.
async fn three_layer_image(store: &Store, tag: &str) -> engine_core::ImageInfo {
    let work = tempfile::tempdir().unwrap();
    let l1 = busybox_dir();
    let l2 = work.path().join("l2");
    fancy_layer(&l2);
    let l3 = work.path().join("l3");
    std::fs::create_dir_all(l3.join("opt/app")).unwrap();
    std::fs::write(l3.join("opt/app/added"), "layer 3").unwrap();
    let c = std::ffi::CString::new(l3.join("opt/app/rel-link").to_string_lossy().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
    let ar = work.path().join("img.tar");
    build::image_from_dirs(&[l1.path(), &l2, &l3], tag, &ar, &Default::default()).unwrap();
    store.import(&ar, ArchiveFormat::DockerArchive, None, None).await.unwrap().remove(0)
}

async fn rootfs_tree(store: &Store, image: &str, key: &str) -> std::collections::BTreeMap<String, String> {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("r");
    store.prepare_rootfs(image, key, &target).await.unwrap();
    let g = Unmount(target.clone());
    let tr = tree(&target);
    store.remove_rootfs(key).await.unwrap();
    drop(g);
    tr
}

fn collect(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Progress>) -> Vec<Progress> {
    let mut v = Vec::new();
    while let Ok(p) = rx.try_recv() {
        v.push(p);
    }
    v
}

#[tokio::test]
async fn push_delete_pull_round_trip() {
    let reg = Registry::start(RegAuth::None).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick()).unwrap();
    let name = format!("{}/rt/bb:1", reg.host());
    let img = three_layer_image(&store, &name).await;
    let before = rootfs_tree(&store, &name, "before").await;
    assert!(before.contains_key("opt/app/added") && !before.contains_key("opt/app/rel-link"));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let digest = store.push(&name, None, Some(tx)).await.unwrap();
    let ev = collect(&mut rx);
    assert_eq!(ev.iter().filter(|p| p.status == "Pushed").count(), 4, "3 layers + config pushed: {ev:?}");
    assert!(store.inspect(&name).await.unwrap().repo_digests.contains(&format!("{}/rt/bb@{digest}", reg.host())));

    // pushing again: everything already there
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    store.push(&name, None, Some(tx)).await.unwrap();
    assert_eq!(collect(&mut rx).iter().filter(|p| p.status == "Layer already exists").count(), 4);

    // another repo on the same registry: blobs are mounted, not uploaded
    let other = format!("{}/other/bb:2", reg.host());
    store.tag(&name, &other).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    assert_eq!(store.push(&other, None, Some(tx)).await.unwrap(), digest);
    let ev = collect(&mut rx);
    assert_eq!(ev.iter().filter(|p| p.status == "Mounted from rt/bb").count(), 4, "{ev:?}");

    // delete locally, pull back: same id, same rootfs
    store.remove(&other, false).await.unwrap();
    store.remove(&name, false).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert_clean(root.path());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pulled = store.pull(&name, None, Some(tx)).await.unwrap();
    assert_eq!(pulled.id, img.id);
    let ev = collect(&mut rx);
    assert_eq!(ev.iter().filter(|p| p.status == "Pull complete").count(), 3, "{ev:?}");
    assert!(ev.iter().any(|p| p.status == "Downloading" && p.total.is_some()));
    assert_eq!(rootfs_tree(&store, &name, "after").await, before);
    // pull by digest into a fresh store
    let root2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(root2.path(), quick()).unwrap();
    let by_digest = format!("{}/rt/bb@{digest}", reg.host());
    assert_eq!(s2.pull(&by_digest, None, None).await.unwrap().id, img.id);
    assert_eq!(rootfs_tree(&s2, &by_digest, "d").await, before);
    // pulling again: layers already exist
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    store.pull(&name, None, Some(tx)).await.unwrap();
    assert_eq!(collect(&mut rx).iter().filter(|p| p.status == "Already exists").count(), 3);
}

#[tokio::test]
async fn gzip_and_zstd_layers_and_concurrent_pulls() {
    let reg = Registry::start(RegAuth::None).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick()).unwrap();
    let bb = busybox_dir();
    for (comp, tag) in [(Compression::Gzip, "gz"), (Compression::Zstd, "zst"), (Compression::None, "plain")] {
        let name = format!("{}/comp/bb:{tag}", reg.host());
        let opts = ImageOptions::default().compression(comp);
        store.import_dir_with(bb.path(), &name, &opts).await.unwrap();
        store.push(&name, None, None).await.unwrap();
        let root2 = tempfile::tempdir().unwrap();
        let s2 = Store::open_with(root2.path(), quick()).unwrap();
        // two pulls of the same image at once, through clones of one store
        let s2b = s2.clone();
        let (a, b) = tokio::join!(s2.pull(&name, None, None), s2b.pull(&name, None, None));
        assert_eq!(a.unwrap().id, b.unwrap().id);
        assert_eq!(count(&root2.path().join("snapshots")), 1, "{tag}: one snapshot");
        assert_eq!(rootfs_tree(&s2, &name, "c").await, tree(bb.path()), "{tag}");
    }
}

#[tokio::test]
async fn basic_auth_and_docker_config() {
    let reg = Registry::start(RegAuth::Htpasswd { user: "alice".into(), password: "s3cret".into() }).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick().docker_config(Some("/nonexistent".into()))).unwrap();
    let bb = busybox_dir();
    let name = format!("{}/auth/bb:1", reg.host());
    let img = store.import_dir(bb.path(), &name).await.unwrap();
    let e = store.push(&name, None, None).await.unwrap_err();
    assert!(e.to_string().contains("401") && e.to_string().contains(&name), "{e}");
    let wrong = RegistryAuth::default().username(Some("alice".into())).password(Some("nope".into()));
    let e = store.push(&name, Some(&wrong), None).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let good = RegistryAuth::default().username(Some("alice".into())).password(Some("s3cret".into()));
    store.push(&name, Some(&good), None).await.unwrap();
    // pull with credentials from a docker config file
    let cfgdir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        cfgdir.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(root2.path(), quick().docker_config(Some(cfgdir.path().join("config.json")))).unwrap();
    assert_eq!(s2.pull(&name, None, None).await.unwrap().id, img.id);
    // anonymous pull is refused, and leaves nothing
    let root3 = tempfile::tempdir().unwrap();
    let s3 = Store::open_with(root3.path(), quick().docker_config(Some("/nonexistent".into()))).unwrap();
    let e = s3.pull(&name, None, None).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert_clean(root3.path());
}

#[tokio::test]
async fn bearer_token_auth_with_registry_token_config() {
    let ts = token::TokenServer::start("alice", "s3cret").await;
    let reg = Registry::start(RegAuth::Token { realm: ts.realm(), cert: ts.cert.clone() }).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick().docker_config(Some("/nonexistent".into()))).unwrap();
    let bb = busybox_dir();
    let name = format!("{}/tok/bb:1", reg.host());
    let img = store.import_dir(bb.path(), &name).await.unwrap();
    let e = store.push(&name, None, None).await.unwrap_err();
    assert!(e.to_string().contains("token server") && e.to_string().contains("401"), "{e}");
    let good = RegistryAuth::default().username(Some("alice".into())).password(Some("s3cret".into()));
    store.push(&name, Some(&good), None).await.unwrap();
    assert!(ts.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let root2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(root2.path(), quick()).unwrap();
    assert_eq!(s2.pull(&name, Some(&good), None).await.unwrap().id, img.id);
    assert_eq!(rootfs_tree(&s2, &name, "t").await, tree(bb.path()));
    // an identity token (OAuth2 refresh token), as `docker login` stores for some registries
    let root3 = tempfile::tempdir().unwrap();
    let s3 = Store::open_with(root3.path(), quick()).unwrap();
    let idt = RegistryAuth::default().identity_token(Some("alice-refresh-token".into()));
    assert_eq!(s3.pull(&name, Some(&idt), None).await.unwrap().id, img.id);
    let root4 = tempfile::tempdir().unwrap();
    let s4 = Store::open_with(root4.path(), quick()).unwrap();
    let bad = RegistryAuth::default().identity_token(Some("stolen".into()));
    let e = s4.pull(&name, Some(&bad), None).await.unwrap_err();
    assert!(e.to_string().contains("refused the identity token"), "{e}");
}

#[tokio::test]
async fn bad_registry_input_leaves_store_as_it_was() {
    let reg = Registry::start(RegAuth::None).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick()).unwrap();
    let bb = busybox_dir();
    let name = format!("{}/bad/bb:1", reg.host());
    let opts = ImageOptions::default().compression(Compression::Gzip);
    let img = store.import_dir_with(bb.path(), &name, &opts).await.unwrap();
    let rec = store.record(&name).await.unwrap();
    let layer = rec.layers[0].digest.clone();
    store.push(&name, None, None).await.unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let s = Store::open_with(fresh.path(), quick()).unwrap();
    // 404
    let missing = format!("{}/bad/bb:nope", reg.host());
    let e = s.pull(&missing, None, None).await.unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains(&missing), "{e}");
    // corrupt layer (same length, other bytes): digest mismatch
    let file = reg.blob_file(&layer);
    let orig = std::fs::read(&file).unwrap();
    let mut bad = orig.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();
    let e = s.pull(&name, None, None).await.unwrap_err();
    assert!(e.to_string().contains(&layer) && e.to_string().contains(&name), "{e}");
    assert_clean(fresh.path());
    // truncated layer
    std::fs::write(&file, &orig[..orig.len() / 3]).unwrap();
    let e = s.pull(&name, None, None).await.unwrap_err();
    assert!(e.to_string().contains(&layer), "{e}");
    assert_clean(fresh.path());
    std::fs::write(&file, &orig).unwrap();
    // a later pull works
    assert_eq!(s.pull(&name, None, None).await.unwrap().id, img.id);

    let http = reqwest::Client::new();
    let manifest: serde_json::Value = serde_json::from_slice(&store.blobs().read(&rec.manifest).unwrap()).unwrap();
    // unknown layer media type
    let mut weird = manifest.clone();
    weird["layers"][0]["mediaType"] = "application/vnd.example.unknown".into();
    let r = http
        .put(format!("http://{}/v2/bad/bb/manifests/weird", reg.host()))
        .header("content-type", engine_image::media::OCI_MANIFEST)
        .body(weird.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let fresh2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(fresh2.path(), quick()).unwrap();
    let e = s2.pull(&format!("{}/bad/bb:weird", reg.host()), None, None).await.unwrap_err();
    assert!(e.to_string().contains("application/vnd.example.unknown") && e.to_string().contains(&layer), "{e}");
    assert_clean(fresh2.path());
    // an index for another platform only
    let msize = store.blobs().size(&rec.manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": engine_image::media::OCI_INDEX,
        "manifests": [{"mediaType": engine_image::media::OCI_MANIFEST, "digest": rec.manifest, "size": msize,
                       "platform": {"architecture": "s390x", "os": "linux"}}]
    });
    let r = http
        .put(format!("http://{}/v2/bad/bb/manifests/s390x", reg.host()))
        .header("content-type", engine_image::media::OCI_INDEX)
        .body(index.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let e = s2.pull(&format!("{}/bad/bb:s390x", reg.host()), None, None).await.unwrap_err();
    assert!(e.to_string().contains("no manifest for platform") && e.to_string().contains("linux/s390x"), "{e}");
    assert_clean(fresh2.path());
    // an index with our platform works
    let mut ok_index = index.clone();
    ok_index["manifests"][0]["platform"] = serde_json::to_value(engine_image::media::host_platform()).unwrap();
    http.put(format!("http://{}/v2/bad/bb/manifests/multi", reg.host()))
        .header("content-type", engine_image::media::OCI_INDEX)
        .body(ok_index.to_string())
        .send()
        .await
        .unwrap();
    let got = s2.pull(&format!("{}/bad/bb:multi", reg.host()), None, None).await.unwrap();
    assert_eq!(got.id, img.id);
    assert!(got.repo_digests[0].contains(&engine_image::digest::sha256(ok_index.to_string().as_bytes())));

    // 5xx: always failing → error after retries; flaky → retried and works
    let down = token::FaultProxy::start(reg.host(), usize::MAX).await;
    let fresh3 = tempfile::tempdir().unwrap();
    let s3 = Store::open_with(fresh3.path(), quick()).unwrap();
    let via = format!("127.0.0.1:{}/bad/bb:1", down.port);
    let e = s3.pull(&via, None, None).await.unwrap_err();
    assert!(e.to_string().contains("503") && e.to_string().contains(&via), "{e}");
    assert_eq!(down.requests.load(std::sync::atomic::Ordering::SeqCst), 4, "1 try + 3 retries");
    assert_clean(fresh3.path());
    let flaky = token::FaultProxy::start(reg.host(), 2).await;
    let via = format!("127.0.0.1:{}/bad/bb:1", flaky.port);
    assert_eq!(s3.pull(&via, None, None).await.unwrap().id, img.id);

    // a manifest or config whose bytes do not match the digest asked for
    fn tamper(path: &str, b: bytes::Bytes) -> bytes::Bytes {
        if path.contains("/manifests/") {
            let mut v = b.to_vec();
            v.push(b' ');
            v.into()
        } else {
            b
        }
    }
    fn tamper_config(path: &str, b: bytes::Bytes) -> bytes::Bytes {
        if path.contains("/blobs/") && b.len() < 4096 {
            let mut v = b.to_vec();
            v.push(b' ');
            v.into()
        } else {
            b
        }
    }
    let evil = token::FaultProxy::start_with(reg.host(), 0, tamper).await;
    let fresh4 = tempfile::tempdir().unwrap();
    let s4 = Store::open_with(fresh4.path(), quick()).unwrap();
    let by_digest = format!("127.0.0.1:{}/bad/bb@{}", evil.port, rec.manifest);
    let e = s4.pull(&by_digest, None, None).await.unwrap_err();
    assert!(e.to_string().contains("digest mismatch") && e.to_string().contains(&rec.manifest), "{e}");
    let e = s4.pull(&format!("127.0.0.1:{}/bad/bb:1", evil.port), None, None).await.unwrap_err();
    assert!(e.to_string().contains("digest mismatch") && e.to_string().contains(&rec.manifest), "by tag: {e}");
    let evil2 = token::FaultProxy::start_with(reg.host(), 0, tamper_config).await;
    let e = s4.pull(&format!("127.0.0.1:{}/bad/bb:1", evil2.port), None, None).await.unwrap_err();
    assert!(e.to_string().contains("digest mismatch") && e.to_string().contains(&img.id), "config: {e}");
    assert_clean(fresh4.path());
}

#[tokio::test]
async fn docker_schema2_from_skopeo_and_manifest_lists() {
    let reg = Registry::start(RegAuth::None).await;
    let work = tempfile::tempdir().unwrap();
    let bb = busybox_dir();
    let ar = work.path().join("bb.tar");
    build::image_from_dir(bb.path(), "sk/bb:1", &ar, &Default::default()).unwrap();
    // skopeo pushes a Docker schema 2 image (gzip layers) to the registry
    let name = format!("{}/sk/bb:1", reg.host());
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-compress"])
        .arg(format!("docker-archive:{}", ar.display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick()).unwrap();
    let img = store.pull(&name, None, None).await.unwrap();
    let rec = store.record(&name).await.unwrap();
    assert_eq!(rec.manifest_media_type, engine_image::media::DOCKER_MANIFEST);
    assert_eq!(rec.layers[0].media_type, engine_image::media::DOCKER_LAYER_GZIP);
    assert_eq!(rootfs_tree(&store, &name, "s2").await, tree(bb.path()));
    // a Docker manifest list with two platforms, ours and another (a different image)
    let msize = store.blobs().size(&rec.manifest).unwrap();
    let other_dir = busybox_dir();
    std::fs::write(other_dir.path().join("other"), "arm").unwrap();
    let other_name = format!("{}/sk/bb:arm", reg.host());
    store.import_dir(other_dir.path(), &other_name).await.unwrap();
    let other_digest = store.push(&other_name, None, None).await.unwrap();
    let other_size = store.blobs().size(&other_digest).unwrap();
    let list = serde_json::json!({
        "schemaVersion": 2, "mediaType": engine_image::media::DOCKER_LIST,
        "manifests": [
            {"mediaType": engine_image::media::OCI_MANIFEST, "digest": other_digest, "size": other_size,
             "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
            {"mediaType": engine_image::media::DOCKER_MANIFEST, "digest": rec.manifest, "size": msize,
             "platform": engine_image::media::host_platform()},
        ]
    });
    let r = reqwest::Client::new()
        .put(format!("http://{}/v2/sk/bb/manifests/list", reg.host()))
        .header("content-type", engine_image::media::DOCKER_LIST)
        .body(list.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let root2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(root2.path(), quick()).unwrap();
    let got = s2.pull(&format!("{}/sk/bb:list", reg.host()), None, None).await.unwrap();
    assert_eq!(got.id, img.id);
    // push the schema 2 image elsewhere: the same manifest bytes, the same digest
    let again = format!("{}/copy/bb:1", reg.host());
    store.tag(&name, &again).await.unwrap();
    assert_eq!(store.push(&again, None, None).await.unwrap(), rec.manifest);
    // and skopeo reads what we pushed
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{again}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn pulled_image_runs_under_runc() {
    let reg = Registry::start(RegAuth::None).await;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(root.path(), quick()).unwrap();
    let bb = busybox_dir();
    let name = format!("{}/run/bb:1", reg.host());
    let opts = ImageOptions::default()
        .entrypoint(Some(vec!["/bin/sh".into(), "-c".into()]))
        .cmd(Some(vec!["echo \"$GREETING from $(id -u):$(id -g) in $(pwd)\"".into()]))
        .env(vec!["PATH=/bin".into(), "GREETING=hello".into()])
        .working_dir(Some("/tmp".into()))
        .user(Some("nobody".into()));
    store.import_dir_with(bb.path(), &name, &opts).await.unwrap();
    store.push(&name, None, None).await.unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let s2 = Store::open_with(root2.path(), quick()).unwrap();
    let img = s2.pull(&name, None, None).await.unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    let id = format!("engine-image-test-{}", std::process::id());
    s2.prepare_rootfs(&name, &id, &rootfs).await.unwrap();
    let _g = Unmount(rootfs.clone());
    let mut spec = oci_spec::runtime::Spec::default();
    let config = engine_core::ContainerConfig::default().image(name.clone());
    engine_image::spec::apply_image_config(&mut spec, &img.config, &rootfs, &config).unwrap();
    let mut r = spec.root().clone().unwrap();
    r.set_path("rootfs".into());
    r.set_readonly(Some(false));
    spec.set_root(Some(r));
    spec.save(bundle.path().join("config.json")).unwrap();
    let out =
        std::process::Command::new("runc").arg("run").arg("--bundle").arg(bundle.path()).arg(&id).output().unwrap();
    let _ = std::process::Command::new("runc").args(["delete", "-f", &id]).output();
    assert!(out.status.success(), "runc: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello from 65534:65534 in /tmp");
    s2.remove_rootfs(&id).await.unwrap();
}
