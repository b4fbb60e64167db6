//! Listener rules through the API and real requests: every condition type (wildcard values
//! and regular expressions), redirect, fixed response, weighted forwarding, and least
//! outstanding requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Aws, Backend, Elbd, Lab, client, curl};

struct Setup {
    aws: Aws,
    listener: String,
    groups: BTreeMap<&'static str, String>,
}

impl Setup {
    fn rule(&self, priority: u16, conditions: &str, actions: &str) {
        self.aws.ok(&[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &self.listener,
            "--priority",
            &priority.to_string(),
            "--conditions",
            conditions,
            "--actions",
            actions,
        ]);
    }

    fn forward(&self, group: &str) -> String {
        format!("Type=forward,TargetGroupArn={}", self.groups[group])
    }
}

fn fixed(body: &str) -> String {
    format!(
        "Type=fixed-response,FixedResponseConfig={{StatusCode=200,ContentType=text/plain,MessageBody={body}}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_by_every_condition_and_act_as_aws() {
    let lab = Lab::new("rules", 19);
    let targets = [('a', 10), ('a', 11), ('b', 10), ('a', 12), ('b', 11)]
        .map(|(z, n)| SocketAddr::from((lab.ip(z, n), 9001)));
    let delays = [0, 0, 0, 3000, 0];
    let mut backends = Vec::new();
    for (addr, delay) in targets.iter().zip(delays) {
        backends.push(Backend::start(*addr, Duration::from_millis(delay)).await);
    }
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let subnet_ids: Vec<&str> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SubnetId"].as_str().unwrap())
        .collect();
    let vpc = subnets["Subnets"][0]["VpcId"].as_str().unwrap().to_owned();
    let lb = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "rules",
        "--subnets",
        subnet_ids[0],
        subnet_ids[1],
    ]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut groups = BTreeMap::new();
    for (name, members) in [
        ("a", &targets[0..1]),
        ("b", &targets[1..2]),
        ("c", &targets[2..3]),
        ("lor", &targets[3..5]),
    ] {
        let health = [
            "--health-check-path",
            "/health",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
        ];
        let arn = aws.target_group(&format!("rules-{name}"), &vpc, 9001, "ip", &health);
        let ids: Vec<String> = members.iter().map(|t| t.ip().to_string()).collect();
        aws.register(&arn, &ids);
        groups.insert(name, arn);
    }
    aws.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &groups["lor"],
        "--attributes",
        "Key=load_balancing.algorithm.type,Value=least_outstanding_requests",
    ]);
    let listener = aws.forward_listener(&lb_arn, 8080, &groups["a"]);
    let setup = Setup {
        listener,
        aws,
        groups,
    };

    setup.rule(10, "Field=path-pattern,Values=/api/*", &setup.forward("b"));
    setup.rule(
        20,
        "Field=host-header,HostHeaderConfig={Values=[*.example.com]}",
        &fixed("host"),
    );
    setup.rule(
        30,
        "Field=http-header,HttpHeaderConfig={HttpHeaderName=X-Env,Values=[canary]}",
        &fixed("header"),
    );
    setup.rule(
        40,
        "Field=http-request-method,HttpRequestMethodConfig={Values=[DELETE]}",
        &fixed("method"),
    );
    setup.rule(
        50,
        "Field=query-string,QueryStringConfig={Values=[{Key=debug,Value=true}]}",
        &fixed("query"),
    );
    setup.rule(
        60,
        "Field=source-ip,SourceIpConfig={Values=[127.9.0.0/16]}",
        &fixed("source"),
    );
    setup.rule(
        70,
        "Field=path-pattern,Values=/old/*",
        r##"[{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","Host":"#{host}","Path":"/new/#{path}","Query":"#{query}","StatusCode":"HTTP_301"}}]"##,
    );
    let weighted = format!(
        "Type=forward,ForwardConfig={{TargetGroups=[{{TargetGroupArn={},Weight=80}},{{TargetGroupArn={},Weight=20}}]}}",
        setup.groups["a"], setup.groups["c"]
    );
    setup.rule(80, "Field=path-pattern,Values=/split", &weighted);
    setup.rule(90, "Field=path-pattern,Values=/lor", &setup.forward("lor"));
    // Regular expressions: found anywhere unless anchored; the host's with its port.
    setup.rule(
        15,
        r#"[{"Field":"path-pattern","PathPatternConfig":{"RegexValues":["^/v[0-9]+/items$"]}}]"#,
        &fixed("path-regex"),
    );
    setup.rule(
        25,
        r#"[{"Field":"host-header","HostHeaderConfig":{"RegexValues":["^app-[0-9]+\\.site\\.test:[0-9]+$"]}}]"#,
        &fixed("host-regex"),
    );
    setup.rule(
        35,
        r#"[{"Field":"http-header","HttpHeaderConfig":{"HttpHeaderName":"X-Build","RegexValues":["rc-[0-9]"]}}]"#,
        &fixed("header-regex"),
    );
    // Transforms: the forwarded request's URL and Host rewritten; one that makes a URL that
    // cannot be sent is a 500.
    let transforms = r#"[{"Type":"url-rewrite","UrlRewriteConfig":{"Rewrites":[{"Regex":"^/legacy/(.*)$","Replace":"/v2/$1"}]}},{"Type":"host-header-rewrite","HostHeaderRewriteConfig":{"Rewrites":[{"Regex":"^(.+)\\.old\\.test","Replace":"$1.new.test"}]}}]"#;
    for (priority, path, transforms) in [
        ("12", "/legacy/*", transforms),
        (
            "13",
            "/broken/*",
            r#"[{"Type":"url-rewrite","UrlRewriteConfig":{"Rewrites":[{"Regex":"^/broken/(.*)$","Replace":"$1"}]}}]"#,
        ),
    ] {
        setup.aws.ok(&[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &setup.listener,
            "--priority",
            priority,
            "--conditions",
            &format!("Field=path-pattern,Values={path}"),
            "--actions",
            &setup.forward("b"),
            "--transforms",
            transforms,
        ]);
    }
    let lookahead = setup.aws.err(&[
        "elbv2",
        "create-rule",
        "--listener-arn",
        &setup.listener,
        "--priority",
        "95",
        "--conditions",
        r#"[{"Field":"path-pattern","PathPatternConfig":{"RegexValues":["^/a(?=b)"]}}]"#,
        "--actions",
        &fixed("never"),
    ]);
    assert!(
        lookahead.contains("ValidationError") && lookahead.contains("^/a(?=b)"),
        "{lookahead}"
    );
    let taken = setup.aws.err(&[
        "elbv2",
        "create-rule",
        "--listener-arn",
        &setup.listener,
        "--priority",
        "10",
        "--conditions",
        "Field=path-pattern,Values=/other",
        "--actions",
        &setup.forward("c"),
    ]);
    assert!(taken.contains("PriorityInUse"), "{taken}");
    let rules = setup
        .aws
        .ok(&["elbv2", "describe-rules", "--listener-arn", &setup.listener]);
    assert_eq!(
        rules["Rules"].as_array().unwrap().len(),
        15,
        "fourteen rules and the default"
    );
    let legacy = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Priority"] == "12")
        .unwrap();
    let url_rewrite = legacy["Transforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["Type"] == "url-rewrite")
        .unwrap();
    assert_eq!(
        url_rewrite["UrlRewriteConfig"]["Rewrites"][0]["Replace"], "/v2/$1",
        "{legacy}"
    );
    let described = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Priority"] == "15")
        .unwrap();
    assert_eq!(
        described["Conditions"][0]["PathPatternConfig"]["RegexValues"],
        serde_json::json!(["^/v[0-9]+/items$"]),
        "{described}"
    );

    for tg in setup.groups.values() {
        setup.aws.ok(&[
            "elbv2",
            "wait",
            "target-in-service",
            "--target-group-arn",
            tg,
        ]);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = lab.node('a', 8080);
    elbd.wait_until("the listener to bind", || {
        std::net::TcpStream::connect(node).is_ok()
    });
    let url = |path: &str| format!("http://{node}{path}");

    assert_eq!(
        curl(&url("/"), &[]).body,
        targets[0].to_string(),
        "the default rule"
    );
    assert_eq!(
        curl(&url("/api/users"), &[]).body,
        targets[1].to_string(),
        "path-pattern"
    );
    assert_eq!(
        curl(&url("/"), &["-H", "Host: shop.EXAMPLE.com"]).body,
        "host"
    );
    assert_eq!(curl(&url("/"), &["-H", "X-Env: canary"]).body, "header");
    // On the relay (HTTP/1.1) and on the general path (HTTP/1.0) alike.
    for version in ["--http1.1", "--http1.0"] {
        let answer = curl(
            &url("/legacy/items?id=3"),
            &[version, "-H", "Host: shop.old.test:8080"],
        );
        assert_eq!(answer.body, targets[1].to_string(), "{version}");
        let seen = backends[1].hits.lock().unwrap().last().cloned().unwrap();
        assert_eq!(seen["x-test-request-target"], "/v2/items?id=3", "{version}");
        let host = seen["host"].to_str().unwrap();
        assert!(host.starts_with("shop.new.test"), "{version}: {host}");
        assert_eq!(curl(&url("/broken/x"), &[version]).status, 500, "{version}");
    }
    let legacy_arn = legacy["RuleArn"].as_str().unwrap();
    let reset = setup.aws.ok(&[
        "elbv2",
        "modify-rule",
        "--rule-arn",
        legacy_arn,
        "--reset-transforms",
    ]);
    assert!(reset["Rules"][0].get("Transforms").is_none(), "{reset}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    curl(&url("/legacy/items"), &[]);
    let seen = backends[1].hits.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        seen["x-test-request-target"], "/legacy/items",
        "no transform"
    );
    assert_eq!(curl(&url("/v12/items"), &[]).body, "path-regex");
    assert_eq!(
        curl(&url("/v12/items/x"), &[]).body,
        targets[0].to_string(),
        "anchored at the end"
    );
    assert_eq!(
        curl(&url("/"), &["-H", "Host: app-7.site.test:8080"]).body,
        "host-regex"
    );
    assert_eq!(
        curl(&url("/"), &["-H", "X-Build: 2.0-rc-3"]).body,
        "header-regex",
        "found anywhere"
    );
    assert_eq!(curl(&url("/"), &["-X", "DELETE"]).body, "method");
    assert_eq!(
        curl(&url("/?debug=TRUE"), &[]).body,
        "query",
        "query values match case-insensitively"
    );
    assert_eq!(
        curl(&url("/"), &["--interface", "127.9.0.1"]).body,
        "source"
    );
    let redirected = curl(&url("/old/a/b?x=1"), &["-H", "Host: site.test"]);
    let (status, location) = (redirected.status, redirected.header("location"));
    assert_eq!(
        (status, location.as_str()),
        (301, "https://site.test/new/old/a/b?x=1")
    );

    let client = client();
    let mut split = BTreeMap::new();
    for _ in 0..1000 {
        let uri = format!("http://{node}/split").parse().unwrap();
        let response = client.get(uri).await.unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        *split
            .entry(String::from_utf8_lossy(&body).into_owned())
            .or_insert(0) += 1;
    }
    let to_a = split.get(&targets[0].to_string()).copied().unwrap_or(0);
    eprintln!("weighted 80/20 over 1000 requests: {split:?}");
    assert!((750..=850).contains(&to_a), "{split:?}");

    // Least outstanding requests: the slow target keeps the few it got, the rest go around it.
    let mut requests = Vec::new();
    for _ in 0..40 {
        let client = client.clone();
        let uri: hyper::Uri = format!("http://{node}/lor").parse().unwrap();
        requests.push(tokio::spawn(async move {
            let response = client.get(uri).await.unwrap();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lor = BTreeMap::new();
    for r in requests {
        *lor.entry(r.await.unwrap()).or_insert(0) += 1;
    }
    eprintln!("least outstanding requests, 40 requests, one target slow: {lor:?}");
    let slow = lor.get(&targets[3].to_string()).copied().unwrap_or(0);
    assert!(slow <= 3, "the slow target got {slow} of 40: {lor:?}");

    // Listener attributes: injected response headers, and no Server on elbd's own pages.
    let attributes = setup.aws.ok(&[
        "elbv2",
        "describe-listener-attributes",
        "--listener-arn",
        &setup.listener,
    ]);
    let server = attributes["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Key"] == "routing.http.response.server.enabled")
        .cloned();
    assert_eq!(server.unwrap()["Value"], "true");
    let modify = |pairs: &[&str]| {
        let mut args = vec![
            "elbv2",
            "modify-listener-attributes",
            "--listener-arn",
            &setup.listener,
            "--attributes",
        ];
        args.extend_from_slice(pairs);
        setup.aws.command(&args)
    };
    let hsts = "Key=routing.http.response.strict_transport_security.header_value,Value=max-age=60";
    let quiet = "Key=routing.http.response.server.enabled,Value=false";
    assert!(modify(&[hsts, quiet]).status.success());
    let rename = "Key=routing.http.request.x_amzn_tls_version.header_name,Value=X-Tls";
    let refused = modify(&[rename]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not implement"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let headers = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-D",
                "-",
                &format!("http://{node}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let proxied = headers("/");
    assert!(
        proxied.contains("strict-transport-security: max-age=60"),
        "{proxied}"
    );
    let own = headers("/old/x");
    assert!(
        own.contains("strict-transport-security: max-age=60"),
        "{own}"
    );
    assert!(!own.contains("server: awselb"), "{own}");
    drop(backends);
}
