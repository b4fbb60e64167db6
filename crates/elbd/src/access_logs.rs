//! Access and connection log delivery, in two parts that never wait on each other. The spooler, a thread of
//! its own (its work is file I/O), moves the nodes' new entries from the data plane to the
//! spool on disk every quarter second and, at the end of every interval (aligned on the
//! clock, as AWS's five minutes are), seals the spool into AWS's gzipped objects. The courier,
//! a task, puts sealed objects in their buckets when woken and every few seconds; a bucket
//! that refuses one is passed over until the next round, and the others go on. At a clean
//! stop whatever is left is sealed and put; after a `kill -9` the next process does it
//! (`elb_logs::Spool::open`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use elb_dataplane::access_log::{LogStream, NodeLog, NodeLogs};
use elb_logs::{Buckets, Destination, LogKind, Outbox, Spool};
use elb_model::State;
use elb_store::Store;
use tokio::sync::{Notify, watch};
use tracing::{error, warn};

/// How often entries move from memory to the spool: what a `kill -9` can lose at most.
const FLUSH: Duration = Duration::from_millis(250);
/// How often undelivered objects are tried again.
const RETRY: Duration = Duration::from_secs(5);
/// At a clean stop, delivery is given this long.
const LAST_DELIVERY: Duration = Duration::from_secs(10);

/// The running spooler and courier.
pub(crate) struct Delivery {
    stop_spooler: mpsc::Sender<()>,
    spooler: std::thread::JoinHandle<()>,
    stop_courier: watch::Sender<bool>,
    courier: tokio::task::JoinHandle<()>,
}

impl Delivery {
    /// Opens the spool under `<data-dir>/logs` (sealing what an earlier process left in it)
    /// and starts both parts.
    pub(crate) fn start(
        data_dir: &Path,
        buckets: Arc<Buckets>,
        store: Arc<Store>,
        logs: Arc<NodeLogs>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let spool = Spool::open(&data_dir.join("logs"), SystemTime::now())?;
        let sealed = Arc::new(Notify::new());
        let courier = Courier {
            outbox: spool.outbox(),
            buckets,
            sealed: sealed.clone(),
        };
        let spooler = Spooler {
            spool,
            store,
            logs,
            interval,
            sealed,
            streams: HashMap::new(),
            retired: Vec::new(),
        };
        let (stop_spooler, stopped) = mpsc::channel();
        let spooler = std::thread::Builder::new()
            .name("access-log-spooler".into())
            .spawn(move || spooler.run(&stopped))?;
        let (stop_courier, stopped) = watch::channel(false);
        Ok(Self {
            stop_spooler,
            spooler,
            stop_courier,
            courier: tokio::spawn(courier.run(stopped)),
        })
    }

    /// Takes the last entries, seals them and delivers what can be within
    /// [`LAST_DELIVERY`]; the rest stays spooled for the next start.
    pub(crate) async fn stop(self) {
        let _ = self.stop_spooler.send(());
        let spooler = self.spooler;
        if tokio::task::spawn_blocking(move || spooler.join())
            .await
            .is_err()
        {
            error!("the log spooler panicked; its entries stay spooled");
        }
        let _ = self.stop_courier.send(true);
        let _ = self.courier.await;
    }
}

/// One node's log of one kind of one load balancer, and where its entries last went.
struct Stream {
    load_balancer: String,
    node: IpAddr,
    kind: LogKind,
    log: Arc<NodeLog>,
    destination: Option<Destination>,
    /// The buffer of the last take, handed back at the next.
    spare: Vec<u8>,
}

struct Spooler {
    spool: Spool,
    store: Arc<Store>,
    logs: Arc<NodeLogs>,
    interval: Duration,
    /// Told when objects are sealed.
    sealed: Arc<Notify>,
    /// The logs the data plane writes to now.
    streams: HashMap<LogStream, Stream>,
    /// Logs it no longer lists (logging turned off, the load balancer gone, a log made anew)
    /// that requests in flight may still write to: emptied until nothing else holds them.
    retired: Vec<Stream>,
}

impl Spooler {
    fn run(mut self, stopped: &mpsc::Receiver<()>) {
        let mut interval_end = next_boundary(SystemTime::now(), self.interval);
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(FLUSH) {
            self.flush();
            if SystemTime::now() >= interval_end {
                self.seal(interval_end);
                interval_end = next_boundary(SystemTime::now(), self.interval);
            }
        }
        self.flush();
        self.seal(SystemTime::now());
    }

    /// Moves every log's new entries to the spool.
    fn flush(&mut self) {
        let mut streams = HashMap::new();
        for (key, log) in self.logs.current() {
            let stream = match self.streams.remove(&key) {
                Some(stream) if Arc::ptr_eq(&stream.log, &log) => stream,
                previous => {
                    self.retired.extend(previous);
                    Stream {
                        load_balancer: key.0.clone(),
                        node: key.1,
                        kind: key.2,
                        log,
                        destination: None,
                        spare: Vec::new(),
                    }
                }
            };
            streams.insert(key, stream);
        }
        self.retired.extend(self.streams.drain().map(|(_, s)| s));
        self.streams = streams;
        let snapshot = self.store.snapshot();
        let now = SystemTime::now();
        let spool = &mut self.spool;
        for stream in self.streams.values_mut() {
            spool_entries(spool, stream, &snapshot.state, now);
        }
        self.retired.retain_mut(|stream| {
            // Only this holds it: whatever was written is in it now, and nothing more can be.
            let last = Arc::strong_count(&stream.log) == 1;
            spool_entries(spool, stream, &snapshot.state, now);
            !last
        });
    }

    fn seal(&mut self, end: SystemTime) {
        match self.spool.seal_all(end) {
            Ok(()) => self.sealed.notify_one(),
            Err(e) => warn!(error = %e, "logs could not be sealed"),
        }
    }
}

/// Moves `stream`'s new entries to the spool, to where its load balancer logs now (or, if it
/// stopped, to where it last did).
fn spool_entries(spool: &mut Spool, stream: &mut Stream, state: &State, now: SystemTime) {
    let (lb, node) = (&stream.load_balancer, stream.node);
    if let Some(destination) = destination(state, lb, node, stream.kind) {
        stream.destination = Some(destination);
    }
    let entries = stream.log.take(std::mem::take(&mut stream.spare));
    let dropped = stream.log.take_dropped();
    if dropped > 0 {
        warn!(load_balancer = %lb, %node, kind = stream.kind.attributes(), dropped, "log entries dropped: the spool fell behind");
    }
    if !entries.is_empty() {
        match &stream.destination {
            Some(destination) => {
                let kind = stream.kind.attributes();
                let name = format!("{}_{node}_{kind}", destination.load_balancer);
                if let Err(e) = spool.append(&name, destination, &entries, now) {
                    warn!(load_balancer = %lb, kind, error = %e, "log entries could not be spooled");
                }
            }
            None => {
                warn!(load_balancer = %lb, kind = stream.kind.attributes(), "log entries without a bucket dropped")
            }
        }
    }
    stream.spare = entries;
}

struct Courier {
    outbox: Outbox,
    buckets: Arc<Buckets>,
    sealed: Arc<Notify>,
}

impl Courier {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.sealed.notified() => {}
                () = tokio::time::sleep(RETRY) => {}
                _ = stopped.changed() => break,
            }
            self.deliver().await;
        }
        if tokio::time::timeout(LAST_DELIVERY, self.deliver())
            .await
            .is_err()
        {
            warn!("logs not delivered at stop stay spooled for the next start");
        }
    }

    /// Puts every sealed object in its bucket; a bucket that refuses one is not tried again
    /// this round, and what fails stays for the next.
    async fn deliver(&self) {
        let outbox = self.outbox.clone();
        let ready = match tokio::task::spawn_blocking(move || outbox.ready()).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => return warn!(error = %e, "the log spool could not be read"),
            Err(e) => return error!(error = %e, "reading the log spool panicked"),
        };
        let mut refusing = HashSet::new();
        for object in ready {
            if refusing.contains(&object.bucket) {
                continue;
            }
            let body = match object.body() {
                Ok(body) => body,
                Err(e) => {
                    warn!(key = %object.key, error = %e, "a sealed log could not be read");
                    continue;
                }
            };
            match self.buckets.put(&object.bucket, &object.key, body).await {
                Ok(()) => {
                    if let Err(e) = object.delivered() {
                        warn!(error = %e, "a delivered log could not be removed from the spool");
                    }
                }
                Err(e) => {
                    warn!(bucket = %object.bucket, key = %object.key, error = %e, "log not delivered; tried again later");
                    refusing.insert(object.bucket);
                }
            }
        }
    }
}

/// Where the entries of `lb`'s node `ip` of `kind` go, while the load balancer keeps them.
fn destination(state: &State, lb: &str, ip: IpAddr, kind: LogKind) -> Option<Destination> {
    // arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID
    let mut parts = lb.splitn(6, ':');
    let (region, account) = (parts.nth(3)?, parts.next()?);
    let resource = parts.next()?.strip_prefix("loadbalancer/")?;
    let attributes = &state
        .regions
        .get(region)?
        .load_balancers
        .get(lb)?
        .attributes;
    let attribute = |name| format!("{}.s3.{name}", kind.attributes());
    if !attributes.flag(&attribute("enabled")) {
        return None;
    }
    Some(Destination {
        kind,
        bucket: attributes.get(&attribute("bucket"))?.to_owned(),
        prefix: attributes
            .get(&attribute("prefix"))
            .unwrap_or_default()
            .to_owned(),
        account: account.to_owned(),
        region: region.to_owned(),
        load_balancer: resource.replace('/', "."),
        node_ip: ip,
    })
}

/// The first multiple of `interval` since the epoch after `now`.
fn next_boundary(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let step = interval.as_secs().max(1);
    SystemTime::UNIX_EPOCH + Duration::from_secs((since.as_secs() / step + 1) * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_end_on_the_clock() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let five_minutes = Duration::from_secs(300);
        assert_eq!(next_boundary(at(1_000), five_minutes), at(1_200));
        assert_eq!(next_boundary(at(1_200), five_minutes), at(1_500));
        assert_eq!(next_boundary(at(7), Duration::from_secs(5)), at(10));
    }
}
