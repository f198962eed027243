//! The command line of `nifcloud-cloud-controller-manager`: the framework's flags plus this provider's.

/// The NIFCLOUD cloud-controller-manager.
#[derive(clap::Parser, Debug)]
#[command(name = "nifcloud-cloud-controller-manager", version, about)]
pub struct Cli {
    /// The framework's flags (leader election, controllers, cluster name, metrics, …), `CCM_*` in the
    /// environment.
    #[command(flatten)]
    pub ccm: cloudprovider::ControllerManagerArgs,
    /// This provider's flags (`--cloud-config`, `--security-group-rules`, `--security-group-name`,
    /// `--nifcloud-endpoint`).
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
            cli.nifcloud.cloud_config,
            Some(crate::config::CloudConfigArgs::file("/etc/nifcloud/cloud.yaml"))
        );
        assert_eq!(cli.nifcloud.endpoint.as_deref(), Some("http://127.0.0.1:8080/api/"));
        assert_eq!(cli.ccm.cluster_name, "prod");
    }

    /// Parses the provider's cloud-config flags from `args` (after the binary name).
    fn cloud_config(args: &[&str]) -> Result<Option<crate::config::CloudConfigArgs>, clap::Error> {
        let argv = std::iter::once("nifcloud-cloud-controller-manager").chain(args.iter().copied());
        super::Cli::try_parse_from(argv).map(|c| c.nifcloud.cloud_config)
    }

    #[test]
    fn security_group_flags_parse() {
        if std::env::var_os(ENV_CHILD).is_some() {
            return; // the environment of the child below would change the answers
        }
        let sg = |rules: Option<bool>, name: Option<&str>| {
            Some(crate::config::CloudConfigArgs {
                file: None,
                security_group_rules: rules,
                security_group_name: name.map(str::to_owned),
            })
        };
        let table: [(&[&str], _); 6] = [
            (&[], None),
            (&["--security-group-rules"], sg(Some(true), None)),
            (&["--security-group-rules=false"], sg(Some(false), None)),
            (&["--security-group-rules=on"], sg(Some(true), None)),
            (&["--security-group-name", "k8snodes"], sg(None, Some("k8snodes"))),
            (
                &["--security-group-rules=1", "--security-group-name=k8snodes"],
                sg(Some(true), Some("k8snodes")),
            ),
        ];
        for (args, want) in table {
            assert_eq!(cloud_config(args).unwrap(), want, "{args:?}");
        }
        assert!(cloud_config(&["--security-group-rules=maybe"]).is_err());
    }

    /// Set in the child process of `environment_variables_are_the_fallback_of_the_flags`.
    const ENV_CHILD: &str = "NIFCLOUD_CCM_CLI_ENV_CHILD";

    /// Runs only as that child (it needs the variables in its process environment, which a test must not set in
    /// its own process): the flags' environment variables alone give the same settings as the flags.
    #[test]
    fn environment_child() {
        if std::env::var_os(ENV_CHILD).is_none() {
            return;
        }
        let cc = cloud_config(&[]).unwrap();
        assert_eq!(
            cc,
            Some(crate::config::CloudConfigArgs {
                file: None,
                security_group_rules: Some(true),
                security_group_name: Some("k8snodes".into()),
            })
        );
        // a flag wins over its variable
        let cc = cloud_config(&["--security-group-rules=false"]).unwrap().unwrap();
        assert_eq!(cc.security_group_rules, Some(false));
        let args = crate::NifcloudArgs {
            cloud_config: cloud_config(&[]).unwrap(),
            endpoint: None,
        };
        let env = |k: &str| match k {
            "NIFCLOUD_ACCESS_KEY_ID" => Some("AK".to_owned()),
            "NIFCLOUD_SECRET_ACCESS_KEY" => Some("SK".to_owned()),
            "NIFCLOUD_REGION" => Some("jp-east-1".to_owned()),
            _ => None,
        };
        let s = crate::Settings::resolve(&args, &env).unwrap();
        assert_eq!(
            s.security_group,
            Some(crate::config::SecurityGroupSettings {
                group_name: Some("k8snodes".into())
            })
        );
    }

    #[test]
    fn environment_variables_are_the_fallback_of_the_flags() {
        if std::env::var_os(ENV_CHILD).is_some() {
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "cli::tests::environment_child", "--test-threads=1"])
            .env(ENV_CHILD, "1")
            .env("NIFCLOUD_SECURITY_GROUP_RULES", "yes")
            .env("NIFCLOUD_SECURITY_GROUP_NAME", "k8snodes")
            .env_remove("NIFCLOUD_CLOUD_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
