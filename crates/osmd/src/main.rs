//! `osmd`: the osm server.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use osmd::config::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "osmd",
    version,
    about = "osm server: OS Management for fleets of Linux and Windows hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API over HTTPS (first start creates the tenancy, an administrator and a CA).
    Serve {
        /// TOML config file [env: OSM_CONFIG]
        #[arg(long, env = "OSM_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Write a consistent copy of a live SQLite store to FILE (for PostgreSQL use pg_dump).
    Backup {
        /// Destination file (must not exist)
        #[arg(long)]
        to: PathBuf,
        #[arg(long, env = "OSM_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config, overrides } => serve(config, overrides).await,
            Command::Backup {
                to,
                config,
                overrides,
            } => backup(config, overrides, to).await,
        }
    })
}

async fn serve(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), &overrides).context("reading settings")?;
    osmd::telemetry::init_logging(settings.log_format);
    let server = osmd::start(settings.clone()).await?;
    let data_dir = std::fs::canonicalize(&server.data_dir).unwrap_or(server.data_dir.clone());
    println!(
        "osmd {} listening on https://{}",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
    println!("  store:        {}", osmd::redact(&settings.db_url()));
    println!("  tenancy:      {}", server.tenancy_id);
    println!("  CA bundle:    {}", data_dir.join("tls/ca.pem").display());
    let admin = data_dir.join("admin/config");
    if admin.exists() {
        println!("  admin config: {}", admin.display());
        println!(
            "  try:          REQUESTS_CA_BUNDLE={} oci --config-file {} iam compartment list --all",
            data_dir.join("tls/ca.pem").display(),
            admin.display()
        );
    }
    tracing::info!(addr = %server.addr, bootstrapped = server.bootstrapped, "osmd started");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn backup(config: Option<PathBuf>, overrides: Overrides, to: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), &overrides).context("reading settings")?;
    if to.exists() {
        anyhow::bail!("{} already exists; choose a new file", to.display());
    }
    let store = osm_store::connect(&settings.db_url())
        .await
        .with_context(|| format!("opening the store {}", osmd::redact(&settings.db_url())))?;
    store
        .backup_to(&to)
        .await
        .with_context(|| format!("backing up to {}", to.display()))?;
    println!("backup written to {}", to.display());
    Ok(())
}
