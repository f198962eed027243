//! NIFCLOUD cloud-controller-manager binary: parse flags, build the provider, run the controllers.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use nifcloud_ccm::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, whatever RUST_BACKTRACE says.
            eprintln!("nifcloud-cloud-controller-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let provider = Arc::new(nifcloud_ccm::startup(&cli)?);
    cloudprovider::run(cli.ccm, provider).await?;
    Ok(())
}
