//! Kubernetes Events: a small handle the controllers and the provider share.
//!
//! Events go to `events.k8s.io/v1`. As client-go and kube-runtime's `Recorder` do, an Event repeated within six
//! minutes (same type, reason, action and object) updates the first one's series (`series.count`,
//! `series.lastObservedTime`) instead of making a new Event, whose note stays the first one's (the API server
//! keeps an Event's note as written). What is remembered of each Event for that is its name, note and count, not
//! the whole Event: a controller that has just synced 500 Services has 1,000 of them.
//! Publishing never fails the caller: an Event that cannot be written is logged and dropped, as client-go does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a repeat of an Event counts in its series rather than making a new Event (client-go's six minutes).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `type: Normal`.
    Normal,
    /// `type: Warning`.
    Warning,
}

/// Where Events go. Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Inner>,
}

enum Inner {
    Kube(Recorder),
    Discard,
}

/// Writes Events through the API server and remembers, for six minutes, which ones it wrote.
struct Recorder {
    client: kube::Client,
    controller: String,
    instance: String,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

/// What makes an Event a repeat of an earlier one (the note may differ; the first one's stays).
#[derive(Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    severity: Severity,
    reason: Box<str>,
    action: Box<str>,
    /// The object: its API version, kind, namespace, name and uid (not its resource version, which changes).
    regarding: Box<str>,
}

/// An Event written, as far as its series needs.
#[derive(Debug)]
struct Series {
    name: Box<str>,
    note: Box<str>,
    count: i32,
    last: Timestamp,
}

impl SeriesKey {
    fn new(regarding: &ObjectReference, severity: Severity, reason: &str, action: &str) -> Self {
        let part = |p: &Option<String>| p.as_deref().unwrap_or_default().to_owned();
        let regarding = [
            part(&regarding.api_version),
            part(&regarding.kind),
            part(&regarding.namespace),
            part(&regarding.name),
            part(&regarding.uid),
        ]
        .join("/");
        Self {
            severity,
            reason: reason.into(),
            action: action.into(),
            regarding: regarding.into(),
        }
    }
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

impl Recorder {
    /// The series of `key` that is still open at `now`, if any (closed ones are forgotten on the way).
    fn open_series(&self, key: &SeriesKey, now: Timestamp) -> Option<(Box<str>, Box<str>, i32)> {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.retain(|_, s| now.duration_since(s.last).unsigned_abs() < SERIES_TTL);
        series.get(key).map(|s| (s.name.clone(), s.note.clone(), s.count))
    }

    async fn publish(
        &self,
        regarding: &ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = SeriesKey::new(regarding, severity, reason, action);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let (name, note, count) = match self.open_series(&key, now) {
            Some((name, first_note, count)) => {
                // Only the series changes; the rest is sent again as it was first written.
                let patch = json!({
                    "type": severity.as_str(),
                    "reason": reason,
                    "action": action,
                    "note": &*first_note,
                    "regarding": regarding,
                    "series": {"count": count + 1, "lastObservedTime": MicroTime(now)},
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                (name, first_note, count + 1)
            }
            None => {
                let object = regarding.name.as_deref().unwrap_or(&self.controller);
                let name = format!("{object}.{:x}", now.as_nanosecond());
                let event = Event {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.to_owned()),
                        ..ObjectMeta::default()
                    },
                    event_time: Some(MicroTime(now)),
                    type_: Some(severity.as_str().to_owned()),
                    reason: Some(reason.to_owned()),
                    action: Some(action.to_owned()),
                    note: Some(note.clone()),
                    regarding: Some(regarding.clone()),
                    reporting_controller: Some(self.controller.clone()),
                    reporting_instance: Some(self.instance.clone()),
                    ..Event::default()
                };
                api.create(&PostParams::default(), &event).await?;
                (name.into(), note.into(), 1)
            }
        };
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.insert(
            key,
            Series {
                name,
                note,
                count,
                last: now,
            },
        );
        Ok(())
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::Kube(_) => f.write_str("EventSink(kube)"),
            Inner::Discard => f.write_str("EventSink(discard)"),
        }
    }
}

impl EventSink {
    /// Events written through `client`, reported by `controller` (for example `cloud-controller-manager`) and
    /// `instance` (the holder identity).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        let recorder = Recorder {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            series: Mutex::new(HashMap::new()),
        };
        Self {
            inner: Arc::new(Inner::Kube(recorder)),
        }
    }

    /// A sink that drops every Event (for tests and tools).
    pub fn discard() -> Self {
        Self {
            inner: Arc::new(Inner::Discard),
        }
    }

    /// Publishes an Event about `regarding`. `action` is what the controller was doing (for example
    /// `EnsureLoadBalancer`). Failures are logged, never returned.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let Inner::Kube(recorder) = &*self.inner else { return };
        if let Err(error) = recorder.publish(regarding, severity, reason, action, note).await {
            tracing::warn!(
                %error,
                reason,
                object = regarding.name.as_deref().unwrap_or_default(),
                namespace = regarding.namespace.as_deref().unwrap_or_default(),
                "cannot write event"
            );
        }
    }

    /// Publishes a Warning Event.
    pub async fn warn(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, Severity::Warning, reason, action, note).await;
    }

    /// Publishes a Normal Event.
    pub async fn normal(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, Severity::Normal, reason, action, note).await;
    }
}
