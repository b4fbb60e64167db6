//! `elbd nodes --store etcd://…`: the live node processes, as they publish themselves.

use anyhow::Context as _;

use crate::roles::Cluster;
use crate::serve::now_ms;
use crate::store_url::{EtcdArgs, StoreUrl};

#[derive(Debug, clap::Args)]
pub(crate) struct NodesArgs {
    /// The shared store: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`.
    #[arg(long, value_name = "URL")]
    store: StoreUrl,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The account whose node processes to list.
    #[arg(long, default_value = "123456789012")]
    account: String,
    /// Print the records as JSON, one per line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: NodesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(args.store, StoreUrl::Etcd { .. }),
        "node processes publish themselves in etcd: --store etcd://HOST:PORT"
    );
    let etcd = (args.store.open(&args.etcd)?.etcd).context("an etcd store")?;
    let cluster = Cluster::read(&etcd.live_now(&args.account)?);
    if args.json {
        for (id, record) in &cluster.processes {
            let line = serde_json::json!({ "id": id, "record": record });
            println!("{line}");
        }
        return Ok(());
    }
    println!("ID\tHOST\tZONES\tNODES READY\tADDRESSES\tREVISION\tHEARTBEAT");
    let now = now_ms();
    for (id, record) in &cluster.processes {
        let ready = record.nodes.iter().filter(|n| n.ready).count();
        let addresses: Vec<String> = (record.nodes.iter())
            .flat_map(|n| &n.addresses)
            .map(ToString::to_string)
            .collect();
        let zones: Vec<&str> = record.zones.iter().map(String::as_str).collect();
        let age = now.saturating_sub(record.heartbeat_ms) as f64 / 1000.0;
        println!(
            "{id}\t{}\t{}\t{ready}/{}\t{}\t{}\t{age:.1}s ago",
            record.host,
            zones.join(","),
            record.nodes.len(),
            addresses.join(","),
            record.revision
        );
    }
    Ok(())
}
