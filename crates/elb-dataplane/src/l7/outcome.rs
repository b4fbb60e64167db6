//! One record per request, made alike by both roads: what was decided, what the client and
//! the target answered, how long the target took, and how many bytes crossed. Metrics and
//! access logs read it; with `RUST_LOG=elbd::request=debug` each one is also logged.

use elb_lambda::Blame;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::decide::Decision;
use super::rescue::ProxyError;
use crate::access_log::{Facts, Session};
use crate::metrics::{CLIENT_CLOSED, GroupMetrics};
use crate::table::{HttpRoute, RouteAction};
use crate::targets::TargetLoad;

/// What the load balancer did with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Forward,
    Redirect,
    FixedResponse,
    /// Answered by an authenticate action: sent to log in, or back from the provider.
    Authenticate,
    /// Answered with an error before a rule was applied (limits, desync, TRACE, ...).
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The matched rule's priority; `None` for the default rule or when refused before.
    pub(crate) rule: Option<u16>,
    pub(crate) action: Action,
    /// Whether an authenticate action ran before `action`.
    pub(crate) authenticated: bool,
    /// The status the client got.
    pub(crate) elb_status: u16,
    pub(crate) target: Option<SocketAddr>,
    /// The status the target answered with, when it answered.
    pub(crate) target_status: Option<u16>,
    /// From the request leaving for the target to the first bytes of its response.
    pub(crate) target_time: Option<Duration>,
    /// Connecting to the target failed.
    pub(crate) target_connection_error: bool,
    /// The target was not reached, did not answer, or broke off its response.
    pub(crate) target_error: bool,
    /// Why the load balancer answered with an error page.
    pub(crate) error: Option<&'static str>,
    /// A Lambda target's failure, by whose it is (ALB's two Lambda error metrics).
    pub(crate) lambda_error: Option<Blame>,
    pub(crate) received_bytes: u64,
    pub(crate) sent_bytes: u64,
    /// What the access log entry needs besides: gathered only when the load balancer logs.
    pub(crate) log: Option<Box<Facts>>,
}

impl Outcome {
    /// The record of a request the rules decided on, before it is answered.
    pub(crate) fn decided(decision: &Decision<'_>) -> Self {
        let mut outcome = Self::refused();
        outcome.decide(decision);
        outcome
    }

    /// Notes the rule a request matched and its action.
    pub(crate) fn decide(&mut self, decision: &Decision<'_>) {
        self.rule = decision.rule;
        self.action = match decision.action {
            RouteAction::Forward(_) => Action::Forward,
            RouteAction::Redirect(_) => Action::Redirect,
            RouteAction::Fixed(_) => Action::FixedResponse,
        };
    }

    /// The record of a request no rule was applied to.
    pub(crate) fn refused() -> Self {
        Self {
            rule: None,
            action: Action::Refused,
            authenticated: false,
            elb_status: 0,
            target: None,
            target_status: None,
            target_time: None,
            target_connection_error: false,
            target_error: false,
            error: None,
            lambda_error: None,
            received_bytes: 0,
            sent_bytes: 0,
            log: None,
        }
    }

    /// Notes that the load balancer answered with `error`'s page.
    pub(crate) fn failed(&mut self, error: &ProxyError) {
        self.elb_status = error.status().as_u16();
        self.error = Some(error.reason());
        self.lambda_error = error.lambda_blame();
        self.target_status = None;
        self.target_connection_error = matches!(
            error,
            ProxyError::TargetConnect(_) | ProxyError::TargetConnectTimeout
        );
        self.target_error = error.blames_target();
    }

    /// Whether the target failed the request, as anomaly detection counts: it answered 5XX,
    /// or was not reached, or did not answer or broke off.
    pub(crate) fn failed_by_target(&self) -> bool {
        self.target.is_some() && (self.target_error || self.target_status.is_some_and(|s| s >= 500))
    }

    /// The record's access log facts, when it gathers them.
    pub(crate) fn facts(&mut self) -> Option<&mut Facts> {
        self.log.as_deref_mut()
    }

    /// Counts the request in the node's and the group's metrics, writes its access log
    /// entry when the load balancer logs, and logs it at debug level.
    pub(crate) fn record(
        &self,
        route: &HttpRoute,
        group: Option<&GroupMetrics>,
        session: &Session,
    ) {
        if let Some(metrics) = &route.door.metrics {
            metrics.record(self, group);
        }
        if let (Some(log), Some(facts)) = (&route.access_log, &self.log) {
            log.request(session, self, facts);
        }
        tracing::debug!(
            target: "elbd::request",
            listener = %route.door.listener_arn,
            rule = ?self.rule,
            action = ?self.action,
            elb_status = self.elb_status,
            target = ?self.target,
            target_status = ?self.target_status,
            error = self.error.unwrap_or("-"),
            received_bytes = self.received_bytes,
            sent_bytes = self.sent_bytes,
            "request"
        );
    }
}

/// What the general path learns of a request for its outcome record as it handles it: the
/// record, and the metrics of the group it went to.
pub(crate) struct Tally {
    pub(crate) outcome: Outcome,
    pub(crate) group: Option<Arc<GroupMetrics>>,
    /// What the node has sent the target: its failure is counted there.
    pub(crate) load: Option<Arc<TargetLoad>>,
}

/// A general-path request being handled. If hyper drops it before there is an answer (the
/// client left), it is recorded as ALB logs that, 460; once answered, its record moves into
/// the response body ([`Tallied`]).
pub(crate) struct Recording {
    pending: Option<Pending>,
}

/// A connection's count of requests whose responses hyper is done with (sent, or dropped).
pub(crate) type Answered = Arc<Answers>;

/// Counts answers, and wakes whoever waits for the next: the sniffer, holding a refusal
/// until the requests before it are answered.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    count: AtomicUsize,
    /// Set with `waker`; both orderings are sequential, as the waiter counts again after
    /// setting it.
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Answers {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.waiting.swap(false, Ordering::SeqCst)
            && let Some(waker) = self.waker.lock().expect("not poisoned").take()
        {
            waker.wake();
        }
    }

    /// Wakes `waker` at the next answer. The caller counts again after this, so that an
    /// answer that came in between is not missed.
    pub(crate) fn wake_at_next(&self, waker: &Waker) {
        *self.waker.lock().expect("not poisoned") = Some(waker.clone());
        self.waiting.store(true, Ordering::SeqCst);
    }
}

impl Recording {
    /// `received`: the request's size in bytes; `facts`: what its access log entry needs,
    /// when the load balancer logs; `answered` counts it once it is over.
    pub(crate) fn new(
        route: Arc<HttpRoute>,
        session: Session,
        (received, facts): (u64, Option<Facts>),
        answered: Answered,
    ) -> Self {
        let mut outcome = Outcome::refused();
        outcome.received_bytes = received;
        outcome.log = facts.map(Box::new);
        Self {
            pending: Some(Pending {
                tally: Tally {
                    outcome,
                    group: None,
                    load: None,
                },
                route,
                session,
                answered,
            }),
        }
    }

    pub(crate) fn tally(&mut self) -> &mut Tally {
        &mut self.pending.as_mut().expect("not answered yet").tally
    }

    /// The answer, whose body records the request when hyper is done with it.
    pub(crate) fn answered<B>(mut self, response: http::Response<B>) -> http::Response<Tallied<B>> {
        let mut pending = self.pending.take().expect("answered once");
        let outcome = &mut pending.tally.outcome;
        outcome.elb_status = response.status().as_u16();
        if outcome.action == Action::Redirect
            && let Some(facts) = outcome.log.as_deref_mut()
        {
            facts.redirect_url = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
        }
        // `HTTP/1.1 200 OK\r\n`, about: hyper writes the head.
        outcome.sent_bytes = head_size(17, response.headers());
        response.map(|inner| Tallied {
            inner,
            pending: Some(pending),
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            let outcome = &mut pending.tally.outcome;
            outcome.elb_status = CLIENT_CLOSED;
            outcome.error = Some("ClientClosed");
            pending.record();
        }
    }
}

/// A response body on the general path that counts the bytes it passes and records its
/// request's outcome when hyper is done with it (sent, or dropped when the client went away).
/// hyper writes the heads, so their sizes are counted from their fields.
pub(crate) struct Tallied<B> {
    inner: B,
    pending: Option<Pending>,
}

struct Pending {
    tally: Tally,
    route: Arc<HttpRoute>,
    session: Session,
    answered: Answered,
}

impl Pending {
    fn record(self) {
        self.answered.add();
        let tally = &self.tally;
        if let Some(load) = &tally.load
            && tally.outcome.failed_by_target()
        {
            load.count_failure();
        }
        tally
            .outcome
            .record(&self.route, tally.group.as_deref(), &self.session);
    }
}

impl<B> Tallied<B> {
    /// A body whose request has no listener to count it in.
    pub(crate) fn untracked(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Tallied<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match (&polled, self.pending.as_mut()) {
            (Poll::Ready(Some(Ok(frame))), Some(pending)) => {
                if let Some(data) = frame.data_ref() {
                    pending.tally.outcome.sent_bytes += data.len() as u64;
                }
            }
            (Poll::Ready(Some(Err(_))), Some(pending)) => {
                // The target broke off its response after the head, as the relay notes it.
                let outcome = &mut pending.tally.outcome;
                outcome.error = Some("TargetResponseIncomplete");
                outcome.target_error = true;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Tallied<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.record();
        }
    }
}

/// The size of a head with these fields: its first line is about 16 bytes, each field takes
/// `name: value\r\n`, and a blank line ends it.
pub(crate) fn head_size(first_line: usize, headers: &http::HeaderMap) -> u64 {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (first_line + fields + 2) as u64
}
