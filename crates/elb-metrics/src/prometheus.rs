//! Readings in Prometheus's text format, CloudWatch's vocabulary in Prometheus's conventions:
//! the name is `aws_` + the namespace without `AWS/` (elbd's own namespaces, `elbd/…`, with
//! `_` for `/`), lower-cased, + `_` + the metric name with
//! `_` between a lower-case letter or digit and an upper-case letter, lower-cased; counts end
//! in `_total`, timings are histograms in seconds (`_seconds`), gauges are plain; labels are
//! the dimensions in snake case.

use std::fmt::Write as _;

use crate::{RESPONSE_TIME_BUCKETS, Reading, Value};

/// The page: readings grouped by name, each name with its `# TYPE` line.
pub fn render(readings: &[Reading]) -> String {
    let mut names: Vec<(String, &Reading)> = readings
        .iter()
        .map(|r| (name(r.namespace, r.metric), r))
        .collect();
    // Stable: readings of one name keep their order.
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    let mut current = None;
    for (base, reading) in names {
        let labels = labels(reading);
        match &reading.value {
            Value::Count(count) => {
                if current.as_deref() != Some(base.as_str()) {
                    let _ = writeln!(out, "# TYPE {base}_total counter");
                }
                let _ = writeln!(out, "{base}_total{{{labels}}} {count}");
            }
            Value::Gauge(level) => {
                if current.as_deref() != Some(base.as_str()) {
                    let _ = writeln!(out, "# TYPE {base} gauge");
                }
                let _ = writeln!(out, "{base}{{{labels}}} {level}");
            }
            Value::Timing { cumulative, sum } => {
                let histogram = format!("{base}_seconds");
                if current.as_deref() != Some(base.as_str()) {
                    let _ = writeln!(out, "# TYPE {histogram} histogram");
                }
                for (bound, count) in RESPONSE_TIME_BUCKETS.iter().zip(cumulative) {
                    let _ = writeln!(out, "{histogram}_bucket{{{labels},le=\"{bound}\"}} {count}");
                }
                let count = cumulative.last().copied().unwrap_or(0);
                let _ = writeln!(out, "{histogram}_bucket{{{labels},le=\"+Inf\"}} {count}");
                let _ = writeln!(out, "{histogram}_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "{histogram}_count{{{labels}}} {count}");
            }
        }
        current = Some(base);
    }
    out
}

/// `aws_applicationelb_httpcode_elb_4_xx_count` for `AWS/ApplicationELB`'s
/// `HTTPCode_ELB_4XX_Count`; `elbd_gateway_malformed_packet_count` for elbd's own
/// `elbd/Gateway` `MalformedPacketCount`.
pub fn name(namespace: &str, metric: &str) -> String {
    let namespace = match namespace.strip_prefix("AWS/") {
        Some(aws) => format!("aws_{aws}"),
        None => namespace.replace('/', "_"),
    };
    format!("{}_{}", namespace.to_ascii_lowercase(), snake(metric))
}

fn labels(reading: &Reading) -> String {
    let mut out = String::new();
    for (i, (dimension, value)) in reading.dimensions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, "{}=\"{escaped}\"", snake(dimension));
    }
    out
}

/// `([a-z0-9])([A-Z])` → `$1_$2`, then lower case.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::APPLICATION_ELB;

    #[test]
    fn names_follow_the_rule() {
        let n = |m| name(APPLICATION_ELB, m);
        assert_eq!(n("RequestCount"), "aws_applicationelb_request_count");
        assert_eq!(
            n("HTTPCode_ELB_4XX_Count"),
            "aws_applicationelb_httpcode_elb_4_xx_count"
        );
        assert_eq!(
            n("UnHealthyHostCount"),
            "aws_applicationelb_un_healthy_host_count"
        );
        assert_eq!(snake("AvailabilityZone"), "availability_zone");
        assert_eq!(
            name(crate::ELBD_GATEWAY, "MalformedPacketCount"),
            "elbd_gateway_malformed_packet_count"
        );
    }

    #[test]
    fn a_page_has_one_type_line_per_name() {
        let reading = |zone: &str, value| Reading {
            namespace: APPLICATION_ELB,
            metric: "RequestCount",
            dimensions: vec![
                ("LoadBalancer", "app/w/1".into()),
                ("AvailabilityZone", zone.into()),
            ],
            value,
        };
        let page = render(&[reading("a", Value::Count(3)), reading("b", Value::Count(4))]);
        assert_eq!(
            page,
            "# TYPE aws_applicationelb_request_count_total counter\n\
             aws_applicationelb_request_count_total{load_balancer=\"app/w/1\",availability_zone=\"a\"} 3\n\
             aws_applicationelb_request_count_total{load_balancer=\"app/w/1\",availability_zone=\"b\"} 4\n"
        );
    }
}
