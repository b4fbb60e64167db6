//! Access log delivery: every quarter second the nodes' new entries go from the data plane
//! to the spool on disk; at the end of every interval (aligned on the clock, as AWS's five
//! minutes are) the spool is sealed into AWS's gzipped objects, which are put in their
//! buckets, again and again until they are taken. At a clean stop whatever is left is sealed
//! and put; after a `kill -9` the next process does it (`elb_logs::Spool::open`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use elb_dataplane::access_log::{AccessLog, AccessLogs};
use elb_logs::{Buckets, Destination, Spool};
use elb_model::State;
use elb_store::Store;
use tokio::sync::watch;
use tracing::warn;

/// How often entries move from memory to the spool: what a `kill -9` can lose at most.
const FLUSH: Duration = Duration::from_millis(250);
/// How often undelivered objects are tried again.
const RETRY: Duration = Duration::from_secs(5);
/// At a clean stop, delivery is given this long.
const LAST_DELIVERY: Duration = Duration::from_secs(10);

pub(crate) struct Delivery {
    spool: Spool,
    buckets: Arc<Buckets>,
    store: Arc<Store>,
    logs: Arc<AccessLogs>,
    interval: Duration,
    /// Every log seen, by stream, with where its entries last went: a log the data plane
    /// dropped (logging turned off, the load balancer deleted) is emptied once more.
    known: HashMap<(String, IpAddr), (Arc<AccessLog>, Option<Destination>)>,
}

impl Delivery {
    /// The spool under `<data-dir>/logs`, with what an earlier process left in it sealed.
    pub(crate) fn open(
        data_dir: &Path,
        buckets: Arc<Buckets>,
        store: Arc<Store>,
        logs: Arc<AccessLogs>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        Ok(Self {
            spool: Spool::open(&data_dir.join("logs"), SystemTime::now())?,
            buckets,
            store,
            logs,
            interval,
            known: HashMap::new(),
        })
    }

    /// Runs until `stopped`, then delivers what is left.
    pub(crate) async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(FLUSH);
        let mut retry = tokio::time::interval(RETRY);
        let mut interval_end = next_boundary(SystemTime::now(), self.interval);
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    self.flush();
                    if SystemTime::now() >= interval_end {
                        self.seal(interval_end);
                        interval_end = next_boundary(SystemTime::now(), self.interval);
                        self.deliver().await;
                    }
                }
                _ = retry.tick() => self.deliver().await,
                _ = stopped.changed() => break,
            }
        }
        self.flush();
        self.seal(SystemTime::now());
        if tokio::time::timeout(LAST_DELIVERY, self.deliver())
            .await
            .is_err()
        {
            warn!("access logs not delivered at stop stay spooled for the next start");
        }
    }

    /// Moves every node's new entries to the spool.
    fn flush(&mut self) {
        for (lb, ip, log) in self.logs.current() {
            self.known.entry((lb, ip)).or_insert((log, None));
        }
        let current: Vec<(String, IpAddr)> = self
            .logs
            .current()
            .into_iter()
            .map(|(lb, ip, _)| (lb, ip))
            .collect();
        let snapshot = self.store.snapshot();
        let now = SystemTime::now();
        self.known.retain(|(lb, ip), (log, last)| {
            let entries = log.take();
            let dropped = log.take_dropped();
            if dropped > 0 {
                warn!(load_balancer = %lb, node = %ip, dropped, "access log entries dropped: the spool fell behind");
            }
            if let Some(destination) = destination(&snapshot.state, lb, *ip) {
                *last = Some(destination);
            }
            if !entries.is_empty() {
                match last {
                    Some(destination) => {
                        let stream = format!("{}_{ip}", destination.load_balancer);
                        if let Err(e) = self.spool.append(&stream, destination, &entries, now) {
                            warn!(load_balancer = %lb, error = %e, "access log entries could not be spooled");
                        }
                    }
                    None => warn!(load_balancer = %lb, "access log entries without a bucket dropped"),
                }
            }
            current.contains(&(lb.clone(), *ip))
        });
    }

    fn seal(&mut self, end: SystemTime) {
        if let Err(e) = self.spool.seal_all(end) {
            warn!(error = %e, "access logs could not be sealed");
        }
    }

    /// Puts every sealed object in its bucket; what fails stays for the next try.
    async fn deliver(&mut self) {
        let ready = match self.spool.ready() {
            Ok(ready) => ready,
            Err(e) => {
                warn!(error = %e, "the access log spool could not be read");
                return;
            }
        };
        for object in ready {
            let body = match object.body() {
                Ok(body) => body,
                Err(e) => {
                    warn!(key = %object.key, error = %e, "a sealed access log could not be read");
                    continue;
                }
            };
            match self.buckets.put(&object.bucket, &object.key, body).await {
                Ok(()) => {
                    if let Err(e) = object.delivered() {
                        warn!(error = %e, "a delivered access log could not be removed from the spool");
                    }
                }
                Err(e) => {
                    warn!(bucket = %object.bucket, key = %object.key, error = %e, "access log not delivered; tried again later");
                    return;
                }
            }
        }
    }
}

/// Where the entries of `lb`'s node `ip` go, while the load balancer logs.
fn destination(state: &State, lb: &str, ip: IpAddr) -> Option<Destination> {
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
    if attributes.get("access_logs.s3.enabled") != Some("true") {
        return None;
    }
    Some(Destination {
        bucket: attributes.get("access_logs.s3.bucket")?.to_owned(),
        prefix: attributes
            .get("access_logs.s3.prefix")
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
