//! Networks of a container: driver choice, connect and disconnect, the
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` files, shared
//! network namespaces.

use super::*;

impl Inner {
    /// The driver and network a container attaches to (`None`: none, host
    /// or a namespace path), checked before anything is made.
    pub(super) async fn network_for(
        &self,
        config: &ContainerConfig,
    ) -> Result<Option<(Arc<dyn NetworkDriver>, String)>> {
        let wanted = match &config.network {
            NetworkMode::Bridge => None,
            NetworkMode::Network(n) => Some(n.as_str()),
            other => {
                // A setting that cannot be honoured is refused, never dropped.
                let what = if !config.ports.is_empty() {
                    Some("published ports")
                } else if !config.network_aliases.is_empty() {
                    Some("network aliases")
                } else if config.ipv4.is_some() {
                    Some("a fixed IP address")
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(Error::invalid(
                        "network mode",
                        format!("{what} need the bridge or a user-defined network, not {other:?}"),
                    ));
                }
                return Ok(None);
            }
        };
        let driver = self.cfg.network.clone().ok_or_else(|| {
            Error::Unsupported(format!("network mode {:?}: this manager has no network driver", config.network))
        })?;
        let net = match wanted {
            None => driver.default_network().await?,
            Some(n) => driver.inspect_network(n).await?,
        };
        Ok(Some((driver, net.id)))
    }

    /// `docker network connect`: attach the container's namespace to one
    /// more network on the next free `ethN`, record it, update hosts files.
    pub(super) async fn connect_network(
        &self,
        key: &str,
        network: &str,
        opts: engine_core::network::ConnectOptions,
    ) -> Result<engine_core::network::EndpointInfo> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let info = entry.info();
        refuse_running_vm(&info, "connected to")?;
        if !matches!(info.config.network, NetworkMode::Bridge | NetworkMode::Network(_)) {
            return Err(Error::invalid(
                "network connect",
                format!(
                    "container {} uses {:?} networking; only a container on the bridge or a user network can join another",
                    info.name, info.config.network
                ),
            ));
        }
        let driver =
            self.cfg.network.clone().ok_or_else(|| {
                Error::Unsupported("connecting to a network: this manager has no network driver".into())
            })?;
        let net = driver.inspect_network(network).await?;
        if info.networks.values().any(|e| e.network_id == net.id) {
            return Err(Error::conflict(
                "container",
                &info.name,
                format!("endpoint with name {} already exists in network {}", info.name, net.name),
            ));
        }
        let ns = self.netns_path(&info.id);
        if !ns.exists() {
            return Err(Error::conflict("container", &info.name, "has no network namespace"));
        }
        let used: Vec<&str> = info.networks.values().map(|e| e.interface.as_str()).collect();
        let ifname = (0..).map(|i| format!("eth{i}")).find(|n| !used.contains(&n.as_str())).expect("a free name");
        let mut req = AttachRequest::new(&info.id, &ns).interface(ifname);
        req.aliases = opts.aliases;
        req.ipv4 = opts.ipv4;
        req.dns = info.config.dns.clone();
        let ep = driver.attach(&net.id, req).await?;
        entry.rec.lock().unwrap().info.networks.insert(ep.network.clone(), ep.clone());
        if let Err(e) = self.persist(&entry).await {
            entry.rec.lock().unwrap().info.networks.remove(&ep.network);
            let _ = detach(&*driver, &net.id, &info.id).await;
            return Err(e);
        }
        let info = entry.info();
        self.rewrite_hosts(&info).await;
        self.refresh_hosts(&info, None).await;
        tracing::info!(id = %info.id, network = %net.name, "connected");
        Ok(ep)
    }

    /// `docker network disconnect`: detach the container from a network.
    pub(super) async fn disconnect_network(&self, key: &str, network: &str) -> Result<()> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let info = entry.info();
        refuse_running_vm(&info, "disconnected from")?;
        let driver = self.cfg.network.clone().ok_or_else(|| {
            Error::Unsupported("disconnecting from a network: this manager has no network driver".into())
        })?;
        let net = driver.inspect_network(network).await?;
        let Some(ep) = info.networks.values().find(|e| e.network_id == net.id).cloned() else {
            return Err(Error::conflict(
                "container",
                &info.name,
                format!("container {} is not connected to network {}", info.name, net.name),
            ));
        };
        // Neighbours forget it first (as on removal), then it goes.
        let only: ContainerInfo = info.clone().networks(std::iter::once((ep.network.clone(), ep.clone())).collect());
        detach(&*driver, &net.id, &info.id).await?;
        entry.rec.lock().unwrap().info.networks.remove(&ep.network);
        self.persist(&entry).await?;
        self.refresh_hosts(&only, None).await;
        self.rewrite_hosts(&entry.info()).await;
        tracing::info!(id = %info.id, network = %net.name, "disconnected");
        Ok(())
    }

    /// Rewrite a container's own `/etc/hosts` from its current networks.
    async fn rewrite_hosts(&self, info: &ContainerInfo) {
        let all = self.network_peers(&info.networks);
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        write_hosts(info, &all, &host_hosts).await;
    }

    /// Detach a container from its networks and remove its namespace file.
    pub(super) async fn release_network(&self, info: &ContainerInfo) -> Result<()> {
        self.refresh_hosts(info, Some(&info.id)).await;
        if let Some(driver) = &self.cfg.network {
            for ep in info.networks.values() {
                match detach(&**driver, &ep.network_id, &info.id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        let ns = self.netns_path(&info.id);
        tokio::task::spawn_blocking(move || crate::netns::remove(&ns))
            .await
            .map_err(|e| Error::Other(format!("network namespace removal: {e}")))?
    }

    /// Every recorded container.
    fn all_infos(&self) -> Vec<ContainerInfo> {
        self.containers.read().unwrap().values().map(|e| e.info()).collect()
    }

    /// The containers on a user-defined network of `networks`: the only ones
    /// a hosts file names. None without one (no network, the default
    /// bridge), so such a create copies no other container's record.
    fn network_peers(
        &self,
        networks: &std::collections::BTreeMap<String, engine_core::network::EndpointInfo>,
    ) -> Vec<ContainerInfo> {
        let nets: Vec<&str> =
            networks.values().filter(|e| e.network != "bridge").map(|e| e.network_id.as_str()).collect();
        if nets.is_empty() {
            return Vec::new();
        }
        let map = self.containers.read().unwrap();
        map.values()
            .filter_map(|e| {
                let r = e.rec.lock().unwrap();
                r.info.networks.values().any(|p| nets.contains(&p.network_id.as_str())).then(|| r.info.clone())
            })
            .collect()
    }

    /// Write a new container's `/etc/hosts`, `/etc/hostname` and
    /// `/etc/resolv.conf` into its bundle; returns the bind mounts. In
    /// `container:` mode it shares the other container's files.
    pub(super) async fn write_etc_files(
        &self,
        id: &str,
        config: &ContainerConfig,
        networks: &std::collections::BTreeMap<String, engine_core::network::EndpointInfo>,
        bundle: &Path,
    ) -> Result<Vec<(String, PathBuf)>> {
        let wanted = crate::etc::wanted(config);
        if let NetworkMode::Container(other) = &config.network {
            let target = self.lookup(other)?.info();
            return Ok(wanted
                .into_iter()
                .map(|d| (d.to_string(), crate::etc::bundle_file(&target.bundle, d)))
                .filter(|(_, p)| p.exists())
                .collect());
        }
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let hostname = if config.network == NetworkMode::Host {
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            crate::etc::hostname(id, config)
        };
        let me = crate::etc::Me { id, config, networks };
        let all = self.network_peers(networks);
        let mut out = Vec::new();
        for dest in wanted {
            let text = match dest {
                "/etc/hosts" => crate::etc::hosts(&me, &all, &host_hosts),
                "/etc/hostname" => format!("{hostname}\n"),
                _ => crate::etc::resolv_conf(config, &host_resolv),
            };
            let file = crate::etc::bundle_file(bundle, dest);
            let f = file.clone();
            tokio::task::spawn_blocking(move || crate::etc::write_in_place(&f, &text))
                .await
                .map_err(|e| Error::Other(format!("writing {dest}: {e}")))??;
            out.push((dest.to_string(), file));
        }
        Ok(out)
    }

    /// Rewrite the hosts files of the containers sharing a user-defined
    /// network with `changed` (which joined, or is leaving when `leaving`
    /// names it), so they resolve each other by name and alias.
    pub(super) async fn refresh_hosts(&self, changed: &ContainerInfo, leaving: Option<&str>) {
        let nets: Vec<&str> =
            changed.networks.values().filter(|e| e.network != "bridge").map(|e| e.network_id.as_str()).collect();
        if nets.is_empty() {
            return;
        }
        let mut all = self.all_infos();
        if let Some(gone) = leaving {
            all.retain(|c| c.id != gone);
        }
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for c in all.iter().filter(|c| c.id != changed.id) {
            if !c.networks.values().any(|e| nets.contains(&e.network_id.as_str())) {
                continue;
            }
            write_hosts(c, &all, &host_hosts).await;
        }
    }

    /// The network namespace of running container `other`, for
    /// `container:<other>` mode: its namespace file when it has one, else
    /// its process's.
    pub(super) async fn shared_netns(&self, other: &str) -> Result<PathBuf> {
        let target = self.lookup(other)?.info();
        let pid = match (target.state, target.pid) {
            (ContainerState::Running | ContainerState::Paused, Some(pid)) => pid,
            _ => {
                return Err(Error::conflict(
                    "container",
                    &target.name,
                    format!("cannot join the network namespace of container {} (it is not running)", target.name),
                ))
            }
        };
        if let NetworkMode::Container(_) = &target.config.network {
            // Its spec joined a namespace by path: that process's is the same.
            return Ok(PathBuf::from(format!("/proc/{pid}/ns/net")));
        }
        let file = self.netns_path(&target.id);
        if file.exists() {
            return Ok(file);
        }
        if target.config.network == NetworkMode::Host {
            return Err(Error::invalid(
                "network mode",
                format!("container {} uses the host's network; use --network host instead", target.name),
            ));
        }
        Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    pub(super) fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.root.join("netns").join(id)
    }
}

/// Rewrite `c`'s `/etc/hosts` in its bundle (when the engine manages that
/// file and the bundle has it) from `all`, the containers it may resolve by
/// name; a failure is logged, not returned: the container runs on.
async fn write_hosts(c: &ContainerInfo, all: &[ContainerInfo], host_hosts: &str) {
    if !crate::etc::wanted(&c.config).contains(&"/etc/hosts") {
        return;
    }
    let me = crate::etc::Me { id: &c.id, config: &c.config, networks: &c.networks };
    let text = crate::etc::hosts(&me, all, host_hosts);
    let file = crate::etc::bundle_file(&c.bundle, "/etc/hosts");
    let r = tokio::task::spawn_blocking(
        move || {
            if file.exists() {
                crate::etc::write_in_place(&file, &text)
            } else {
                Ok(())
            }
        },
    )
    .await;
    if let Ok(Err(e)) | Err(e) = r.map_err(|e| Error::Other(e.to_string())) {
        tracing::warn!(id = %c.id, "updating /etc/hosts: {e}");
    }
}

/// A running VM container's interfaces are its VM's devices, made when the
/// VM boots (no hot-plug): it joins or leaves a network while stopped.
fn refuse_running_vm(info: &ContainerInfo, what: &str) -> Result<()> {
    if info.runtime == crate::config::VM_RUNTIME
        && matches!(info.state, ContainerState::Running | ContainerState::Paused)
    {
        return Err(Error::conflict(
            "container",
            &info.name,
            format!(
                "it runs in a VM (runtime vm), whose network devices are fixed while it runs: stop it to have it {what} a network"
            ),
        ));
    }
    Ok(())
}
