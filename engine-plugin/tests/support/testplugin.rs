//! Starts `fixtures/testplugin.py`, a Docker v1 plugin in its own process,
//! for the tests of this crate and of engined (included there by path).
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The plugin script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine-plugin/tests/fixtures/testplugin.py")
}

/// A running test plugin; killed (by pid) and reaped when dropped.
pub struct TestPlugin {
    child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// One JSON line per request it answered.
    pub log: PathBuf,
    /// The fault-injection file it reads at each request.
    pub control: PathBuf,
    /// Where its volumes live.
    pub root: PathBuf,
    args: Vec<String>,
}

impl TestPlugin {
    /// Start plugin `name` listening on `<socket_dir>/<name>.sock`, keeping
    /// its files under `work`, implementing `implements` (comma-separated).
    /// Returns once the socket accepts connections.
    pub fn start(socket_dir: &Path, work: &Path, name: &str, implements: &str, extra: &[&str]) -> TestPlugin {
        std::fs::create_dir_all(socket_dir).unwrap();
        std::fs::create_dir_all(work).unwrap();
        let mut p = TestPlugin {
            child: None,
            socket: socket_dir.join(format!("{name}.sock")),
            log: work.join(format!("{name}.log")),
            control: work.join(format!("{name}.control.json")),
            root: work.join(format!("{name}.root")),
            args: vec!["--implements".into(), implements.into()],
        };
        p.args.extend(extra.iter().map(|s| s.to_string()));
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut child = Command::new("/usr/bin/python3")
            .arg(script())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--log")
            .arg(&self.log)
            .arg("--control")
            .arg(&self.control)
            .arg("--root")
            .arg(&self.root)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("starting /usr/bin/python3 (scripts/install-deps.sh installs it)");
        // It prints "listening" once bound; EOF means it died.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "listening", "the test plugin did not start");
        self.child = Some(child);
    }

    /// Kill the plugin process (a plugin that died); its socket file stays,
    /// as a crashed plugin's does.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same socket (a plugin that came back).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Make methods misbehave: `{"garbage": [...], "hang": [...], "die": [...], "err": {...}}`.
    pub fn set_control(&self, v: serde_json::Value) {
        let tmp = self.control.with_extension("tmp");
        std::fs::write(&tmp, v.to_string()).unwrap();
        std::fs::rename(&tmp, &self.control).unwrap();
    }

    /// The requests it answered, in order: (method, body).
    pub fn calls(&self) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["method"].as_str().unwrap_or_default().to_string(), v["body"].clone()))
            .collect()
    }

    /// The methods it answered, in order.
    pub fn methods(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.0).collect()
    }

    /// Whether its process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for TestPlugin {
    fn drop(&mut self) {
        self.kill();
    }
}
