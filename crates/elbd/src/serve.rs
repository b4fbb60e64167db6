//! `elbd serve`: the store, the config file, the data plane and the signals, wired together.
//!
//! A config change travels: file → [`Config`] → [`reconcile`] on the home region of a copy of
//! the state → one store commit → a new snapshot → [`DataPlane::apply`] → sockets and routes.
//! The API (`--api-listen`) enters at the same store commit.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use elb_api::{Api, Credentials};
use elb_dataplane::{Applied, BindKey, DataPlane, Options};
use elb_dns::Dns;
use elb_health::HealthChecker;
use elb_logs::Buckets;
use elb_metrics::history::History;
use elb_model::State;
use elb_store::{EtcdBackend, Leadership, Snapshot, Store};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::access_logs::Delivery;
use crate::console::{self, Console};
use crate::explain;
use crate::handover::{self, Asked, Purpose, Sockets, Taken};
use crate::reconcile::reconcile;
use crate::reports::{Reporter, activations, draining_over, settlements};
use crate::roles::{ClusterView, NodeProcess, Presence, Role, Roles, process_name};
use crate::scrape::{self, Scrape};
use crate::store_url::{EtcdArgs, StoreUrl};
use crate::{default_data_dir, demo, socket_addr};
use elb_config::{Config, Settings};

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
    /// What this process runs: api (the API, the config file's resources, the control
    /// loops), dns, node (the load balancer nodes of its --zones); repeatable; default all.
    /// Parts apart share their state through --store etcd://.
    #[arg(long, value_name = "ROLE", value_enum)]
    role: Vec<Role>,
    /// A zone whose load balancer nodes this node process serves (repeatable).
    #[arg(long, value_name = "NAME")]
    zone: Vec<String>,
    /// How long a node process that stops answering etcd keeps its zones in DNS.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    lease_seconds: u64,
    /// Address for the AWS API (elbv2 and the EC2 subset), e.g. 127.0.0.1:4566.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    api_listen: Option<SocketAddr>,
    /// Address for `GET /metrics` alone: this process's traffic counters and health checks
    /// (a node process's, when parts run apart; the API address serves /metrics too).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    metrics_listen: Option<SocketAddr>,
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
    /// Seconds an HTTP client has to send a whole request head (the first from its
    /// connection's start, later ones from their first byte); after, a 408 and the
    /// connection closes.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_seconds: u64,
    /// Client connections one load balancer node holds at most over its HTTP and HTTPS
    /// listeners; a client beyond gets a 503 (HTTP) or a reset (HTTPS).
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_node: u64,
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
    let roles = Roles::new(&args.role, &args.zone, &store_url).map_err(anyhow::Error::msg)?;
    if let Some(metrics) = args.metrics_listen {
        anyhow::ensure!(
            args.api_listen != Some(metrics),
            "--metrics-listen {metrics} is --api-listen's address, which serves /metrics already"
        );
    }
    if roles.apart {
        let api = (roles.api, args.api_listen.is_some());
        let dns = (roles.dns, args.dns_listen.is_some());
        match (api, dns) {
            ((true, false), _) => anyhow::bail!("--role api serves the API: add --api-listen ADDR"),
            ((false, true), _) => anyhow::bail!("--api-listen is for --role api"),
            (_, (true, false)) => anyhow::bail!("--role dns serves DNS: add --dns-listen ADDR"),
            (_, (false, true)) => anyhow::bail!("--dns-listen is for --role dns"),
            _ => {}
        }
    }
    // A process running on this data dir hands its sockets over; one that will not (another
    // protocol version) is refused before this one changes the state.
    let taken = handover::take(&args.data_dir)?;
    let opened = store_url.open(&args.etcd)?;
    let store = Store::open(opened.backend, &home.account, &legacy_key)
        .with_context(|| format!("the store at {store_url}"))?;
    let store = Arc::new(store);
    elb_tls::install_crypto_provider();
    if store.snapshot().state.secrets.incomplete() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let secrets = elb_tls::ca::new_secrets(now_ms)?;
        store.update(|state, _| {
            state.init_secrets(secrets.clone());
            Ok(())
        })?;
    }
    // The config file's resources are the API's side: node and DNS processes read its
    // settings only.
    let (snapshot, ()) = if roles.api {
        store
            .update(|state, cx| reconcile_home(state, &settings, &config, cx))
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_name(&args)))?
    } else {
        (store.snapshot(), ())
    };
    let unknown = roles.unknown_zones(&snapshot.state);
    anyhow::ensure!(
        unknown.is_empty(),
        "--zone {}: no region has such a zone",
        unknown.join(", ")
    );
    info!(
        data_dir = %args.data_dir.display(),
        store = %store_url,
        revision = snapshot.revision,
        region = %settings.scope.region,
        account = %settings.scope.account,
        "store open"
    );
    let regions = snapshot.state.regions.get(&settings.scope.region);
    for (region, lb) in regions
        .iter()
        .flat_map(|r| r.load_balancers.values().map(move |lb| (r, lb)))
    {
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
    runtime.enable_all().build()?.block_on(serve(
        args,
        settings,
        store,
        snapshot,
        Parts {
            roles,
            etcd: opened.etcd,
            taken,
        },
    ))
}

/// What this process runs, etcd, where the parts apart meet, and the hand-over from the
/// process this one replaces.
struct Parts {
    roles: Roles,
    etcd: Option<Arc<EtcdBackend>>,
    taken: Option<Taken>,
}

async fn serve(
    args: ServeArgs,
    settings: Settings,
    store: Arc<Store>,
    first: Arc<Snapshot>,
    Parts {
        roles,
        etcd,
        mut taken,
    }: Parts,
) -> anyhow::Result<()> {
    let mut inherited =
        (taken.as_mut()).map_or_else(Sockets::default, |t| std::mem::take(&mut t.sockets));
    if args.demo_targets {
        demo::start(&first.state);
    }
    // One invoker for the data plane and the checks: it pools its connections.
    let lambda = match &settings.lambda {
        Some(endpoint) => Some(Arc::new(
            elb_lambda::Invoker::new(&endpoint.url, endpoint.credentials.clone())
                .map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let providers = identity_providers(&settings.providers)?;
    let mut checker = HealthChecker::new(lambda.clone());
    if taken.is_some() {
        checker.resume(&inherited.health);
    }
    let account = &settings.scope.account;
    // Apart, a node process publishes what it serves and finds; the API and DNS read what
    // every node process publishes. Together, they read this process's own checks.
    let lease = Duration::from_secs(args.lease_seconds);
    let presence = (roles.apart && roles.node)
        .then(|| {
            etcd.as_ref()
                .map(|etcd| Presence::new(etcd.lease(account, lease)))
        })
        .flatten();
    let cluster = (roles.apart && (roles.api || roles.dns))
        .then(|| {
            etcd.as_ref()
                .map(|etcd| ClusterView::follow(etcd.live(account)))
        })
        .flatten();
    // Apart, the API processes elect one to run the control loops (activations, draining);
    // together, this process runs them.
    let mut leading = (roles.apart && roles.api)
        .then(|| (etcd.as_ref()).map(|etcd| etcd.lead(account, lease, &process_name())))
        .flatten();
    let seen_health = match &cluster {
        Some(cluster) => cluster.health.clone(),
        None => checker.subscribe(),
    };
    let dns = match args.dns_listen.filter(|_| roles.dns) {
        Some(addr) => {
            let handed = (
                inherited.take(Purpose::DnsUdp, addr),
                inherited.take(Purpose::DnsTcp, addr),
            );
            let dns = match handed {
                (Some(udp), Some(tcp)) => Dns::serve_on(udp, tcp),
                _ => Dns::serve(addr).await,
            };
            let dns = dns.with_context(|| format!("--dns-listen {addr}"))?;
            info!(%addr, "DNS up");
            Some(dns)
        }
        None => None,
    };
    // A new flow-hash seed per process, as a random hash key: flows are not predictable.
    // Taking over, the old process's, so that flows keep their targets.
    let flow_seed = match &taken {
        Some(_) => inherited.flow_seed,
        None => fastrand::u64(..),
    };
    let mut dataplane = DataPlane::new(Options {
        drain: Duration::from_secs(args.drain_seconds),
        flow_seed,
        transparent_client_ip: args.transparent_client_ip,
        header_timeout: Duration::from_secs(args.header_timeout_seconds),
        max_connections_per_node: usize::try_from(args.max_connections_per_node)
            .unwrap_or(usize::MAX),
        lambda,
        providers,
    });
    dataplane.inherit(inherited.take_nodes());
    // The API and metrics servers: their sockets (for a process taking over) and their
    // tasks, which stop accepting when `quiet` turns and end once their requests are done.
    let mut own_sockets: Vec<(Purpose, SocketAddr, OwnedFd)> = Vec::new();
    let (quiet, quieted) = watch::channel(false);
    let mut servers = Vec::new();
    let buckets = Arc::new(match &settings.logs.s3 {
        Some(s3) => Buckets::remote(&s3.url, &s3.region, s3.credentials.clone())
            .map_err(anyhow::Error::msg)?,
        None => Buckets::Local(args.data_dir.join("s3")),
    });
    let node_logs = dataplane.node_logs();
    let start_logs = || {
        let (node_logs, interval) = (node_logs.clone(), settings.logs.interval);
        Delivery::start(
            &args.data_dir,
            buckets.clone(),
            store.clone(),
            node_logs,
            interval,
        )
        .with_context(|| format!("the access log spool in {}", args.data_dir.display()))
    };
    // Taking over, the spool is the old process's until it exits (opening it seals what is
    // spooled); meanwhile the nodes' entries wait in memory.
    let mut logs = match taken {
        Some(_) => None,
        None => Some(start_logs()?),
    };
    let (old_gone, mut old_went) = tokio::sync::mpsc::channel::<()>(1);
    if let Some(addr) = args.metrics_listen {
        let listener = listen(inherited.take(Purpose::Metrics, addr), addr)
            .await
            .with_context(|| format!("--metrics-listen {addr}"))?;
        own_sockets.push((
            Purpose::Metrics,
            addr,
            listener.as_fd().try_clone_to_owned()?,
        ));
        let scrape = Arc::new(Scrape {
            registry: dataplane.metrics(),
            store: store.clone(),
            // What this process's own probes find, where it runs them.
            health: if roles.node {
                checker.subscribe()
            } else {
                seen_health.clone()
            },
            credentials: settings.credentials.clone().into_iter().collect(),
        });
        info!(%addr, "metrics at /metrics");
        let served = axum::serve(listener, scrape::router(scrape))
            .with_graceful_shutdown(until_true(quieted.clone()));
        servers.push(tokio::spawn(async move {
            if let Err(e) = served.await {
                error!(error = %e, "the metrics server stopped");
            }
        }));
    }
    let mut api_server = None;
    if let Some(addr) = args.api_listen.filter(|_| roles.api) {
        let history = Arc::new(Mutex::new(History::default()));
        let listener = listen(inherited.take(Purpose::Api, addr), addr)
            .await
            .with_context(|| format!("--api-listen {addr}"))?;
        own_sockets.push((Purpose::Api, addr, listener.as_fd().try_clone_to_owned()?));
        let api = Arc::new(Api {
            store: store.clone(),
            credentials: Credentials(settings.credentials.clone().into_iter().collect()),
            health: seen_health.clone(),
            // Apart, the node processes' published findings; together, this one's own.
            anomalies: match &cluster {
                Some(cluster) => cluster.anomalies.clone(),
                None => dataplane.anomalies(),
            },
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
            health: seen_health.clone(),
            credentials: settings.credentials.clone().into_iter().collect(),
        });
        tokio::spawn(scrape::sample(scrape.clone(), history));
        let explain = Arc::new(explain::Endpoint {
            explainer: dataplane.explainer(),
            credentials: Credentials(settings.credentials.clone().into_iter().collect()),
        });
        let console = Arc::new(Console {
            store: store.clone(),
            health: seen_health.clone(),
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
        let served = axum::serve(listener, service).with_graceful_shutdown(until_true(quieted));
        api_server = Some(async move {
            if let Err(e) = served.await {
                error!(error = %e, "the API server stopped");
            }
        });
    }
    inherited.close_rest();
    // Taking over, the API opens once the old process commits nothing more (below).
    if taken.is_none() {
        servers.extend(api_server.take().map(tokio::spawn));
    }
    let mut asked = match taken {
        Some(_) => None,
        None => offer(&args.data_dir),
    };
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut user2 = signal(SignalKind::user_defined2())?;
    let mut snapshots = store.subscribe();
    let mut health = checker.subscribe();
    if taken.is_some() {
        // The first state applied routes by the health the old process found.
        let _ = tokio::time::timeout(Duration::from_secs(1), health.changed()).await;
    }
    let mut others = cluster.as_ref().map(|c| c.live.clone());
    let reporter = Reporter::start(store.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A slow apply must not bring a burst of ticks: each is a second of anomaly detection.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settle_inherited = false;
    let mut previous = State::default();
    let started_ms = now_ms();
    loop {
        // A new snapshot, new health or news from the node processes: bring the probes, the
        // data plane and DNS up to date, and report what changed.
        let snapshot = snapshots.borrow_and_update().clone();
        let local = roles.node.then(|| roles.local(&snapshot.state));
        if snapshot.state != previous {
            log_delta(&previous, &snapshot.state);
            if let Some(local) = &local {
                checker.update(local);
            }
            previous = snapshot.state.clone();
        }
        let view = health.borrow_and_update().clone();
        if let Some(local) = &local {
            let applied = dataplane.apply(local, &view, snapshot.revision);
            log_applied(local, &applied);
            if let Some(presence) = &presence {
                presence.publish_health(&view);
            }
        }
        if std::mem::take(&mut settle_inherited) {
            dataplane.forget_inherited();
        }
        // Apart: what the node processes publish (`None` until etcd was read once, which
        // is not "no one serves").
        let now = others.as_mut().map(|o| o.borrow_and_update().clone());
        // What this process serves, found once per change.
        let served = match &local {
            Some(local) => NodeProcess::serving(local, &dataplane),
            None => Vec::new(),
        };
        if let Some(dns) = &dns {
            match &now {
                Some(Some(cluster)) => {
                    dns.update(&cluster.served(&snapshot.state), &cluster.health)
                }
                Some(None) => {}
                None => dns.update(&snapshot.state, &view),
            }
        }
        // Taking over: this process serves traffic now; once the old one has stopped
        // accepting and committing, read what it committed last and open the API.
        if let Some(taken) = taken.take() {
            // An old process that may still serve keeps serving, and this one stops.
            let ready = tokio::task::spawn_blocking(move || taken.ready()).await?;
            match ready.context("the hand-over failed; the running elbd serves on")? {
                Some((revision, gone)) => {
                    info!(revision, "the old elbd stopped accepting; this one serves");
                    let old_gone = old_gone.clone();
                    tokio::spawn(async move {
                        let _ = tokio::task::spawn_blocking(move || gone.wait()).await;
                        let _ = old_gone.send(()).await;
                    });
                }
                None => {
                    warn!("the old elbd exited before it confirmed it stopped; this one serves");
                    let _ = old_gone.try_send(());
                }
            }
            let refreshing = store.clone();
            tokio::task::spawn_blocking(move || refreshing.refresh()).await??;
            servers.extend(api_server.take().map(tokio::spawn));
            asked = offer(&args.data_dir);
            // The state read again is applied on the next turn; sockets handed over that it
            // does not want close after.
            settle_inherited = true;
            continue;
        }
        let leads = roles.api && leading.as_mut().is_none_or(Leadership::leads);
        // What the leader activates, found once per change; activations not yet committed
        // are reported again every tick (reports are idempotent).
        let record = || NodeProcess::new(&roles, served.clone(), started_ms, snapshot.revision);
        if let Some(presence) = &presence {
            presence.publish(record());
        }
        let tried = match &now {
            Some(Some(cluster)) => Some(cluster.tried()),
            Some(None) => None,
            None => Some(served.iter().map(|s| (s.id.as_str(), s)).collect()),
        };
        let activating = match tried.filter(|_| leads) {
            Some(tried) => activations(&snapshot.state, &tried),
            None => Vec::new(),
        };
        // What is found on the clock: deregistrations over, endpoints' interfaces settled.
        let findings = |dataplane: &DataPlane| {
            let mut reports = activating.clone();
            if leads {
                reports.extend(draining_over(&snapshot.state, now_ms()));
            }
            if let Some(local) = &local {
                reports.extend(settlements(local, dataplane));
            }
            reports
        };
        reporter.report(findings(&dataplane));
        loop {
            tokio::select! {
                changed = snapshots.changed() => break changed?,
                changed = health.changed() => break changed?,
                Some(changed) = async { match others.as_mut() {
                    Some(others) => Some(others.changed().await),
                    None => None,
                } } => break changed?,
                Some(changed) = async { match leading.as_mut() {
                    Some(leading) => Some(leading.changed().await),
                    None => None,
                } } => break changed?,
                _ = tick.tick() => {
                    if let Some(local) = &local {
                        // A listener's port, or an endpoint's interface, can fail or become
                        // free between snapshots; what changed is reported anew.
                        let applied = dataplane.retry_binds();
                        log_applied(local, &applied);
                        if !(applied.bound.is_empty() && applied.failed.is_empty()) {
                            break;
                        }
                        dataplane.retry_endpoints();
                        dataplane.assess_targets();
                        if let Some(presence) = &presence {
                            presence.publish_anomalies(&dataplane.anomalies().borrow());
                        }
                    }
                    reporter.report(findings(&dataplane));
                    if let Some(presence) = &presence {
                        // Written again only when its heartbeat is due.
                        presence.publish(record());
                    }
                }
                _ = hangup.recv() => match roles.api {
                    true => reload(&args, &settings, &store).await,
                    false => info!("SIGHUP: the config file's resources are the API processes' (--role api); nothing to reload here"),
                },
                _ = terminate.recv() => return stop(dataplane, logs, presence, leading, args.drain_seconds).await,
                _ = interrupt.recv() => return stop(dataplane, logs, presence, leading, args.drain_seconds).await,
                _ = user2.recv() => reexec(),
                Some(()) = old_went.recv(), if logs.is_none() => {
                    info!("the old elbd exited; this one delivers the access logs");
                    logs = Some(start_logs()?);
                }
                Some(ask) = async { match asked.as_mut() {
                    Some(asked) => asked.recv().await,
                    None => None,
                } } => match ask {
                    Asked::Sockets(reply) => {
                        let handed = sockets(&dataplane, dns.as_ref(), &own_sockets, flow_seed);
                        let health = checker.subscribe().borrow().as_ref().clone();
                        let _ = reply.send(handed.map(|mut handed| {
                            handed.health = health;
                            handed
                        }));
                    }
                    Asked::Quiesce(reply) => {
                        // Nothing accepted or committed after this; then the drain.
                        quiet.send_replace(true);
                        let aborts: Vec<_> = servers.iter().map(|s| s.abort_handle()).collect();
                        let servers = futures_all(std::mem::take(&mut servers));
                        if tokio::time::timeout(QUIESCE, servers).await.is_err() {
                            warn!("API requests still open after {QUIESCE:?}: cut, handing over");
                            aborts.iter().for_each(tokio::task::AbortHandle::abort);
                        }
                        reporter.stop().await;
                        let _ = reply.send(store.snapshot().revision);
                        return stop(dataplane, logs, presence, leading, args.drain_seconds).await;
                    }
                },
            }
        }
    }
}

/// How long a process handing over waits for its API requests to finish.
const QUIESCE: Duration = Duration::from_secs(10);

/// A listener on `addr`: the one handed over for it, or a new one.
async fn listen(handed: Option<OwnedFd>, addr: SocketAddr) -> std::io::Result<TcpListener> {
    match handed {
        Some(fd) => {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        }
        None => TcpListener::bind(addr).await,
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn until_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|on| *on).await;
}

/// Waits for every task.
async fn futures_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Listens for a process taking over; without (the data dir refuses a socket), restarts
/// are not seamless, which is said.
fn offer(data_dir: &std::path::Path) -> Option<tokio::sync::mpsc::Receiver<Asked>> {
    handover::offer(data_dir)
        .inspect_err(|e| warn!("no hand-over to a new process: {e:#}"))
        .ok()
}

/// Every socket this process serves on, for a process taking over.
fn sockets(
    dataplane: &DataPlane,
    dns: Option<&Dns>,
    own: &[(Purpose, SocketAddr, OwnedFd)],
    flow_seed: u64,
) -> std::io::Result<Sockets> {
    let mut sockets = Sockets::default();
    sockets.flow_seed = flow_seed;
    sockets.add_nodes(dataplane.sockets()?);
    for (purpose, addr, fd) in own {
        sockets.add(*purpose, *addr, fd.try_clone()?);
    }
    if let Some(dns) = dns {
        let (udp, tcp) = dns.sockets()?;
        let addr = dns.addr();
        sockets.add(Purpose::DnsUdp, addr, udp);
        sockets.add(Purpose::DnsTcp, addr, tcp);
    }
    Ok(sockets)
}

/// SIGUSR2: starts this binary again with the same arguments (NGINX's habit); the new
/// process takes this one's sockets and has it drain and exit. It is started as this one was
/// (its `argv[0]`, searched in PATH when bare), so that a binary replaced there (an upgrade)
/// is the one started.
fn reexec() {
    let mut args = std::env::args_os();
    let Some(program) = args.next() else {
        return error!("SIGUSR2: no argv[0] to start again");
    };
    let shown = PathBuf::from(&program).display().to_string();
    match std::process::Command::new(&program).args(args).spawn() {
        Ok(mut child) => {
            info!(pid = child.id(), program = %shown, "SIGUSR2: started a new elbd to take over");
            // Reaped while this process lives; a failed start is said.
            let _ = std::thread::Builder::new()
                .name("reexec-wait".into())
                .spawn(move || match child.wait() {
                    Ok(status) if status.success() => {}
                    Ok(status) => error!("SIGUSR2: the new elbd exited: {status}"),
                    Err(e) => error!("SIGUSR2: waiting for the new elbd: {e}"),
                });
        }
        Err(e) => error!("SIGUSR2: starting {shown}: {e}"),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn stop(
    dataplane: DataPlane,
    logs: Option<Delivery>,
    presence: Option<Presence>,
    leading: Option<Leadership>,
    drain_seconds: u64,
) -> anyhow::Result<()> {
    // First out of DNS, so that no client is sent to listeners about to close; and the lead
    // to another API process now, not when the lease runs out.
    if let Some(presence) = presence {
        presence.withdraw().await;
    }
    if let Some(leading) = leading {
        leading.resign().await;
    }
    info!(
        drain_seconds,
        "stopping: listeners closed, draining connections"
    );
    dataplane.shutdown().await;
    // After the drain: the requests that finished in it are logged too.
    if let Some(logs) = logs {
        logs.stop().await;
    }
    Ok(())
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
            .find(|(_, n)| n.addresses().any(|ip| ip == addr.ip()))
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
    state.in_region(home, cx, |region, cx| {
        // Before the file's resources, which may need them; a file without quotas leaves the
        // region's as they are.
        if let Some(quotas) = settings.quotas {
            region.quotas = quotas;
        }
        reconcile(region, config, cx)
    })
}

fn config_name(args: &ServeArgs) -> String {
    args.config.as_ref().map_or_else(
        || "embedded defaults".to_owned(),
        |p| p.display().to_string(),
    )
}

/// How authenticate actions reach identity providers, from `[settings]`.
fn identity_providers(
    settings: &elb_config::ProviderSettings,
) -> anyhow::Result<Arc<elb_dataplane::auth::Providers>> {
    let cognito = settings
        .cognito_endpoint
        .as_ref()
        .map(|endpoint| elb_dataplane::auth::Cognito {
            endpoint: endpoint.clone(),
            client_secrets: settings
                .cognito_client_secrets
                .clone()
                .into_iter()
                .collect(),
        });
    elb_dataplane::auth::Providers::new(settings.oidc_ca_pem.as_deref(), cognito)
        .map_err(|e| anyhow::anyhow!("settings.oidc_ca_file: {e}"))
}
