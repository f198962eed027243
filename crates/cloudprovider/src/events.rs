//! Kubernetes Events: a small handle the controllers and the provider share.
//!
//! Events go to `events.k8s.io/v1` through kube-runtime's [`Recorder`], which turns repeats into an event series.
//! Publishing never fails the caller: an Event that cannot be written is logged and dropped, as client-go does.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance,
        };
        Self {
            inner: Arc::new(Inner::Kube(Recorder::new(client, reporter))),
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
        let event = Event {
            type_: match severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, regarding).await {
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
