//! The last [`RETAINED_MINUTES`] minutes of every series at CloudWatch's 1-minute resolution,
//! and the statistics GetMetricStatistics and GetMetricData answer from them.
//!
//! Readings are folded in every few seconds: a count's growth since that series' previous
//! reading is added to the current minute, a gauge is sampled (a minute's value is the mean of
//! its samples). As CloudWatch publishes load balancer metrics at several dimension sets,
//! each series is also kept without its AvailabilityZone (the sum over zones) and, for what a
//! target group's targets did, without its TargetGroup (the load balancer's): a count's
//! growth is added to each, so a series that goes away (a removed group) takes nothing from
//! the sums. A minute older than the retention is dropped, and a series no reading has named
//! for as long is forgotten, so memory is bounded.

use std::collections::BTreeMap;

use crate::{RESPONSE_TIME_BUCKETS, Reading, Value};

/// How many minutes each series keeps: three hours, and the current minute.
pub const RETAINED_MINUTES: u64 = 181;

/// A metric as CloudWatch names it: namespace, name and dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
}

/// One minute (or period) of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datum {
    pub sum: f64,
    pub samples: f64,
    pub minimum: f64,
    pub maximum: f64,
}

impl Datum {
    fn merge(&mut self, other: &Self) {
        self.sum += other.sum;
        self.samples += other.samples;
        self.minimum = self.minimum.min(other.minimum);
        self.maximum = self.maximum.max(other.maximum);
    }

    pub fn average(&self) -> f64 {
        if self.samples > 0.0 {
            self.sum / self.samples
        } else {
            0.0
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    /// The previous reading of a series readings name (not of a rollup), for counts and
    /// timings.
    previous: Option<Value>,
    /// The last minute a reading named the series or one it sums.
    seen: u64,
    /// A gauge: a minute's value is the mean of its samples.
    gauge: bool,
    /// Minute (since the epoch) → its datum.
    minutes: BTreeMap<u64, Datum>,
}

impl Series {
    fn add(&mut self, minute: u64, datum: &Datum) {
        self.minutes
            .entry(minute)
            .and_modify(|d| d.merge(datum))
            .or_insert(*datum);
    }

    /// A minute as statistics see it: a gauge's samples make one sample of their mean.
    fn minute(&self, datum: &Datum) -> Datum {
        if !self.gauge {
            return *datum;
        }
        Datum {
            sum: datum.average(),
            samples: 1.0,
            ..*datum
        }
    }
}

#[derive(Debug, Default)]
pub struct History {
    series: BTreeMap<SeriesKey, Series>,
}

impl History {
    /// Folds in `readings` taken at `now_ms`. Series that no reading names any more (a deleted
    /// load balancer) keep their minutes until they age out, and are then forgotten.
    pub fn observe(&mut self, now_ms: u64, readings: &[Reading]) {
        let minute = now_ms / 60_000;
        // Gauges sum across the series a rollup covers at this instant, then are sampled.
        let mut levels: BTreeMap<SeriesKey, u64> = BTreeMap::new();
        for reading in readings {
            let keys = keys(reading);
            if let Value::Gauge(level) = reading.value {
                for key in keys {
                    *levels.entry(key).or_default() += level;
                }
                continue;
            }
            let own = self.series.entry(keys[0].clone()).or_default();
            let growth = datum(own.previous.as_ref(), &reading.value);
            own.previous = Some(reading.value.clone());
            for key in keys {
                let series = self.series.entry(key).or_default();
                series.seen = minute;
                if let Some(growth) = &growth {
                    series.add(minute, growth);
                }
            }
        }
        for (key, level) in levels {
            let series = self.series.entry(key).or_default();
            series.seen = minute;
            series.gauge = true;
            let level = level as f64;
            series.add(
                minute,
                &Datum {
                    sum: level,
                    samples: 1.0,
                    minimum: level,
                    maximum: level,
                },
            );
        }
        let oldest = minute.saturating_sub(RETAINED_MINUTES - 1);
        self.series.retain(|_, series| {
            series.minutes.retain(|m, _| *m >= oldest);
            series.seen >= oldest
        });
    }

    /// The series of `namespace` (every one when `None`) named `metric` (any when `None`)
    /// that have every dimension of `dimensions` (a `None` value: any value).
    pub fn list(
        &self,
        namespace: Option<&str>,
        metric: Option<&str>,
        dimensions: &[(String, Option<String>)],
    ) -> Vec<&SeriesKey> {
        // As CloudWatch, only metrics with data are listed.
        self.series
            .iter()
            .filter(|(_, series)| !series.minutes.is_empty())
            .map(|(key, _)| key)
            .filter(|k| namespace.is_none_or(|n| k.namespace == n))
            .filter(|k| metric.is_none_or(|m| k.metric == m))
            .filter(|k| {
                dimensions.iter().all(|(name, value)| {
                    k.dimensions
                        .get(name)
                        .is_some_and(|v| value.as_ref().is_none_or(|want| want == v))
                })
            })
            .collect()
    }

    /// The series' data in `[start_ms, end_ms)`, in periods of `period_s` seconds (a multiple
    /// of 60) from `start_ms` rounded down to its minute, as CloudWatch aligns them: (period
    /// start in ms, datum) for each period that has data.
    pub fn statistics(
        &self,
        key: &SeriesKey,
        start_ms: u64,
        end_ms: u64,
        period_s: u64,
    ) -> Vec<(u64, Datum)> {
        let Some(series) = self.series.get(key) else {
            return Vec::new();
        };
        let period_ms = period_s.max(60).saturating_mul(1000);
        let start_ms = start_ms - start_ms % 60_000;
        if end_ms <= start_ms {
            return Vec::new();
        }
        let mut periods: BTreeMap<u64, Datum> = BTreeMap::new();
        let first = start_ms / 60_000;
        let last = (end_ms - 1) / 60_000;
        for (minute, datum) in series.minutes.range(first..=last) {
            let at = minute * 60_000;
            let period = start_ms + ((at - start_ms) / period_ms) * period_ms;
            let datum = series.minute(datum);
            periods
                .entry(period)
                .and_modify(|d| d.merge(&datum))
                .or_insert(datum);
        }
        periods.into_iter().collect()
    }
}

/// Whether CloudWatch also publishes a target group's `metric` per load balancer (what
/// targets did: their codes, times and connection errors), summed over its groups.
fn of_targets(metric: &str) -> bool {
    metric.starts_with("HTTPCode_Target_")
        || metric == "TargetResponseTime"
        || metric == "TargetConnectionErrorCount"
}

/// The keys a reading counts under: its own dimensions, and the coarser sets CloudWatch also
/// publishes.
fn keys(reading: &Reading) -> Vec<SeriesKey> {
    let has = |name| reading.dimensions.iter().any(|(n, _)| *n == name);
    let zone = [false]
        .into_iter()
        .chain(has("AvailabilityZone").then_some(true));
    let by_group = has("TargetGroup") && of_targets(reading.metric);
    let group = [false].into_iter().chain(by_group.then_some(true));
    let mut keys = Vec::new();
    for drop_group in group {
        for drop_zone in zone.clone() {
            keys.push(SeriesKey {
                namespace: reading.namespace.to_owned(),
                metric: reading.metric.to_owned(),
                dimensions: reading
                    .dimensions
                    .iter()
                    .filter(|(n, _)| !(drop_zone && *n == "AvailabilityZone"))
                    .filter(|(n, _)| !(drop_group && *n == "TargetGroup"))
                    .map(|(name, value)| ((*name).to_owned(), value.clone()))
                    .collect(),
            });
        }
    }
    keys
}

/// What a count or timing reading adds to its minute, given the series' previous one: a
/// count's growth (a counter that went back, as after a restart, starts over), a timing's new
/// durations (their minimum and maximum as the bounds of the buckets they fell in; past the
/// last bound, that bound).
fn datum(previous: Option<&Value>, value: &Value) -> Option<Datum> {
    match (previous, value) {
        (_, Value::Gauge(_)) => None,
        (previous, Value::Count(now)) => {
            let before = match previous {
                Some(Value::Count(before)) if before <= now => *before,
                _ => 0,
            };
            let events = (now - before) as f64;
            (events > 0.0).then_some(Datum {
                sum: events,
                samples: events,
                minimum: 1.0,
                maximum: 1.0,
            })
        }
        (previous, Value::Timing { cumulative, sum }) => {
            let (before, before_sum) = match previous {
                Some(Value::Timing {
                    cumulative: before,
                    sum,
                }) if before.last() <= cumulative.last() => (before.clone(), *sum),
                _ => (vec![0; cumulative.len()], 0.0),
            };
            let counts: Vec<u64> = cumulative
                .iter()
                .zip(before.iter().chain(std::iter::repeat(&0)))
                .map(|(now, then)| now.saturating_sub(*then))
                .collect();
            let samples = counts.last().copied().unwrap_or(0) as f64;
            // Per bucket (not cumulative): where the new durations fell.
            let per_bucket: Vec<u64> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(if i == 0 { 0 } else { counts[i - 1] }))
                .collect();
            let lowest = per_bucket.iter().position(|c| *c > 0)?;
            let highest = per_bucket.iter().rposition(|c| *c > 0)?;
            let bound = |i: usize| RESPONSE_TIME_BUCKETS.get(i).copied();
            Some(Datum {
                sum: (sum - before_sum).max(0.0),
                samples,
                minimum: if lowest == 0 {
                    0.0
                } else {
                    bound(lowest - 1).unwrap_or(0.0)
                },
                maximum: bound(highest)
                    .unwrap_or(RESPONSE_TIME_BUCKETS[RESPONSE_TIME_BUCKETS.len() - 1]),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::APPLICATION_ELB;

    fn requests(zone: &str, count: u64) -> Reading {
        Reading {
            namespace: APPLICATION_ELB,
            metric: "RequestCount",
            dimensions: vec![
                ("LoadBalancer", "app/web/1".into()),
                ("AvailabilityZone", zone.into()),
            ],
            value: Value::Count(count),
        }
    }

    /// A count of target group `targetgroup/t/1` of `app/web/1` in zone a.
    fn of_group(metric: &'static str, count: u64) -> Reading {
        Reading {
            namespace: APPLICATION_ELB,
            metric,
            dimensions: vec![
                ("LoadBalancer", "app/web/1".into()),
                ("TargetGroup", "targetgroup/t/1".into()),
                ("AvailabilityZone", "a".into()),
            ],
            value: Value::Count(count),
        }
    }

    fn load_balancer_key() -> SeriesKey {
        SeriesKey {
            namespace: APPLICATION_ELB.into(),
            metric: "RequestCount".into(),
            dimensions: [("LoadBalancer".to_owned(), "app/web/1".to_owned())].into(),
        }
    }

    #[test]
    fn counts_go_to_their_minute_and_sum_over_zones_and_periods() {
        let mut h = History::default();
        let t0 = 10 * 60_000;
        h.observe(t0, &[requests("a", 5), requests("b", 1)]);
        h.observe(t0 + 30_000, &[requests("a", 8), requests("b", 1)]);
        h.observe(t0 + 70_000, &[requests("a", 20), requests("b", 3)]);
        let key = load_balancer_key();
        let per_minute = h.statistics(&key, t0, t0 + 120_000, 60);
        assert_eq!(per_minute.len(), 2);
        assert_eq!(
            per_minute[0],
            (
                t0,
                Datum {
                    sum: 9.0,
                    samples: 9.0,
                    minimum: 1.0,
                    maximum: 1.0
                }
            )
        );
        assert_eq!(per_minute[1].1.sum, 14.0);
        let whole = h.statistics(&key, t0, t0 + 120_000, 120);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1.sum, 23.0);
        assert_eq!(whole[0].1.average(), 1.0, "each request is a sample of 1");
        assert!(
            h.statistics(&key, t0 + 120_000, t0 + 180_000, 60)
                .is_empty()
        );
        let listed = h.list(None, Some("RequestCount"), &[("LoadBalancer".into(), None)]);
        assert_eq!(listed.len(), 3, "the whole and each zone: {listed:?}");
    }

    #[test]
    fn a_group_count_is_also_the_load_balancers() {
        let mut h = History::default();
        h.observe(0, &[of_group("HTTPCode_Target_2XX_Count", 3)]);
        let dimension_sets: Vec<Vec<&String>> = h
            .list(None, None, &[])
            .iter()
            .map(|k| k.dimensions.keys().collect())
            .collect();
        assert_eq!(dimension_sets.len(), 4, "{dimension_sets:?}");
        let lb = SeriesKey {
            metric: "HTTPCode_Target_2XX_Count".into(),
            ..load_balancer_key()
        };
        assert_eq!(h.statistics(&lb, 0, 60_000, 60)[0].1.sum, 3.0);
    }

    #[test]
    fn a_series_that_goes_away_takes_nothing_from_the_sums_and_periods_align_to_minutes() {
        let mut h = History::default();
        h.observe(0, &[requests("a", 100), requests("b", 50)]);
        // Zone b's node goes away; zone a grows by 3.
        h.observe(60_000, &[requests("a", 103)]);
        let key = load_balancer_key();
        let minutes = h.statistics(&key, 0, 120_000, 60);
        assert_eq!(
            minutes[1],
            (
                60_000,
                Datum {
                    sum: 3.0,
                    samples: 3.0,
                    minimum: 1.0,
                    maximum: 1.0
                }
            )
        );
        // A start in the middle of a minute counts from that minute.
        assert_eq!(h.statistics(&key, 30_000, 120_000, 60)[0].0, 0);
        assert!(h.statistics(&key, 120_000, 120_000, 60).is_empty());
        assert!(h.statistics(&key, 120_000, 119_999, 60).is_empty());
        // Forgotten once no reading has named it for the retention.
        h.observe(RETAINED_MINUTES * 60_000 + 60_000, &[]);
        assert!(h.list(None, None, &[]).is_empty());
    }

    #[test]
    fn a_groups_request_count_stays_the_groups() {
        let mut h = History::default();
        h.observe(0, &[of_group("RequestCount", 3)]);
        // Not under the load balancer alone: its own RequestCount counts those requests.
        assert!(h.statistics(&load_balancer_key(), 0, 60_000, 60).is_empty());
        assert_eq!(h.list(None, None, &[]).len(), 2);
    }

    #[test]
    fn a_counter_that_goes_back_starts_over_and_old_minutes_age_out() {
        let mut h = History::default();
        h.observe(0, &[requests("a", 5)]);
        h.observe(60_000, &[requests("a", 2)]);
        let key = load_balancer_key();
        assert_eq!(h.statistics(&key, 0, 120_000, 60)[1].1.sum, 2.0);
        h.observe(RETAINED_MINUTES * 60_000, &[requests("a", 3)]);
        let kept = h.statistics(&key, 0, (RETAINED_MINUTES + 1) * 60_000, 60);
        assert_eq!(kept.len(), 2, "minute 0 is gone: {kept:?}");
    }

    #[test]
    fn gauges_are_sampled_and_timings_bounded_by_their_buckets() {
        let mut h = History::default();
        let hosts = |n| Reading {
            namespace: APPLICATION_ELB,
            metric: "HealthyHostCount",
            dimensions: vec![("TargetGroup", "targetgroup/t/1".into())],
            value: Value::Gauge(n),
        };
        h.observe(0, &[hosts(2)]);
        h.observe(10_000, &[hosts(4)]);
        h.observe(20_000, &[hosts(3)]);
        let key = SeriesKey {
            namespace: APPLICATION_ELB.into(),
            metric: "HealthyHostCount".into(),
            dimensions: [("TargetGroup".to_owned(), "targetgroup/t/1".to_owned())].into(),
        };
        let d = h.statistics(&key, 0, 60_000, 60)[0].1;
        assert_eq!(
            (d.sum, d.samples),
            (3.0, 1.0),
            "a minute's mean level: {d:?}"
        );
        assert_eq!((d.minimum, d.maximum), (2.0, 4.0));

        let timing = |cumulative: Vec<u64>, sum| Reading {
            namespace: APPLICATION_ELB,
            metric: "TargetResponseTime",
            dimensions: vec![],
            value: Value::Timing { cumulative, sum },
        };
        let mut cumulative = vec![0u64; RESPONSE_TIME_BUCKETS.len() + 1];
        h.observe(0, &[timing(cumulative.clone(), 0.0)]);
        // Two durations: one ≤ 5 ms, one in (10 ms, 25 ms].
        for (i, c) in cumulative.iter_mut().enumerate() {
            *c = match i {
                0 => 0,
                1 | 2 => 1,
                _ => 2,
            };
        }
        h.observe(30_000, &[timing(cumulative, 0.024)]);
        let key = SeriesKey {
            namespace: APPLICATION_ELB.into(),
            metric: "TargetResponseTime".into(),
            dimensions: BTreeMap::new(),
        };
        let d = h.statistics(&key, 0, 60_000, 60)[0].1;
        assert_eq!(d.samples, 2.0);
        assert!((d.average() - 0.012).abs() < 1e-9);
        assert_eq!((d.minimum, d.maximum), (0.001, 0.025));
    }
}
