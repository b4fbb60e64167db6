//! elbd: a self-hosted, AWS-compatible Elastic Load Balancer.

mod access_logs;
mod console;
mod demo;
mod explain;
mod handover;
mod nodes;
mod reconcile;
mod reports;
mod roles;
mod scrape;
mod serve;
mod store_url;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "elbd",
    version,
    about = "A self-hosted, AWS-compatible Elastic Load Balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the load balancers: restore the store, apply the config file, bind every node's
    /// listeners, and follow changes (SIGHUP re-reads the config file).
    Serve(serve::ServeArgs),
    /// Ask a running elbd how a listener would route a request now: each rule and why it
    /// matched or not, the action, the target group, the eligible targets and the pick.
    Explain(explain::ExplainArgs),
    /// List the node processes that serve load balancers from a shared store (etcd): host,
    /// zones, the nodes they serve and their addresses, last heartbeat.
    Nodes(nodes::NodesArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command {
        Commands::Serve(args) => serve::run(args),
        Commands::Explain(args) => explain::run(args),
        Commands::Nodes(args) => nodes::run(args),
    }
}

/// Parses `--flag ADDR` values.
fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("'{s}' is not an address:port ({e})"))
}

/// Where the embedded store lives when `--data-dir` is not given.
fn default_data_dir() -> PathBuf {
    PathBuf::from("elbd-data")
}
