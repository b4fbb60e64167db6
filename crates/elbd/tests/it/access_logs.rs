//! ALB access logs: entries in AWS's format, gzipped under AWS's keys, delivered to elbd's S3
//! stand-in and to a real S3-compatible server (moto's), and kept across a `kill -9`.

use std::net::SocketAddr;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Aws, Backend, Elbd, Lab, curl, venv};

/// What one test sets up: an ALB whose listener forwards to one backend, with a rule at
/// priority 10 answering `/fixed` itself.
struct Logged {
    aws: Aws,
    lb: String,
    arns: Arns,
    listener: SocketAddr,
    target: SocketAddr,
    elbd: Elbd,
    config: PathBuf,
}

/// The rest of what [`logged`] made.
struct Arns {
    vpc: String,
    group: String,
    listener: String,
}

async fn logged(lab: &Lab, settings: &str) -> (Logged, Backend) {
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let backend = Backend::start(target, Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &with_settings(lab, settings));
    let elbd = Elbd::start(lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer("logged");
    let tg = aws.target_group("logged", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &[lab.ip('a', 10).to_string()]);
    let listener = aws.forward_listener(&lb, 8080, &tg);
    aws.rule(
        &listener,
        10,
        &["Field=path-pattern,Values=/fixed"],
        "Type=fixed-response,FixedResponseConfig={StatusCode=418,ContentType=text/plain,MessageBody=tea}",
    );
    let mut logged = Logged {
        aws,
        lb,
        arns: Arns {
            vpc,
            group: tg,
            listener: listener.clone(),
        },
        listener: lab.node('a', 8080),
        target,
        elbd,
        config,
    };
    let url = format!("http://{}/", logged.listener);
    logged
        .elbd
        .wait_until("the listener answers", || curl(&url, &[]).status == 200);
    (logged, backend)
}

impl Logged {
    fn enable(&self, bucket: &str) -> std::process::Output {
        self.aws.command(&[
            "elbv2",
            "modify-load-balancer-attributes",
            "--load-balancer-arn",
            &self.lb,
            "--attributes",
            "Key=access_logs.s3.enabled,Value=true",
            &format!("Key=access_logs.s3.bucket,Value={bucket}"),
            "Key=access_logs.s3.prefix,Value=team/web",
        ])
    }

    /// `forwarded` requests a target answers and `fixed` the rule answers, all curl's.
    fn traffic(&self, forwarded: usize, fixed: usize) {
        for _ in 0..forwarded {
            let reply = curl(&format!("http://{}/forwarded?n=1", self.listener), &[]);
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        for _ in 0..fixed {
            let reply = curl(&format!("http://{}/fixed", self.listener), &[]);
            assert_eq!(reply.status, 418, "{}", reply.body);
        }
    }

    /// Checks the entries as AWS writes them: `forwarded` to the target at priority 0 and
    /// `fixed` answered by the rule at priority 10.
    fn check(&self, lines: &[Vec<String>], forwarded: usize, fixed: usize) {
        let ours = |f: &&Vec<String>| f[12].contains("/forwarded?") || f[12].contains("/fixed ");
        let lines: Vec<Vec<String>> = lines.iter().filter(ours).cloned().collect();
        assert_eq!(lines.len(), forwarded + fixed, "{lines:#?}");
        let listener = self.listener;
        for fields in &lines {
            assert_eq!(fields.len(), 30, "{fields:?}");
            assert_eq!(fields[0], "http");
            assert!(fields[2].starts_with("app/logged/"), "{fields:?}");
            assert!(fields[3].starts_with("127."), "{fields:?}");
            assert!(
                fields[12].starts_with(&format!("GET http://{listener}/")),
                "{fields:?}"
            );
            assert!(fields[13].starts_with("curl/"), "{fields:?}");
            assert!(
                fields[29].starts_with("TID_") && fields[29].len() == 36,
                "{fields:?}"
            );
        }
        let by_action = |action: &str| lines.iter().filter(|f| f[22] == action).count();
        assert_eq!(by_action("forward"), forwarded);
        assert_eq!(by_action("fixed-response"), fixed);
        for fields in lines.iter().filter(|f| f[22] == "forward") {
            let target = self.target.to_string();
            assert_eq!(fields[4], target, "{fields:?}");
            assert_eq!(fields[8..10], ["200", "200"], "{fields:?}");
            assert!(fields[16].contains(":targetgroup/logged/"), "{fields:?}");
            assert!(fields[17].starts_with("Root=1-"), "{fields:?}");
            assert_eq!(fields[20], "0", "{fields:?}");
            assert_eq!(fields[25], target, "{fields:?}");
        }
        for fields in lines.iter().filter(|f| f[22] == "fixed-response") {
            assert_eq!(
                fields[4..10],
                ["-", "-1", "-1", "-1", "418", "-"],
                "{fields:?}"
            );
            assert_eq!(fields[20], "10", "{fields:?}");
            assert!(fields[12].contains("/fixed HTTP/1.1"), "{fields:?}");
        }
    }
}

/// The lab's `[settings]` with `settings` (keys of the table itself) added.
fn with_settings(lab: &Lab, settings: &str) -> String {
    lab.settings()
        .replacen("[settings]\n", &format!("[settings]\n{settings}"), 1)
}

/// Each line of gzipped logs, split as a shell would (quotes keep fields together).
fn entries(gzipped: &[Vec<u8>]) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for object in gzipped {
        let mut gunzip = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(gunzip.stdin.as_mut().unwrap(), object).unwrap();
        let text = gunzip.wait_with_output().unwrap();
        assert!(text.status.success(), "not gzip");
        let split = Command::new("python3")
            .args([
                "-c",
                "import json, shlex, sys\nfor l in sys.stdin: print(json.dumps(shlex.split(l)))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut split = split;
        std::io::Write::write_all(split.stdin.as_mut().unwrap(), &text.stdout).unwrap();
        let out = split.wait_with_output().unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            lines.push(serde_json::from_str(line).unwrap());
        }
    }
    lines
}

/// The files under `dir`, recursively, by path relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// AWS's key of a log file of `lb` (`app.logged.ID`) under prefix `team/web`.
fn is_log_key(key: &str, node: SocketAddr) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let name = parts.last().unwrap();
    let fields: Vec<&str> = name.split('_').collect();
    parts.len() == 10
        && parts[..6]
            == [
                "team",
                "web",
                "AWSLogs",
                "123456789012",
                "elasticloadbalancing",
                "us-east-1",
            ]
        && fields.len() == 7
        && fields[..3] == ["123456789012", "elasticloadbalancing", "us-east-1"]
        && fields[3].starts_with("app.logged.")
        && fields[4].len() == 14
        && fields[4].ends_with('Z')
        && fields[5] == node.ip().to_string()
        && fields[6].len() == "abcdefgh.log.gz".len()
        && fields[6].ends_with(".log.gz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_reach_the_stand_in_under_aws_keys_and_survive_a_kill() {
    let lab = Lab::new("access-logs", 44);
    let (mut logged, _backend) = logged(&lab, "access_log_interval_seconds = 5\n").await;
    let bucket = lab.dir.join("data/s3/logs");

    // No such bucket yet: refused as AWS refuses a bucket it may not write, and nothing changes.
    let refused = logged.enable("logs");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("InvalidConfigurationRequest")
            && message.contains("Access Denied for bucket: logs"),
        "{message}"
    );
    let attributes = logged.aws.ok(&[
        "elbv2",
        "describe-load-balancer-attributes",
        "--load-balancer-arn",
        &logged.lb,
    ]);
    assert!(
        attributes
            .to_string()
            .contains(r#"{"Key":"access_logs.s3.enabled","Value":"false"}"#)
    );

    std::fs::create_dir_all(&bucket).unwrap();
    assert!(logged.enable("logs").status.success());
    let test_file = bucket.join("team/web/AWSLogs/123456789012/ELBAccessLogTestFile");
    let text = std::fs::read_to_string(&test_file).unwrap();
    assert!(
        text.starts_with("Enable AccessLog for ELB: app/logged/"),
        "{text}"
    );

    logged.traffic(40, 10);
    let sent = Instant::now();
    let node = logged.listener;
    let logs = |bucket: &Path| -> Vec<PathBuf> {
        files(bucket)
            .into_iter()
            .filter(|f| f.to_string_lossy().ends_with(".log.gz"))
            .collect()
    };
    let mut lines = Vec::new();
    logged.elbd.wait_until("50 entries delivered", || {
        let objects: Vec<Vec<u8>> = logs(&bucket)
            .iter()
            .map(|f| std::fs::read(bucket.join(f)).unwrap())
            .collect();
        lines = entries(&objects);
        lines.len() >= 50
    });
    // Within the 5 s interval after the last request (intervals end on the clock), with a
    // flush (250 ms) and a delivery to spare: later would be a delivery that waited.
    assert!(
        sent.elapsed() < Duration::from_secs(7),
        "{:?}",
        sent.elapsed()
    );
    for key in logs(&bucket) {
        assert!(
            is_log_key(&key.to_string_lossy(), node),
            "{}",
            key.display()
        );
    }
    logged.check(&lines, 40, 10);
    other_entries(&lab, &mut logged, &bucket).await;

    // Spooled entries outlive a kill -9: the next process delivers them.
    let before = logs(&bucket).len();
    lab.write(
        "elbd.toml",
        &with_settings(&lab, "access_log_interval_seconds = 3600\n"),
    );
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let ready = [api, logged.listener];
    logged.elbd.kill_and_restart(&lab, &logged.config, &ready);
    logged.traffic(5, 0);
    // Past a flush (every 250 ms) into the spool, but long before the hour's interval ends.
    std::thread::sleep(Duration::from_millis(600));
    logged.elbd.kill_and_restart(&lab, &logged.config, &ready);
    let mut after = Vec::new();
    logged
        .elbd
        .wait_until("the killed process's entries delivered", || {
            after = logs(&bucket);
            after.len() > before
        });
    let delivered: Vec<Vec<u8>> = after[..]
        .iter()
        .map(|f| std::fs::read(bucket.join(f)).unwrap())
        .collect();
    logged.check(&entries(&delivered), 40 + 5, 10);
}

/// HTTPS (its TLS fields), h2c, a redirect and a forward to a group with no targets.
async fn other_entries(lab: &Lab, logged: &mut Logged, bucket: &Path) {
    let aws = &logged.aws;
    let listener = &logged.arns.listener;
    aws.rule(
        listener,
        20,
        &["Field=path-pattern,Values=/old"],
        "Type=redirect,RedirectConfig={Path=/new,StatusCode=HTTP_301}",
    );
    let empty = aws.target_group("empty", &logged.arns.vpc, 9001, "ip", &[]);
    aws.rule(
        listener,
        30,
        &["Field=path-pattern,Values=/empty"],
        &format!("Type=forward,TargetGroupArn={empty}"),
    );
    let certificate =
        aws.ok(&["acm", "request-certificate", "--domain-name", "logs.test"])["CertificateArn"]
            .as_str()
            .unwrap()
            .to_owned();
    aws.https_listener(&logged.lb, 8443, &certificate, &logged.arns.group, &[]);
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);
    // Connection logs too, to a bucket of their own.
    let conns = bucket.parent().unwrap().join("conns");
    std::fs::create_dir_all(&conns).unwrap();
    aws.set_load_balancer_attributes(
        &logged.lb,
        &[
            "Key=connection_logs.s3.enabled,Value=true",
            "Key=connection_logs.s3.bucket,Value=conns",
        ],
    );
    let https = lab.node('a', 8443);
    let resolve = format!("logs.test:8443:{}", https.ip());
    logged.elbd.wait_until("the HTTPS listener answers", || {
        TcpStream::connect(https).is_ok()
    });
    let node = logged.listener;
    assert_eq!(curl(&format!("http://{node}/old"), &[]).status, 301);
    assert_eq!(curl(&format!("http://{node}/empty"), &[]).status, 503);
    let h2c = curl(&format!("http://{node}/h2"), &["--http2-prior-knowledge"]);
    assert_eq!(h2c.status, 200);
    let ca_arg = ca.to_string_lossy().into_owned();
    let tls = curl(
        "https://logs.test:8443/tls",
        &["--cacert", &ca_arg, "--resolve", &resolve, "--http1.1"],
    );
    assert_eq!(tls.status, 200, "{}", tls.body);

    let mut lines = Vec::new();
    logged.elbd.wait_until("four more entries", || {
        let objects: Vec<Vec<u8>> = files(bucket)
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".log.gz"))
            .map(|f| std::fs::read(bucket.join(f)).unwrap())
            .collect();
        lines = entries(&objects);
        ["/old ", "/empty ", "/h2 ", "/tls "]
            .iter()
            .all(|path| lines.iter().any(|f| f[12].contains(path)))
    });
    let line = |path: &str| lines.iter().find(|f| f[12].contains(path)).unwrap().clone();
    let redirect = line("/old ");
    assert_eq!(
        redirect[4..10],
        ["-", "-1", "-1", "-1", "301", "-"],
        "{redirect:?}"
    );
    assert_eq!(
        redirect[20..24],
        [
            "20",
            redirect[21].as_str(),
            "redirect",
            &format!("http://{}:8080/new", node.ip())
        ]
    );
    let no_targets = line("/empty ");
    assert_eq!(no_targets[8..10], ["503", "-"], "{no_targets:?}");
    assert_eq!(no_targets[16], empty, "{no_targets:?}");
    assert_eq!(no_targets[20], "30");
    assert_eq!(no_targets[22], "forward");
    let h2 = line("/h2 ");
    assert_eq!(h2[0], "h2", "{h2:?}");
    assert!(h2[12].ends_with("HTTP/2.0"), "{h2:?}");
    let tls = line("/tls ");
    assert_eq!(tls[0], "https", "{tls:?}");
    assert!(
        tls[12].starts_with("GET https://logs.test:8443/tls "),
        "{tls:?}"
    );
    // The local CA issues ECDSA certificates.
    assert_eq!(tls[14], "ECDHE-ECDSA-AES128-GCM-SHA256", "{tls:?}");
    assert_eq!(tls[15], "TLSv1.2");
    assert_eq!(tls[18], "logs.test");
    assert_eq!(tls[8..10], ["200", "200"]);

    // Each connection's entry carries the trace id of its requests' entries.
    let mut connections = Vec::new();
    logged.elbd.wait_until("connection entries", || {
        let objects: Vec<Vec<u8>> = files(&conns)
            .iter()
            .filter(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                name.starts_with("conn_log_123456789012_elasticloadbalancing_us-east-1_app.logged.")
                    && name.ends_with(".log.gz")
            })
            .map(|f| std::fs::read(conns.join(f)).unwrap())
            .collect();
        connections = entries(&objects);
        [&tls, &h2]
            .iter()
            .all(|request| connections.iter().any(|c| c[11] == request[29]))
    });
    let of = |request: &Vec<String>| connections.iter().find(|c| c[11] == request[29]).unwrap();
    let handshake = of(&tls);
    assert_eq!(handshake.len(), 13, "{handshake:?}");
    assert_eq!(
        handshake[1..6],
        [
            "127.0.0.1",
            tls[3].rsplit(':').next().unwrap(),
            "8443",
            "TLSv1.2",
            "ECDHE-ECDSA-AES128-GCM-SHA256"
        ],
        "{handshake:?}"
    );
    assert!(handshake[6].parse::<f64>().is_ok(), "{handshake:?}");
    assert_eq!(
        handshake[7..11],
        ["-", "-", "-", "Success"],
        "{handshake:?}"
    );
    assert_eq!(handshake[12], "x25519", "{handshake:?}");
    let cleartext = of(&h2);
    assert_eq!(
        cleartext[3..11],
        ["8080", "-", "-", "-", "-", "-", "-", "-"],
        "{cleartext:?}"
    );
    assert_eq!(cleartext[12], "-");
}

/// moto's S3 server on `addr`, killed when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_reach_an_s3_compatible_server() {
    let lab = Lab::new("access-logs-s3", 70);
    let s3 = SocketAddr::from((lab.ip('a', 5), 5000));
    let _moto = Moto(
        Command::new(venv().join("bin/moto_server"))
            .args(["-H", &s3.ip().to_string(), "-p", &s3.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let settings = format!(
        "access_log_interval_seconds = 5\ns3_endpoint = \"http://{s3}\"\n\
         s3_access_key_id = \"moto\"\ns3_secret_access_key = \"moto\"\n"
    );
    let (mut logged, _backend) = logged(&lab, &settings).await;
    let s3api = |args: &[&str]| {
        Command::new(venv().join("bin/aws"))
            .args(["--endpoint-url", &format!("http://{s3}"), "s3api"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "moto")
            .env("AWS_SECRET_ACCESS_KEY", "moto")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    logged.elbd.wait_until("moto's S3 answers", || {
        s3api(&["list-buckets"]).status.success()
    });
    let refused = logged.enable("athena-logs");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Access Denied for bucket: athena-logs")
    );
    assert!(
        s3api(&["create-bucket", "--bucket", "athena-logs"])
            .status
            .success()
    );
    let enabled = logged.enable("athena-logs");
    assert!(
        enabled.status.success(),
        "{}",
        String::from_utf8_lossy(&enabled.stderr)
    );
    logged.traffic(40, 10);
    let node = logged.listener;
    let mut keys = Vec::new();
    logged.elbd.wait_until("moto holds the logs", || {
        let listed = s3api(&["list-objects-v2", "--bucket", "athena-logs"]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
        keys = listed["Contents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["Key"].as_str().map(str::to_owned))
            .collect();
        let logs: Vec<&String> = keys.iter().filter(|k| k.ends_with(".log.gz")).collect();
        let objects: Vec<Vec<u8>> = logs
            .iter()
            .map(|key| {
                let out = lab.dir.join("object.gz");
                let got = s3api(&[
                    "get-object",
                    "--bucket",
                    "athena-logs",
                    "--key",
                    key,
                    &out.to_string_lossy(),
                ]);
                assert!(got.status.success());
                std::fs::read(out).unwrap()
            })
            .collect();
        entries(&objects).len() >= 50
    });
    assert!(
        keys.iter()
            .any(|k| k == "team/web/AWSLogs/123456789012/ELBAccessLogTestFile"),
        "{keys:?}"
    );
    for key in keys.iter().filter(|k| k.ends_with(".log.gz")) {
        assert!(is_log_key(key, node), "{key}");
    }
    let objects: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| k.ends_with(".log.gz"))
        .map(|key| {
            let out = lab.dir.join("object.gz");
            assert!(
                s3api(&[
                    "get-object",
                    "--bucket",
                    "athena-logs",
                    "--key",
                    key,
                    &out.to_string_lossy()
                ])
                .status
                .success()
            );
            std::fs::read(out).unwrap()
        })
        .collect();
    logged.check(&entries(&objects), 40, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_load_balancer_logs_its_tls_connections() {
    let lab = Lab::new("access-logs-nlb", 49);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write(
        "elbd.toml",
        &with_settings(&lab, "access_log_interval_seconds = 2\n"),
    );
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer_of_type("flows", "network");
    let tg = aws.target_group_of("TCP", "flows", &vpc, (9001, "ip"), &[]);
    aws.register(&tg, &[target.ip().to_string()]);
    let certificate =
        aws.ok(&["acm", "request-certificate", "--domain-name", "flows.test"])["CertificateArn"]
            .as_str()
            .unwrap()
            .to_owned();
    let listener = aws.ok(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb,
        "--protocol",
        "TLS",
        "--port",
        "7443",
        "--certificates",
        &format!("CertificateArn={certificate}"),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg}"),
    ])["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let bucket = lab.dir.join("data/s3/flows");
    std::fs::create_dir_all(&bucket).unwrap();
    aws.set_load_balancer_attributes(
        &lb,
        &[
            "Key=access_logs.s3.enabled,Value=true",
            "Key=access_logs.s3.bucket,Value=flows",
        ],
    );
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);
    let node = lab.node('a', 7443);
    let resolve = format!("flows.test:7443:{}", node.ip());
    let ca_arg = ca.to_string_lossy().into_owned();
    let args = [
        "--cacert",
        ca_arg.as_str(),
        "--resolve",
        resolve.as_str(),
        "--http1.1",
    ];
    elbd.wait_until("the TLS listener answers", || {
        curl("https://flows.test:7443/", &args).status == 200
    });
    let mut lines = Vec::new();
    elbd.wait_until("a TLS connection logged", || {
        let objects: Vec<Vec<u8>> = files(&bucket)
            .iter()
            .filter(|f| f.to_string_lossy().contains("_net.flows."))
            .map(|f| std::fs::read(bucket.join(f)).unwrap())
            .collect();
        lines = entries(&objects);
        !lines.is_empty()
    });
    let fields = &lines[0];
    assert_eq!(fields.len(), 22, "{fields:?}");
    assert_eq!(fields[..2], ["tls", "2.0"]);
    assert_eq!(fields[2].len(), "2020-04-01T08:51:42".len(), "{fields:?}");
    assert!(fields[3].starts_with("net/flows/"), "{fields:?}");
    assert_eq!(fields[4], listener.rsplit('/').next().unwrap());
    assert!(fields[5].starts_with("127.0.0.1:"), "{fields:?}");
    assert_eq!(fields[6], node.to_string());
    for number in &fields[7..11] {
        assert!(number.parse::<u64>().is_ok(), "{fields:?}");
    }
    // curl's request went up, the backend's answer came down.
    assert!(fields[9].parse::<u64>().unwrap() > 0 && fields[10].parse::<u64>().unwrap() > 0);
    assert_eq!(fields[11..14], ["-", "-", "-"], "{fields:?}");
    assert_eq!(fields[14], "ECDHE-ECDSA-AES128-GCM-SHA256", "{fields:?}");
    assert_eq!(fields[15], "tlsv12");
    assert_eq!(fields[16], "x25519");
    assert_eq!(fields[17], "flows.test");
    assert_eq!(fields[18..21], ["-", "-", "-"], "no ALPN policy");
    assert!(
        fields[21].len() == 19 && fields[21] <= fields[2],
        "{fields:?}"
    );
}
