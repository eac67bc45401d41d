//! The builder: stages and steps over [`LifecycleManager`] + [`ImageStore`].

use crate::copy::{make_tar, resolve_owner, CopyPlan};
use crate::ignore::DockerIgnore;
use crate::parse::{expand, key_values, parse, parse_instruction, split_raw, Args, Dockerfile, Instruction};
use engine_archive::{ContainerRoot, ExtractOptions};
use engine_core::{
    CommitRequest, ContainerConfig, Error, ImageInfo, ImageStore, LifecycleManager, ListFilter, LogOptions, MountSpec,
    NetworkMode, Result, WaitCondition,
};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// What to build.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The Dockerfile's path in the context (default `Dockerfile`).
    pub dockerfile: String,
    /// Tags for the result.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// Build up to this stage (`--target`).
    pub target: Option<String>,
    /// Do not use the cache.
    pub no_cache: bool,
    /// Pull base images even when present.
    pub pull: bool,
    /// Labels added to the result.
    pub labels: BTreeMap<String, String>,
    /// The network RUN steps get (default: [`NetworkMode::None`], a
    /// namespace with loopback only; docker's default is
    /// [`NetworkMode::Bridge`], which needs the manager's network driver).
    pub network: NetworkMode,
    /// Remove each RUN step's container once committed (default true;
    /// a failed step's container is always removed).
    pub remove_intermediate: bool,
}

engine_core::__setters!(BuildOptions { dockerfile: String, tags: Vec<String>, build_args: BTreeMap<String, String>, target: Option<String>, no_cache: bool, pull: bool, labels: BTreeMap<String, String>, network: NetworkMode, remove_intermediate: bool });

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            dockerfile: "Dockerfile".into(),
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            pull: false,
            labels: BTreeMap::new(),
            network: NetworkMode::None,
            remove_intermediate: true,
        }
    }
}

/// Progress of a build, as the classic builder prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// A step begins (`Step 2/7 : RUN make`).
    Step {
        /// 1-based step number.
        number: usize,
        /// Steps in all.
        total: usize,
        /// The instruction as written.
        instruction: String,
    },
    /// A line about the step (` ---> Using cache`, ` ---> 1a2b3c4d5e6f`).
    Info(String),
    /// Output of a RUN step.
    Output(String),
}

impl BuildEvent {
    /// The text `docker build` prints for it (with its newline).
    pub fn text(&self) -> String {
        match self {
            BuildEvent::Step { number, total, instruction } => format!("Step {number}/{total} : {instruction}\n"),
            BuildEvent::Info(s) => format!("{s}\n"),
            BuildEvent::Output(s) => s.clone(),
        }
    }
}

/// What a build made.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BuildOutput {
    /// The image.
    pub image: ImageInfo,
    /// Steps answered from the cache.
    pub cached_steps: usize,
    /// Steps run.
    pub steps: usize,
}

engine_core::__setters!(BuildOutput { image: ImageInfo, cached_steps: usize, steps: usize });

/// The builder. Cheap to share; builds may run concurrently.
pub struct Builder {
    manager: Arc<dyn LifecycleManager>,
    images: Arc<dyn ImageStore>,
    root: PathBuf,
    cache_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("root", &self.root).finish_non_exhaustive()
    }
}

const SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The label on RUN steps' containers.
const BUILD_LABEL: &str = "engine.build";

fn short(id: &str) -> String {
    id.strip_prefix("sha256:").unwrap_or(id).chars().take(12).collect()
}

fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", &engine_core::random_hex64()[..8]));
    let what = || format!("write {}", path.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(what(), e))?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(|e| Error::io(what(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(what(), e)
    })
}

/// A stage being built.
struct StageState {
    image: Option<String>,
    config: Map<String, Value>,
    args: BTreeMap<String, String>,
    shell: Vec<String>,
}

impl StageState {
    fn env_value(&self, k: &str) -> Option<String> {
        let env = self.config.get("Env").and_then(Value::as_array);
        env.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|e| e.split_once('='))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
            .or_else(|| self.args.get(k).cloned())
    }
    fn set_env(&mut self, k: &str, v: &str) {
        let env = self.config.entry("Env").or_insert_with(|| json!([]));
        if !env.is_array() {
            *env = json!([]);
        }
        let list = env.as_array_mut().expect("array");
        let entry = json!(format!("{k}={v}"));
        match list.iter().position(|e| e.as_str().is_some_and(|s| s.split_once('=').map(|x| x.0) == Some(k))) {
            Some(i) => list[i] = entry,
            None => list.push(entry),
        }
    }
    fn map_insert(&mut self, field: &str, k: &str, v: Value) {
        let m = self.config.entry(field).or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        m.as_object_mut().expect("object").insert(k.to_string(), v);
    }
}

/// One build in progress.
struct Run<'a> {
    b: &'a Builder,
    opts: &'a BuildOptions,
    context: PathBuf,
    ignore: DockerIgnore,
    escape: char,
    events: Option<UnboundedSender<BuildEvent>>,
    step: usize,
    total: usize,
    cached: usize,
    stage_images: Vec<Option<String>>,
    stage_names: Vec<Option<String>>,
    used_args: std::collections::BTreeSet<String>,
}

impl Builder {
    /// A builder over these tiers, keeping its cache index and work
    /// directories under `root`. Call [`Builder::recover`] before the first
    /// build to clean up after a build that was killed.
    pub fn new(
        manager: Arc<dyn LifecycleManager>,
        images: Arc<dyn ImageStore>,
        root: impl Into<PathBuf>,
    ) -> Result<Self> {
        let root = root.into();
        let work = root.join("work");
        std::fs::create_dir_all(&work).map_err(|e| Error::io(format!("create {}", work.display()), e))?;
        Ok(Builder { manager, images, root, cache_lock: tokio::sync::Mutex::new(()) })
    }

    /// Remove what builds cut short by a crash left: their RUN containers
    /// (labelled `engine.build`) and the root filesystems of their file
    /// steps (named by the directories under `<root>/work`). Call it once,
    /// before any build runs.
    pub async fn recover(&self) -> Result<()> {
        let filter = ListFilter::default().all(true).labels(vec![BUILD_LABEL.to_string()]);
        for c in self.manager.list(filter).await? {
            tracing::info!(id = %c.id, "removing the container of an interrupted build step");
            self.manager.remove(&c.id, true).await?;
        }
        let work = self.root.join("work");
        let names: Vec<String> = std::fs::read_dir(&work)
            .map_err(|e| Error::io(format!("list {}", work.display()), e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for n in names {
            match self.images.remove_rootfs(&n).await {
                Ok(()) => tracing::info!(key = %n, "removed the root filesystem of an interrupted build step"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            let p = work.join(&n);
            std::fs::remove_dir(&p).map_err(|e| Error::io(format!("remove {}", p.display()), e))?;
        }
        Ok(())
    }

    fn cache_path(&self) -> PathBuf {
        self.root.join("cache.json")
    }

    async fn cache_get(&self, key: &str) -> Option<String> {
        let _g = self.cache_lock.lock().await;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(self.cache_path()).ok()?).unwrap_or_default();
        let id = map.get(key)?.clone();
        self.images.inspect(&id).await.ok().map(|i| i.id)
    }

    async fn cache_put(&self, key: &str, id: &str) -> Result<()> {
        let _g = self.cache_lock.lock().await;
        let path = self.cache_path();
        let mut map: BTreeMap<String, String> =
            std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        map.insert(key.to_string(), id.to_string());
        let bytes = serde_json::to_vec(&map).map_err(|e| Error::Other(e.to_string()))?;
        atomic_write(&path, &bytes)
    }

    /// Forget the cache; remove the cached images no tag and no container
    /// uses. Returns the ids removed and the bytes reclaimed.
    pub async fn prune(&self) -> Result<(Vec<String>, u64)> {
        let _g = self.cache_lock.lock().await;
        let path = self.cache_path();
        let map: BTreeMap<String, String> =
            std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let mut removed = Vec::new();
        let mut bytes = 0;
        // Newest first, so children go before their parents.
        let mut infos = Vec::new();
        for id in map.values() {
            if let Ok(i) = self.images.inspect(id).await {
                if i.repo_tags.is_empty() && !infos.iter().any(|x: &ImageInfo| x.id == i.id) {
                    infos.push(i);
                }
            }
        }
        infos.sort_by_key(|i| std::cmp::Reverse(i.created));
        for i in infos {
            if self.images.remove(&i.id, false).await.is_ok() {
                bytes += i.size;
                removed.push(i.id);
            }
        }
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        }
        Ok((removed, bytes))
    }

    /// Build the Dockerfile in the context directory `context`. Progress
    /// goes to `events`. On error nothing of the failed step is left
    /// (container, root filesystem, mount); finished steps stay as cache.
    pub async fn build(
        &self,
        context: &Path,
        opts: &BuildOptions,
        events: Option<UnboundedSender<BuildEvent>>,
    ) -> Result<BuildOutput> {
        let root = ContainerRoot::open_dir(context)?;
        let text = root.read_file(&opts.dockerfile).map_err(|e| {
            if e.is_not_found() {
                Error::invalid("Dockerfile", format!("cannot locate specified Dockerfile: {}", opts.dockerfile))
            } else {
                e
            }
        })?;
        let df = parse(&String::from_utf8_lossy(&text))?;
        let ignore = root
            .read_file(".dockerignore")
            .map(|b| DockerIgnore::parse(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        let target = match &opts.target {
            Some(t) => df.stage_index(t)?,
            None => df.stages.len() - 1,
        };
        let total = df.stages[..=target].iter().map(|s| 1 + s.instructions.len()).sum();
        let mut run = Run {
            b: self,
            opts,
            context: context.to_path_buf(),
            ignore,
            escape: df.escape,
            events,
            step: 0,
            total,
            cached: 0,
            stage_images: Vec::new(),
            stage_names: Vec::new(),
            used_args: Default::default(),
        };
        let image_id = run.stages(&df, target).await?;
        let unused: Vec<_> = opts.build_args.keys().filter(|k| !run.used_args.contains(*k)).cloned().collect();
        if !unused.is_empty() {
            run.info(format!("[Warning] One or more build-args [{}] were not consumed", unused.join(" ")));
        }
        for t in &opts.tags {
            self.images.tag(&image_id, t).await?;
        }
        let image = self.images.inspect(&image_id).await?;
        Ok(BuildOutput { image, cached_steps: run.cached, steps: run.step })
    }
}

impl Run<'_> {
    fn send(&self, e: BuildEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }
    fn info(&self, s: impl Into<String>) {
        self.send(BuildEvent::Info(s.into()));
    }

    async fn stages(&mut self, df: &Dockerfile, target: usize) -> Result<String> {
        // Global ARGs: usable in FROM lines.
        let mut global: BTreeMap<String, String> = BTreeMap::new();
        for a in &df.global_args {
            let (k, v) = self.arg_value(a, &|k| global.get(k).cloned())?;
            if let Some(v) = v {
                global.insert(k, v);
            }
        }
        let mut last = String::new();
        for stage in &df.stages[..=target] {
            self.step += 1;
            self.send(BuildEvent::Step {
                number: self.step,
                total: self.total,
                instruction: stage.from.original.clone(),
            });
            let base = expand(&stage.base, self.escape, &|k| global.get(k).cloned())?;
            if let Some(p) = stage.from.flag("platform") {
                let p = expand(p, self.escape, &|k| global.get(k).cloned())?;
                let host = format!("linux/{}", host_arch());
                if !p.is_empty() && !p.starts_with(&host) {
                    return Err(Error::invalid(
                        format!("FROM --platform={p} (line {})", stage.from.line),
                        format!("this engine builds for {host} only"),
                    ));
                }
            }
            let mut st = StageState { image: None, config: Map::new(), args: BTreeMap::new(), shell: Vec::new() };
            let lower = base.to_ascii_lowercase();
            if let Some(i) = self.stage_names.iter().position(|n| n.as_deref() == Some(lower.as_str())) {
                st.image = self.stage_images[i].clone();
            } else if lower != "scratch" {
                st.image = Some(self.base_image(&base).await?);
            }
            if let Some(id) = &st.image {
                let cfg = self.b.images.config_json(id).await?;
                if let Some(c) = cfg.get("config").and_then(Value::as_object) {
                    st.config = c.clone();
                }
                self.info(format!(" ---> {}", short(id)));
            }
            st.shell = st
                .config
                .get("Shell")
                .and_then(|s| serde_json::from_value::<Vec<String>>(s.clone()).ok())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| SHELL.iter().map(|s| s.to_string()).collect());
            // ONBUILD triggers of the base run first.
            let triggers: Vec<String> =
                st.config.remove("OnBuild").and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            if !triggers.is_empty() {
                self.info(format!(
                    "# Executing {} build trigger{}",
                    triggers.len(),
                    if triggers.len() == 1 { "" } else { "s" }
                ));
            }
            for t in triggers {
                let ins = parse_instruction(stage.from.line, &t)?;
                self.instruction(&mut st, &ins, &global).await?;
            }
            for ins in &stage.instructions {
                self.step += 1;
                self.send(BuildEvent::Step { number: self.step, total: self.total, instruction: ins.original.clone() });
                self.instruction(&mut st, ins, &global).await?;
            }
            if stage.index == target && !self.opts.labels.is_empty() {
                for (k, v) in &self.opts.labels {
                    st.map_insert("Labels", k, json!(v));
                }
                let text = self.opts.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(" ");
                self.metadata(&mut st, &format!("LABEL {text}")).await?;
            }
            let id = match &st.image {
                Some(id) => id.clone(),
                None => self.scratch().await?,
            };
            self.stage_images.push(Some(id.clone()));
            self.stage_names.push(stage.name.clone());
            last = id;
        }
        Ok(last)
    }

    async fn base_image(&self, base: &str) -> Result<String> {
        if !self.opts.pull {
            if let Ok(i) = self.b.images.inspect(base).await {
                return Ok(i.id);
            }
        }
        self.info(format!("Pulling {base}"));
        Ok(self.b.images.pull(base, None, None).await?.id)
    }

    /// `ARG name[=default]`: its name and value (a `--build-arg` wins).
    fn arg_value(
        &mut self,
        ins: &Instruction,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, Option<String>)> {
        let text = ins.text();
        let (k, default) = match text.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), Some(expand(v.trim(), self.escape, vars)?)),
            None => (text.trim().to_string(), None),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(Error::invalid("Dockerfile", format!("line {}: ARG {text:?} is not NAME[=default]", ins.line)));
        }
        let v = match self.opts.build_args.get(&k) {
            Some(v) => {
                self.used_args.insert(k.clone());
                Some(v.clone())
            }
            None => default,
        };
        Ok((k, v))
    }

    /// The image a scratch stage grows from: no layers, no history.
    async fn scratch(&self) -> Result<String> {
        let key = "scratch";
        if let Some(id) = self.b.cache_get(key).await {
            return Ok(id);
        }
        let img = self
            .b
            .images
            .commit(CommitRequest::default().created_by("FROM scratch".into()).config(Some(json!({}))))
            .await?;
        self.b.cache_put(key, &img.id).await?;
        Ok(img.id)
    }

    fn cache_key(&self, parent: &Option<String>, created_by: &str, config: &Map<String, Value>) -> String {
        let mut h = Sha256::new();
        h.update(parent.as_deref().unwrap_or("scratch"));
        h.update([0]);
        h.update(created_by);
        h.update([0]);
        h.update(serde_json::to_vec(config).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// Look the step up in the cache; on a hit, move the stage onto it.
    async fn cached(&mut self, st: &mut StageState, key: &str) -> bool {
        if self.opts.no_cache {
            return false;
        }
        match self.b.cache_get(key).await {
            Some(id) => {
                self.info(" ---> Using cache");
                self.info(format!(" ---> {}", short(&id)));
                self.cached += 1;
                st.image = Some(id);
                true
            }
            None => false,
        }
    }

    async fn commit(
        &mut self,
        st: &mut StageState,
        key: &str,
        rootfs: Option<String>,
        created_by: String,
    ) -> Result<()> {
        let parent = st.image.clone();
        let img = self
            .b
            .images
            .commit(
                CommitRequest::default()
                    .rootfs(rootfs)
                    .parent(parent)
                    .config(Some(Value::Object(st.config.clone())))
                    .created_by(created_by),
            )
            .await?;
        self.b.cache_put(key, &img.id).await?;
        st.image = Some(img.id);
        Ok(())
    }

    /// Say which image a step made (after its container's removal, as docker does).
    fn made(&self, st: &StageState) {
        if let Some(id) = &st.image {
            self.info(format!(" ---> {}", short(id)));
        }
    }

    /// A step that changes only the config.
    async fn metadata(&mut self, st: &mut StageState, shown: &str) -> Result<()> {
        let created_by = format!("/bin/sh -c #(nop)  {shown}");
        let key = self.cache_key(&st.image, &created_by, &st.config);
        if self.cached(st, &key).await {
            return Ok(());
        }
        self.commit(st, &key, None, created_by).await?;
        self.made(st);
        Ok(())
    }

    async fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        global: &BTreeMap<String, String>,
    ) -> Result<()> {
        let esc = self.escape;
        let snapshot = |st: &StageState| {
            let st2 = StageState { image: None, config: st.config.clone(), args: st.args.clone(), shell: Vec::new() };
            move |k: &str| st2.env_value(k)
        };
        match ins.keyword.as_str() {
            "ARG" => {
                let vars = snapshot(st);
                let (k, mut v) = self.arg_value(ins, &vars)?;
                if v.is_none() {
                    v = global.get(&k).cloned();
                }
                let shown = match &v {
                    Some(v) => format!("ARG {k}={v}"),
                    None => format!("ARG {k}"),
                };
                if let Some(v) = v {
                    st.args.insert(k, v);
                }
                self.metadata(st, &shown).await
            }
            "WORKDIR" => {
                let shown = apply_config(st, ins, esc)?;
                let path = shown["WORKDIR ".len()..].to_string();
                let created_by = format!("/bin/sh -c #(nop) {shown}");
                let key = self.cache_key(&st.image, &created_by, &st.config);
                if self.cached(st, &key).await {
                    return Ok(());
                }
                let p2 = path.clone();
                self.file_step(st, &key, created_by, move |root: &ContainerRoot, _: &Path| {
                    if root.stat(&p2).is_ok() {
                        return Ok(false);
                    }
                    let mut b = tar::Builder::new(Vec::new());
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{}/", p2.trim_matches('/')), std::io::empty())
                        .map_err(|e| Error::io("WORKDIR", e))?;
                    let data = b.into_inner().map_err(|e| Error::io("WORKDIR", e))?;
                    root.extract_tar("/", &data[..], &ExtractOptions::default())?;
                    Ok(true)
                })
                .await
            }
            "RUN" => self.run_step(st, ins).await,
            "COPY" | "ADD" => self.copy_step(st, ins).await,
            _ => {
                let shown = apply_config(st, ins, esc)?;
                self.metadata(st, &shown).await
            }
        }
    }

    /// Prepare the stage's root filesystem, let `f` change it, commit it as a
    /// layer (or, when `f` says nothing changed, as config only).
    async fn file_step(
        &mut self,
        st: &mut StageState,
        key: &str,
        created_by: String,
        f: impl FnOnce(&ContainerRoot, &Path) -> Result<bool> + Send + 'static,
    ) -> Result<()> {
        if st.image.is_none() {
            st.image = Some(self.scratch().await?);
        }
        let image = st.image.clone().expect("image");
        let rkey = format!("build-{}", &engine_core::random_hex64()[..16]);
        let target = self.b.root.join("work").join(&rkey);
        let rootfs = self.b.images.prepare_rootfs(&image, &rkey, &target).await?;
        let path = rootfs.path.clone();
        let changed = tokio::task::spawn_blocking(move || ContainerRoot::open_dir(&path).and_then(|r| f(&r, &path)))
            .await
            .map_err(|e| Error::Other(format!("copy task failed: {e}")))
            .and_then(|r| r);
        let result = match changed {
            Ok(true) => self.commit(st, key, Some(rkey.clone()), created_by).await,
            Ok(false) => self.commit(st, key, None, created_by).await,
            Err(e) => Err(e),
        };
        let removed = self.b.images.remove_rootfs(&rkey).await;
        let _ = std::fs::remove_dir(&target);
        result?;
        removed?;
        self.made(st);
        Ok(())
    }

    async fn copy_step(&mut self, st: &mut StageState, ins: &Instruction) -> Result<()> {
        let esc = self.escape;
        let at = |m: String| Error::invalid("Dockerfile", format!("line {}: {m}", ins.line));
        if !ins.heredocs.is_empty() {
            return Err(at(format!("{}: here-documents are supported for RUN only", ins.keyword)));
        }
        let env = StageState { image: None, config: st.config.clone(), args: st.args.clone(), shell: Vec::new() };
        let vars = move |k: &str| env.env_value(k);
        let words: Vec<String> = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => split_raw(s, esc).iter().map(|w| expand(w, esc, &vars)).collect::<Result<_>>()?,
        };
        if words.len() < 2 {
            return Err(at(format!("{} requires at least two arguments", ins.keyword)));
        }
        let (dest_raw, sources) = words.split_last().expect("two words");
        if ins.keyword == "ADD" && sources.iter().any(|s| s.starts_with("http://") || s.starts_with("https://")) {
            return Err(Error::Unsupported(format!("line {}: ADD from a URL (use RUN wget or COPY)", ins.line)));
        }
        let wd = st.config.get("WorkingDir").and_then(Value::as_str).unwrap_or("/").to_string();
        let mut dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", wd.trim_end_matches('/'))
        };
        if dest_raw.ends_with('/') && !dest.ends_with('/') {
            dest.push('/');
        }
        let mode = match ins.flag("chmod") {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| at(format!("--chmod={m}: not an octal mode")))?),
            None => None,
        };
        let plan0 = CopyPlan {
            keyword: ins.keyword.clone(),
            sources: sources.to_vec(),
            dest: dest.clone(),
            owner: (0, 0),
            mode,
            unpack: ins.keyword == "ADD",
        };
        // The source root: the context, another stage, or an image.
        let mut src_rootfs: Option<(String, PathBuf)> = None;
        let (src_dir, ignore) = match ins.flag("from") {
            None => (self.context.clone(), Some(self.ignore.clone())),
            Some(from) => {
                let lower = from.to_ascii_lowercase();
                let image = match self.stage_names.iter().position(|n| n.as_deref() == Some(lower.as_str())) {
                    Some(i) => self.stage_images[i].clone().expect("built stage"),
                    None => match lower.parse::<usize>() {
                        Ok(i) if i < self.stage_images.len() => self.stage_images[i].clone().expect("built stage"),
                        _ => self.base_image(from).await?,
                    },
                };
                let rkey = format!("build-{}", &engine_core::random_hex64()[..16]);
                let target = self.b.root.join("work").join(&rkey);
                let r = self.b.images.prepare_rootfs(&image, &rkey, &target).await?;
                src_rootfs = Some((rkey, target));
                (r.path, None)
            }
        };
        let chown = ins.flag("chown").map(str::to_string);
        let made = {
            let plan = plan0.clone();
            tokio::task::spawn_blocking(move || make_tar(&src_dir, ignore.as_ref(), &plan))
                .await
                .map_err(|e| Error::Other(format!("copy task failed: {e}")))
                .and_then(|r| r)
        };
        if let Some((rkey, target)) = src_rootfs {
            let _ = self.b.images.remove_rootfs(&rkey).await;
            let _ = std::fs::remove_dir(&target);
        }
        let made = made?;
        let flags: String = ins.flags.iter().filter(|(k, _)| k != "from").map(|(k, v)| format!("--{k}={v} ")).collect();
        let from = ins.flag("from").map(|f| format!("--from={f} ")).unwrap_or_default();
        let created_by = format!("/bin/sh -c #(nop) {} {from}{flags}sha256:{} in {dest} ", ins.keyword, made.hash);
        let key = self.cache_key(&st.image, &created_by, &st.config);
        if self.cached(st, &key).await {
            return Ok(());
        }
        let tar = made.tar;
        self.file_step(st, &key, created_by, move |root: &ContainerRoot, dir: &Path| {
            let mut tar = tar;
            if let Some(c) = chown {
                // Owners by name resolve in the image being built.
                let (uid, gid) = resolve_owner(dir, &c)?;
                tar = rechown(&tar, uid, gid)?;
            }
            root.extract_tar("/", &tar[..], &ExtractOptions::default().copy_uid_gid(true))?;
            Ok(true)
        })
        .await
    }

    async fn run_step(&mut self, st: &mut StageState, ins: &Instruction) -> Result<()> {
        let cmd: Vec<String> = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let script = match ins.heredocs.first() {
                    Some(h) if s.trim().starts_with("<<") && ins.heredocs.len() == 1 => h.body.clone(),
                    _ if !ins.heredocs.is_empty() => {
                        let mut t = s.clone();
                        for h in &ins.heredocs {
                            t.push('\n');
                            t.push_str(&h.body);
                            t.push_str(&h.name);
                        }
                        t
                    }
                    _ => s.clone(),
                };
                st.shell.iter().cloned().chain([script]).collect()
            }
        };
        let network = match ins.flag("network") {
            None | Some("default") => self.opts.network.clone(),
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(n) => {
                return Err(Error::invalid(
                    format!("RUN --network={n} (line {})", ins.line),
                    "use default, none or host",
                ))
            }
        };
        let arg_env: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let prefix =
            if arg_env.is_empty() { String::new() } else { format!("|{} {} ", arg_env.len(), arg_env.join(" ")) };
        let shown = cmd.join(" ");
        let created_by = format!("{prefix}{shown}");
        let key = self.cache_key(&st.image, &created_by, &st.config);
        if self.cached(st, &key).await {
            return Ok(());
        }
        if st.image.is_none() {
            st.image = Some(self.scratch().await?);
        }
        let mounts = st
            .config
            .get("Volumes")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(|t| MountSpec::Tmpfs { target: t.clone(), size: None }).collect())
            .unwrap_or_default();
        let config = ContainerConfig::default()
            .image(st.image.clone().expect("image"))
            .cmd(Some(cmd))
            .entrypoint(Some(Vec::new()))
            .env(arg_env)
            .network(network)
            .mounts(mounts)
            .labels([(BUILD_LABEL.to_string(), "run".to_string())].into());
        let info = self.b.manager.create(config).await?;
        self.info(format!(" ---> Running in {}", short(&info.id)));
        let ran = self.run_container(&info.id).await;
        let result = match ran {
            Ok(0) => self.commit(st, &key, Some(info.id.clone()), created_by).await,
            Ok(code) => Err(Error::invalid(
                format!("step {}/{}", self.step, self.total),
                format!("The command '{shown}' returned a non-zero code: {code}"),
            )),
            Err(e) => Err(e),
        };
        if result.is_err() || self.opts.remove_intermediate {
            let removed = self.b.manager.remove(&info.id, true).await;
            result?;
            removed?;
            self.info(format!("Removing intermediate container {}", short(&info.id)));
        } else {
            result?;
        }
        self.made(st);
        Ok(())
    }

    /// Start, stream output, wait; the exit code.
    async fn run_container(&self, id: &str) -> Result<i32> {
        let mut logs = self.b.manager.logs(id, LogOptions::default().follow(true)).await?;
        self.b.manager.start(id).await?;
        while let Some(e) = logs.next().await {
            let e = e?;
            // Lines come with their newline (a partial one without).
            self.send(BuildEvent::Output(String::from_utf8_lossy(&e.line).into_owned()));
        }
        Ok(self.b.manager.wait(id, WaitCondition::NotRunning).await?.code)
    }
}

fn rechown(tar_bytes: &[u8], uid: u32, gid: u32) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| Error::io("copy archive", e);
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = tar::Builder::new(Vec::new());
    for e in ar.entries().map_err(err)? {
        let mut e = e.map_err(err)?;
        let path = e.path().map_err(err)?.into_owned();
        let link = e.link_name().map_err(err)?.map(|l| l.into_owned());
        let mut h = e.header().clone();
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        let kind = h.entry_type();
        match link {
            Some(l) if kind.is_symlink() || kind.is_hard_link() => out.append_link(&mut h, &path, &l).map_err(err)?,
            _ => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).map_err(err)?;
                out.append_data(&mut h, &path, &data[..]).map_err(err)?;
            }
        }
    }
    out.into_inner().map_err(err)
}

/// Apply a config-only instruction (ENV, LABEL, MAINTAINER, EXPOSE, VOLUME,
/// USER, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, WORKDIR)
/// to the stage's config; returns the instruction as the history shows it.
fn apply_config(st: &mut StageState, ins: &Instruction, esc: char) -> Result<String> {
    let snapshot = |st: &StageState| {
        let st2 = StageState { image: None, config: st.config.clone(), args: st.args.clone(), shell: Vec::new() };
        move |k: &str| st2.env_value(k)
    };
    let at = |m: String| Error::invalid("Dockerfile", format!("line {}: {m}", ins.line));
    match ins.keyword.as_str() {
        "ENV" => {
            let vars = snapshot(st);
            let kv = key_values(ins, esc, &vars)?;
            for (k, v) in &kv {
                st.set_env(k, v);
            }
            let shown = kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            Ok(format!("ENV {shown}"))
        }
        "LABEL" => {
            let vars = snapshot(st);
            let kv = key_values(ins, esc, &vars)?;
            for (k, v) in &kv {
                st.map_insert("Labels", k, json!(v));
            }
            let shown = kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            Ok(format!("LABEL {shown}"))
        }
        "MAINTAINER" => {
            let m = ins.text();
            st.map_insert("Labels", "maintainer", json!(m));
            Ok(format!("MAINTAINER {m}"))
        }
        "EXPOSE" => {
            let vars = snapshot(st);
            let mut ports = Vec::new();
            for w in split_raw(&ins.text(), esc) {
                let p = expand(&w, esc, &vars)?;
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let ok = num.split('-').all(|n| n.parse::<u16>().is_ok()) && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(at(format!("EXPOSE: invalid port {p:?}")));
                }
                let port = format!("{num}/{proto}");
                st.map_insert("ExposedPorts", &port, json!({}));
                ports.push(port);
            }
            Ok(format!("EXPOSE {}", ports.join(" ")))
        }
        "VOLUME" => {
            let vars = snapshot(st);
            let list = match &ins.args {
                Args::Exec(v) => v.clone(),
                Args::Shell(s) => split_raw(s, esc),
            };
            let mut shown = Vec::new();
            for w in list {
                let v = expand(&w, esc, &vars)?;
                if v.is_empty() {
                    return Err(at("VOLUME specified can not be an empty string".into()));
                }
                st.map_insert("Volumes", &v, json!({}));
                shown.push(v);
            }
            Ok(format!("VOLUME {shown:?}"))
        }
        "USER" => {
            let vars = snapshot(st);
            let u = expand(ins.text().trim(), esc, &vars)?;
            st.config.insert("User".into(), json!(u));
            Ok(format!("USER {u}"))
        }
        "STOPSIGNAL" => {
            let vars = snapshot(st);
            let s = expand(ins.text().trim(), esc, &vars)?;
            s.parse::<engine_core::Signal>().map_err(|_| at(format!("STOPSIGNAL: invalid signal {s:?}")))?;
            st.config.insert("StopSignal".into(), json!(s));
            Ok(format!("STOPSIGNAL {s}"))
        }
        "CMD" | "ENTRYPOINT" => {
            let v: Vec<String> = match &ins.args {
                Args::Exec(v) => v.clone(),
                Args::Shell(s) if s.is_empty() => Vec::new(),
                Args::Shell(s) => st.shell.iter().cloned().chain([s.clone()]).collect(),
            };
            let field = if ins.keyword == "CMD" { "Cmd" } else { "Entrypoint" };
            st.config.insert(field.into(), json!(v));
            if ins.keyword == "ENTRYPOINT" && !matches!(ins.args, Args::Exec(_)) {
                // As docker: a shell-form entrypoint drops the cmd.
                st.config.insert("Cmd".into(), Value::Null);
            }
            Ok(format!("{} {}", ins.keyword, serde_json::to_string(&v).unwrap_or_default()))
        }
        "SHELL" => {
            let Args::Exec(v) = &ins.args else { return Err(at("SHELL requires JSON form".into())) };
            st.shell = v.clone();
            st.config.insert("Shell".into(), json!(v));
            Ok(format!("SHELL {}", serde_json::to_string(v).unwrap_or_default()))
        }
        "HEALTHCHECK" => {
            let text = ins.text();
            let (kind, rest) = text.trim().split_once(char::is_whitespace).unwrap_or((text.trim(), ""));
            let hc = match kind.to_ascii_uppercase().as_str() {
                "NONE" => json!({"Test": ["NONE"]}),
                "CMD" => {
                    let rest = rest.trim();
                    let test: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                        Ok(v) if rest.starts_with('[') => ["CMD".to_string()].into_iter().chain(v).collect(),
                        _ => vec!["CMD-SHELL".into(), rest.to_string()],
                    };
                    let mut hc = json!({"Test": test});
                    for (flag, field) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(v) = ins.flag(flag) {
                            let d = humantime::parse_duration(v)
                                .map_err(|e| at(format!("HEALTHCHECK --{flag}={v}: {e}")))?;
                            hc[field] = json!(d.as_nanos() as u64);
                        }
                    }
                    if let Some(r) = ins.flag("retries") {
                        let n: u32 = r.parse().map_err(|_| at(format!("HEALTHCHECK --retries={r}: not a number")))?;
                        hc["Retries"] = json!(n);
                    }
                    hc
                }
                _ => return Err(at("HEALTHCHECK: the first word must be CMD or NONE".into())),
            };
            st.config.insert("Healthcheck".into(), hc);
            Ok(format!("HEALTHCHECK {text}"))
        }
        "ONBUILD" => {
            let t = ins.text();
            let list = st.config.entry("OnBuild").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            list.as_array_mut().expect("array").push(json!(t.trim()));
            Ok(format!("ONBUILD {}", t.trim()))
        }
        "WORKDIR" => {
            let vars = snapshot(st);
            let w = expand(ins.text().trim(), esc, &vars)?;
            let cur = st.config.get("WorkingDir").and_then(Value::as_str).unwrap_or("/").to_string();
            let path = if w.starts_with('/') { w.clone() } else { format!("{}/{w}", cur.trim_end_matches('/')) };
            st.config.insert("WorkingDir".into(), json!(path));
            Ok(format!("WORKDIR {path}"))
        }
        other => Err(at(format!("{other} is not allowed here"))),
    }
}

/// Apply `docker commit --change` lines (CMD, ENTRYPOINT, ENV, EXPOSE,
/// LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL) to an image's run
/// config (the image config's `config` object).
///
/// ```
/// let mut cfg = serde_json::json!({"Env": ["A=1"]});
/// engine_build::apply_changes(&mut cfg, &["ENV B=$A-2".into(), "CMD [\"sh\"]".into()])?;
/// assert_eq!(cfg["Env"], serde_json::json!(["A=1", "B=1-2"]));
/// assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
/// assert!(engine_build::apply_changes(&mut cfg, &["RUN true".into()]).is_err());
/// # Ok::<(), engine_core::Error>(())
/// ```
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    let mut st = StageState {
        image: None,
        config: config.as_object().cloned().unwrap_or_default(),
        args: BTreeMap::new(),
        shell: SHELL.iter().map(|s| s.to_string()).collect(),
    };
    for (i, line) in changes.iter().flat_map(|c| c.lines()).filter(|l| !l.trim().is_empty()).enumerate() {
        let ins = parse_instruction(i + 1, line.trim())?;
        if !matches!(
            ins.keyword.as_str(),
            "CMD"
                | "ENTRYPOINT"
                | "ENV"
                | "EXPOSE"
                | "LABEL"
                | "ONBUILD"
                | "USER"
                | "VOLUME"
                | "WORKDIR"
                | "STOPSIGNAL"
        ) {
            return Err(Error::invalid("change", format!("{} is not a valid change command", ins.keyword)));
        }
        apply_config(&mut st, &ins, '\\')?;
    }
    *config = Value::Object(st.config);
    Ok(())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    }
}
