//! `elbd serve`: the store, the config file, the data plane and the signals, wired together.
//!
//! A config change travels: file → [`Config`] → [`reconcile`] on the home region of a copy of
//! the state → one store commit → a new snapshot → [`DataPlane::apply`] → sockets and routes.
//! The API (`--api-listen`) enters at the same store commit.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use elb_api::{Api, Credentials};
use elb_dataplane::{Applied, BindKey, DataPlane};
use elb_dns::Dns;
use elb_health::HealthChecker;
use elb_logs::Buckets;
use elb_metrics::history::History;
use elb_model::{Command, EndpointState, LoadBalancerState, State};
use elb_store::{Snapshot, Store};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::access_logs::Delivery;
use crate::config::{Config, Settings};
use crate::console::{self, Console};
use crate::explain;
use crate::reconcile::reconcile;
use crate::scrape::{self, Scrape};
use crate::store_url::{EtcdArgs, StoreUrl};
use crate::{default_data_dir, demo, socket_addr};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML file with settings (region, account, DNS domain, zones) and resources to declare.
    /// Re-read on SIGHUP; the file owns only the resources it declares.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the embedded store (unless --store names another), the access log spool
    /// and local buckets; created if missing.
    #[arg(long, value_name = "DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Where the state lives: `sqlite:PATH` (default: `sqlite:DATA-DIR/state.db`) or
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, shared by every elbd process using it.
    #[arg(long, value_name = "URL")]
    store: Option<StoreUrl>,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Address for the AWS API (elbv2 and the EC2 subset), e.g. 127.0.0.1:4566.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    api_listen: Option<SocketAddr>,
    /// Address for the authoritative DNS server (UDP and TCP), e.g. 127.0.0.1:5353.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    dns_listen: Option<SocketAddr>,
    /// Also start a tiny HTTP backend at each IP target of the config file where nothing
    /// listens yet; it answers with its address and zone.
    #[arg(long)]
    demo_targets: bool,
    /// Seconds that connections of a closed listener (or of elbd stopping) may take to finish
    /// their requests before they are cut.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// Keep the addresses and ports of clients this host does not have toward targets of
    /// groups with `preserve_client_ip.enabled`, through transparent sockets. Needs
    /// CAP_NET_ADMIN and routes that bring the targets' answers back (README, "Client IP
    /// preservation"); without it only client addresses this host has are kept.
    #[arg(long)]
    transparent_client_ip: bool,
    /// Threads serving traffic; 1 runs everything on one thread. Default: one per CPU elbd
    /// may run on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Everything is read and checked before any port is bound.
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let settings = config.settings.clone().unwrap_or_else(Settings::embedded);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let store_url =
        (args.store.clone()).unwrap_or_else(|| StoreUrl::Sqlite(args.data_dir.join("state.db")));
    let home = &settings.scope;
    let legacy_key = home.key();
    let backend = store_url.open(&args.etcd)?;
    let store = Store::open(backend, &home.account, &legacy_key)
        .with_context(|| format!("the store at {store_url}"))?;
    let store = Arc::new(store);
    elb_tls::install_crypto_provider();
    if store.snapshot().state.secrets.is_empty() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let secrets = elb_tls::ca::new_secrets(now_ms)?;
        store.update(|state, _| {
            state.init_secrets(secrets.clone());
            Ok(())
        })?;
    }
    let (snapshot, ()) = store
        .update(|state, cx| reconcile_home(state, &settings, &config, cx))
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_name(&args)))?;
    info!(
        data_dir = %args.data_dir.display(),
        store = %store_url,
        revision = snapshot.revision,
        region = %settings.scope.region,
        account = %settings.scope.account,
        "store open"
    );
    let region = &snapshot.state.regions[&settings.scope.region];
    for lb in region.load_balancers.values() {
        let nodes: Vec<String> = region
            .nodes_of(&lb.arn)
            .map(|n| format!("{}={}", n.availability_zone, n.private_ipv4))
            .collect();
        info!(name = %lb.name, arn = %lb.arn, dns_name = %lb.dns_name, nodes = %nodes.join(","), "load balancer");
    }

    // One thread: a current-thread runtime, with no cross-thread wakeups (the cheapest per
    // request on one core, see docs/benchmarks.md); otherwise tokio's work-stealing runtime.
    let mut runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n.into());
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime
        .enable_all()
        .build()?
        .block_on(serve(args, settings, store, snapshot))
}

async fn serve(
    args: ServeArgs,
    settings: Settings,
    store: Arc<Store>,
    first: Arc<Snapshot>,
) -> anyhow::Result<()> {
    if args.demo_targets {
        demo::start(&first.state);
    }
    let mut checker = HealthChecker::new();
    let dns = match args.dns_listen {
        Some(addr) => {
            let dns = Dns::serve(addr)
                .await
                .with_context(|| format!("--dns-listen {addr}"))?;
            info!(%addr, "DNS up");
            Some(dns)
        }
        None => None,
    };
    // A new flow-hash seed per process, as a random hash key: flows are not predictable.
    let mut dataplane = DataPlane::new(
        Duration::from_secs(args.drain_seconds),
        fastrand::u64(..),
        args.transparent_client_ip,
    );
    let buckets = Arc::new(match &settings.logs.s3 {
        Some(s3) => Buckets::remote(&s3.url, &s3.region, s3.credentials.clone())
            .map_err(anyhow::Error::msg)?,
        None => Buckets::Local(args.data_dir.join("s3")),
    });
    let logs = Delivery::start(
        &args.data_dir,
        buckets.clone(),
        store.clone(),
        dataplane.node_logs(),
        settings.logs.interval,
    )
    .with_context(|| format!("the access log spool in {}", args.data_dir.display()))?;
    if let Some(addr) = args.api_listen {
        let history = Arc::new(Mutex::new(History::default()));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--api-listen {addr}"))?;
        let api = Arc::new(Api {
            store: store.clone(),
            credentials: Credentials(settings.credentials.clone().into_iter().collect()),
            health: checker.subscribe(),
            s3_root: args.data_dir.join("s3"),
            log_buckets: buckets.clone(),
            home: settings.scope.clone(),
            topologies: settings.topologies.clone(),
            metrics: history.clone(),
        });
        let signed = if api.credentials.0.is_empty() {
            "any signature accepted"
        } else {
            "signatures checked"
        };
        info!(%addr, "AWS API up ({signed}), metrics at /metrics");
        let scrape = Arc::new(Scrape {
            registry: dataplane.metrics(),
            store: store.clone(),
            health: checker.subscribe(),
            credentials: settings.credentials.clone().into_iter().collect(),
        });
        tokio::spawn(scrape::sample(scrape.clone(), history));
        let explain = Arc::new(explain::Endpoint {
            explainer: dataplane.explainer(),
            credentials: Credentials(settings.credentials.clone().into_iter().collect()),
        });
        let console = Arc::new(Console {
            store: store.clone(),
            health: checker.subscribe(),
            traffic: dataplane.traffic(),
            credentials: settings.credentials.clone().into_iter().collect(),
            samples: Mutex::default(),
        });
        tokio::spawn(console::sample(console.clone()));
        let routes = elb_api::router(api)
            .merge(scrape::router(scrape))
            .merge(explain::router(explain))
            .merge(console::router(console));
        // The peer's address: `elbd explain`'s default source.
        let service = routes.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, service).await {
                error!(error = %e, "the API server stopped");
            }
        });
    }
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut snapshots = store.subscribe();
    let mut health = checker.subscribe();
    let mut drain_timer = tokio::time::interval(Duration::from_secs(1));
    let mut previous = State::default();
    loop {
        // A new snapshot or new health: bring the probes and the data plane up to date.
        let snapshot = snapshots.borrow_and_update().clone();
        if snapshot.state != previous {
            log_delta(&previous, &snapshot.state);
            checker.update(&snapshot.state);
            previous = snapshot.state.clone();
        }
        let view = health.borrow_and_update().clone();
        let applied = dataplane.apply(&snapshot.state, &view, snapshot.revision);
        if let Some(dns) = &dns {
            dns.update(&snapshot.state, &view);
        }
        log_applied(&snapshot.state, &applied);
        let mut reports = activations(&snapshot.state, &dataplane);
        reports.extend(settlements(&snapshot.state, &dataplane));
        commit(&store, reports, "reporting what this host serves").await;
        loop {
            tokio::select! {
                changed = snapshots.changed() => break changed?,
                changed = health.changed() => break changed?,
                _ = drain_timer.tick() => {
                    expire_draining(&store, &snapshot.state).await;
                    // An endpoint's interface can fail, or become free, between snapshots.
                    dataplane.retry_endpoints();
                    let settled = settlements(&snapshot.state, &dataplane);
                    commit(&store, settled, "settling endpoints").await;
                }
                _ = hangup.recv() => reload(&args, &settings, &store).await,
                _ = terminate.recv() => return stop(dataplane, logs, args.drain_seconds).await,
                _ = interrupt.recv() => return stop(dataplane, logs, args.drain_seconds).await,
            }
        }
    }
}

async fn stop(dataplane: DataPlane, logs: Delivery, drain_seconds: u64) -> anyhow::Result<()> {
    info!(
        drain_seconds,
        "stopping: listeners closed, draining connections"
    );
    dataplane.shutdown().await;
    // After the drain: the requests that finished in it are logged too.
    logs.stop().await;
    Ok(())
}

/// Removes deregistered targets whose delay has passed (one commit, only when one has).
async fn expire_draining(store: &Arc<Store>, state: &State) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let due: Vec<String> = state
        .regions
        .values()
        .filter(|region| {
            region
                .target_groups
                .values()
                .flat_map(|tg| &tg.targets)
                .any(|t| t.draining_until_ms.is_some_and(|until| until <= now))
        })
        .map(|region| region.scope.region.clone())
        .collect();
    if due.is_empty() {
        return;
    }
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.update(|state, cx| {
            due.iter()
                .try_for_each(|region| state.apply(region, Command::ExpireDraining, cx).map(drop))
        })
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!("removing drained targets: {e}"),
        Err(e) => error!("removing drained targets: {e}"),
    }
}

/// SIGHUP: re-read the config file and commit it whole, or refuse it and change nothing.
async fn reload(args: &ServeArgs, settings: &Settings, store: &Arc<Store>) {
    let Some(path) = args.config.clone() else {
        info!("SIGHUP without --config: nothing to reload");
        return;
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => return error!("config refused, running state unchanged: {e}"),
    };
    if config.settings.as_ref().is_some_and(|s| s != settings) {
        warn!("[settings] changed; they are read at start only and keep their old values");
    }
    let (store, settings) = (store.clone(), settings.clone());
    let result = tokio::task::spawn_blocking(move || {
        store.update(|state, cx| reconcile_home(state, &settings, &config, cx))
    })
    .await;
    match result {
        Ok(Ok((snapshot, ()))) => info!(revision = snapshot.revision, "config reloaded"),
        Ok(Err(e)) => error!(
            "config refused, running state unchanged: {}: {e}",
            path.display()
        ),
        Err(e) => error!("config reload failed: {e}"),
    }
}

/// provisioning → active for every load balancer whose nodes have all bound their listeners;
/// the state's reason names the node addresses this host did not have when they were bound.
fn activations(state: &State, dataplane: &DataPlane) -> Vec<(String, Command)> {
    let mut ready: Vec<(String, String, Option<String>)> = Vec::new();
    for region in state.regions.values() {
        let settled = |lb: &&elb_model::LoadBalancer| {
            matches!(
                lb.state,
                LoadBalancerState::Provisioning | LoadBalancerState::Active
            )
        };
        for lb in region.load_balancers.values().filter(settled) {
            let sockets: Vec<SocketAddr> = region
                .listeners_of(&lb.arn)
                .flat_map(|l| {
                    region
                        .nodes_of(&lb.arn)
                        .flat_map(|n| n.addresses())
                        .map(move |ip| SocketAddr::new(IpAddr::V4(ip), l.port))
                })
                .collect();
            if !sockets.iter().all(|a| dataplane.is_bound(*a)) {
                continue;
            }
            // Each address once (every listener binds it), in address order.
            let waiting: BTreeSet<IpAddr> = sockets
                .iter()
                .filter(|a| dataplane.is_waiting_for_address(**a))
                .map(SocketAddr::ip)
                .collect();
            let waiting: Vec<String> = waiting.iter().map(ToString::to_string).collect();
            let reason = (!waiting.is_empty()).then(|| {
                format!(
                    "Nodes listen on {}, which this host does not have; they serve once the \
                     addresses are added",
                    waiting.join(", ")
                )
            });
            if lb.state == LoadBalancerState::Active && lb.state_reason == reason {
                continue;
            }
            ready.push((region.scope.region.clone(), lb.arn.clone(), reason));
        }
    }
    ready
        .into_iter()
        .map(|(region, arn, reason)| (region, Command::ActivateLoadBalancer { arn, reason }))
        .collect()
}

/// pending → available (or failed, with why) for every Gateway Load Balancer endpoint whose
/// interface this host made (or could not make); available → failed when a restart could not
/// make it again, or it stopped working.
fn settlements(state: &State, dataplane: &DataPlane) -> Vec<(String, Command)> {
    let mut settled = Vec::new();
    for region in state.regions.values() {
        for endpoint in region.vpc_endpoints.values() {
            let failure = match (endpoint.state, dataplane.endpoint_status(&endpoint.id)) {
                (EndpointState::Pending, Some(Ok(()))) => None,
                (EndpointState::Pending | EndpointState::Available, Some(Err(why))) => Some(why),
                _ => continue,
            };
            let id = endpoint.id.clone();
            let settle = Command::SettleVpcEndpoint { id, failure };
            settled.push((region.scope.region.clone(), settle));
        }
    }
    settled
}

/// Applies `commands` (each in its region) in one commit, off the async threads. They are
/// reports of this host's, which leave resources deleted meanwhile be, so none fails for that.
async fn commit(store: &Arc<Store>, commands: Vec<(String, Command)>, what: &str) {
    if commands.is_empty() {
        return;
    }
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.update(|state, cx| {
            for (region, command) in &commands {
                state.apply(region, command.clone(), cx)?;
            }
            Ok(())
        })
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!("{what}: {e}"),
        Err(e) => error!("{what}: {e}"),
    }
}

fn log_delta(previous: &State, next: &State) {
    let delta = previous.diff(next);
    for (kind, changes) in delta.kinds() {
        for arn in &changes.added {
            info!(id = %arn, "{kind} added");
        }
        for arn in &changes.changed {
            info!(id = %arn, "{kind} changed");
        }
        for arn in &changes.removed {
            info!(id = %arn, "{kind} removed");
        }
    }
}

fn log_applied(state: &State, applied: &Applied) {
    let describe = |addr: &SocketAddr| {
        state
            .regions
            .values()
            .flat_map(|region| region.nodes.values().map(move |n| (region, n)))
            .find(|(_, n)| n.addresses().any(|ip| IpAddr::V4(ip) == addr.ip()))
            .map(|(region, n)| {
                let lb = region.load_balancers.get(&n.load_balancer_arn);
                (
                    lb.map_or("?", |lb| lb.name.as_str()).to_owned(),
                    n.availability_zone.clone(),
                )
            })
            .unwrap_or_default()
    };
    for BindKey { addr, transport } in &applied.bound {
        let (lb, zone) = describe(addr);
        info!(%addr, ?transport, load_balancer = %lb, %zone, "listener up");
    }
    for BindKey { addr, transport } in &applied.not_local {
        let (lb, zone) = describe(addr);
        warn!(%addr, ?transport, load_balancer = %lb, %zone, "listener bound to an address this host does not have; it serves once the address is added");
    }
    for BindKey { addr, transport } in &applied.unbound {
        info!(%addr, ?transport, "listener closed");
    }
    for (BindKey { addr, transport }, e) in &applied.failed {
        let (lb, zone) = describe(addr);
        error!(%addr, ?transport, load_balancer = %lb, %zone, error = %e, "listener could not bind");
    }
}

/// Opens the home region (its zones from `[settings]`) and makes it hold what the file declares.
fn reconcile_home(
    state: &mut State,
    settings: &Settings,
    config: &Config,
    cx: &mut elb_model::Context<'_>,
) -> Result<(), elb_model::ModelError> {
    let home = &settings.scope.region;
    state.open_region(&settings.scope, &settings.topologies, cx)?;
    state.in_region(home, cx, |region, cx| reconcile(region, config, cx))
}

fn config_name(args: &ServeArgs) -> String {
    args.config.as_ref().map_or_else(
        || "embedded defaults".to_owned(),
        |p| p.display().to_string(),
    )
}
