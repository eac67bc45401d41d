//! Containers: create, inspect, list, wait, top (`/containers/...`).

use super::StrSlice;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A container's configuration: the body of `POST /containers/create`, and
/// `Config` in inspect (where `HostConfig` and `NetworkingConfig` are absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfigBody {
    /// Hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Domain name.
    #[serde(default)]
    pub domainname: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Attach stdin (run -i).
    #[serde(default)]
    pub attach_stdin: Option<bool>,
    /// Attach stdout.
    #[serde(default)]
    pub attach_stdout: Option<bool>,
    /// Attach stderr.
    #[serde(default)]
    pub attach_stderr: Option<bool>,
    /// Exposed ports (`{"80/tcp":{}}`): what `-P` publishes, with the image's.
    #[serde(default)]
    pub exposed_ports: Option<HashMap<String, Value>>,
    /// Allocate a terminal.
    #[serde(default)]
    pub tty: Option<bool>,
    /// Keep stdin open.
    #[serde(default)]
    pub open_stdin: Option<bool>,
    /// Close stdin after the first attach ends.
    #[serde(default)]
    pub stdin_once: Option<bool>,
    /// `KEY=value` list.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<StrSlice>,
    /// Image reference.
    #[serde(default)]
    pub image: Option<String>,
    /// Anonymous volumes (`{"/data":{}}`), recorded only.
    #[serde(default)]
    pub volumes: Option<HashMap<String, Value>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<StrSlice>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<HashMap<String, String>>,
    /// Stop signal (`SIGTERM`, `15`).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Stop timeout in seconds.
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// Host configuration (create only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    /// Networking configuration (create only): `EndpointsConfig` by network,
    /// with `Aliases` and `IPAMConfig.IPv4Address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<Value>,
    /// Every other top-level key, as sent (`Healthcheck`, `MacAddress`,
    /// `NetworkDisabled`, `Shell`...). engined refuses a create that gives one of
    /// them a value other than its zero value, as it does for `HostConfig`.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A mount in `HostConfig.Mounts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountBody {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(default)]
    pub r#type: Option<String>,
    /// Host path or volume name.
    #[serde(default)]
    pub source: Option<String>,
    /// Path in the container.
    #[serde(default)]
    pub target: Option<String>,
    /// Read-only.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// Tmpfs options.
    #[serde(default)]
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Volume options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
}

/// `Mounts[].VolumeOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Do not copy the image's content into an empty volume.
    #[serde(default)]
    pub no_copy: Option<bool>,
    /// Labels for a volume created by this mount.
    #[serde(default)]
    pub labels: Option<HashMap<String, String>>,
    /// The driver and its options for a volume created by this mount.
    #[serde(default)]
    pub driver_config: Option<Value>,
}

/// `Mounts[].TmpfsOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(default)]
    pub size_bytes: Option<i64>,
    /// Mode bits.
    #[serde(default)]
    pub mode: Option<u32>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyBody {
    /// `""`, `no`, `always`, `unless-stopped`, `on-failure`.
    #[serde(default)]
    pub name: Option<String>,
    /// Retry limit for `on-failure`.
    #[serde(default)]
    pub maximum_retry_count: Option<i64>,
}

/// The parts of `HostConfig` engined uses; every other key is kept in
/// [`other`](Self::other), and engined refuses a create that sets one of
/// them to anything but its zero value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `host:container[:ro]` bind mounts.
    #[serde(default)]
    pub binds: Option<Vec<String>>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Option<Vec<MountBody>>,
    /// Tmpfs mounts: path to options (`size=64m`).
    #[serde(default)]
    pub tmpfs: Option<HashMap<String, String>>,
    /// `container[:ro|rw]`: mount that container's volumes and binds too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<String>>,
    /// The driver of the volumes `-v` names or makes (`--volume-driver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    /// Memory limit in bytes (0: none).
    #[serde(default)]
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// CPUs in billionths.
    #[serde(default)]
    pub nano_cpus: Option<i64>,
    /// CPU shares.
    #[serde(default)]
    pub cpu_shares: Option<i64>,
    /// Allowed CPUs.
    #[serde(default)]
    pub cpuset_cpus: Option<String>,
    /// Pids limit (0 or -1: none).
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// `none`, `host`, `default`, `bridge`.
    #[serde(default)]
    pub network_mode: Option<String>,
    /// Remove when it exits (`--rm`).
    #[serde(default)]
    pub auto_remove: Option<bool>,
    /// Restart policy.
    #[serde(default)]
    pub restart_policy: Option<RestartPolicyBody>,
    /// Runtime name.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Read-only root filesystem.
    #[serde(default)]
    pub readonly_rootfs: Option<bool>,
    /// Privileged: every capability the engine holds, all host devices, no
    /// seccomp, no masked or read-only paths.
    #[serde(default)]
    pub privileged: Option<bool>,
    /// Capabilities added to the default set (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// Capabilities dropped from the default set.
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    /// `seccomp=unconfined`, `seccomp=<profile JSON>`, `no-new-privileges`, `apparmor=unconfined`.
    #[serde(default)]
    pub security_opt: Option<Vec<String>>,
    /// Host devices to add.
    #[serde(default)]
    pub devices: Option<Vec<DeviceMappingBody>>,
    /// Device cgroup rules (not supported: must be empty).
    #[serde(default)]
    pub device_cgroup_rules: Option<Vec<String>>,
    /// Extra groups of the process.
    #[serde(default)]
    pub group_add: Option<Vec<String>>,
    /// Namespaced sysctls.
    #[serde(default)]
    pub sysctls: Option<HashMap<String, String>>,
    /// Run an init as pid 1 (`--init`).
    #[serde(default)]
    pub init: Option<bool>,
    /// Replaces the default masked paths (`[]` with `--security-opt systempaths=unconfined`).
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Replaces the default read-only paths.
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// Terminal size `[height, width]`.
    #[serde(default)]
    pub console_size: Option<Vec<u16>>,
    /// Log config (recorded only).
    #[serde(default)]
    pub log_config: Option<Value>,
    /// Published ports: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
    #[serde(default)]
    pub port_bindings: Option<Value>,
    /// Publish every exposed port on a free host port (`-P`).
    #[serde(default)]
    pub publish_all_ports: Option<bool>,
    /// Name servers (`--dns`).
    #[serde(default)]
    pub dns: Option<Vec<String>>,
    /// Search domains (`--dns-search`).
    #[serde(default)]
    pub dns_search: Option<Vec<String>>,
    /// resolv.conf options (`--dns-option`).
    #[serde(default)]
    pub dns_options: Option<Vec<String>>,
    /// Extra hosts lines, `name:ip` (`--add-host`).
    #[serde(default)]
    pub extra_hosts: Option<Vec<String>>,
    /// The cgroup the container's cgroup is made under (`--cgroup-parent`):
    /// an absolute cgroupfs path such as `/ci/jobs`; empty: the engine's.
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// OOM score adjustment of the container's processes (`--oom-score-adj`, -1000..=1000).
    #[serde(default)]
    pub oom_score_adj: Option<i64>,
    /// Its cgroup namespace (`--cgroupns`): `private`, `host`, or empty for
    /// the default (private on a cgroup v2 host, the host's on v1).
    #[serde(default)]
    pub cgroupns_mode: Option<String>,
    /// Every other key, as sent (`ShmSize`, `Ulimits`, `PidMode`...). engined
    /// refuses a create that gives one of them a value other than its zero
    /// value (null, 0, `""`, `false`, empty), so a setting it cannot honour is
    /// never silently dropped.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One `HostConfig.Devices` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMappingBody {
    /// The device on the host.
    #[serde(default)]
    pub path_on_host: String,
    /// Where it appears in the container (default: the host path).
    #[serde(default)]
    pub path_in_container: String,
    /// `rwm` or a part of it (default `rwm`).
    #[serde(default)]
    pub cgroup_permissions: String,
}

/// `201` answer to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    /// The new id.
    pub id: String,
    /// Warnings to print.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The error part of a wait answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitError {
    /// Message.
    pub message: String,
}

/// The answer of `POST /containers/{id}/wait`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitResponse {
    /// Error, or null.
    pub error: Option<WaitError>,
    /// Exit code.
    pub status_code: i64,
}

/// One entry of `GET /containers/json` (`docker ps`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// 64-hex id.
    pub id: String,
    /// Names with a leading `/`.
    pub names: Vec<String>,
    /// Image as given at create.
    pub image: String,
    /// Image id.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// Command line.
    pub command: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Ports: `{IP, PrivatePort, PublicPort, Type}` per published port,
    /// `{PrivatePort, Type}` per exposed one.
    #[serde(default)]
    pub ports: Vec<Value>,
    /// Labels.
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `removing`, `dead`.
    pub state: String,
    /// Human status: "Up 2 seconds", "Exited (137) 4 seconds ago".
    pub status: String,
    /// `{"NetworkMode": ...}`.
    #[serde(default)]
    pub host_config: Value,
    /// `{"Networks": {...}}`.
    #[serde(default)]
    pub network_settings: Value,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<Value>,
}

/// `State` in container inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStateBody {
    /// Status word.
    pub status: String,
    /// Running (also true while paused).
    pub running: bool,
    /// Paused.
    pub paused: bool,
    /// Restarting.
    pub restarting: bool,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Dead.
    pub dead: bool,
    /// Init pid (0 when not running).
    pub pid: i64,
    /// Exit code.
    pub exit_code: i64,
    /// Error.
    pub error: String,
    /// RFC 3339, or `0001-01-01T00:00:00Z`.
    pub started_at: String,
    /// RFC 3339, or `0001-01-01T00:00:00Z`.
    pub finished_at: String,
}

/// A mount point in inspect and ps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    pub r#type: String,
    /// Volume name.
    #[serde(default)]
    pub name: String,
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Driver (volumes).
    #[serde(default)]
    pub driver: String,
    /// Mode.
    #[serde(default)]
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Propagation.
    #[serde(default)]
    pub propagation: String,
}

/// `GET /containers/{id}/json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// 64-hex id.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Process path.
    pub path: String,
    /// Process args after the path.
    pub args: Vec<String>,
    /// State.
    pub state: ContainerStateBody,
    /// Image id.
    pub image: String,
    /// resolv.conf path.
    #[serde(default)]
    pub resolv_conf_path: String,
    /// hostname file path.
    #[serde(default)]
    pub hostname_path: String,
    /// hosts file path.
    #[serde(default)]
    pub hosts_path: String,
    /// json-file log path.
    #[serde(default)]
    pub log_path: String,
    /// Name with a leading `/`.
    pub name: String,
    /// Restarts by policy.
    pub restart_count: i64,
    /// Storage driver.
    #[serde(default)]
    pub driver: String,
    /// Platform.
    #[serde(default)]
    pub platform: String,
    /// SELinux mount label.
    #[serde(default)]
    pub mount_label: String,
    /// SELinux process label.
    #[serde(default)]
    pub process_label: String,
    /// AppArmor profile.
    #[serde(default)]
    pub app_armor_profile: String,
    /// Exec ids.
    #[serde(rename = "ExecIDs", default)]
    pub exec_ids: Option<Vec<String>>,
    /// Host config.
    pub host_config: HostConfig,
    /// `{"Data":..., "Name":...}`.
    #[serde(default)]
    pub graph_driver: Value,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Config.
    pub config: ContainerConfigBody,
    /// Network settings.
    #[serde(default)]
    pub network_settings: Value,
}

/// `GET /containers/{id}/top`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopResponse {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_accepts_docker_cli_shape() {
        let body = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
            "AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["echo","hi"],
            "Image":"bb","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},
            "HostConfig":{"Binds":null,"NetworkMode":"none","AutoRemove":true,"RestartPolicy":{"Name":"no","MaximumRetryCount":0},
            "MemorySwappiness":-1,"ConsoleSize":[0,0],"LogConfig":{"Type":"","Config":{}},"PidsLimit":null},
            "NetworkingConfig":{"EndpointsConfig":{}}}"#;
        let c: ContainerConfigBody = serde_json::from_str(body).unwrap();
        assert_eq!(c.cmd, Some(StrSlice(vec!["echo".into(), "hi".into()])));
        let hc = c.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.auto_remove, Some(true));
        assert_eq!(hc.pids_limit, None);
        let one: ContainerConfigBody = serde_json::from_str(r#"{"Cmd":"sh"}"#).unwrap();
        assert_eq!(one.cmd, Some(StrSlice(vec!["sh".into()])));
        assert!(serde_json::from_str::<ContainerConfigBody>(r#"{"Cmd":5}"#).is_err());
    }

    #[test]
    fn wait_response_shape() {
        let w = WaitResponse { error: None, status_code: 3 };
        assert_eq!(serde_json::to_string(&w).unwrap(), r#"{"Error":null,"StatusCode":3}"#);
    }
}
