//! `elbd explain`: the running process says how a listener would route a request, from the
//! routing table in use, without moving any round-robin cursor.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Aws, Backend, Elbd, Lab, curl};

fn explain(api: SocketAddr, signed: bool, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elbd"));
    command
        .arg("explain")
        .args(["--api-url", &format!("http://{api}")])
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    if signed {
        command
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
    }
    command.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_rule_the_action_the_group_and_the_target() {
    let lab = Lab::new("explain", 47);
    let here = SocketAddr::from((lab.ip('a', 10), 9001));
    let also_here = SocketAddr::from((lab.ip('a', 11), 9001));
    let there = SocketAddr::from((lab.ip('b', 10), 9001));
    let _backends = (
        Backend::start(here, Duration::ZERO).await,
        Backend::start(also_here, Duration::ZERO).await,
        Backend::start(there, Duration::ZERO).await,
    );
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let settings = lab.settings().replacen(
        "[settings]\n",
        "[settings]\ncredentials = { test = \"test\" }\n",
        1,
    );
    let config = lab.write("elbd.toml", &settings);
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer("explained");
    let tg = aws.target_group("explained", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &[here, also_here, there].map(|t| t.ip().to_string()));
    aws.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &tg,
        "--attributes",
        "Key=load_balancing.cross_zone.enabled,Value=false",
    ]);
    let listener = aws.forward_listener(&lb, 8080, &tg);
    aws.rule(
        &listener,
        5,
        &[
            "Field=path-pattern,Values=/api/*",
            "Field=http-header,HttpHeaderConfig={HttpHeaderName=X-Team,Values=blue}",
        ],
        "Type=fixed-response,FixedResponseConfig={StatusCode=202,ContentType=text/plain}",
    );
    let node = lab.node('a', 8080);
    let url = format!("http://{node}/");
    elbd.wait_until("the listener answers", || curl(&url, &[]).status == 200);

    let matched = explain(
        api,
        true,
        &[
            "--listener-arn",
            &listener,
            "-H",
            "X-Team: blue",
            "GET",
            "/api/v1?x=1",
        ],
    );
    let text = String::from_utf8_lossy(&matched.stdout);
    assert!(
        matched.status.success(),
        "{}",
        String::from_utf8_lossy(&matched.stderr)
    );
    assert!(text.contains("rule 5: matches"), "{text}");
    assert!(
        text.contains("path-pattern [\"/api/*\"] yes (the request has /api/v1)"),
        "{text}"
    );
    assert!(
        text.contains("http-header X-Team [\"blue\"] yes (the request has blue)"),
        "{text}"
    );
    assert!(text.contains("decided by rule 5: fixed-response"), "{text}");
    assert!(text.contains("answered 202"), "{text}");

    // Without the header, rule 5 does not match: the default forwards to the group, whose
    // node in zone a may not send to zone b's target (cross-zone off).
    let ask_default = || {
        let node = node.ip().to_string();
        let args = [
            "--listener-arn",
            &listener,
            "--node",
            &node,
            "--output",
            "json",
        ];
        let out = explain(api, true, &[&args[..], &["GET", "/api/v1"]].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Both of zone a's targets pass their first checks (until then, one is passed over as
    // not healthy).
    let mut answer = serde_json::Value::Null;
    elbd.wait_until("zone a's two targets eligible", || {
        answer = ask_default();
        answer["action"]["groups"][0]["eligible"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    });
    assert_eq!(answer["node"], node.to_string());
    assert_eq!(answer["rules"][0]["matched"], false);
    assert_eq!(answer["rules"][0]["conditions"][1]["saw"], "(absent)");
    assert_eq!(answer["matched_rule"], serde_json::Value::Null);
    assert_eq!(answer["action"]["type"], "forward");
    let group = &answer["action"]["groups"][0];
    assert_eq!(group["target_group_arn"], tg.as_str());
    let mut eligible: Vec<String> = group["eligible"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    eligible.sort();
    assert_eq!(eligible, [here.to_string(), also_here.to_string()]);
    assert_eq!(group["passed_over"][0]["target"], there.to_string());
    assert_eq!(group["passed_over"][0]["zone"], "us-east-1b");
    assert!(group["why"].as_str().unwrap().starts_with("round robin"));

    // Asking moves no cursor: the pick stays until a request goes, then it is the other.
    let pick = || {
        let args = [
            "--listener-arn",
            &listener,
            "--node",
            &node.ip().to_string(),
        ];
        let out = explain(
            api,
            true,
            &[&args[..], &["--output", "json", "GET", "/"]].concat(),
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        answer["action"]["groups"][0]["pick"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = pick();
    assert!(eligible.contains(&first));
    assert_eq!([pick(), pick()], [first.clone(), first.clone()]);
    assert_eq!(curl(&url, &[]).status, 200);
    let next = pick();
    assert!(
        eligible.contains(&next) && next != first,
        "{first} then {next}"
    );

    // Target group stickiness: the AWSALBTG cookie a real response set names its group,
    // whatever the weights.
    let other = aws.target_group("other", &vpc, 9001, "ip", &[]);
    aws.register(&other, &[here.ip().to_string()]);
    let groups = format!(
        "Type=forward,ForwardConfig={{TargetGroups=[{{TargetGroupArn={tg},Weight=1}},\
         {{TargetGroupArn={other},Weight=1}}],TargetGroupStickinessConfig={{Enabled=true,\
         DurationSeconds=300}}}}"
    );
    aws.rule(
        &listener,
        7,
        &["Field=path-pattern,Values=/weighted"],
        &groups,
    );
    let weighted = format!("http://{node}/weighted");
    let mut cookie = String::new();
    elbd.wait_until("a group cookie", || {
        let reply = curl(&weighted, &[]);
        cookie = reply
            .headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, value)| value.trim().split(';').next())
            .find(|c| c.starts_with("AWSALBTG="))
            .unwrap_or_default()
            .to_owned();
        reply.status == 200 && !cookie.is_empty()
    });
    let ask = |extra: &[&str]| {
        let args = ["--listener-arn", &listener, "--output", "json"];
        let out = explain(
            api,
            true,
            &[&args[..], extra, &["GET", "/weighted"]].concat(),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let plain = ask(&[]);
    assert_eq!(plain["matched_rule"], 7);
    assert_eq!(plain["action"]["sticky_group"], serde_json::Value::Null);
    assert_eq!(plain["action"]["groups"][1]["share_percent"], 50.0);
    let stuck = ask(&["-H", &format!("Cookie: {cookie}")]);
    let named = stuck["action"]["sticky_group"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(named == tg || named == other, "{stuck}");

    // A source the security groups do not admit is not explained further.
    let sg = aws.ok(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "explained-sg",
        "--description",
        "loopback only",
        "--vpc-id",
        &vpc,
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    aws.allow(&sg, 8080, "127.0.0.0/8");
    aws.ok(&[
        "elbv2",
        "set-security-groups",
        "--load-balancer-arn",
        &lb,
        "--security-groups",
        &sg,
    ]);
    let outside = ask(&["--source", "192.0.2.7"]);
    assert_eq!(outside["admitted"], false, "{outside}");
    assert_eq!(outside["action"], serde_json::Value::Null);
    assert_eq!(ask(&["--source", "127.0.0.9"])["admitted"], true);

    // With credentials configured, the console asks for them too (basic auth, as /metrics).
    let console = format!("http://{api}/console/state.json");
    assert_eq!(curl(&console, &[]).status, 401);
    assert_eq!(curl(&console, &["-u", "test:wrong"]).status, 401);
    let state = curl(&console, &["-u", "test:test"]);
    assert_eq!(state.status, 200);
    assert!(
        state.body.contains("\"name\":\"explained\""),
        "{}",
        state.body
    );

    // With credentials configured, an unsigned question is refused.
    let unsigned = explain(api, false, &["--listener-arn", &listener, "GET", "/"]);
    assert!(!unsigned.status.success());
    assert!(
        String::from_utf8_lossy(&unsigned.stderr).contains("MissingAuthenticationToken"),
        "{}",
        String::from_utf8_lossy(&unsigned.stderr)
    );
    let unknown = explain(api, true, &["--listener-arn", "arn:nope", "GET", "/"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("ListenerNotFound (404)"));
}
