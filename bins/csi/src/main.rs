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
    nifcloud_csi::driver::run(options, client, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
