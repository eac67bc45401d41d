//! The facade's volumes: `Engine::volumes()` and `ContainerBuilder::volume`,
//! with real containers.

use engine::core::VolumeCreate;
use engine::{ContainerBuilder, Engine};
use std::path::PathBuf;
use std::time::Duration;

const IMAGE: &str = "busybox:facade-vol";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn named_volume_through_the_facade() {
    let dir = tempfile::Builder::new().prefix("fv").tempdir_in("/tmp").unwrap();
    let engine = Engine::builder()
        .root(dir.path())
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(std::sync::Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .startup_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    engine.busybox_image(IMAGE).await.unwrap();
    let v = engine.volumes().create(VolumeCreate::named("facade-data").label("k", "v")).await.unwrap();
    assert_eq!(v.mountpoint, dir.path().join("volumes/facade-data/_data"));

    let c = engine
        .create(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "echo kept > /d/f"]).volume("facade-data", "/d"))
        .await
        .unwrap();
    // In use while the container exists.
    assert!(engine.volumes().remove("facade-data").await.unwrap_err().is_conflict());
    c.start().await.unwrap();
    assert_eq!(c.wait().await.unwrap().code, 0);
    c.remove().await.unwrap();
    assert_eq!(std::fs::read_to_string(v.mountpoint.join("f")).unwrap(), "kept\n");
    // Created on first use by the builder.
    let c = engine.create(ContainerBuilder::new(IMAGE).cmd(["true"]).volume("facade-new", "/n")).await.unwrap();
    let names: Vec<String> = engine.volumes().list().await.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["facade-data".to_string(), "facade-new".to_string()]);
    c.remove().await.unwrap();
    engine.volumes().remove("facade-data").await.unwrap();
    engine.volumes().remove("facade-new").await.unwrap();
    assert!(engine.volumes().list().await.unwrap().is_empty());
}
