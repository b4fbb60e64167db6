//! What matching one request against a listener's rules costs, with 100 rules (AWS's quota
//! per load balancer), each with a host and a path condition: a match at the first rule, at
//! the last, and no match (the default rule).
//!
//!     cargo bench -p elb-dataplane --bench rules

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use elb_dataplane::l7::rules::{Matcher, RequestView, first_match};
use elb_model::Condition;
use http::HeaderMap;

fn rules(c: &mut Criterion) {
    let rules: Vec<(Vec<Matcher>, usize)> = (0..100)
        .map(|i| {
            let host = Condition::HostHeader {
                values: vec![format!("svc{i}.example.com")],
                regex_values: Vec::new(),
            };
            let path = Condition::PathPattern {
                values: vec![format!("/api/v{i}/*")],
                regex_values: Vec::new(),
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
    let mut group = c.benchmark_group("100 rules");
    for (what, host, path) in cases {
        let view = RequestView {
            method: "GET",
            host: Some(host),
            authority: Some(host),
            path,
            query: None,
            headers: &headers,
            peer: "127.0.0.1".parse().expect("an address"),
        };
        group.bench_function(what, |b| {
            b.iter(|| first_match(black_box(&rules), black_box(&view)));
        });
    }
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
