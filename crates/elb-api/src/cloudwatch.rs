//! The CloudWatch subset that reads load balancer metrics: ListMetrics, GetMetricStatistics
//! and GetMetricData (metric queries; math expressions are not built), at 1-minute resolution
//! over the last three hours ([`elb_metrics::history`]).
//!
//! Two protocols, as clients send them: JSON 1.0 (`X-Amz-Target:
//! GraniteServiceVersion20100801.<Op>`, `x-amzn-query-mode: true`; today's aws cli and
//! boto3), and the Query protocol of older botocore (`Action=<Op>`, XML answers). Both decode
//! into the same request and answer from the same result.

use std::collections::BTreeMap;

use elb_metrics::history::{Datum, History, SeriesKey};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub const NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// The JSON protocol's target prefix.
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";

const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// A metric as requests name it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Metric {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Dimension {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListMetrics {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    next_token: Option<String>,
    recently_active: Option<String>,
    include_linked_accounts: Option<bool>,
    owning_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetMetricStatistics {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    start_time: f64,
    end_time: f64,
    period: u64,
    #[serde(default)]
    statistics: Vec<String>,
    #[serde(default)]
    extended_statistics: Vec<String>,
    unit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetMetricData {
    metric_data_queries: Vec<DataQuery>,
    start_time: f64,
    end_time: f64,
    next_token: Option<String>,
    scan_by: Option<String>,
    max_datapoints: Option<u64>,
    label_options: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DataQuery {
    id: String,
    metric_stat: Option<MetricStat>,
    expression: Option<String>,
    label: Option<String>,
    return_data: Option<bool>,
    period: Option<u64>,
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetricStat {
    metric: Metric,
    period: u64,
    stat: String,
    unit: Option<String>,
}

/// One operation from a JSON 1.0 body.
pub fn call_json(history: &History, operation: &str, body: &[u8]) -> Result<Value, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let parse_error = |e: serde_json::Error| ApiError::validation(format!("Invalid request: {e}"));
    match operation {
        "ListMetrics" => list_metrics(history, serde_json::from_slice(body).map_err(parse_error)?),
        "GetMetricStatistics" => {
            get_metric_statistics(history, serde_json::from_slice(body).map_err(parse_error)?)
        }
        "GetMetricData" => {
            get_metric_data(history, serde_json::from_slice(body).map_err(parse_error)?)
        }
        other => Err(not_built(other)),
    }
}

/// One operation from a Query form: the same requests, answered as XML.
pub fn call_query(history: &History, action: &str, params: &Params) -> Result<Xml, ApiError> {
    params.version("CloudWatch", "2010-08-01")?;
    let result = match action {
        "ListMetrics" => list_metrics(
            history,
            ListMetrics {
                namespace: params.optional("Namespace").map(str::to_owned),
                metric_name: params.optional("MetricName").map(str::to_owned),
                dimensions: query_dimensions(params, "Dimensions.member")?,
                next_token: params.optional("NextToken").map(str::to_owned),
                recently_active: params.optional("RecentlyActive").map(str::to_owned),
                include_linked_accounts: params.bool("IncludeLinkedAccounts")?,
                owning_account: params.optional("OwningAccount").map(str::to_owned),
            },
        )?,
        "GetMetricStatistics" => get_metric_statistics(
            history,
            GetMetricStatistics {
                namespace: params.required("Namespace")?.to_owned(),
                metric_name: params.required("MetricName")?.to_owned(),
                dimensions: query_dimensions(params, "Dimensions.member")?,
                start_time: query_time(params, "StartTime")?,
                end_time: query_time(params, "EndTime")?,
                period: params
                    .int("Period", 1, i64::MAX)?
                    .ok_or_else(|| ApiError::validation("Period is required"))?
                    as u64,
                statistics: params.list("Statistics.member")?,
                extended_statistics: params.list("ExtendedStatistics.member")?,
                unit: params.optional("Unit").map(str::to_owned),
            },
        )?,
        "GetMetricData" => get_metric_data(
            history,
            GetMetricData {
                metric_data_queries: params
                    .structs("MetricDataQueries.member")?
                    .iter()
                    .map(query_data_query)
                    .collect::<Result<_, _>>()?,
                start_time: query_time(params, "StartTime")?,
                end_time: query_time(params, "EndTime")?,
                next_token: params.optional("NextToken").map(str::to_owned),
                scan_by: params.optional("ScanBy").map(str::to_owned),
                max_datapoints: params.int("MaxDatapoints", 1, i64::MAX)?.map(|n| n as u64),
                label_options: params
                    .optional("LabelOptions.Timezone")
                    .map(|zone| json!({"Timezone": zone})),
            },
        )?,
        other => return Err(not_built(other)),
    };
    params.finish()?;
    let mut x = Xml::new();
    to_xml(&mut x, &result);
    Ok(x)
}

fn not_built(operation: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidAction",
        format!(
            "elbd does not offer CloudWatch's {operation}; it serves ListMetrics, \
             GetMetricStatistics and GetMetricData for load balancer metrics"
        ),
    )
}

fn query_dimensions(params: &Params, prefix: &str) -> Result<Vec<Dimension>, ApiError> {
    params
        .structs(prefix)?
        .iter()
        .map(|d| {
            Ok(Dimension {
                name: d.required("Name")?.to_owned(),
                value: d.optional("Value").map(str::to_owned),
            })
        })
        .collect()
}

/// One `MetricDataQueries.member.N` of a Query form.
fn query_data_query(query: &Params) -> Result<DataQuery, ApiError> {
    let stat = match query.optional("MetricStat.Stat") {
        None => None,
        Some(stat) => Some(MetricStat {
            metric: Metric {
                namespace: query.required("MetricStat.Metric.Namespace")?.to_owned(),
                metric_name: query.required("MetricStat.Metric.MetricName")?.to_owned(),
                dimensions: query_dimensions(query, "MetricStat.Metric.Dimensions.member")?,
            },
            period: query
                .int("MetricStat.Period", 1, i64::MAX)?
                .ok_or_else(|| ApiError::validation("MetricStat.Period is required"))?
                as u64,
            stat: stat.to_owned(),
            unit: query.optional("MetricStat.Unit").map(str::to_owned),
        }),
    };
    let data_query = DataQuery {
        id: query.required("Id")?.to_owned(),
        metric_stat: stat,
        expression: query.optional("Expression").map(str::to_owned),
        label: query.optional("Label").map(str::to_owned),
        return_data: query.bool("ReturnData")?,
        period: query.int("Period", 1, i64::MAX)?.map(|n| n as u64),
        account_id: query.optional("AccountId").map(str::to_owned),
    };
    // The query's fields were all read above; any other is unknown.
    query.finish()?;
    Ok(data_query)
}

/// An ISO-8601 time of a Query form, as seconds since the epoch.
fn query_time(params: &Params, name: &str) -> Result<f64, ApiError> {
    let text = params.required(name)?;
    clock::parse_iso8601(text)
        .map(|ms| ms as f64 / 1000.0)
        .ok_or_else(|| ApiError::validation(format!("{name} '{text}' is not an ISO-8601 time")))
}

fn list_metrics(history: &History, input: ListMetrics) -> Result<Value, ApiError> {
    if input.next_token.is_some() {
        return Err(ApiError::new(
            400,
            "InvalidNextToken",
            "elbd lists every metric in one page; it has no next token",
        ));
    }
    if input.include_linked_accounts == Some(true) || input.owning_account.is_some() {
        return Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "elbd has no linked accounts (IncludeLinkedAccounts, OwningAccount)",
        ));
    }
    // Every series here had data within three hours, the most PT3H asks.
    if let Some(active) = input.recently_active.as_deref()
        && active != "PT3H"
    {
        return Err(ApiError::validation(format!(
            "RecentlyActive must be PT3H, not '{active}'"
        )));
    }
    let wanted: Vec<(String, Option<String>)> = input
        .dimensions
        .into_iter()
        .map(|d| (d.name, d.value))
        .collect();
    // RequestCountPerTarget is made from a group's RequestCount wherever that is kept.
    let per_target = history
        .list(input.namespace.as_deref(), Some("RequestCount"), &wanted)
        .into_iter()
        .filter(|key| key.dimensions.contains_key("TargetGroup"))
        .map(|key| SeriesKey {
            metric: PER_TARGET.to_owned(),
            ..key.clone()
        })
        .filter(|_| input.metric_name.as_deref().is_none_or(|m| m == PER_TARGET));
    let metrics: Vec<Value> = history
        .list(
            input.namespace.as_deref(),
            input.metric_name.as_deref(),
            &wanted,
        )
        .into_iter()
        .cloned()
        .chain(per_target)
        .map(|key| {
            json!({
                "Namespace": key.namespace,
                "MetricName": key.metric,
                "Dimensions": dimensions_json(&key.dimensions),
            })
        })
        .collect();
    Ok(json!({ "Metrics": metrics }))
}

fn dimensions_json(dimensions: &BTreeMap<String, String>) -> Vec<Value> {
    dimensions
        .iter()
        .map(|(name, value)| json!({"Name": name, "Value": value}))
        .collect()
}

/// The series a request names: its dimensions exactly, as CloudWatch matches them.
fn series_key(metric: Metric) -> Result<SeriesKey, ApiError> {
    let mut dimensions = BTreeMap::new();
    for d in metric.dimensions {
        let value = d
            .value
            .ok_or_else(|| ApiError::validation(format!("Dimension '{}' needs a value", d.name)))?;
        dimensions.insert(d.name, value);
    }
    Ok(SeriesKey {
        namespace: metric.namespace,
        metric: metric.metric_name,
        dimensions,
    })
}

/// The requests a target group's targets got each, on average: its RequestCount over its
/// mean HealthyHostCount, period by period (a period without healthy targets has none).
const PER_TARGET: &str = "RequestCountPerTarget";

/// A series' data by period, RequestCountPerTarget made from its two sources.
fn periods(
    history: &History,
    key: &SeriesKey,
    (start, end, period): (u64, u64, u64),
) -> Vec<(u64, Datum)> {
    if key.metric != PER_TARGET {
        return history.statistics(key, start, end, period);
    }
    let source = |metric: &str| SeriesKey {
        metric: metric.to_owned(),
        ..key.clone()
    };
    let hosts: BTreeMap<u64, Datum> = history
        .statistics(&source("HealthyHostCount"), start, end, period)
        .into_iter()
        .collect();
    history
        .statistics(&source("RequestCount"), start, end, period)
        .into_iter()
        .filter_map(|(at, requests)| {
            let healthy = hosts.get(&at)?.average();
            let each = (healthy > 0.0).then(|| requests.sum / healthy)?;
            Some((
                at,
                Datum {
                    sum: each,
                    samples: 1.0,
                    minimum: each,
                    maximum: each,
                },
            ))
        })
        .collect()
}

/// CloudWatch's unit of each metric elbd publishes.
fn unit(metric: &str) -> &'static str {
    match metric {
        "TargetResponseTime" => "Seconds",
        "ProcessedBytes" => "Bytes",
        _ => "Count",
    }
}

/// The range and period of a request, checked as CloudWatch checks them.
fn window(start: f64, end: f64, period: u64) -> Result<(u64, u64, u64), ApiError> {
    if period == 0 || !period.is_multiple_of(60) || period > MAX_PERIOD {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            format!(
                "The parameter Period must be a multiple of 60 up to {MAX_PERIOD} (elbd keeps \
                 1-minute data), not {period}"
            ),
        ));
    }
    let (start_ms, end_ms) = (
        (start.max(0.0) * 1000.0) as u64,
        (end.max(0.0) * 1000.0) as u64,
    );
    if end_ms <= start_ms {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            "The parameter StartTime must be before EndTime",
        ));
    }
    Ok((start_ms, end_ms, period))
}

/// The longest period asked for: a year.
const MAX_PERIOD: u64 = 366 * 86_400;

fn statistic(datum: &Datum, name: &str) -> f64 {
    match name {
        "SampleCount" => datum.samples,
        "Average" => datum.average(),
        "Sum" => datum.sum,
        "Minimum" => datum.minimum,
        _ => datum.maximum,
    }
}

fn get_metric_statistics(history: &History, input: GetMetricStatistics) -> Result<Value, ApiError> {
    if !input.extended_statistics.is_empty() {
        return Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "elbd does not compute extended statistics (percentiles) yet; ask for \
             SampleCount, Average, Sum, Minimum or Maximum",
        ));
    }
    if input.statistics.is_empty() {
        return Err(ApiError::new(
            400,
            "MissingParameter",
            "Either Statistics or ExtendedStatistics must be specified",
        ));
    }
    if let Some(bad) = input
        .statistics
        .iter()
        .find(|s| !STATISTICS.contains(&s.as_str()))
    {
        return Err(ApiError::validation(format!(
            "Statistic '{bad}' must be one of {}",
            STATISTICS.join(", ")
        )));
    }
    let (start, end, period) = window(input.start_time, input.end_time, input.period)?;
    let label = input.metric_name.clone();
    let key = series_key(Metric {
        namespace: input.namespace,
        metric_name: input.metric_name,
        dimensions: input.dimensions,
    })?;
    let unit = unit(&key.metric);
    // A unit the metric does not have matches no data, as on CloudWatch.
    let matches_unit = input.unit.as_deref().is_none_or(|u| u == unit);
    let datapoints: Vec<Value> = periods(history, &key, (start, end, period))
        .into_iter()
        .filter(|_| matches_unit)
        .map(|(at, datum)| {
            let mut point = serde_json::Map::new();
            point.insert("Timestamp".into(), json!(at as f64 / 1000.0));
            for s in &input.statistics {
                point.insert(s.clone(), json!(statistic(&datum, s)));
            }
            point.insert("Unit".into(), json!(unit));
            Value::Object(point)
        })
        .collect();
    Ok(json!({"Label": label, "Datapoints": datapoints}))
}

fn get_metric_data(history: &History, input: GetMetricData) -> Result<Value, ApiError> {
    if input.next_token.is_some() {
        return Err(ApiError::new(
            400,
            "InvalidNextToken",
            "elbd answers in one page; it has no next token",
        ));
    }
    let descending = match input.scan_by.as_deref() {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "ScanBy must be TimestampDescending or TimestampAscending, not '{other}'"
            )));
        }
    };
    if input.label_options.is_some() {
        return Err(ApiError::validation(
            "elbd does not apply LabelOptions (time zones of labels) yet",
        ));
    }
    let mut results = Vec::new();
    // MaxDatapoints bounds the answer as a whole; what is left out makes it PartialData.
    let mut room = input.max_datapoints.unwrap_or(u64::MAX);
    for query in input.metric_data_queries {
        if query.expression.is_some() {
            return Err(ApiError::validation(format!(
                "Query '{}': metric math expressions are not built in elbd; use MetricStat",
                query.id
            )));
        }
        if query.account_id.is_some() || query.period.is_some() {
            return Err(ApiError::validation(format!(
                "Query '{}': AccountId and Period belong to expressions, which elbd does not \
                 build",
                query.id
            )));
        }
        let stat = query.metric_stat.ok_or_else(|| {
            ApiError::validation(format!(
                "Query '{}' needs a MetricStat (or an Expression)",
                query.id
            ))
        })?;
        if !STATISTICS.contains(&stat.stat.as_str()) {
            return Err(ApiError::validation(format!(
                "Query '{}': Stat '{}' must be one of {} (percentiles are not built)",
                query.id,
                stat.stat,
                STATISTICS.join(", ")
            )));
        }
        let (start, end, period) = window(input.start_time, input.end_time, stat.period)?;
        let label = query
            .label
            .clone()
            .unwrap_or_else(|| stat.metric.metric_name.clone());
        let key = series_key(stat.metric)?;
        let matches_unit = stat.unit.as_deref().is_none_or(|u| u == unit(&key.metric));
        let mut points: Vec<(u64, f64)> = periods(history, &key, (start, end, period))
            .into_iter()
            .filter(|_| matches_unit)
            .map(|(at, datum)| (at, statistic(&datum, &stat.stat)))
            .collect();
        if descending {
            points.reverse();
        }
        if query.return_data == Some(false) {
            continue;
        }
        let whole = points.len() as u64 <= room;
        points.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        room -= points.len() as u64;
        results.push(json!({
            "Id": query.id,
            "Label": label,
            "Timestamps": points.iter().map(|(at, _)| *at as f64 / 1000.0).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": if whole { "Complete" } else { "PartialData" },
        }));
    }
    Ok(json!({"MetricDataResults": results, "Messages": []}))
}

/// A result as the Query protocol's XML: objects as elements, lists as `member`s, the
/// timestamps (epoch seconds in JSON) as ISO-8601.
fn to_xml(x: &mut Xml, value: &Value) {
    let Value::Object(fields) = value else {
        return;
    };
    for (name, value) in fields {
        element(x, name, value);
    }
}

fn element(x: &mut Xml, name: &str, value: &Value) {
    match value {
        Value::Object(_) => {
            x.node(name, |x| to_xml(x, value));
        }
        Value::Array(items) => {
            x.node(name, |x| {
                for item in items {
                    match item {
                        // GetMetricData's list of timestamps.
                        Value::Number(n) if name == "Timestamps" => {
                            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0) as u64;
                            x.leaf("member", clock::iso8601(ms));
                        }
                        item => element(x, "member", item),
                    }
                }
            });
        }
        Value::Number(n) if name == "Timestamp" => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0) as u64;
            x.leaf(name, clock::iso8601(ms));
        }
        Value::String(s) => {
            x.leaf(name, s);
        }
        other => {
            x.leaf(name, other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use elb_metrics::{APPLICATION_ELB, Reading};

    use super::*;

    fn history() -> History {
        let mut h = History::default();
        let requests = |count| Reading {
            namespace: APPLICATION_ELB,
            metric: "RequestCount",
            dimensions: vec![
                ("LoadBalancer", "app/w/1".into()),
                ("AvailabilityZone", "us-east-1a".into()),
            ],
            value: elb_metrics::Value::Count(count),
        };
        h.observe(600_000, &[requests(0)]);
        h.observe(610_000, &[requests(4)]);
        h.observe(670_000, &[requests(10)]);
        h
    }

    fn call(operation: &str, body: Value) -> Result<Value, ApiError> {
        call_json(&history(), operation, body.to_string().as_bytes())
    }

    #[test]
    fn statistics_and_data_come_from_the_minutes() {
        let metric = json!({"Namespace": APPLICATION_ELB, "MetricName": "RequestCount",
            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/w/1"}]});
        let mut stats = metric.clone();
        stats["StartTime"] = json!(600);
        stats["EndTime"] = json!(720);
        stats["Period"] = json!(60);
        stats["Statistics"] = json!(["Sum", "Average"]);
        let answer = call("GetMetricStatistics", stats.clone()).unwrap();
        let points = answer["Datapoints"].as_array().unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0]["Sum"], json!(4.0));
        assert_eq!(points[1]["Sum"], json!(6.0));
        assert_eq!(points[0]["Average"], json!(1.0));
        assert_eq!(points[0]["Unit"], "Count");

        let data = json!({"StartTime": 600, "EndTime": 720, "MetricDataQueries": [
            {"Id": "r", "MetricStat": {"Metric": metric, "Period": 120, "Stat": "Sum"}}]});
        let answer = call("GetMetricData", data).unwrap();
        assert_eq!(answer["MetricDataResults"][0]["Values"], json!([10.0]));
        assert_eq!(answer["MetricDataResults"][0]["Timestamps"], json!([600.0]));

        stats["Period"] = json!(90);
        let e = call("GetMetricStatistics", stats).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let math = json!({"StartTime": 600, "EndTime": 720, "MetricDataQueries": [
            {"Id": "m", "Expression": "SUM(METRICS())"}]});
        assert!(
            call("GetMetricData", math)
                .unwrap_err()
                .message
                .contains("expressions")
        );
        let listed = call("ListMetrics", json!({"MetricName": "RequestCount"})).unwrap();
        assert_eq!(listed["Metrics"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn requests_per_target_are_a_groups_requests_over_its_healthy_targets() {
        let dimensions = |zone: &str| {
            vec![
                ("LoadBalancer", "app/w/1".to_owned()),
                ("TargetGroup", "targetgroup/t/1".to_owned()),
                ("AvailabilityZone", zone.to_owned()),
            ]
        };
        let reading = |metric, zone: &str, value| Reading {
            namespace: APPLICATION_ELB,
            metric,
            dimensions: dimensions(zone),
            value,
        };
        let mut h = History::default();
        let count = elb_metrics::Value::Count;
        let gauge = elb_metrics::Value::Gauge;
        h.observe(
            0,
            &[
                reading("RequestCount", "a", count(0)),
                reading("HealthyHostCount", "a", gauge(2)),
                reading("HealthyHostCount", "b", gauge(2)),
            ],
        );
        h.observe(
            30_000,
            &[
                reading("RequestCount", "a", count(12)),
                reading("HealthyHostCount", "a", gauge(2)),
                reading("HealthyHostCount", "b", gauge(2)),
            ],
        );
        let metric = json!({"Namespace": APPLICATION_ELB, "MetricName": PER_TARGET, "Dimensions": [
            {"Name": "LoadBalancer", "Value": "app/w/1"},
            {"Name": "TargetGroup", "Value": "targetgroup/t/1"}]});
        let mut stats = metric;
        stats["StartTime"] = json!(0);
        stats["EndTime"] = json!(60);
        stats["Period"] = json!(60);
        stats["Statistics"] = json!(["Sum"]);
        let answer = call_json(&h, "GetMetricStatistics", stats.to_string().as_bytes()).unwrap();
        assert_eq!(
            answer["Datapoints"][0]["Sum"],
            json!(3.0),
            "12 requests, 4 healthy targets"
        );
        let listed = call_json(
            &h,
            "ListMetrics",
            br#"{"MetricName": "RequestCountPerTarget"}"#,
        )
        .unwrap();
        assert_eq!(listed["Metrics"].as_array().unwrap().len(), 2, "{listed}");
    }

    #[test]
    fn bad_windows_are_refused_and_max_datapoints_bounds_the_whole_answer() {
        let metric = json!({"Namespace": APPLICATION_ELB, "MetricName": "RequestCount",
            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/w/1"}]});
        let mut stats = metric.clone();
        stats["StartTime"] = json!(600);
        stats["EndTime"] = json!(600.0005);
        stats["Period"] = json!(60);
        stats["Statistics"] = json!(["Sum"]);
        let e = call("GetMetricStatistics", stats).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue", "{}", e.message);

        let query = |id: &str| json!({"Id": id, "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}});
        let data = json!({"StartTime": 600, "EndTime": 720, "MaxDatapoints": 3,
            "MetricDataQueries": [query("a"), query("b")]});
        let answer = call("GetMetricData", data).unwrap();
        let results = answer["MetricDataResults"].as_array().unwrap();
        assert_eq!(results[0]["Values"], json!([6.0, 4.0]), "newest first");
        assert_eq!(results[0]["StatusCode"], "Complete");
        assert_eq!(results[1]["Values"], json!([6.0]));
        assert_eq!(results[1]["StatusCode"], "PartialData");
    }
}
