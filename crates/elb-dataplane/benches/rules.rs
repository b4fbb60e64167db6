//! What matching one request against a listener's rules costs, with 100 rules (AWS's quota
//! per load balancer), each with a host and a path condition:
//!
//!     cargo bench -p elb-dataplane --bench rules
//!
//! A plain timing loop (no criterion, to keep the 2-core build light); it prints nanoseconds
//! per request for a match at the first rule, at the last, and for no match (the default).

use std::hint::black_box;
use std::time::Instant;

use elb_dataplane::l7::rules::{Matcher, RequestView, first_match};
use elb_model::Condition;
use http::HeaderMap;

const ITERATIONS: u32 = 200_000;

fn main() {
    let rules: Vec<(Vec<Matcher>, usize)> = (0..100)
        .map(|i| {
            let host = Condition::HostHeader {
                values: vec![format!("svc{i}.example.com")],
            };
            let path = Condition::PathPattern {
                values: vec![format!("/api/v{i}/*")],
            };
            (vec![Matcher::compile(&host), Matcher::compile(&path)], i)
        })
        .collect();
    let headers = HeaderMap::new();
    let cases = [
        ("first rule", "svc0.example.com", "/api/v0/users"),
        ("last rule", "svc99.example.com", "/api/v99/users"),
        ("no rule (default)", "other.example.com", "/static/app.js"),
    ];
    for (what, host, path) in cases {
        let view = RequestView {
            method: "GET",
            host: Some(host),
            path,
            query: None,
            headers: &headers,
            peer: "127.0.0.1".parse().expect("an address"),
        };
        for _ in 0..ITERATIONS / 10 {
            black_box(first_match(black_box(&rules), black_box(&view)));
        }
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            black_box(first_match(black_box(&rules), black_box(&view)));
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
        println!("100 rules, {what}: {per:.0} ns per request");
    }
}
