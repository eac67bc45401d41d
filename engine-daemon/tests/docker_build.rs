//! `docker build` (the classic builder's API, `DOCKER_BUILDKIT=0`) and
//! `docker commit` with the real docker CLI against engined.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn all(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `docker build` with the classic builder.
fn build(e: &Engined, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", "240", &docker_cli(), "-H", &e.host(), "build"])
        .args(args)
        .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_HOST")
        .stdin(Stdio::null())
        .output()
        .expect("docker build")
}

fn build_ok(e: &Engined, args: &[&str]) -> String {
    let o = build(e, args);
    assert!(o.status.success(), "docker build {args:?}: {}\n--- engined log:\n{}", show(&o), e.log());
    out(&o)
}

fn write(dir: &Path, rel: &str, data: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

const DOCKERFILE: &str = r#"# escape=\
ARG BASE=bb
FROM ${BASE} AS build
ARG GREETING=hi
SHELL ["/bin/sh", "-c"]
WORKDIR /src
COPY app/ ./app/
RUN echo "$GREETING from build" > /src/built.txt && \
    cat /src/app/hello.txt >> /src/built.txt
RUN <<EOF
echo heredoc-line-1 > /src/heredoc.txt
echo heredoc-line-2 >> /src/heredoc.txt
EOF

FROM bb AS final
LABEL org.test.name="build test" version=1
ENV APP_HOME=/app GREETING=unset
# A comment between instructions.
ENV PATH_INFO=$APP_HOME/bin
WORKDIR $APP_HOME
COPY --from=build /src/built.txt /src/heredoc.txt ./
COPY --chown=65534:65534 --chmod=640 conf.txt ./conf/
ADD data.tar /opt/
COPY *.txt /globbed/
USER nobody
EXPOSE 8080/tcp 53/udp
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo triggered > /tmp/onbuild.txt
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat built.txt heredoc.txt conf/conf.txt /opt/inner/x.txt; id -u; pwd; echo $PATH_INFO; ls /globbed"]
VOLUME /data
"#;

fn make_context(dir: &Path) {
    write(dir, "Dockerfile", DOCKERFILE);
    write(dir, "app/hello.txt", "hello from context\n");
    write(dir, "app/sub/deep.txt", "deep\n");
    write(dir, "conf.txt", "v1\n");
    write(dir, "notes.txt", "notes\n");
    write(dir, "secret.log", "must not be sent\n");
    write(dir, ".dockerignore", "*.log\n");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(9);
    b.append_data(&mut h, "inner/x.txt", &b"from tar\n"[..]).unwrap();
    std::fs::write(dir.join("data.tar"), b.into_inner().unwrap()).unwrap();
}

/// The step lines of a build's output, each with whether it was a cache hit.
fn steps(output: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = Vec::new();
    for l in output.lines() {
        if l.starts_with("Step ") {
            v.push((l.to_string(), false));
        } else if l.contains("Using cache") {
            v.last_mut().expect("a step").1 = true;
        }
    }
    v
}

#[test]
fn multi_stage_build_runs_caches_rebuilds_and_pushes() {
    let mut e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    make_context(&ctx);
    let c = ctx.to_str().unwrap();
    let o = build_ok(&e, &["-t", "built:1", "-t", "built:alt", "--build-arg", "GREETING=hello", c]);
    assert!(o.contains("Step 1/24 : FROM ${BASE} AS build"), "{o}");
    assert!(o.contains("Successfully tagged built:1") && o.contains("Successfully tagged built:alt"), "{o}");
    assert!(!o.contains("Using cache"), "{o}");
    let run = e.ok(&["run", "--rm", "built:1"]);
    assert_eq!(
        run,
        "hello from build\nhello from context\nheredoc-line-1\nheredoc-line-2\nv1\nfrom tar\n65534\n/app\n/app/bin\nconf.txt\nnotes.txt\n"
    );
    // The config dockerd would have written.
    let cfg: serde_json::Value =
        serde_json::from_str(&e.ok(&["image", "inspect", "--format", "{{json .Config}}", "built:alt"])).unwrap();
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Labels"]["org.test.name"], "build test");
    assert_eq!(cfg["Labels"]["version"], "1");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some() && cfg["ExposedPorts"].get("53/udp").is_some(), "{cfg}");
    assert!(cfg["Volumes"].get("/data").is_some(), "{cfg}");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    let env = cfg["Env"].to_string();
    assert!(env.contains("APP_HOME=/app") && env.contains("PATH_INFO=/app/bin"), "{env}");
    let history = e.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "built:1"]);
    assert!(history.contains("ENV PATH_INFO=/app/bin") && history.contains("ONBUILD RUN echo triggered"), "{history}");
    // The ignored file was never copied.
    let o = e.docker(&["run", "--rm", "--entrypoint", "ls", "built:1", "/globbed/secret.log"]);
    assert!(!o.status.success(), "{}", show(&o));

    // The cache survives a restart of the engine: all hits.
    e.kill9();
    e.spawn();
    let o = build_ok(&e, &["-t", "built:1", "--build-arg", "GREETING=hello", c]);
    let s = steps(&o);
    assert_eq!(s.len(), 24, "{o}");
    for (line, hit) in &s {
        assert!(*hit || line.contains(": FROM "), "not cached: {line}\n{o}");
    }
    assert!(!o.contains("Running in"), "{o}");

    // Change one copied file: the steps before it come from the cache, it and the rest run.
    write(&ctx, "conf.txt", "v2\n");
    let o = build_ok(&e, &["-t", "built:2", "--build-arg", "GREETING=hello", c]);
    let s = steps(&o);
    let changed = s.iter().position(|(l, _)| l.contains("COPY --chown=65534:65534")).expect("the COPY step");
    for (i, (line, hit)) in s.iter().enumerate() {
        if line.contains(": FROM ") {
            continue;
        }
        assert_eq!(*hit, i < changed, "step {line}\n{o}");
    }
    let run = e.ok(&["run", "--rm", "built:2"]);
    assert!(run.contains("\nv2\n"), "{run}");
    // --no-cache runs everything.
    let o = build_ok(&e, &["--no-cache", "-q", "--build-arg", "GREETING=hello", c]);
    assert!(o.trim().starts_with("sha256:"), "{o}");

    // ONBUILD: recorded in the image, triggered by the next build from it.
    let child = e.dir.path().join("child");
    write(&child, "Dockerfile", "FROM built:1\nRUN cat /tmp/onbuild.txt\n");
    let o = build_ok(&e, &["-t", "child:1", child.to_str().unwrap()]);
    assert!(o.contains("Executing 1 build trigger") && o.contains("triggered"), "{o}");
    assert_eq!(e.ok(&["run", "--rm", "child:1", "cat /tmp/onbuild.txt"]), "triggered\n");

    // --target builds up to a stage.
    let o = build_ok(&e, &["--target", "build", "-t", "stage:build", c, "--build-arg", "GREETING=hey"]);
    assert!(o.contains("Step 7/7"), "{o}");
    assert_eq!(e.ok(&["run", "--rm", "stage:build", "cat", "/src/built.txt"]), "hey from build\nhello from context\n");

    // Push to a loopback registry and pull it back.
    let reg = Registry::start();
    let remote = format!("{}/built:1", reg.addr);
    e.ok(&["tag", "built:1", &remote]);
    e.ok(&["push", &remote]);
    e.ok(&["rmi", &remote]);
    e.ok(&["rmi", "-f", "built:1", "built:alt"]);
    e.ok(&["pull", &remote]);
    let run = e.ok(&["run", "--rm", &remote]);
    assert!(run.starts_with("hello from build\n") && run.contains("\nv1\n"), "{run}");
}

#[test]
fn symlinks_pointing_out_of_the_context_are_copied_as_links() {
    let e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    write(&ctx, "Dockerfile", "FROM bb\nCOPY shadow up /x/\nCOPY d /d/\nCOPY d/esc /single\n");
    std::os::unix::fs::symlink("/etc/shadow", ctx.join("shadow")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", ctx.join("up")).unwrap();
    std::fs::create_dir_all(ctx.join("d")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ctx.join("d/esc")).unwrap();
    build_ok(&e, &["-t", "links:1", ctx.to_str().unwrap()]);
    let o = e.ok(&[
        "run",
        "--rm",
        "links:1",
        "sh",
        "-c",
        "for l in /x/shadow /x/up /d/esc /single; do readlink $l; done; test -L /x/shadow && test -L /single && echo links; cat /x/shadow || echo unreadable",
    ]);
    assert_eq!(o, "/etc/shadow\n../../etc/passwd\n/etc/hostname\n/etc/hostname\nlinks\nunreadable\n");
    // `docker builder prune` forgets the cache: the next build runs every step.
    let o = e.ok(&["builder", "prune", "-f"]);
    assert!(o.contains("Total reclaimed space"), "{o}");
    let o = build_ok(&e, &["-t", "links:1", ctx.to_str().unwrap()]);
    assert!(!o.contains("Using cache"), "{o}");
    // A source climbing out of the context is refused.
    write(&ctx, "Dockerfile", "FROM bb\nCOPY ../outside /x\n");
    let o = build(&e, &[ctx.to_str().unwrap()]);
    assert!(!o.status.success() && all(&o).contains("outside the build context"), "{}", show(&o));
}

/// What a build may leave: containers, mounts under the engine's root,
/// root filesystems, build work dirs, uploads, images.
fn residue(e: &Engined) -> (String, usize, usize, usize, usize, String) {
    let root = e.dir.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&root)))
        .count();
    let n = |p: &str| std::fs::read_dir(e.data_root().join(p)).map(|r| r.count()).unwrap_or(0);
    (e.ok(&["ps", "-aq"]), mounts, n("images/rootfs"), n("build/work"), n("tmp"), e.ok(&["images", "-aq"]))
}

#[test]
fn failures_say_what_failed_and_leave_nothing() {
    let e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    write(&ctx, "Dockerfile", "FROM bb\n");
    build_ok(&e, &[ctx.to_str().unwrap()]);
    let before = residue(&e);
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "FROM bb\nRUN echo before-failing; exit 7\n",
            &[],
            &["Step 2/2 : RUN echo before-failing; exit 7", "before-failing", "returned a non-zero code: 7"],
        ),
        ("FROM bb\nRUN true\n\nBOGUS x\n", &[], &["line 4", "BOGUS"]),
        ("FROM bb\nCOPY missing.txt /\n", &[], &["missing.txt"]),
        ("FROM bb AS one\nRUN true\n", &["--target", "nosuch"], &["nosuch"]),
        // An unknown stage is an image to pull: from a loopback port nothing listens on.
        ("FROM bb\nCOPY --from=127.0.0.1:9/nostage /x /y\n", &[], &["127.0.0.1:9/nostage"]),
    ];
    for (df, extra, want) in cases {
        write(&ctx, "Dockerfile", df);
        let mut args: Vec<&str> = extra.to_vec();
        args.push(ctx.to_str().unwrap());
        let o = build(&e, &args);
        assert!(!o.status.success(), "{df}: {}", show(&o));
        for w in *want {
            assert!(all(&o).contains(w), "{df}: want {w:?} in {}", show(&o));
        }
        assert_eq!(residue(&e), before, "{df}: something was left");
    }
}

#[test]
fn commit_a_container_with_changes() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "--name", "c1", "bb", "sh", "-c", "echo committed > /f; rm /bin/vi"]);
    let id = e.ok(&[
        "commit",
        "--change",
        "CMD [\"cat\", \"/f\"]",
        "--change",
        "ENV X=1",
        "--change",
        "EXPOSE 7000",
        "-m",
        "my message",
        "-a",
        "me <me@example.com>",
        "c1",
        "snap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(e.ok(&["run", "--rm", "snap:1"]), "committed\n");
    // A deletion is a whiteout in the new layer.
    let o = e.docker(&["run", "--rm", "snap:1", "ls", "/bin/vi"]);
    assert!(!o.status.success(), "{}", show(&o));
    let a = e.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Author}}|{{json .Config.Env}}|{{json .Config.ExposedPorts}}",
        "snap:1",
    ]);
    assert!(a.starts_with("me <me@example.com>|") && a.contains("X=1") && a.contains("7000/tcp"), "{a}");
    let h = e.ok(&["history", "--no-trunc", "--format", "{{.Comment}}", "snap:1"]);
    assert!(h.contains("my message"), "{h}");
    // A running container is paused for the commit and runs on.
    e.ok(&["run", "-d", "--name", "r1", "bb", "sh", "-c", "echo live > /g; sleep 300"]);
    assert!(eventually(10, || e.docker(&["exec", "r1", "cat", "/g"]).status.success()));
    e.ok(&["commit", "r1", "snap:2"]);
    assert!(e.ok(&["inspect", "--format", "{{.State.Status}}", "r1"]).contains("running"));
    assert_eq!(e.ok(&["run", "--rm", "snap:2", "cat", "/g"]), "live\n");
    // A change that is not allowed, and an unknown container, are refused.
    let o = e.docker(&["commit", "--change", "RUN true", "c1", "snap:3"]);
    assert!(!o.status.success() && all(&o).contains("RUN"), "{}", show(&o));
    let o = e.docker(&["commit", "nosuch", "snap:3"]);
    assert!(!o.status.success() && all(&o).contains("nosuch"), "{}", show(&o));
    e.ok(&["rm", "-f", "r1"]);
}

#[test]
fn engine_cli_builds_and_commits() {
    let e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    write(&ctx, "Dockerfile", "FROM bb\nARG WHO\nCOPY f /f\nRUN echo \"by $WHO\" >> /f\nCMD [\"cat\", \"/f\"]\n");
    write(&ctx, "f", "file\n");
    let o = e.engine(&["build", "-t", "cli:1", "--build-arg", "WHO=engine", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        out(&o).contains("Step 4/5 : RUN echo \"by $WHO\" >> /f") && out(&o).contains("Successfully tagged cli:1"),
        "{}",
        show(&o)
    );
    assert_eq!(e.ok(&["run", "--rm", "cli:1"]), "file\nby engine\n");
    let o = e.engine(&["build", "-q", "--build-arg", "WHO=engine", ctx.to_str().unwrap()]);
    assert!(o.status.success() && out(&o).trim().starts_with("sha256:"), "{}", show(&o));
    // A failing step: the CLI says which and exits non-zero.
    write(&ctx, "Dockerfile", "FROM bb\nRUN exit 4\n");
    let o = e.engine(&["build", ctx.to_str().unwrap()]);
    assert!(!o.status.success() && all(&o).contains("returned a non-zero code: 4"), "{}", show(&o));
    // Commit.
    e.ok(&["run", "--name", "c2", "bb", "sh", "-c", "echo from-cli > /x"]);
    let o = e.engine(&["commit", "-c", "CMD [\"cat\", \"/x\"]", "-m", "msg", "c2", "clicommit:1"]);
    assert!(o.status.success() && out(&o).starts_with("sha256:"), "{}", show(&o));
    assert_eq!(e.ok(&["run", "--rm", "clicommit:1"]), "from-cli\n");
    // FROM scratch, filled from another stage.
    write(
        &ctx,
        "Dockerfile",
        "FROM bb AS b\nRUN echo from-scratch > /x\nFROM scratch\nCOPY --from=b /x /x\n\
         COPY --from=b /bin/busybox /bin/cat\nCMD [\"/bin/cat\", \"/x\"]\n",
    );
    let o = e.engine(&["build", "-t", "scratchy:1", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(e.ok(&["run", "--rm", "scratchy:1"]), "from-scratch\n");
    let layers = e.ok(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", "scratchy:1"]);
    assert_eq!(layers.trim(), "2");
}

#[test]
fn a_build_cut_short_by_a_crash_is_cleaned_up_when_engined_starts() {
    let mut e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    write(&ctx, "Dockerfile", "FROM bb\nRUN echo started; sleep 120\n");
    let mut cli = Command::new(docker_cli())
        .args(["-H", &e.host(), "build", ctx.to_str().unwrap()])
        .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = |e: &Engined| e.ok(&["ps", "-q", "--filter", "label=engine.build"]).trim().to_string();
    assert!(eventually(30, || !running(&e).is_empty()), "the RUN step never started:\n{}", e.log());
    e.kill9();
    let _ = cli.kill();
    let _ = cli.wait();
    e.spawn();
    // The step's container outlived the daemon; engined removed it before
    // serving its first request, with no build asked for.
    assert_eq!(running(&e), "");
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    assert_eq!(std::fs::read_dir(e.data_root().join("build/work")).unwrap().count(), 0);
    write(&ctx, "Dockerfile", "FROM bb\nRUN true\n");
    build_ok(&e, &[ctx.to_str().unwrap()]);
    assert_eq!(e.ok(&["ps", "-aq"]), "");
}

#[test]
fn inspect_shows_healthcheck_onbuild_and_container_config_and_images_hide_intermediates() {
    let e = Engined::start();
    e.load_busybox();
    let ctx = e.dir.path().join("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM bb\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1\nONBUILD RUN echo child\nRUN echo built > /f\nCMD [\"sh\"]\n",
    );
    build_ok(&e, &["-t", "hc:1", ctx.to_str().unwrap()]);
    let fmt = |f: &str| e.ok(&["image", "inspect", "--format", f, "hc:1"]).trim().to_string();
    // What dockerd's classic builder shows for the same Dockerfile.
    assert_eq!(
        fmt("{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","wget -q localhost || exit 1"],"Interval":5000000000,"Retries":2}"#
    );
    assert_eq!(fmt("{{json .Config.OnBuild}}"), r#"["RUN echo child"]"#);
    assert_eq!(fmt("{{json .ContainerConfig.Cmd}}"), r##"["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"]"##);
    assert_eq!(fmt("{{json .ContainerConfig.Healthcheck}}"), fmt("{{json .Config.Healthcheck}}"));
    let parent = fmt("{{.ContainerConfig.Image}}");
    assert!(parent.starts_with("sha256:"), "ContainerConfig.Image: {parent}");
    // The RUN step's container ran its command.
    let run_step = e.ok(&["image", "inspect", "--format", "{{json .ContainerConfig.Cmd}}", &parent]);
    assert_eq!(run_step.trim(), r#"["/bin/sh","-c","echo built > /f"]"#);

    // The four steps' images: only bb and hc:1 are listed without -a.
    let ids = |args: &[&str]| {
        let mut v: Vec<String> = e.ok(args).lines().map(str::to_string).collect();
        v.sort();
        v.dedup();
        v
    };
    let shown = ids(&["images", "-q", "--no-trunc"]);
    let every = ids(&["images", "-aq", "--no-trunc"]);
    let bb = e.ok(&["image", "inspect", "--format", "{{.Id}}", "bb"]).trim().to_string();
    let hc = e.ok(&["image", "inspect", "--format", "{{.Id}}", "hc:1"]).trim().to_string();
    let mut want = vec![bb, hc];
    want.sort();
    assert_eq!(shown, want, "docker images hides the intermediate images");
    assert_eq!(every.len(), 5, "docker images -a shows them: {every:?}");
    assert!(every.contains(&parent));
}
