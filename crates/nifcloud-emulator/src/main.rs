//! `nifcloud-emulator --listen 127.0.0.1:PORT --config FILE [--state-file F]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use nifcloud_emulator::{Emulator, EmulatorConfig};

/// A stateful emulator of the NIFCLOUD computing API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Configuration file (YAML or JSON); the built-in sample world when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// State file kept across restarts.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let cfg = match &args.config {
        Some(p) => EmulatorConfig::from_file(p)?,
        None => EmulatorConfig::sample(),
    };
    let mut b = Emulator::builder().config(cfg).listen(args.listen);
    if let Some(f) = args.state_file {
        b = b.state_file(f);
    }
    let emu = b.start().await?;
    println!("nifcloud-emulator listening on {}", emu.endpoint());
    // SIGTERM (a pod being stopped, where this runs as PID 1) or Ctrl-C.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Args::command().debug_assert();
    }
}
