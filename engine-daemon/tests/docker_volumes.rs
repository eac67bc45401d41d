//! Volumes through the real docker CLI: named volumes that outlive their
//! containers and engined, the image's VOLUME content, anonymous volumes and
//! `rm -v`, `docker volume` commands, in-use refusal, bad input, tmpfs volumes.

mod common;
use common::*;
use std::path::Path;

/// A busybox image with `VOLUME /data` and a file in it.
fn load_volume_image(e: &Engined) {
    let rootfs = e.dir.path().join("rootfs-vol");
    engine_image::build::busybox_rootfs(&rootfs).expect("busybox rootfs");
    std::fs::create_dir_all(rootfs.join("data/sub")).unwrap();
    std::fs::write(rootfs.join("data/seed.txt"), "from the image\n").unwrap();
    std::fs::write(rootfs.join("data/sub/deep"), "deep\n").unwrap();
    let opts = engine_image::build::ImageOptions::default().volumes(vec!["/data".into()]);
    let tar = e.dir.path().join("volimg.tar");
    engine_image::build::image_from_dir(&rootfs, "volimg:latest", &tar, &opts).expect("image archive");
    e.ok(&["load", "-i", tar.to_str().unwrap()]);
}

fn is_mountpoint(p: &Path) -> bool {
    let want = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

fn volume_dirs(e: &Engined) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(e.data_root().join("volumes"))
        .map(|rd| rd.flatten().map(|d| d.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn named_volume_survives_rm_and_an_engined_restart() {
    let mut e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "--name", "writer", "-v", "keep1:/data", "bb", "sh", "-c", "echo persisted > /data/f"]);
    e.ok(&["rm", "writer"]);
    // A second container holds the volume across the restart.
    e.ok(&["create", "--name", "holder", "-v", "keep1:/x", "bb", "true"]);
    e.kill9();
    e.spawn();
    let out = e.ok(&["run", "--rm", "-v", "keep1:/data", "bb", "cat", "/data/f"]);
    assert_eq!(out, "persisted\n");
    // Still in use by `holder` after the restart: a 409, and nothing changes.
    let (status, body) = e.http("DELETE", "/v1.41/volumes/keep1", b"");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("volume is in use"), "{body}");
    let o = e.docker(&["volume", "rm", "keep1"]);
    assert!(!o.status.success() && show(&o).contains("in use"), "{}", show(&o));
    assert_eq!(e.ok(&["run", "--rm", "-v", "keep1:/data", "bb", "cat", "/data/f"]), "persisted\n");
    e.ok(&["rm", "holder"]);
    e.ok(&["volume", "rm", "keep1"]);
    assert!(!e.data_root().join("volumes/keep1").exists());
}

#[test]
fn image_volume_content_anonymous_volumes_and_rm_v() {
    let e = Engined::start();
    load_volume_image(&e);
    // A fresh named volume gets the image's content at the mount path.
    let out = e.ok(&["run", "--rm", "-v", "seeded:/data", "volimg", "sh", "-c", "cat /data/seed.txt /data/sub/deep"]);
    assert_eq!(out, "from the image\ndeep\n");
    // ... once: a volume that is no longer empty keeps its own content.
    e.ok(&["run", "--rm", "-v", "seeded:/data", "volimg", "sh", "-c", "rm /data/seed.txt; echo mine > /data/own"]);
    let out = e.ok(&["run", "--rm", "-v", "seeded:/data", "volimg", "ls", "/data"]);
    assert_eq!(out, "own\nsub\n");
    // nocopy: the volume stays empty.
    let out = e.ok(&["run", "--rm", "-v", "empty1:/data:nocopy", "volimg", "ls", "-A", "/data"]);
    assert_eq!(out, "");

    // The image's VOLUME: an anonymous volume with the content.
    e.ok(&["run", "--name", "anon", "volimg", "cat", "/data/seed.txt"]);
    let inspect: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "anon"])).unwrap();
    let mounts = inspect[0]["Mounts"].as_array().unwrap().clone();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let (name, source) = (mounts[0]["Name"].as_str().unwrap(), mounts[0]["Source"].as_str().unwrap());
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Driver"], "local");
    assert!(name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert_eq!(Path::new(source), e.data_root().join("volumes").join(name).join("_data"));
    assert_eq!(std::fs::read_to_string(Path::new(source).join("seed.txt")).unwrap(), "from the image\n");
    // --volumes-from mounts the same volume (read-only with :ro), and an
    // auto-removed user does not take another container's anonymous volume.
    let out = e.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "anon:ro",
        "volimg",
        "sh",
        "-c",
        "cat /data/seed.txt; touch /data/no 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "from the image\nro\n");
    assert!(Path::new(source).join("seed.txt").exists());
    // `-v /path` also makes one (and the image's /data another).
    e.ok(&["run", "--name", "anon2", "-v", "/scratch", "volimg", "touch", "/scratch/x"]);
    let ls = e.ok(&["volume", "ls", "-q"]);
    assert_eq!(ls.lines().count(), 5, "{ls}");
    // `docker rm -v` removes a container's anonymous volumes, not named ones.
    e.ok(&["rm", "-v", "anon"]);
    assert!(!e.data_root().join("volumes").join(name).exists());
    e.ok(&["rm", "-v", "anon2"]);
    let mut left = volume_dirs(&e);
    left.retain(|n| !n.starts_with('.'));
    assert_eq!(left, vec!["empty1".to_string(), "seeded".to_string()]);
}

#[test]
fn volume_commands_with_filters() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["volume", "create", "--label", "team=db", "v-db"]);
    e.ok(&["volume", "create", "v-plain"]);
    // Idempotent, as docker's.
    assert_eq!(e.ok(&["volume", "create", "v-plain"]), "v-plain\n");
    assert_eq!(e.ok(&["volume", "ls", "-q"]), "v-db\nv-plain\n");
    assert_eq!(e.ok(&["volume", "ls", "-q", "--filter", "label=team=db"]), "v-db\n");
    assert_eq!(e.ok(&["volume", "ls", "-q", "--filter", "name=plain"]), "v-plain\n");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", "v-db"])).unwrap();
    assert_eq!(v[0]["Name"], "v-db");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Labels"]["team"], "db");
    assert_eq!(v[0]["Mountpoint"].as_str().unwrap(), e.data_root().join("volumes/v-db/_data").to_str().unwrap());
    assert!(v[0]["CreatedAt"].as_str().unwrap().starts_with("20"), "{v}");
    // In use by a container (created, never started): not dangling, not pruned, not removable.
    e.ok(&["create", "--name", "user1", "-v", "v-plain:/p", "bb", "true"]);
    assert_eq!(e.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]), "v-db\n");
    let o = e.docker(&["volume", "rm", "v-plain"]);
    assert!(!o.status.success() && show(&o).contains("volume is in use"), "{}", show(&o));
    let df = e.ok(&["system", "df", "-v", "--format", "{{json .Volumes}}"]);
    assert!(df.contains("v-plain") && df.contains("v-db"), "{df}");
    // Prune with a filter that matches nothing, then one that matches v-db.
    e.ok(&["volume", "prune", "-f", "--filter", "label=team=web"]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]), "v-db\nv-plain\n");
    let out = e.ok(&["volume", "prune", "-f", "--filter", "label=team"]);
    assert!(out.contains("v-db"), "{out}");
    assert_eq!(e.ok(&["volume", "ls", "-q"]), "v-plain\n");
    assert!(!e.data_root().join("volumes/v-db").exists());
    e.ok(&["rm", "user1"]);
    e.ok(&["volume", "rm", "v-plain"]);
    let o = e.docker(&["volume", "inspect", "v-plain"]);
    assert!(!o.status.success() && show(&o).contains("no such volume"), "{}", show(&o));
    // --force: a missing volume is no error.
    e.ok(&["volume", "rm", "--force", "v-plain"]);
    // No name: a random one, and not an anonymous volume.
    let name = e.ok(&["volume", "create"]).trim().to_string();
    assert!(name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", &name])).unwrap();
    assert!(v[0]["Labels"].get("com.docker.volume.anonymous").is_none(), "{v}");
    e.ok(&["volume", "rm", &name]);
}

#[test]
fn bad_volume_input_is_refused_and_leaves_nothing() {
    let e = Engined::start();
    e.load_busybox();
    let (status, body) = e.http("POST", "/v1.41/volumes/create", br#"{"Name":"bad/name"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad/name") && body.contains("invalid characters"), "{body}");
    // A relative host path is taken as a volume name, and refused.
    let o = e.docker(&["run", "--name", "rel", "-v", "rel/dir:/x", "bb", "true"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(show(&o).contains("rel/dir") && show(&o).contains("absolute path"), "{}", show(&o));
    let o = e.docker(&["volume", "create", "--opt", "color=blue", "v-opt"]);
    assert!(!o.status.success() && show(&o).contains("\"color\""), "{}", show(&o));
    let (status, body) = e.http("POST", "/v1.41/volumes/create", br#"{"Name":"v1","DriverOpts":{"type":"tmpfs"}}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("device"), "{body}");
    let (status, body) = e.http("POST", "/v1.41/volumes/create", br#"{"Name":"v2","Driver":"nosuch"}"#);
    assert_eq!(status, 404, "{body}");
    let (status, body) = e.http("GET", "/v1.41/volumes?filters=%7B%22color%22%3A%5B%22x%22%5D%7D", b"");
    assert_eq!(status, 400, "{body}");
    // Nothing was made.
    assert_eq!(e.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    assert_eq!(volume_dirs(&e), Vec::<String>::new());
}

#[test]
fn tmpfs_volume_is_a_tmpfs_in_the_container_and_unmounted_after() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m", "tv"]);
    let data = e.data_root().join("volumes/tv/_data");
    assert!(!is_mountpoint(&data));
    e.ok(&["create", "--name", "tv-user", "-v", "tv:/t", "bb", "sh", "-c", "grep ' /t ' /proc/mounts; echo x > /t/f"]);
    assert!(is_mountpoint(&data), "the tmpfs is mounted for its first user");
    e.ok(&["start", "tv-user"]);
    assert_eq!(e.ok(&["wait", "tv-user"]).trim(), "0");
    let out = e.ok(&["logs", "tv-user"]);
    assert!(out.starts_with("tmpfs /t tmpfs") && out.contains("size=1024k"), "{out}");
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "x\n");
    e.ok(&["rm", "tv-user"]);
    assert!(!is_mountpoint(&data), "unmounted after the last user");
    assert!(!data.join("f").exists(), "a tmpfs keeps nothing");
    e.ok(&["volume", "rm", "tv"]);
    assert!(!e.data_root().join("volumes/tv").exists());
}

#[test]
fn mount_syntax_with_volume_options_and_nocopy() {
    let e = Engined::start();
    load_volume_image(&e);
    // volume-opt makes a tmpfs volume on first use.
    let out = e.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=mv,target=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m",
        "volimg",
        "grep",
        " /m ",
        "/proc/mounts",
    ]);
    assert!(out.starts_with("tmpfs /m tmpfs") && out.contains("size=2048k"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["volume", "inspect", "mv"])).unwrap();
    assert_eq!(v[0]["Options"]["type"], "tmpfs", "{v}");
    assert!(!is_mountpoint(&e.data_root().join("volumes/mv/_data")));
    // volume-nocopy, and readonly.
    let out = e.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=nc,target=/data,volume-nocopy,readonly",
        "volimg",
        "sh",
        "-c",
        "ls -A /data; touch /data/x 2>/dev/null || echo ro",
    ]);
    assert_eq!(out, "ro\n");
    // A bad volume-opt: refused, nothing made.
    let o = e.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=bad1,target=/b,volume-opt=color=red",
        "volimg",
        "true",
    ]);
    assert!(!o.status.success() && show(&o).contains("\"color\""), "{}", show(&o));
    assert_eq!(e.ok(&["volume", "ls", "-q"]), "mv\nnc\n");
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}
