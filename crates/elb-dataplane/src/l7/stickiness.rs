//! Stickiness on the general path: which target (or target group) a request's cookies name,
//! and the cookies renewed on its response. The cookies themselves are `crate::sticky`.

use std::net::SocketAddr;

use http::header::HeaderMap;

use crate::sticky::{self, CookieSealer, Stickiness, Ticket};
use crate::targets::HttpTargets;

/// The target a request's stickiness cookie names, when the group is sticky and the cookie is
/// genuine, for this group and not expired. With `app_cookie` stickiness the request must
/// also carry the application's cookie, as AWS requires.
pub(super) fn sticky_target(
    headers: &HeaderMap,
    targets: &HttpTargets,
    sealer: &CookieSealer,
    now_s: u64,
) -> Option<SocketAddr> {
    let (cookie, duration_s) = match &targets.proto.stickiness {
        Stickiness::Off => return None,
        Stickiness::LbCookie { duration_s } => (sticky::LB_COOKIE, *duration_s),
        Stickiness::AppCookie { name, duration_s } => {
            sticky::request_cookie(headers, name)?;
            (sticky::APP_COOKIE, *duration_s)
        }
    };
    let ticket = sealer.open(sticky::request_cookie(headers, cookie)?)?;
    (ticket.group == targets.group_id && ticket.fresh(now_s, duration_s))
        .then_some(ticket.target)
        .flatten()
}

/// `lb_cookie`: AWSALB and AWSALBCORS on every response. `app_cookie`: AWSALBAPP-0 when the
/// target sets the application's cookie, or the request was already stuck.
pub(super) fn renew_stickiness(
    headers: &mut HeaderMap,
    targets: &HttpTargets,
    sealer: &CookieSealer,
    ticket: &Ticket,
    stuck: bool,
) {
    let renew = match &targets.proto.stickiness {
        Stickiness::Off => false,
        Stickiness::LbCookie { .. } => true,
        Stickiness::AppCookie { name, .. } => stuck || sticky::response_sets(headers, name),
    };
    let Some(value) = renew.then(|| sealer.seal(ticket)).flatten() else {
        return;
    };
    let now_s = ticket.issued_s;
    match targets.proto.stickiness {
        Stickiness::AppCookie { .. } => sticky::set_app(headers, &value, now_s),
        _ => {
            let cors = Some(sticky::LB_COOKIE_CORS);
            sticky::set(headers, sticky::LB_COOKIE, cors, &value, now_s);
        }
    }
}
