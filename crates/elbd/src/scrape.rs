//! `GET /metrics` on the API address (and on `--metrics-listen`): the data plane's counters
//! and the targets' health in Prometheus's text format; and the sampler that keeps the
//! CloudWatch API's history. With API credentials configured it asks for HTTP basic auth with
//! an access key id and its secret; without, it is open (it shows no secrets).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use elb_dataplane::metrics::{Reader, Registry, host_counts};
use elb_metrics::Reading;
use elb_metrics::history::History;
use elb_metrics::prometheus;
use elb_model::HealthView;
use elb_store::Store;
use tokio::sync::watch;

pub(crate) struct Scrape {
    pub(crate) registry: Arc<Registry>,
    pub(crate) store: Arc<Store>,
    pub(crate) health: watch::Receiver<Arc<HealthView>>,
    /// Access key id → secret; empty: no authentication.
    pub(crate) credentials: HashMap<String, String>,
}

impl Scrape {
    /// Every series now, for `reader`: the data plane's counters, and the targets' health.
    pub(crate) fn readings(&self, reader: Reader) -> Vec<Reading> {
        let snapshot = self.store.snapshot();
        let health = self.health.borrow().clone();
        self.registry
            .readings(&host_counts(&snapshot.state, &health), reader)
    }
}

/// Folds the readings into `history` every few seconds, so that the current minute is never
/// more than that behind.
pub(crate) async fn sample(scrape: Arc<Scrape>, history: Arc<Mutex<History>>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticks.tick().await;
        let readings = scrape.readings(Reader::CloudWatch);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // Off the runtime's threads: with --threads 1 they also carry the traffic.
        let history = history.clone();
        let fold = tokio::task::spawn_blocking(move || {
            history
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .observe(now_ms, &readings);
        });
        let _ = fold.await;
    }
}

/// How often the CloudWatch history is brought up to date.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn router(scrape: Arc<Scrape>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(scrape)
}

async fn metrics(State(scrape): State<Arc<Scrape>>, headers: HeaderMap) -> Response {
    if !scrape.credentials.is_empty() && !authorized(&headers, &scrape.credentials) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"elbd metrics\"")],
            "an access key id and its secret are needed (HTTP basic auth)\n",
        )
            .into_response();
    }
    let mut body = prometheus::render(&scrape.readings(Reader::Prometheus));
    if let Some(following) = scrape.store.following() {
        body.push_str(
            "# HELP elbd_store_watch_up Whether this process follows the shared store's \
             changes (0: etcd is out of reach; the last state seen is served).\n\
             # TYPE elbd_store_watch_up gauge\n",
        );
        body.push_str(&format!("elbd_store_watch_up {}\n", u8::from(following)));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Whether `Authorization: Basic` names a configured access key id with its secret.
pub(crate) fn authorized(headers: &HeaderMap, credentials: &HashMap<String, String>) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded)
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(pair) = String::from_utf8(decoded) else {
        return false;
    };
    pair.split_once(':').is_some_and(|(id, secret)| {
        credentials
            .get(id)
            .is_some_and(|s| elb_api::auth::same(s.as_bytes(), secret.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn basic_auth_takes_a_configured_key_and_its_secret_only() {
        let credentials: HashMap<String, String> = [("AKID".into(), "s3cret".into())].into();
        let basic = |pair: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            format!("Basic {encoded}")
        };
        assert!(authorized(&with(&basic("AKID:s3cret")), &credentials));
        assert!(authorized(
            &with(&basic("AKID:s3cret").replace("Basic", "basic")),
            &credentials
        ));
        assert!(!authorized(&with(&basic("AKID:s3creT")), &credentials));
        assert!(!authorized(&with(&basic("OTHER:s3cret")), &credentials));
        assert!(!authorized(&with("Bearer x"), &credentials));
        assert!(!authorized(&HeaderMap::new(), &credentials));
    }
}
