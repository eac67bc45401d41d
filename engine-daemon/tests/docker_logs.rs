//! Log drivers through the real docker CLI: json-file and local rotation
//! (`max-size`/`max-file`) read back in order across rotated files, `none`
//! and docker's error, `local` with both streams and timestamps, invalid
//! drivers and options refused at create with nothing left, the daemon's
//! `--log-driver`/`--log-opt` default, no line lost across an engined
//! crash, and log plugins (a separate Python process speaking Docker's
//! plugin protocol, `engine-plugin/tests/fixtures/testplugin.py`): every
//! line reaches the plugin in order, a dead plugin is named in the error
//! and the container runs on.

mod common;
#[path = "../../engine-plugin/tests/support/testplugin.rs"]
mod testplugin;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testplugin::TestPlugin;

fn inspect(e: &Engined, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// The live log file and its rotated predecessors that exist.
fn log_files(live: &Path) -> Vec<PathBuf> {
    let dir = live.parent().unwrap();
    let stem = live.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n == stem || n.strip_prefix(&format!("{stem}.")).is_some_and(|k| k.parse::<u32>().is_ok())
        })
        .collect();
    v.sort();
    v
}

const N: usize = 300;
const COUNT: &str = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done";

/// `docker logs` shows a contiguous run of the newest lines, in order,
/// ending with the last one; returns how many.
fn newest_lines_in_order(out: &str) -> usize {
    let got: Vec<&str> = out.lines().collect();
    assert!(!got.is_empty(), "no lines");
    let first: usize = got[0].strip_prefix("line-").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    let want: Vec<String> = (first..N).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, want, "docker logs must be the newest lines in order");
    got.len()
}

fn rotation(driver: &str, max_size: &str, limit: u64) {
    let e = Engined::start();
    e.load_busybox();
    let name = format!("rot-{driver}");
    e.ok(&[
        "run",
        "--name",
        &name,
        "--log-driver",
        driver,
        "--log-opt",
        &format!("max-size={max_size}"),
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=false",
        "bb",
        "sh",
        "-c",
        COUNT,
    ]);
    let j = inspect(&e, &name);
    assert_eq!(j["HostConfig"]["LogConfig"]["Type"], driver);
    assert_eq!(j["HostConfig"]["LogConfig"]["Config"]["max-file"], "3");
    assert_eq!(j["HostConfig"]["LogConfig"]["Config"]["max-size"], max_size);
    let live = PathBuf::from(j["LogPath"].as_str().unwrap());
    let files = log_files(&live);
    assert_eq!(files.len(), 3, "max-file=3 keeps three files: {files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= limit, "{} is {len} bytes, over max-size", f.display());
    }
    let out = e.ok(&["logs", &name]);
    let n = newest_lines_in_order(&out);
    // Three files of about `limit` bytes hold much more than one file's worth,
    // and far fewer than all the lines.
    assert!(n > 20 && n < N, "{n} lines read across the rotated files");
    // --tail counts from the newest, across files too.
    let tail = e.ok(&["logs", "--tail", "25", &name]);
    assert_eq!(tail.lines().count(), 25);
    assert_eq!(tail.lines().last(), Some("line-299"));
    assert_eq!(tail.lines().next(), Some("line-275"));
}

#[test]
fn json_file_rotation_keeps_max_file_files_and_logs_reads_them_in_order() {
    // json-file sizes are decimal, as docker's (1k = 1000 bytes).
    rotation("json-file", "1k", 1000);
}

#[test]
fn local_rotation_keeps_max_file_files_and_logs_reads_them_in_order() {
    // local sizes are binary, as docker's (1k = 1024 bytes).
    rotation("local", "1k", 1024);
}

#[test]
fn local_round_trips_stdout_stderr_and_timestamps() {
    let e = Engined::start();
    e.load_busybox();
    let before = std::time::SystemTime::now();
    e.ok(&["run", "--name", "loc", "--log-driver", "local", "bb", "sh", "-c", "echo out1; echo err1 >&2; echo out2"]);
    let after = std::time::SystemTime::now();
    let j = inspect(&e, "loc");
    assert_eq!(j["HostConfig"]["LogConfig"]["Type"], "local");
    let path = PathBuf::from(j["LogPath"].as_str().unwrap());
    // Docker's local format: a big-endian length, the protobuf entry, the length again.
    let raw = std::fs::read(&path).unwrap();
    let n = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
    assert_eq!(&raw[4 + n..8 + n], &raw[..4], "length before and after the entry");
    let o = e.docker(&["logs", "loc"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out1\nout2\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err1\n");
    let o = e.docker(&["logs", "-t", "loc"]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (l, want) in lines.iter().zip(["out1", "out2"]) {
        let (ts, text) = l.split_once(' ').unwrap();
        assert_eq!(text, want);
        let t = engine_core::time::parse_rfc3339(ts).unwrap_or_else(|| panic!("timestamp {ts}"));
        assert!(t >= before && t <= after, "{ts} is not within the run");
    }
    assert!(String::from_utf8_lossy(&o.stderr).starts_with(char::is_numeric));
}

#[test]
fn none_keeps_nothing_and_logs_fails_as_dockerd() {
    let e = Engined::start();
    e.load_busybox();
    // Attached output still reaches the client.
    assert_eq!(e.ok(&["run", "--name", "quiet", "--log-driver", "none", "bb", "echo", "visible"]), "visible\n");
    let j = inspect(&e, "quiet");
    assert_eq!(j["HostConfig"]["LogConfig"]["Type"], "none");
    assert_eq!(j["LogPath"], "");
    let o = e.docker(&["logs", "quiet"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Error response from daemon: configured logging driver does not support reading"),
        "{}",
        show(&o)
    );
    // The engine CLI chooses drivers too.
    let o = e.engine(&["run", "--name", "quiet2", "--log-driver", "none", "bb", "echo", "shown"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "shown\n", "{}", show(&o));
    assert_eq!(inspect(&e, "quiet2")["HostConfig"]["LogConfig"]["Type"], "none");
    let o = e.engine(&["logs", "quiet2"]);
    assert!(
        !o.status.success() && show(&o).contains("configured logging driver does not support reading"),
        "{}",
        show(&o)
    );
    let id = j["Id"].as_str().unwrap();
    let (status, body) = e.http("GET", &format!("/v1.41/containers/{id}/logs?stdout=1"), b"");
    assert_eq!(status, 501, "{body}");
    let bundle = e.data_root().join("containers").join(id);
    let logs: Vec<_> = std::fs::read_dir(&bundle)
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().contains("log"))
        .map(|d| d.file_name())
        .collect();
    assert!(logs.is_empty(), "nothing is kept: {logs:?}");
}

#[test]
fn bad_drivers_and_options_are_refused_at_create_with_nothing_left() {
    let e = Engined::start();
    e.load_busybox();
    let cases: &[(&[&str], &str)] = &[
        (&["--log-driver", "nosuchdriver"], "error looking up logging plugin nosuchdriver"),
        (&["--log-opt", "max-size=lots"], "max-size"),
        (&["--log-opt", "max-size=-5"], "max-size"),
        (&["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
        (&["--log-opt", "max-fiel=2"], "unknown log opt 'max-fiel' for json-file log driver"),
        (&["--log-opt", "compress=true"], "compress"),
        (&["--log-opt", "tag={{.Name}}"], "tag"),
        (&["--log-driver", "local", "--log-opt", "labels=a"], "unknown log opt 'labels' for local log driver"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["create", "--name", "refused"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "true"]);
        let o = e.docker(&args);
        assert!(!o.status.success(), "{flags:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{flags:?}: {err}");
        assert_eq!(e.ok(&["ps", "-aq"]), "", "{flags:?} left a container");
    }
    // Over the API (the CLI itself refuses options for `none`): docker's 400.
    let bodies: &[(&[u8], &str)] = &[
        (br#"{"Image":"bb","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-file":"x"}}}}"#, "max-file"),
        (br#"{"Image":"bb","HostConfig":{"LogConfig":{"Type":"none","Config":{"max-size":"1m"}}}}"#, "none log driver"),
        (br#"{"Image":"bb","HostConfig":{"LogConfig":{"Type":"local","Config":{"max-size":5}}}}"#, "Config.max-size"),
    ];
    for (body, want) in bodies {
        let (status, msg) = e.http("POST", "/v1.41/containers/create", body);
        assert_eq!(status, 400, "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    let containers: Vec<_> = std::fs::read_dir(e.data_root().join("containers")).unwrap().flatten().collect();
    assert!(containers.is_empty(), "bundles left: {containers:?}");
}

#[test]
fn engined_log_driver_and_opts_set_the_default() {
    let e = Engined::start_with(&["--log-driver", "local", "--log-opt", "max-size=2k", "--log-opt", "max-file=2"]);
    e.load_busybox();
    assert_eq!(e.ok(&["info", "-f", "{{.LoggingDriver}}"]), "local\n");
    e.ok(&["run", "--name", "d1", "bb", "sh", "-c", COUNT]);
    let j = inspect(&e, "d1");
    assert_eq!(j["HostConfig"]["LogConfig"]["Type"], "local");
    assert_eq!(j["HostConfig"]["LogConfig"]["Config"]["max-size"], "2k");
    assert_eq!(log_files(Path::new(j["LogPath"].as_str().unwrap())).len(), 2);
    newest_lines_in_order(&e.ok(&["logs", "d1"]));
    // A container's own options for the default driver win over the daemon's.
    e.ok(&["run", "--name", "d2", "--log-opt", "max-file=1", "bb", "true"]);
    let j = inspect(&e, "d2");
    assert_eq!(j["HostConfig"]["LogConfig"]["Config"]["max-file"], "1");
    assert_eq!(j["HostConfig"]["LogConfig"]["Config"]["max-size"], "2k");
    // Another driver takes none of the daemon's options.
    e.ok(&["run", "--name", "d3", "--log-driver", "json-file", "bb", "true"]);
    assert_eq!(inspect(&e, "d3")["HostConfig"]["LogConfig"]["Config"], serde_json::json!({}));

    // A bad default keeps engined from starting, naming the option.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let o = engined_output(dir.path(), &["--log-driver", "json-file", "--log-opt", "max-file=zero"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("max-file"), "{}", show(&o));
}

#[test]
fn local_log_loses_no_line_across_an_engined_crash() {
    let mut e = Engined::start();
    e.load_busybox();
    let script = "i=0; while [ $i -lt 400 ]; do echo n-$i; i=$((i+1)); usleep 5000; done";
    e.ok(&["run", "-d", "--name", "steady", "--log-driver", "local", "bb", "sh", "-c", script]);
    assert!(eventually(20, || e.ok(&["logs", "steady"]).lines().count() >= 20), "no output");
    e.kill9();
    e.spawn();
    assert_eq!(e.ok(&["wait", "steady"]), "0\n");
    let out = e.ok(&["logs", "steady"]);
    let want: Vec<String> = (0..400).map(|i| format!("n-{i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

/// engined discovering plugins in a directory of the test's own, and a
/// log plugin `testlog` there.
fn with_log_plugin() -> (tempfile::TempDir, TestPlugin, Engined) {
    let dir = tempfile::Builder::new().prefix("p").rand_bytes(5).tempdir_in("/tmp").unwrap();
    let socks = dir.path().join("run");
    let plugin = TestPlugin::start(&socks, &dir.path().join("work"), "testlog", "LogDriver", &[]);
    let e = Engined::start_with(&[
        "--plugin-socket-dir",
        socks.to_str().unwrap(),
        "--plugin-spec-dir",
        dir.path().join("etc").to_str().unwrap(),
        "--plugin-timeout",
        "3s",
    ]);
    e.load_busybox();
    (dir, plugin, e)
}

/// The entries the plugin read from a container's FIFO, in order.
fn received(plugin: &TestPlugin, id: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(plugin.root.join("logs").join(format!("{id}.jsonl"))).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn log_plugin_receives_every_line_in_order_across_an_engined_crash() {
    let (_dir, plugin, mut e) = with_log_plugin();
    let script =
        "i=0; while [ $i -lt 500 ]; do echo p-$i; [ $i = 250 ] && echo half >&2; i=$((i+1)); usleep 2000; done";
    let id = e
        .ok(&["run", "-d", "--name", "pl", "--log-driver", "testlog", "--log-opt", "x-opt=1", "bb", "sh", "-c", script])
        .trim()
        .to_string();
    assert!(eventually(20, || received(&plugin, &id).len() >= 20), "the plugin got nothing");
    // The shim, not the daemon, writes to the plugin: a daemon crash loses no line.
    e.kill9();
    e.spawn();
    assert_eq!(e.ok(&["wait", "pl"]), "0\n");
    assert!(eventually(20, || received(&plugin, &id).len() >= 501), "{} entries", received(&plugin, &id).len());
    let got = received(&plugin, &id);
    let stdout: Vec<&str> =
        got.iter().filter(|v| v["source"] == "stdout").map(|v| v["line"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..500).map(|i| format!("p-{i}")).collect();
    assert_eq!(stdout, want, "every stdout line, in order, without its newline");
    let stderr: Vec<&serde_json::Value> = got.iter().filter(|v| v["source"] == "stderr").collect();
    assert_eq!(stderr.len(), 1);
    assert_eq!(stderr[0]["line"], "half");
    assert!(got.iter().all(|v| v["partial"] == false));
    let times: Vec<u64> =
        got.iter().filter(|v| v["source"] == "stdout").map(|v| v["time_nano"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "timestamps in order");
    // What StartLogging was told.
    let calls = plugin.calls();
    let start = &calls.iter().find(|c| c.0 == "LogDriver.StartLogging").expect("StartLogging").1;
    assert_eq!(start["Info"]["ContainerID"], id.as_str());
    assert_eq!(start["Info"]["ContainerName"], "/pl");
    assert_eq!(start["Info"]["Config"]["x-opt"], "1");
    assert!(start["File"].as_str().is_some_and(|f| f.ends_with(".fifo")));
    // The container's end is reported to the plugin, by the restarted daemon.
    assert!(eventually(20, || plugin.methods().iter().any(|m| m == "LogDriver.StopLogging")), "{:?}", plugin.methods());
    // docker logs reads the local cache: the same lines.
    let o = e.docker(&["logs", "pl"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().collect::<Vec<_>>(), want);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "half\n");
    assert_eq!(inspect(&e, "pl")["HostConfig"]["LogConfig"]["Type"], "testlog");
    assert!(e.ok(&["info", "-f", "{{json .Plugins.Log}}"]).contains("testlog"));
}

#[test]
fn a_dead_log_plugin_is_named_and_the_container_runs_on() {
    let (_dir, mut plugin, e) = with_log_plugin();
    let script = "i=0; while true; do echo v-$i; i=$((i+1)); usleep 20000; done";
    let id = e
        .ok(&["run", "-d", "--name", "victim", "--log-driver", "testlog", "bb", "sh", "-c", script])
        .trim()
        .to_string();
    assert!(eventually(20, || received(&plugin, &id).len() >= 5), "the plugin got nothing");
    plugin.kill();
    // The container runs on, and its lines still reach the local cache.
    let lines = |e: &Engined| e.ok(&["logs", "victim"]).lines().count();
    let at_kill = lines(&e);
    assert!(eventually(20, || lines(&e) >= at_kill + 10), "output stopped after the plugin died");
    assert_eq!(e.ok(&["inspect", "-f", "{{.State.Running}}", "victim"]), "true\n");
    let cache = e.ok(&["logs", "victim"]);
    let want: Vec<String> = (0..cache.lines().count()).map(|i| format!("v-{i}")).collect();
    assert_eq!(cache.lines().collect::<Vec<_>>(), want, "the cache is complete and in order");
    // Stopping does not hang on the dead plugin (StopLogging fails, bounded).
    let t0 = Instant::now();
    e.ok(&["stop", "-t", "1", "victim"]);
    assert!(t0.elapsed() < Duration::from_secs(20), "stop took {:?}", t0.elapsed());
    // Starting again, or a new container, names the plugin; nothing new is left.
    for args in [&["start", "victim"][..], &["run", "--name", "second", "--log-driver", "testlog", "bb", "true"]] {
        let o = e.docker(args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("logging plugin testlog unavailable") && err.contains("unreachable"), "{}", show(&o));
    }
    assert_eq!(e.ok(&["ps", "-aq", "--no-trunc"]).trim(), id, "only the first container exists");
    // Its data is intact.
    assert_eq!(e.ok(&["logs", "victim"]).lines().next(), Some("v-0"));
    e.ok(&["rm", "victim"]);
}

#[test]
fn follow_streams_a_local_log_to_the_end() {
    let e = Engined::start();
    e.load_busybox();
    let script = "i=0; while [ $i -lt 200 ]; do echo f-$i; i=$((i+1)); usleep 3000; done";
    e.ok(&["run", "-d", "--name", "fol", "--log-driver", "local", "bb", "sh", "-c", script]);
    // `logs -f` started while it runs ends when it exits, with every line.
    let out = e.ok(&["logs", "-f", "fol"]);
    let want: Vec<String> = (0..200).map(|i| format!("f-{i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn a_container_that_ends_while_engined_is_down_is_reported_to_its_log_plugin() {
    let (dir, plugin, mut e) = with_log_plugin();
    let w = dir.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let bind = format!("{}:/w", w.display());
    let script = "echo hello; while [ ! -e /w/go ]; do usleep 10000; done; echo bye";
    let id = e.ok(&["run", "-d", "-v", &bind, "--log-driver", "testlog", "bb", "sh", "-c", script]).trim().to_string();
    let pid: i64 = e.ok(&["inspect", "-f", "{{.State.Pid}}", &id]).trim().parse().unwrap();
    assert!(eventually(20, || received(&plugin, &id).len() == 1), "the plugin got nothing");
    e.kill9();
    std::fs::write(w.join("go"), "").unwrap();
    assert!(eventually(20, || !alive(pid)), "the container did not end");
    // Its last line reached the plugin with no daemon running.
    assert!(eventually(20, || received(&plugin, &id).len() == 2));
    assert_eq!(received(&plugin, &id)[1]["line"], "bye");
    assert!(!plugin.methods().iter().any(|m| m == "LogDriver.StopLogging"));
    e.spawn();
    assert!(eventually(20, || plugin.methods().iter().any(|m| m == "LogDriver.StopLogging")), "{:?}", plugin.methods());
    assert_eq!(e.ok(&["inspect", "-f", "{{.State.Status}}", &id]), "exited\n");
    assert_eq!(e.ok(&["logs", &id]), "hello\nbye\n");
}
