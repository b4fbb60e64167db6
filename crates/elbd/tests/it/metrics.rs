//! CloudWatch's metrics at `/metrics`, counted from one outcome record per request that both
//! request roads make alike.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{Aws, Backend, Elbd, Lab, client, curl, get};

/// The samples of `/metrics` whose name is `name` and whose labels include all of `labels`.
fn samples(page: &str, name: &str, labels: &[&str]) -> Vec<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, value)| value.parse().unwrap())
        .collect()
}

/// The `elbd::request` records of the log, as field → value maps.
fn records(log: &str) -> Vec<BTreeMap<String, String>> {
    log.lines()
        .filter(|l| l.contains("elbd::request"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|field| field.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_as_cloudwatch_names_them_on_both_roads() {
    let lab = Lab::new("metrics", 37).logging("info,elbd::request=debug");
    let backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer("counted");
    let tg = aws.target_group(
        "counted",
        &vpc,
        9001,
        "ip",
        &[
            "--health-check-path",
            "/health",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
        ],
    );
    aws.register(&tg, &[lab.ip('a', 10).to_string()]);
    let relayed = aws.forward_listener(&lb, 8080, &tg);
    aws.ok(&[
        "elbv2",
        "create-rule",
        "--listener-arn",
        &relayed,
        "--priority",
        "10",
        "--conditions",
        "Field=path-pattern,Values=/fixed",
        "--actions",
        "Type=fixed-response,FixedResponseConfig={StatusCode=404,ContentType=text/plain,MessageBody=no}",
    ]);
    // A response header to inject keeps the relay away: this listener's requests take the
    // general path.
    let general = aws.forward_listener(&lb, 8081, &tg);
    aws.ok(&[
        "elbv2",
        "modify-listener-attributes",
        "--listener-arn",
        &general,
        "--attributes",
        "Key=routing.http.response.x_frame_options.header_value,Value=DENY",
    ]);
    elbd.wait_healthy(2);

    let node = lab.node('a', 8080);
    let http = client();
    for _ in 0..40 {
        assert_eq!(get(&http, node).await.status.as_u16(), 200);
    }
    for _ in 0..10 {
        let fixed = curl(&format!("http://{node}/fixed"), &[]);
        assert_eq!(fixed.status, 404);
    }

    let lb_id = format!(
        "load_balancer=\"{}\"",
        lb.split_once(":loadbalancer/").unwrap().1
    );
    let page = String::from_utf8(
        std::process::Command::new("curl")
            .args(["-sf", &format!("http://{api}/metrics")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let sum = |name: &str, labels: &[&str]| samples(&page, name, labels).iter().sum::<f64>();
    assert_eq!(
        sum("aws_applicationelb_request_count_total", &[&lb_id]),
        50.0,
        "{page}"
    );
    assert_eq!(
        sum(
            "aws_applicationelb_httpcode_elb_4_xx_count_total",
            &[&lb_id]
        ),
        10.0
    );
    assert_eq!(
        sum(
            "aws_applicationelb_httpcode_target_2_xx_count_total",
            &[&lb_id, "target_group"]
        ),
        40.0
    );
    let tg_id = format!(
        "target_group=\"{}\"",
        tg.split_once(":targetgroup/")
            .map(|(_, id)| format!("targetgroup/{id}"))
            .unwrap()
    );
    assert_eq!(
        sum("aws_applicationelb_healthy_host_count", &[&lb_id, &tg_id]),
        1.0
    );
    assert_eq!(
        sum(
            "aws_applicationelb_target_response_time_seconds_count",
            &[&lb_id, &tg_id]
        ),
        40.0
    );
    assert!(sum("aws_applicationelb_processed_bytes_total", &[&lb_id]) > 0.0);

    // The CloudWatch API answers from the same counters, by the minute (brought up to date
    // every 5 s).
    let lb_dimension = format!(
        "Name=LoadBalancer,Value={}",
        lb.split_once(":loadbalancer/").unwrap().1
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iso = |secs: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (start, end) = (iso(now - 600), iso(now + 600));
    let mut summed = 0.0;
    for _ in 0..40 {
        let stats = aws.ok(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/ApplicationELB",
            "--metric-name",
            "RequestCount",
            "--dimensions",
            &lb_dimension,
            "--statistics",
            "Sum",
            "--period",
            "60",
            "--start-time",
            &start,
            "--end-time",
            &end,
        ]);
        summed = stats["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Sum"].as_f64().unwrap())
            .sum();
        if summed >= 50.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(summed, 50.0);
    let tg_dimension = format!(
        "Name=TargetGroup,Value=targetgroup/{}",
        tg.split_once(":targetgroup/").unwrap().1
    );
    // One datapoint over the whole window, of the group's `metric`.
    let of_group = |metric: &str, statistic: &str| {
        let stats = aws.ok(&[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/ApplicationELB",
            "--metric-name",
            metric,
            "--dimensions",
            &lb_dimension,
            &tg_dimension,
            "--statistics",
            statistic,
            "--period",
            "1200",
            "--start-time",
            &start,
            "--end-time",
            &end,
        ]);
        stats["Datapoints"][0][statistic].as_f64().unwrap()
    };
    // 40 requests over the group's mean healthy count in the window (its one target, once
    // its checks passed; samples from before count as 0).
    let healthy = of_group("HealthyHostCount", "Average");
    let each = of_group("RequestCountPerTarget", "Sum");
    assert!(healthy > 0.0 && healthy <= 1.0, "{healthy}");
    assert!(
        (each - 40.0 / healthy).abs() / each < 0.05,
        "{each} requests per target, {healthy} healthy on average"
    );
    let listed = aws.ok(&[
        "cloudwatch",
        "list-metrics",
        "--namespace",
        "AWS/ApplicationELB",
    ]);
    let names: std::collections::BTreeSet<&str> = listed["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["MetricName"].as_str().unwrap())
        .collect();
    assert!(names.contains("HTTPCode_ELB_4XX_Count"), "{names:?}");
    // The Query protocol of older clients gets the same answer, in XML.
    let query = std::process::Command::new(crate::harness::venv().join("bin/python"))
        .arg("-c")
        .arg(QUERY_CLIENT)
        .arg(format!("http://{api}/"))
        .arg("Action=ListMetrics&Version=2010-08-01&Namespace=AWS%2FApplicationELB&MetricName=HTTPCode_ELB_4XX_Count")
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&query.stdout);
    assert!(
        xml.contains("<ListMetricsResponse")
            && xml.contains("<MetricName>HTTPCode_ELB_4XX_Count</MetricName>"),
        "{xml}{}",
        String::from_utf8_lossy(&query.stderr)
    );

    let data = std::process::Command::new(crate::harness::venv().join("bin/python"))
        .arg("-c")
        .arg(QUERY_CLIENT)
        .arg(format!("http://{api}/"))
        .arg(format!(
            "Action=GetMetricData&Version=2010-08-01&StartTime={start}&EndTime={end}\
             &MetricDataQueries.member.1.Id=r\
             &MetricDataQueries.member.1.MetricStat.Metric.Namespace=AWS%2FApplicationELB\
             &MetricDataQueries.member.1.MetricStat.Metric.MetricName=HTTPCode_ELB_4XX_Count\
             &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=LoadBalancer\
             &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value={}\
             &MetricDataQueries.member.1.MetricStat.Period=1200\
             &MetricDataQueries.member.1.MetricStat.Stat=Sum",
            lb.split_once(":loadbalancer/").unwrap().1
        ))
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&data.stdout);
    assert!(
        xml.contains("<Values><member>10.0</member></Values>")
            || xml.contains("<Values><member>10</member></Values>"),
        "{xml}{}",
        String::from_utf8_lossy(&data.stderr)
    );

    // The same request on the general path is the same record, bytes received included
    // (what is sent differs by the injected header).
    let before = records(&elbd.logs()).len();
    assert_eq!(get(&http, lab.node('a', 8081)).await.status.as_u16(), 200);
    let general_record = elbd_records_after(&mut elbd, before).await;
    let relay_record = records(&elbd.logs())
        .into_iter()
        .find(|r| {
            r.get("listener") == Some(&relayed)
                && r.get("action").map(String::as_str) == Some("Forward")
        })
        .expect("a relayed record");
    for field in [
        "rule",
        "action",
        "elb_status",
        "target",
        "target_status",
        "error",
        "received_bytes",
    ] {
        assert_eq!(
            relay_record.get(field),
            general_record.get(field),
            "{field}: relay {relay_record:?}, general {general_record:?}"
        );
    }
    assert_eq!(general_record.get("listener"), Some(&general));
    drop(backend);
}

/// A signed Query-protocol POST to CloudWatch with botocore's signer: argv[1] the endpoint,
/// argv[2] the form; prints the answer.
const QUERY_CLIENT: &str = r#"
import sys, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
request = AWSRequest(method="POST", url=sys.argv[1], data=sys.argv[2],
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
SigV4Auth(Credentials("test", "test"), "monitoring", "us-east-1").add_auth(request)
prepared = request.prepare()
sent = urllib.request.Request(prepared.url, data=prepared.body.encode(), headers=dict(prepared.headers), method="POST")
print(urllib.request.urlopen(sent).read().decode())
"#;

/// The first record logged after the first `before`, once it is there.
async fn elbd_records_after(elbd: &mut Elbd, before: usize) -> BTreeMap<String, String> {
    for _ in 0..100 {
        if let Some(record) = records(&elbd.logs()).into_iter().nth(before) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no record:\n{}", elbd.logs());
}
