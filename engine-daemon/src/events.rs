//! The daemon's event bus: container events from the manager and image
//! events from the daemon, in Docker's shape, with a short backlog for `since`.

use engine_api::models::{EventActor, EventMessage};
use engine_core::{Event, EventKind, LifecycleManager};
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

const BACKLOG: usize = 1024;

/// Fan-out of events to every `/events` client.
pub(crate) struct EventBus {
    tx: broadcast::Sender<EventMessage>,
    backlog: Mutex<VecDeque<EventMessage>>,
}

impl EventBus {
    pub(crate) fn new() -> Self {
        EventBus { tx: broadcast::channel(1024).0, backlog: Mutex::new(VecDeque::new()) }
    }

    /// Publish one event.
    pub(crate) fn publish(&self, e: EventMessage) {
        {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() >= BACKLOG {
                b.pop_front();
            }
            b.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }

    /// Events kept since `since` (Unix seconds), and a receiver for new ones.
    pub(crate) fn subscribe(&self, since: Option<i64>) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let old = match since {
            Some(s) => b.iter().filter(|e| e.time >= s).cloned().collect(),
            None => Vec::new(),
        };
        (old, rx)
    }

    /// An image event (`pull`, `push`, `tag`, `untag`, `delete`, `load`, `import`, `save`).
    pub(crate) fn image(&self, action: &str, id: &str, name: Option<&str>) {
        let mut attrs = HashMap::new();
        if let Some(n) = name {
            attrs.insert("name".to_string(), n.to_string());
        }
        self.publish(message("image", action, id, attrs, SystemTime::now()));
    }

    /// A network event (`create`, `destroy`).
    pub(crate) fn publish_network(&self, action: &str, id: &str, name: &str) {
        let attrs = HashMap::from([("name".to_string(), name.to_string()), ("type".to_string(), "bridge".to_string())]);
        self.publish(message("network", action, id, attrs, SystemTime::now()));
    }
}

fn message(typ: &str, action: &str, id: &str, attrs: HashMap<String, String>, t: SystemTime) -> EventMessage {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    EventMessage {
        typ: typ.into(),
        action: action.into(),
        actor: EventActor { id: id.into(), attributes: attrs.clone() },
        scope: "local".into(),
        time: d.as_secs() as i64,
        time_nano: d.as_nanos() as i64,
        status: Some(action.into()),
        id: Some(id.into()),
        from: attrs.get("image").cloned(),
    }
}

/// A container event in Docker's shape.
pub(crate) fn container_message(e: &Event, image: Option<&str>) -> EventMessage {
    let mut attrs: HashMap<String, String> = e.labels.clone();
    attrs.insert("name".into(), e.name.clone());
    if let Some(i) = image {
        attrs.insert("image".into(), i.to_string());
    }
    let action = match &e.kind {
        EventKind::Created => "create".to_string(),
        EventKind::Started => "start".to_string(),
        EventKind::Exited { code } => {
            attrs.insert("exitCode".into(), code.to_string());
            "die".to_string()
        }
        EventKind::Oom => "oom".to_string(),
        EventKind::Paused => "pause".to_string(),
        EventKind::Resumed => "unpause".to_string(),
        EventKind::Killed { signal } => {
            attrs.insert("signal".into(), signal.to_string());
            "kill".to_string()
        }
        EventKind::Restarted => "restart".to_string(),
        EventKind::ExecStarted { exec_id } => {
            attrs.insert("execID".into(), exec_id.clone());
            "exec_start".to_string()
        }
        EventKind::ExecExited { exec_id, code } => {
            attrs.insert("execID".into(), exec_id.clone());
            attrs.insert("exitCode".into(), code.to_string());
            "exec_die".to_string()
        }
        EventKind::Removed => "destroy".to_string(),
        other => format!("{other:?}").to_lowercase(),
    };
    message("container", &action, &e.id, attrs, e.time)
}

/// Forward the manager's events to the bus for as long as the daemon runs,
/// reconnecting when the stream ends (a remote manager restarted). `first` is
/// a stream subscribed before the API started serving, so no early event is lost.
pub(crate) async fn forward(
    manager: Arc<dyn LifecycleManager>,
    bus: Arc<crate::api::State>,
    first: Option<futures::stream::BoxStream<'static, engine_core::Result<Event>>>,
) {
    let mut images: HashMap<String, String> = HashMap::new();
    let mut next = first;
    loop {
        let stream = match next.take() {
            Some(s) => Ok(s),
            None => manager.events().await,
        };
        match stream {
            Ok(mut s) => {
                while let Some(ev) = s.next().await {
                    match ev {
                        Ok(ev) => {
                            if !images.contains_key(&ev.id) {
                                if let Ok(info) = manager.inspect(&ev.id).await {
                                    images.insert(ev.id.clone(), info.config.image.clone());
                                }
                            }
                            let img = images.get(&ev.id).cloned();
                            if ev.kind == EventKind::Removed {
                                images.remove(&ev.id);
                            }
                            bus.events.publish(container_message(&ev, img.as_deref()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event stream error");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to the manager's events"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
