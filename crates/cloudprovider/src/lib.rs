//! Traits and controllers for Kubernetes cloud providers (the Rust counterpart of k8s.io/cloud-provider).
