//! The facade's builder and the storage driver. (A `vfs` engine's containers
//! are a shared scenario: tests/scenarios, run on each runtime.)

use engine::image::StorageDriver;
use engine::Engine;

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_driver_with_a_custom_image_store_is_refused() {
    let root = tempfile::Builder::new().prefix("fs").tempdir_in("/tmp").unwrap();
    let store = std::sync::Arc::new(engine::image::Store::open(root.path().join("own")).unwrap());
    let built = Engine::builder().root(root.path()).image_store(store).storage_driver(StorageDriver::Vfs).build().await;
    let Err(err) = built else { panic!("a storage driver with a custom store was accepted") };
    assert!(err.is_invalid_input() && err.to_string().contains("storage_driver"), "{err}");
}
