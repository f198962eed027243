//! NIFCLOUD cloud-controller-manager binary: parse flags, build the provider, run the controllers.

use std::process::ExitCode;

use clap::Parser;
use nifcloud_ccm::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let framework = cli.ccm.validate().map_err(|e| e.to_string());
    let provider = match nifcloud_ccm::startup(&cli.nifcloud, framework) {
        Ok(provider) => std::sync::Arc::new(provider),
        Err(problems) => {
            eprintln!("nifcloud-cloud-controller-manager: {problems}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cloudprovider::run(cli.ccm, provider).await {
        eprintln!("nifcloud-cloud-controller-manager: {}", cloudprovider::error_chain(&e));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
