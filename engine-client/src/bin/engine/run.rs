//! `engine run`: its flags, turned into the create body the docker CLI
//! sends, and the run itself (create, pulling the image when missing;
//! attach, start, wait).

use crate::attach::{pump, Pumped};
use crate::output::print_progress;
use crate::{term, Failure};
use engine_client::models::*;
use engine_client::{AttachParams, Client};
use engine_core::Error;
use std::collections::HashMap;

/// `engine run`'s flags (docker's).
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables.
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Bind mount a volume (`/host:/container[:ro]`).
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Network (`bridge`, `none`, `host`, `container:<id|name>`, or a
    /// user-defined network's name).
    #[arg(long)]
    network: Option<String>,
    /// Publish a port: `[ip:][hostPort:]containerPort[/tcp|/udp]`, ranges allowed.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every exposed port on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port (`80`, `53/udp`) without publishing it (see -P).
    #[arg(long = "expose")]
    expose: Vec<String>,
    /// An extra name on the user-defined network.
    #[arg(long = "network-alias")]
    network_alias: Vec<String>,
    /// A fixed IPv4 address on the user-defined network.
    #[arg(long = "ip")]
    ip: Option<String>,
    /// A name server for /etc/resolv.conf.
    #[arg(long = "dns")]
    dns: Vec<String>,
    /// An /etc/hosts line, `name:ip`.
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// The container's hostname.
    #[arg(long = "hostname")]
    hostname: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User.
    #[arg(short, long)]
    user: Option<String>,
    /// Labels (`key=value`).
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Runtime.
    #[arg(long)]
    runtime: Option<String>,
    /// Log driver (json-file, local, none, or a log plugin's name).
    #[arg(long)]
    log_driver: Option<String>,
    /// Log driver option KEY=VALUE (repeatable).
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    /// Give every capability the engine holds, all host devices, no seccomp,
    /// writable /sys and /proc/sys.
    #[arg(long)]
    privileged: bool,
    /// Add a capability (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop a capability (`ALL` for every one).
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Security options: `seccomp=unconfined`, `seccomp=<profile.json>`,
    /// `no-new-privileges`, `apparmor=unconfined`.
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Add a host device (`/dev/host[:/dev/container[:rwm]]`).
    #[arg(long = "device")]
    device: Vec<String>,
    /// Add a supplementary group (name in the image, or number).
    #[arg(long = "group-add")]
    group_add: Vec<String>,
    /// Set a namespaced sysctl (`kernel.shmmax=...`, `net.*` with its own network).
    #[arg(long = "sysctl")]
    sysctl: Vec<String>,
    /// Run an init as pid 1 that forwards signals and reaps zombies.
    #[arg(long)]
    init: bool,
    /// Image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true)]
    cmd: Vec<String>,
}

/// `PortBindings` and `ExposedPorts` of a create body.
type PortsJson = (serde_json::Map<String, serde_json::Value>, HashMap<String, serde_json::Value>);

/// `-p` specs as `PortBindings` and the ports they expose, as the docker CLI sends them.
fn port_bindings(specs: &[String], expose: &[String]) -> std::result::Result<PortsJson, Failure> {
    use engine_core::network::{HostPorts, PortBinding};
    let mut bindings = serde_json::Map::new();
    let mut exposed = HashMap::new();
    for s in specs {
        for b in PortBinding::parse(s).map_err(|e| usage(e.to_string()))? {
            let key = format!("{}/{}", b.container_port, b.protocol);
            let host_port = match b.host_ports {
                HostPorts::Any => String::new(),
                HostPorts::Range(a, z) if a == z => a.to_string(),
                HostPorts::Range(a, z) => format!("{a}-{z}"),
            };
            let entry = bindings.entry(key.clone()).or_insert_with(|| serde_json::json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(serde_json::json!({
                    "HostIp": b.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": host_port,
                }));
            }
            exposed.insert(key, serde_json::json!({}));
        }
    }
    for e in expose {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let ok = port.parse::<u16>().is_ok_and(|p| p > 0) && (proto == "tcp" || proto == "udp");
        if !ok {
            return Err(usage(format!("invalid --expose {e:?}: want port[/tcp|/udp]")));
        }
        exposed.insert(format!("{port}/{proto}"), serde_json::json!({}));
    }
    Ok((bindings, exposed))
}

fn parse_run(a: &RunArgs) -> std::result::Result<ContainerConfigBody, Failure> {
    let (bindings, exposed) = port_bindings(&a.publish, &a.expose)?;
    let networking = (!a.network_alias.is_empty() || a.ip.is_some()).then(|| {
        let net = a.network.clone().unwrap_or_else(|| "bridge".into());
        let mut ep = serde_json::json!({ "Aliases": a.network_alias });
        if let Some(ip) = &a.ip {
            ep["IPAMConfig"] = serde_json::json!({ "IPv4Address": ip });
        }
        serde_json::json!({ "EndpointsConfig": { net: ep } })
    });
    let mut labels = HashMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(ContainerConfigBody {
        image: Some(a.image.clone()),
        cmd: (!a.cmd.is_empty()).then(|| StrSlice(a.cmd.clone())),
        entrypoint: a.entrypoint.clone().map(|e| StrSlice(vec![e])),
        env: (!a.env.is_empty()).then(|| a.env.clone()),
        tty: Some(a.tty),
        open_stdin: Some(a.interactive),
        stdin_once: Some(a.interactive),
        attach_stdin: Some(a.interactive && !a.detach),
        attach_stdout: Some(!a.detach),
        attach_stderr: Some(!a.detach),
        working_dir: a.workdir.clone(),
        user: a.user.clone(),
        labels: Some(labels),
        hostname: a.hostname.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        networking_config: networking,
        host_config: Some(HostConfig {
            binds: (!a.volume.is_empty()).then(|| a.volume.clone()),
            network_mode: a.network.clone(),
            port_bindings: (!bindings.is_empty()).then_some(serde_json::Value::Object(bindings)),
            publish_all_ports: a.publish_all.then_some(true),
            dns: (!a.dns.is_empty()).then(|| a.dns.clone()),
            extra_hosts: (!a.add_host.is_empty()).then(|| a.add_host.clone()),
            auto_remove: Some(a.rm),
            runtime: a.runtime.clone(),
            privileged: Some(a.privileged),
            cap_add: (!a.cap_add.is_empty()).then(|| a.cap_add.clone()),
            cap_drop: (!a.cap_drop.is_empty()).then(|| a.cap_drop.clone()),
            security_opt: Some(security_opts(&a.security_opt)?).filter(|v| !v.is_empty()),
            devices: Some(devices(&a.device)?).filter(|v| !v.is_empty()),
            group_add: (!a.group_add.is_empty()).then(|| a.group_add.clone()),
            sysctls: Some(sysctls(&a.sysctl)?).filter(|v| !v.is_empty()),
            init: a.init.then_some(true),
            log_config: log_config(a)?,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `--log-driver`/`--log-opt` as Docker's `HostConfig.LogConfig`.
fn log_config(a: &RunArgs) -> std::result::Result<Option<serde_json::Value>, Failure> {
    if a.log_driver.is_none() && a.log_opt.is_empty() {
        return Ok(None);
    }
    let mut opts = serde_json::Map::new();
    for o in &a.log_opt {
        let (k, v) = o.split_once('=').ok_or_else(|| usage(format!("invalid log opt {o:?}: KEY=VALUE expected")))?;
        opts.insert(k.to_string(), v.into());
    }
    Ok(Some(serde_json::json!({ "Type": a.log_driver.clone().unwrap_or_default(), "Config": opts })))
}

fn usage(message: String) -> Failure {
    Failure { code: 125, message: format!("engine: {message}") }
}

/// `--security-opt`, as the docker CLI sends it: a seccomp profile path is
/// read here and sent as compact JSON.
fn security_opts(opts: &[String]) -> std::result::Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for o in opts {
        let (k, v) = o.split_once('=').or_else(|| o.split_once(':')).unwrap_or((o.as_str(), ""));
        if k == "seccomp" && v != "unconfined" && !v.trim_start().starts_with('{') && !v.is_empty() {
            let data = std::fs::read(v).map_err(|e| usage(format!("opening seccomp profile ({v}) failed: {e}")))?;
            let json: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| usage(format!("seccomp profile {v} is not valid JSON: {e}")))?;
            out.push(format!("seccomp={json}"));
        } else {
            out.push(o.clone());
        }
    }
    Ok(out)
}

fn devices(specs: &[String]) -> std::result::Result<Vec<DeviceMappingBody>, Failure> {
    specs
        .iter()
        .map(|s| {
            let d: engine_core::DeviceMapping = s.parse().map_err(|e: Error| usage(e.to_string()))?;
            Ok(DeviceMappingBody {
                path_on_host: d.host_path.display().to_string(),
                path_in_container: d.container_path,
                cgroup_permissions: d.permissions,
            })
        })
        .collect()
}

fn sysctls(specs: &[String]) -> std::result::Result<HashMap<String, String>, Failure> {
    specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(usage(format!("invalid sysctl {s:?}: want key=value"))),
        })
        .collect()
}

pub(crate) async fn run_container(c: &Client, a: RunArgs) -> std::result::Result<i32, Failure> {
    let fail = |e: Error| Failure { code: 125, message: format!("engine: {e}") };
    let body = parse_run(&a)?;
    let created = match c.create_container(a.name.as_deref(), &body).await {
        Ok(r) => r,
        Err(Error::NotFound { kind: "image", .. }) => {
            eprintln!("Unable to find image '{}' locally", a.image);
            let s = c.pull(&a.image, None).await.map_err(fail)?;
            print_progress(s).await.map_err(fail)?;
            c.create_container(a.name.as_deref(), &body).await.map_err(fail)?
        }
        Err(e) => return Err(fail(e)),
    };
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    let id = created.id;
    if a.detach {
        c.start(&id).await.map_err(fail)?;
        println!("{id}");
        return Ok(0);
    }
    let io = c
        .attach(&id, AttachParams { stdin: a.interactive, stdout: true, stderr: true, logs: false })
        .await
        .map_err(fail)?;
    let wait = c.wait_ready(&id, if a.rm { "removed" } else { "next-exit" }).await.map_err(fail)?;
    c.start(&id).await.map_err(fail)?;
    let raw = if a.tty && a.interactive { term::RawMode::enable() } else { None };
    if a.tty {
        if let Some((h, w)) = term::size() {
            let _ = c.resize(&id, h, w).await;
        }
    }
    let res = pump(io, a.interactive).await;
    drop(raw);
    if res.map_err(fail)? == Pumped::Detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    let code = wait.exit_code().await.map_err(fail)?;
    Ok(code as i32)
}
