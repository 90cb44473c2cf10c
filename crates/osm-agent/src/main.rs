//! `osm-agent enroll | run | status | scan`.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use osm_agent::agent::{self, Agent};
use osm_agent::backend::Backend;
use osm_agent::config::{Overrides, Settings};
use osm_agent::runner::Runner;

#[derive(Parser, Debug)]
#[command(name = "osm-agent", version, about = "osm host agent (apt, dnf)")]
struct Cli {
    /// Config file [env: OSM_AGENT_CONFIG] [default: /etc/osm-agent/config.toml when present]
    #[arg(long, global = true, env = "OSM_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enrol this host with an install key (once); the identity is kept in the state directory
    Enroll,
    /// Serve work requests until stopped (enrols first when an install key is configured)
    Run,
    /// Show what the agent knows: server, instance id, last check-in, pending work
    Status,
    /// Scan the package inventory and print it as JSON (nothing is sent)
    Scan,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::load(cli.config.as_deref(), &cli.overrides).map_err(|e| anyhow!(e))?;
    // One thread: the agent waits on the network and on child processes, and stays small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Enroll => {
                let id = agent::enroll(&settings).await?;
                println!("enrolled as {} with {}", id.instance_id, id.server);
                Ok(())
            }
            Command::Run => {
                let agent = Agent::start(settings).await?;
                agent.run(shutdown_signal()).await
            }
            Command::Status => {
                print!("{}", agent::status_report(&settings)?);
                Ok(())
            }
            Command::Scan => {
                let runner = Runner::new(settings.root.clone());
                let backend =
                    Backend::detect(&runner, Some(&settings.backend)).map_err(|e| anyhow!(e))?;
                let inventory = backend.scan().await.map_err(|e| anyhow!(e))?;
                println!("{}", serde_json::to_string_pretty(&inventory.full_body())?);
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}
