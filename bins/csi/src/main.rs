//! NIFCLOUD additional-storage CSI driver binary: parses flags, builds the driver, serves it.

mod args;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = args::Args::parse();
    args.init_logging();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, whatever RUST_BACKTRACE says.
            eprintln!("nifcloud-csi-driver: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: args::Args) -> anyhow::Result<()> {
    let (options, client) = args.into_driver()?;
    nifcloud_csi::driver::run(options, client, csi_core::server::shutdown_signal()).await?;
    Ok(())
}
