//! Load balancer names and ownership.
//!
//! **Generated names** are `k` + a 4-hex-digit tag of the cluster name (SHA-256) + the first 10 hex digits of the
//! Service UID: 15 ASCII alphanumerics, the NIFCLOUD limit. The name is a function of (cluster, Service), so a
//! load balancer with that name was created by this cluster for this Service; that is the ownership proof (an
//! operator who hand-creates a load balancer with such a name defeats it; the risk is documented).
//!
//! **Overridden names** (the `name` annotation) prove nothing by themselves. Ownership is then recorded:
//! - for an L4 load balancer, which has no writable description, in the Service annotation
//!   [`crate::annotations::OWNER`] (`<cluster tag>:<name>`), written right after creation, and in memory for the
//!   time until the patched Service comes back;
//! - for an elastic load balancer, in every listener's description ([`elb_marker`]).
//!
//! A load balancer under an overridden name that exists without such a record is never modified or deleted: the
//! Service gets a Warning Event instead.

use sha2::{Digest, Sha256};

/// The 4-hex-digit tag of a cluster name.
pub fn cluster_tag(cluster_name: &str) -> String {
    let digest = Sha256::digest(cluster_name.as_bytes());
    format!("{:02x}{:02x}", digest[0], digest[1])
}

/// The generated name for the Service `uid` in `cluster_name`, or `None` when the UID has fewer than 10 hex
/// digits (a Service without a UID has not been stored by the API server).
pub fn generated_name(cluster_name: &str, uid: &str) -> Option<String> {
    let digits: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(10)
        .collect();
    (digits.len() == 10).then(|| format!("k{}{digits}", cluster_tag(cluster_name)))
}

/// The value of the owner annotation for `name`.
pub fn owner_record(cluster_name: &str, name: &str) -> String {
    format!("{}:{name}", cluster_tag(cluster_name))
}

/// The description written on every listener of an elastic load balancer this cluster owns.
pub fn elb_marker(cluster_name: &str, name: &str) -> String {
    format!("k8s {} {name}", cluster_tag(cluster_name))
}

/// Whether the load balancer `name` of a Service belongs to this cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The name is the generated one.
    Generated,
    /// The name is overridden and ownership is recorded.
    Recorded,
    /// The name is overridden and nothing says this cluster created it.
    Unproven,
}

impl Ownership {
    /// Whether this cluster may modify and delete the load balancer.
    pub fn is_owned(self) -> bool {
        !matches!(self, Self::Unproven)
    }
}

/// Decides ownership of an existing load balancer `name` for a Service with `uid`. `owner_annotation` is the
/// Service's [`crate::annotations::OWNER`] value, `marked` whether the load balancer carries this cluster's
/// marker (ELB descriptions), `created_here` whether this process created it.
pub fn ownership(
    cluster_name: &str,
    uid: &str,
    name: &str,
    owner_annotation: Option<&str>,
    marked: bool,
    created_here: bool,
) -> Ownership {
    if generated_name(cluster_name, uid).as_deref() == Some(name) {
        Ownership::Generated
    } else if marked || created_here || owner_annotation == Some(owner_record(cluster_name, name).as_str()) {
        Ownership::Recorded
    } else {
        Ownership::Unproven
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_deterministic_and_valid() {
        let a = generated_name("kubernetes", "0f3c1d2e-aaaa-bbbb-cccc-1234567890ab").unwrap();
        assert_eq!(a.len(), 15);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(a.starts_with('k') && a.ends_with("0f3c1d2eaa"), "{a}");
        assert_eq!(
            a,
            generated_name("kubernetes", "0f3c1d2e-aaaa-bbbb-cccc-1234567890ab").unwrap()
        );
        let b = generated_name("prod", "0f3c1d2e-aaaa-bbbb-cccc-1234567890ab").unwrap();
        assert_ne!(a, b, "the cluster name changes the name");
        assert_eq!(generated_name("x", "short"), None);
        assert_eq!(generated_name("x", ""), None);
        assert!(crate::annotations::valid_lb_name(&a));
    }

    #[test]
    fn ownership_rules() {
        let uid = "0f3c1d2e-aaaa-bbbb-cccc-1234567890ab";
        let gen_name = generated_name("c1", uid).unwrap();
        let rec = owner_record("c1", "web");
        let cases = [
            (gen_name.as_str(), None, false, false, Ownership::Generated),
            ("web", None, false, false, Ownership::Unproven),
            ("web", Some(rec.as_str()), false, false, Ownership::Recorded),
            ("web", Some("ffff:web"), false, false, Ownership::Unproven),
            ("web", None, true, false, Ownership::Recorded),
            ("web", None, false, true, Ownership::Recorded),
        ];
        for (name, ann, marked, here, want) in cases {
            assert_eq!(ownership("c1", uid, name, ann, marked, here), want, "{name} {ann:?}");
        }
        // Another cluster's generated name is not ours.
        let other = generated_name("c2", uid).unwrap();
        assert_eq!(ownership("c1", uid, &other, None, false, false), Ownership::Unproven);
    }
}
