//! The Kubernetes kinds our manifests may contain: how to address each one and in which order to apply it.
//!
//! The list is closed on purpose (no CRDs): an object of any other kind is an error, not a guess.

/// What the tooling knows about one built-in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: &'static str,
    /// `kind`, e.g. `Deployment`.
    pub kind: &'static str,
    /// Lower-case plural used in API paths, e.g. `deployments`.
    pub plural: &'static str,
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
}

/// Known kinds, in apply order: things others refer to come first (accounts, secrets, roles), workloads last.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    KindInfo {
        api_version: "scheduling.k8s.io/v1",
        kind: "PriorityClass",
        plural: "priorityclasses",
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
    },
    KindInfo {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
    },
    KindInfo {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
    },
    KindInfo {
        api_version: "storage.k8s.io/v1",
        kind: "CSIDriver",
        plural: "csidrivers",
        namespaced: false,
    },
    KindInfo {
        api_version: "storage.k8s.io/v1",
        kind: "StorageClass",
        plural: "storageclasses",
        namespaced: false,
    },
    KindInfo {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true,
    },
    KindInfo {
        api_version: "policy/v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
    },
];

/// Looks up `(apiVersion, kind)`.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.api_version == api_version && k.kind == kind)
}

/// Apply rank of a kind (position in [`KINDS`]); unknown kinds sort last.
pub fn apply_rank(api_version: &str, kind: &str) -> usize {
    KINDS
        .iter()
        .position(|k| k.api_version == api_version && k.kind == kind)
        .unwrap_or(KINDS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_referenced_kinds_come_before_their_users() {
        for (i, a) in KINDS.iter().enumerate() {
            for b in &KINDS[i + 1..] {
                assert!(
                    !(a.api_version == b.api_version && a.kind == b.kind),
                    "{} twice",
                    a.kind
                );
            }
        }
        let rank = |k: &str| KINDS.iter().position(|x| x.kind == k).unwrap();
        assert!(rank("ServiceAccount") < rank("Deployment"));
        assert!(rank("Secret") < rank("Deployment"));
        assert!(rank("ConfigMap") < rank("Deployment"));
        assert!(rank("ClusterRole") < rank("ClusterRoleBinding"));
        assert!(rank("Role") < rank("RoleBinding"));
        assert!(rank("CSIDriver") < rank("DaemonSet"));
        assert!(rank("PriorityClass") < rank("DaemonSet"));
    }

    #[test]
    fn lookup_needs_the_right_group_version() {
        assert_eq!(lookup("apps/v1", "Deployment").map(|k| k.plural), Some("deployments"));
        assert!(lookup("extensions/v1beta1", "Deployment").is_none());
        assert!(lookup("storage.k8s.io/v1beta1", "CSIDriver").is_none());
        assert_eq!(apply_rank("example.com/v1", "Widget"), KINDS.len());
    }
}
