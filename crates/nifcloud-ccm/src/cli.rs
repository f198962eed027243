//! The command line of `nifcloud-cloud-controller-manager`: the framework's flags plus this provider's.

/// The NIFCLOUD cloud-controller-manager.
#[derive(clap::Parser, Debug)]
#[command(name = "nifcloud-cloud-controller-manager", version, about)]
pub struct Cli {
    /// The framework's flags (leader election, controllers, cluster name, metrics, …), `CCM_*` in the
    /// environment.
    #[command(flatten)]
    pub ccm: cloudprovider::ControllerManagerArgs,
    /// This provider's flags (`--cloud-config`, `--nifcloud-endpoint`).
    #[command(flatten)]
    pub nifcloud: crate::NifcloudArgs,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn flags_are_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn provider_flags_parse_next_to_the_framework_ones() {
        let cli = super::Cli::try_parse_from([
            "nifcloud-cloud-controller-manager",
            "--cloud-config=/etc/nifcloud/cloud.yaml",
            "--nifcloud-endpoint=http://127.0.0.1:8080/api/",
            "--cluster-name=prod",
            "--leader-elect=false",
        ])
        .unwrap();
        assert_eq!(
            cli.nifcloud.cloud_config.as_deref(),
            Some(std::path::Path::new("/etc/nifcloud/cloud.yaml"))
        );
        assert_eq!(cli.nifcloud.endpoint.as_deref(), Some("http://127.0.0.1:8080/api/"));
        assert_eq!(cli.ccm.cluster_name, "prod");
    }
}
