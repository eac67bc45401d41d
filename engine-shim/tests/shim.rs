//! End-to-end tests: real containers from a busybox rootfs, created through
//! the shim with runc and with engine-runc (same tests for both).

mod common;

use common::*;
use engine_core::{
    AttachOptions, ConsoleSize, ContainerStatus, Error, ExecRequest, ProcessRef, Shim, ShimEvent, ShimLauncher, Signal,
    StdStream,
};
use engine_shim::Launcher;
use futures::StreamExt;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(60);

fn launcher() -> Launcher {
    Launcher::new(shim_binary())
}

async fn collect_output(mut out: futures::stream::BoxStream<'static, engine_core::Result<engine_core::Output>>) -> String {
    let mut s = Vec::new();
    while let Some(Ok(o)) = out.next().await {
        s.extend_from_slice(&o.data);
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Read `out` until `needle` shows up (or time runs out); everything read.
async fn read_until(
    out: &mut futures::stream::BoxStream<'static, engine_core::Result<engine_core::Output>>,
    needle: &str,
) -> String {
    let mut s = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !s.contains(needle) {
            match out.next().await {
                Some(Ok(o)) => s.push_str(&String::from_utf8_lossy(&o.data)),
                _ => break,
            }
        }
    })
    .await;
    s
}

async fn output_logged_with_timestamps(rt: Rt) {
    let c = TestContainer::new(rt, "log", &["sh", "-c", "echo out1; echo err1 >&2; echo out2"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let before = SystemTime::now();
    shim.start().await.unwrap();
    let exit = shim.wait(&ProcessRef::Init).await.unwrap();
    let after = SystemTime::now();
    assert_eq!(exit.code, 0);
    let entries = c.log_entries();
    let mut lines: Vec<(String, StdStream)> =
        entries.iter().map(|e| (String::from_utf8_lossy(&e.line).into_owned(), e.stream)).collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        lines,
        vec![
            ("err1\n".to_string(), StdStream::Stderr),
            ("out1\n".to_string(), StdStream::Stdout),
            ("out2\n".to_string(), StdStream::Stdout)
        ]
    );
    for e in &entries {
        assert!(e.time >= before && e.time <= after, "log time {:?} outside the run", e.time);
        assert!(!e.partial);
    }
    let outs: Vec<_> = entries.iter().filter(|e| e.stream == StdStream::Stdout).map(|e| e.line.clone()).collect();
    assert_eq!(outs, vec!["out1\n", "out2\n"], "stdout order kept");
    assert!(shim.delete().await.unwrap().is_some());
    assert!(!c.runtime_knows());
}

macro_rules! for_each_runtime {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(super::T, super::$name(super::Rt::Runc)).await.expect("test timed out");
                }
            )*
        }
        mod engine_runc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(super::T, super::$name(super::Rt::EngineRunc)).await.expect("test timed out");
                }
            )*
        }
    };
}

for_each_runtime!(output_logged_with_timestamps);
