//! HTTPS listeners with real clients: curl over HTTP/2, openssl s_client for the certificate
//! served per SNI name and the protocol versions per policy, ACM certificates (issued by the
//! local CA, imported, re-imported), and a certificate change under a wrk load.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Aws, Backend, Elbd, Lab, ProcessBackend, curl};

/// A self-signed certificate for `name` (its own CA): `(certificate, key)` files.
pub(crate) fn self_signed(lab: &Lab, file: &str, name: &str) -> (PathBuf, PathBuf) {
    let cert = lab.dir.join(format!("{file}.crt"));
    let key = lab.dir.join(format!("{file}.key"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// The subject of the certificate `node` serves for SNI `name` (none when `name` is empty),
/// or the handshake error.
fn served_subject(node: SocketAddr, name: &str) -> String {
    let mut args = vec!["s_client".to_owned(), "-connect".into(), node.to_string()];
    if !name.is_empty() {
        args.extend(["-servername".into(), name.into()]);
    }
    let out = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    x509.stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let subject = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&subject.stdout)
        .trim()
        .replace("subject=", "")
        .replace(' ', "")
}

/// Whether a handshake with exactly `version` (`-tls1_2`, `-tls1_3`) succeeds.
fn handshake(node: SocketAddr, version: &str) -> bool {
    Command::new("openssl")
        .args(["s_client", version, "-connect", &node.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// `curl https://NAME:PORT/` resolved to `node`, trusting `ca`: "<http version> <status>".
fn curl_https(node: SocketAddr, name: &str, ca: &Path) -> String {
    curl_https_with(node, name, ca, &[])
}

/// `<HTTP version> <status>` of a request to `name` on the HTTPS `node`, trusting `ca`.
fn curl_https_with(node: SocketAddr, name: &str, ca: &Path, extra: &[&str]) -> String {
    let resolve = format!("{name}:{}:{}", node.port(), node.ip());
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend(extra);
    let reply = curl(&format!("https://{name}:{}/", node.port()), &args);
    let version = reply.headers.split_whitespace().next().unwrap_or("HTTP/0");
    format!("{} {}", version.trim_start_matches("HTTP/"), reply.status)
}

fn arn(value: &serde_json::Value) -> String {
    value["CertificateArn"].as_str().unwrap().to_owned()
}

fn import(aws: &Aws, (cert, key): &(PathBuf, PathBuf), reimport: Option<&str>) -> String {
    let (cert, key) = (
        format!("fileb://{}", cert.display()),
        format!("fileb://{}", key.display()),
    );
    let mut args = vec![
        "acm",
        "import-certificate",
        "--certificate",
        &cert,
        "--private-key",
        &key,
    ];
    if let Some(existing) = reimport {
        args.extend(["--certificate-arn", existing]);
    }
    arn(&aws.ok(&args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listeners_serve_h2_choose_certificates_by_sni_and_follow_policies() {
    let lab = Lab::new("tls", 21);
    let backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);

    // Certificates: two names issued by the local CA, a wildcard, and an imported one.
    let request = |name: &str| arn(&aws.ok(&["acm", "request-certificate", "--domain-name", name]));
    let (default, exact, wildcard) = (
        request("default.tls.test"),
        request("a.tls.test"),
        request("*.b.tls.test"),
    );
    let imported_files = self_signed(&lab, "imported", "imported.tls.test");
    let imported = import(&aws, &imported_files, None);
    let described = aws.ok(&[
        "acm",
        "describe-certificate",
        "--certificate-arn",
        &imported,
    ]);
    assert_eq!(described["Certificate"]["Type"], "IMPORTED");
    assert_eq!(described["Certificate"]["DomainName"], "imported.tls.test");
    assert_eq!(described["Certificate"]["Status"], "ISSUED");
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);

    let (lb_arn, vpc) = aws.load_balancer("tls");
    let tg = aws.target_group("tls", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &[lab.ip('a', 10).to_string()]);
    let listener = aws.https_listener(&lb_arn, 8443, &default, &tg, &[]);
    assert_eq!(listener["SslPolicy"], "ELBSecurityPolicy-2016-08");
    let listener_arn = listener["ListenerArn"].as_str().unwrap().to_owned();
    let more: Vec<String> = [&exact, &wildcard, &imported]
        .iter()
        .map(|c| format!("CertificateArn={c}"))
        .collect();
    let mut args = vec![
        "elbv2",
        "add-listener-certificates",
        "--listener-arn",
        &listener_arn,
        "--certificates",
    ];
    args.extend(more.iter().map(String::as_str));
    aws.ok(&args);
    let listed = aws.ok(&[
        "elbv2",
        "describe-listener-certificates",
        "--listener-arn",
        &listener_arn,
    ]);
    let listed = listed["Certificates"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed.iter().filter(|c| c["IsDefault"] == true).count(), 1);

    let node = lab.node('a', 8443);
    elbd.wait_until("the HTTPS listener", || TcpStream::connect(node).is_ok());
    elbd.wait_healthy(2);

    // HTTP/2 over TLS, with the certificate SNI asks for: exact, wildcard, imported, default.
    assert_eq!(curl_https(node, "a.tls.test", &ca), "2 200");
    assert_eq!(curl_https(node, "x.b.tls.test", &ca), "2 200");
    assert_eq!(
        curl_https(node, "imported.tls.test", &imported_files.0),
        "2 200"
    );
    assert_eq!(served_subject(node, "a.tls.test"), "CN=a.tls.test");
    assert_eq!(served_subject(node, "www.b.tls.test"), "CN=*.b.tls.test");
    assert_eq!(served_subject(node, "c.tls.test"), "CN=default.tls.test");
    assert_eq!(served_subject(node, ""), "CN=default.tls.test");
    let seen = backend.hits.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-port"], "8443");
    // HTTP/1.1 over TLS takes the relay; the target is told the same.
    let http1 = curl_https_with(node, "a.tls.test", &ca, &["--http1.1"]);
    assert_eq!(http1, "1.1 200");
    let seen = backend.hits.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-port"], "8443");

    // Policies: the default takes TLS 1.2; TLS13-1-3 refuses it and takes 1.3.
    assert!(handshake(node, "-tls1_2"));
    let modified = aws.ok(&[
        "elbv2",
        "modify-listener",
        "--listener-arn",
        &listener_arn,
        "--ssl-policy",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
    ]);
    assert_eq!(
        modified["Listeners"][0]["SslPolicy"],
        "ELBSecurityPolicy-TLS13-1-3-2021-06"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !handshake(node, "-tls1_2"),
        "TLS 1.2 refused under TLS13-1-3"
    );
    assert!(handshake(node, "-tls1_3"));
    let policy = aws.ok(&[
        "elbv2",
        "describe-ssl-policies",
        "--names",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
    ]);
    assert_eq!(policy["SslPolicies"][0]["SslProtocols"][0], "TLSv1.3");
    for (args, code) in [
        (
            vec![
                "elbv2",
                "describe-ssl-policies",
                "--names",
                "ELBSecurityPolicy-Nope",
            ],
            "SSLPolicyNotFound",
        ),
        (
            vec!["acm", "delete-certificate", "--certificate-arn", &exact],
            "ResourceInUseException",
        ),
    ] {
        let err = aws.err(&args);
        assert!(err.contains(code), "{args:?}: {err}");
    }

    // Certificate changes under load: a new default, then a re-import of it; the keep-alive
    // connections of wrk carry on, and new handshakes see the new certificate.
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d4s", &format!("https://{node}/")])
        .output();
    let change = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        aws.ok(&[
            "elbv2",
            "modify-listener",
            "--listener-arn",
            &listener_arn,
            "--certificates",
            &format!("CertificateArn={imported}"),
        ]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let renewed = self_signed(&lab, "renewed", "renewed.tls.test");
        assert_eq!(import(&aws, &renewed, Some(&imported)), imported);
    };
    let (wrk, ()) = tokio::join!(tokio::task::spawn_blocking(move || wrk), change);
    let wrk = wrk.unwrap().unwrap();
    let report = String::from_utf8_lossy(&wrk.stdout);
    assert!(wrk.status.success(), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert!(report.contains("requests in"), "{report}");
    assert_eq!(served_subject(node, ""), "CN=renewed.tls.test");
}

#[test]
fn a_certificate_declared_in_the_file_is_served_and_reloaded_in_place() {
    let lab = Lab::new("tls-file", 23);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let first = self_signed(&lab, "site", "site.tls.test");
    let config = format!(
        "{}\n\
         [[certificate]]\nname = \"site\"\ncertificate = \"site.crt\"\nprivate_key = \"site.key\"\n\
         [[target_group]]\nname = \"web\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n\
         [[load_balancer]]\nname = \"web\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTPS\"\nport = 8443\n\
         ssl_policy = \"ELBSecurityPolicy-TLS13-1-2-2021-06\"\ncertificates = [\"site\"]\n\
         default_action = {{ forward = \"web\" }}\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &config);
    let node = lab.node('a', 8443);
    let elbd = Elbd::start(&lab, &config, &[], &[node]);
    assert_eq!(served_subject(node, "site.tls.test"), "CN=site.tls.test");
    assert!(handshake(node, "-tls1_3"));

    // New files under the same name: a SIGHUP re-imports them; the listener stays bound.
    let second = self_signed(&lab, "next", "next.tls.test");
    std::fs::copy(&second.0, &first.0).unwrap();
    std::fs::copy(&second.1, &first.1).unwrap();
    elbd.signal("HUP");
    let start = std::time::Instant::now();
    while served_subject(node, "site.tls.test") != "CN=next.tls.test" {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", elbd.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(elbd.logs().contains("config reloaded"), "{}", elbd.logs());
}

/// A CA (`NAME.crt`, `NAME.key`) and a client certificate it signs (`NAME-client.crt/.key`).
fn client_ca(lab: &Lab, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = self_signed(lab, name, &format!("{name}-ca"));
    let subject = format!("/O=elbd tests/CN={name} client");
    let ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
    let (cert, key) = signed_by(
        lab,
        (&ca, &ca_key),
        &format!("{name}-client"),
        &subject,
        ext,
    );
    (ca, cert, key)
}

/// A P-256 certificate (`FILE.crt`, `FILE.key`) for `subject`, signed by `ca` (certificate,
/// key), with the X.509 v3 `extensions` (openssl's extfile syntax; verifiers require v3).
pub(crate) fn signed_by(
    lab: &Lab,
    ca: (&Path, &Path),
    file: &str,
    subject: &str,
    extensions: &str,
) -> (PathBuf, PathBuf) {
    let key = lab.dir.join(format!("{file}.key"));
    let csr = lab.dir.join(format!("{file}.csr"));
    let cert = lab.dir.join(format!("{file}.crt"));
    let ext = lab.write(&format!("{file}.ext"), extensions);
    let run = |args: &[&std::ffi::OsStr]| {
        let status = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run(&[
        os("req"),
        os("-new"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:prime256v1"),
        os("-nodes"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
        os("-subj"),
        std::ffi::OsStr::new(subject),
    ]);
    run(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.0.as_os_str(),
        os("-CAkey"),
        ca.1.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("2"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (cert, key)
}

/// `curl` to an mTLS listener with an optional client certificate and extra arguments: the
/// HTTP status, or 0 when the handshake fails.
fn curl_client(node: SocketAddr, ca: &Path, client: Option<(&Path, &Path)>, extra: &[&str]) -> u16 {
    let resolve = format!("mtls.tls.test:{}:{}", node.port(), node.ip());
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    if let Some((cert, key)) = client {
        args.extend([
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
    }
    args.extend(extra);
    curl(&format!("https://mtls.tls.test:{}/", node.port()), &args).status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_verifies_clients_against_a_trust_store_or_passes_them_through() {
    let lab = Lab::new("mtls", 24);
    let backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (trusted_ca, good_cert, good_key) = client_ca(&lab, "trusted");
    let (rogue_ca, rogue_cert, rogue_key) = client_ca(&lab, "rogue");
    let (good, rogue) = (
        Some((good_cert.as_path(), good_key.as_path())),
        Some((rogue_cert.as_path(), rogue_key.as_path())),
    );
    // elbd's stand-in for S3: <data dir>/s3/BUCKET/KEY.
    let bucket = lab.dir.join("data/s3/bundles");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::copy(&trusted_ca, bucket.join("clients.pem")).unwrap();
    let create_store = |name: &str, key: &str| {
        aws.command(&[
            "elbv2",
            "create-trust-store",
            "--name",
            name,
            "--ca-certificates-bundle-s3-bucket",
            "bundles",
            "--ca-certificates-bundle-s3-key",
            key,
        ])
    };
    let store = Aws::json(create_store("clients", "clients.pem"));
    let store = &store["TrustStores"][0];
    assert_eq!(store["NumberOfCaCertificates"], 1);
    let store_arn = store["TrustStoreArn"].as_str().unwrap().to_owned();
    let missing = create_store("nothing", "absent.pem");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("CaCertificatesBundleNotFound"));
    // The stand-in's buckets are unversioned: an object's one version is `null`.
    let versioned = |version: &str| {
        aws.command(&[
            "elbv2",
            "create-trust-store",
            "--name",
            "versioned",
            "--ca-certificates-bundle-s3-bucket",
            "bundles",
            "--ca-certificates-bundle-s3-key",
            "clients.pem",
            "--ca-certificates-bundle-s3-object-version",
            version,
        ])
    };
    let other = versioned("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY");
    assert!(String::from_utf8_lossy(&other.stderr).contains("CaCertificatesBundleNotFound"));
    let null = Aws::json(versioned("null"));
    assert_eq!(null["TrustStores"][0]["NumberOfCaCertificates"], 1);

    let request = [
        "acm",
        "request-certificate",
        "--domain-name",
        "mtls.tls.test",
    ];
    let server_cert = arn(&aws.ok(&request));
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);
    let (lb_arn, vpc) = aws.load_balancer("mtls");
    let tg = aws.target_group("mtls", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &[lab.ip('a', 10).to_string()]);
    let verify = format!("Mode=verify,TrustStoreArn={store_arn}");
    let mutual = ["--mutual-authentication", &verify];
    let listener = aws.https_listener(&lb_arn, 8443, &server_cert, &tg, &mutual);
    assert_eq!(listener["MutualAuthentication"]["Mode"], "verify");
    let listener_arn = listener["ListenerArn"].as_str().unwrap().to_owned();
    let in_use = aws.err(&[
        "elbv2",
        "delete-trust-store",
        "--trust-store-arn",
        &store_arn,
    ]);
    assert!(in_use.contains("TrustStoreInUse"), "{in_use}");
    let node = lab.node('a', 8443);
    elbd.wait_until("the HTTPS listener", || TcpStream::connect(node).is_ok());
    elbd.wait_healthy(2);

    // Verify: no certificate, or one the trust store did not sign, is refused.
    assert_eq!(curl_client(node, &ca, None, &[]), 0);
    assert_eq!(curl_client(node, &ca, rogue, &[]), 0);
    assert_eq!(backend.count(), 0);
    assert_eq!(curl_client(node, &ca, good, &[]), 200);
    let seen = backend.hits.lock().unwrap().last().cloned().unwrap();
    let subject = &seen["x-amzn-mtls-clientcert-subject"];
    assert_eq!(subject, "CN=trusted client,O=elbd tests");
    assert_eq!(seen["x-amzn-mtls-clientcert-issuer"], "CN=trusted-ca");
    let validity = seen["x-amzn-mtls-clientcert-validity"].to_str().unwrap();
    assert!(validity.starts_with("NotBefore="), "{validity}");
    assert!(seen.contains_key("x-amzn-mtls-clientcert-serial-number"));
    assert!(!seen.contains_key("x-amzn-mtls-clientcert"));

    // A revocation list naming the good client's certificate refuses it; removing the list
    // lets it in again. The list and the bundle can be fetched where the API says.
    let crl = revoke(&lab, "trusted", &good_cert, "sha256");
    std::fs::copy(&crl, bucket.join("clients.crl")).unwrap();
    let content = "S3Bucket=bundles,S3Key=clients.crl,RevocationType=CRL";
    let store_args = ["--trust-store-arn", &store_arn];
    let added = aws.ok(&[
        &["elbv2", "add-trust-store-revocations"][..],
        &store_args,
        &["--revocation-contents", content],
    ]
    .concat());
    let added = &added["TrustStoreRevocations"][0];
    assert_eq!(added["NumberOfRevokedEntries"], 1, "{added}");
    let id = added["RevocationId"].to_string();
    let stores = aws.ok(&[
        "elbv2",
        "describe-trust-stores",
        "--trust-store-arns",
        &store_arn,
    ]);
    assert_eq!(stores["TrustStores"][0]["TotalRevokedEntries"], 1);
    let location = aws.ok(&[
        &["elbv2", "get-trust-store-revocation-content"][..],
        &store_args,
        &["--revocation-id", &id],
    ]
    .concat());
    let fetched = curl(location["Location"].as_str().unwrap(), &[]);
    assert!(
        fetched.body.starts_with("-----BEGIN X509 CRL-----"),
        "{}",
        fetched.body
    );
    let location = aws.ok(&[
        &["elbv2", "get-trust-store-ca-certificates-bundle"][..],
        &store_args,
    ]
    .concat());
    let fetched = curl(location["Location"].as_str().unwrap(), &[]);
    assert_eq!(fetched.body, std::fs::read_to_string(&trusted_ca).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let before = backend.count();
    assert_eq!(
        curl_client(node, &ca, good, &[]),
        0,
        "a revoked certificate got in"
    );
    assert_eq!(backend.count(), before);
    let bad_content = "S3Bucket=bundles,S3Key=clients.pem,RevocationType=CRL";
    let invalid = aws.err(
        &[
            &["elbv2", "add-trust-store-revocations"][..],
            &store_args,
            &["--revocation-contents", bad_content],
        ]
        .concat(),
    );
    assert!(invalid.contains("InvalidRevocationContent"), "{invalid}");
    // A bundle under which the list would no longer verify is refused while the list is there.
    std::fs::copy(&rogue_ca, bucket.join("rogue-ca.pem")).unwrap();
    let rebundle = aws.err(
        &[
            &["elbv2", "modify-trust-store"][..],
            &store_args,
            &["--ca-certificates-bundle-s3-bucket", "bundles"],
            &["--ca-certificates-bundle-s3-key", "rogue-ca.pem"],
        ]
        .concat(),
    );
    assert!(rebundle.contains("would no longer apply"), "{rebundle}");
    // A list another CA signed, or a second list of the same CA, is refused too.
    std::fs::copy(
        revoke(&lab, "rogue", &rogue_cert, "sha256"),
        bucket.join("rogue.crl"),
    )
    .unwrap();
    // A SHA-1 list the handshake could not verify would lock out all of its CA's clients.
    std::fs::copy(
        revoke(&lab, "trusted", &good_cert, "sha1"),
        bucket.join("sha1.crl"),
    )
    .unwrap();
    for (file, why) in [
        ("rogue.crl", "not signed by a CA of this trust store"),
        ("sha1.crl", "incorrect algorithm"),
        ("clients.crl", "already has a revocation list"),
    ] {
        let content = format!("S3Bucket=bundles,S3Key={file},RevocationType=CRL");
        let refused = aws.err(
            &[
                &["elbv2", "add-trust-store-revocations"][..],
                &store_args,
                &["--revocation-contents", &content],
            ]
            .concat(),
        );
        assert!(
            refused.contains("InvalidRevocationContent") && refused.contains(why),
            "{refused}"
        );
    }
    aws.ok(&[
        &["elbv2", "remove-trust-store-revocations"][..],
        &store_args,
        &["--revocation-ids", &id],
    ]
    .concat());
    let gone = aws.err(
        &[
            &["elbv2", "describe-trust-store-revocations"][..],
            &store_args,
            &["--revocation-ids", &id],
        ]
        .concat(),
    );
    assert!(gone.contains("RevocationIdNotFound"), "{gone}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(curl_client(node, &ca, good, &[]), 200);

    // Passthrough: any certificate (or none) passes, and the chain is handed to the target.
    let modify = |mode: &str| {
        let mode = format!("Mode={mode}");
        let args = ["elbv2", "modify-listener", "--listener-arn", &listener_arn];
        aws.ok(&[&args[..], &["--mutual-authentication", &mode]].concat());
        std::thread::sleep(Duration::from_millis(200));
    };
    modify("passthrough");
    assert_eq!(curl_client(node, &ca, rogue, &[]), 200);
    let seen = backend.hits.lock().unwrap().last().cloned().unwrap();
    let chain = seen["x-amzn-mtls-clientcert"].to_str().unwrap();
    assert!(
        chain.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{chain}"
    );
    // A client cannot forge the headers.
    let forge = ["-H", "X-Amzn-Mtls-Clientcert-Subject: CN=admin"];
    assert_eq!(curl_client(node, &ca, None, &forge), 200);
    let seen = backend.hits.lock().unwrap().last().cloned().unwrap();
    assert!(!seen.contains_key("x-amzn-mtls-clientcert-subject"));
    modify("off");
    aws.ok(&[
        "elbv2",
        "delete-trust-store",
        "--trust-store-arn",
        &store_arn,
    ]);
}

/// IAM server certificates: uploaded with `aws iam`, presented by an HTTPS listener that names
/// the IAM ARN, listed, and not deletable while in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_server_certificates_are_served_by_https_listeners() {
    let lab = Lab::new("iam", 32);
    let _backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (cert, key) = self_signed(&lab, "iam-site", "iam.tls.test");
    let (body, key_arg) = (
        format!("file://{}", cert.display()),
        format!("file://{}", key.display()),
    );
    let uploaded = aws.ok(&[
        "iam",
        "upload-server-certificate",
        "--server-certificate-name",
        "site",
        "--path",
        "/web/",
        "--certificate-body",
        &body,
        "--private-key",
        &key_arg,
    ]);
    let meta = &uploaded["ServerCertificateMetadata"];
    let iam_arn = meta["Arn"].as_str().unwrap().to_owned();
    assert_eq!(
        iam_arn,
        "arn:aws:iam::123456789012:server-certificate/web/site"
    );
    assert!(
        meta["ServerCertificateId"]
            .as_str()
            .unwrap()
            .starts_with("ASCA")
    );
    let again = aws.err(&[
        "iam",
        "upload-server-certificate",
        "--server-certificate-name",
        "site",
        "--certificate-body",
        &body,
        "--private-key",
        &key_arg,
    ]);
    assert!(again.contains("EntityAlreadyExists"), "{again}");

    let (lb_arn, vpc) = aws.load_balancer("iam");
    let tg = aws.target_group("iam", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &[lab.ip('a', 10).to_string()]);
    aws.https_listener(&lb_arn, 8443, &iam_arn, &tg, &[]);
    let node = lab.node('a', 8443);
    elbd.wait_until("the HTTPS listener", || TcpStream::connect(node).is_ok());
    elbd.wait_healthy(2);
    assert_eq!(served_subject(node, "iam.tls.test"), "CN=iam.tls.test");
    assert_eq!(curl_https(node, "iam.tls.test", &cert), "2 200");

    let in_use = aws.err(&[
        "iam",
        "delete-server-certificate",
        "--server-certificate-name",
        "site",
    ]);
    assert!(in_use.contains("DeleteConflict"), "{in_use}");
    let listed = aws.ok(&["iam", "list-server-certificates", "--path-prefix", "/web/"]);
    assert_eq!(
        listed["ServerCertificateMetadataList"][0]["Arn"],
        iam_arn.as_str()
    );
    let got = aws.ok(&[
        "iam",
        "get-server-certificate",
        "--server-certificate-name",
        "site",
    ]);
    let got_body = got["ServerCertificate"]["CertificateBody"]
        .as_str()
        .unwrap();
    assert_eq!(
        got_body.trim(),
        std::fs::read_to_string(&cert).unwrap().trim()
    );
    let missing = aws.err(&[
        "iam",
        "get-server-certificate",
        "--server-certificate-name",
        "nope",
    ]);
    assert!(missing.contains("NoSuchEntity"), "{missing}");
}

/// A CRL, signed by the CA `client_ca(lab, ca)` made with digest `md`, that revokes `cert`.
fn revoke(lab: &Lab, ca: &str, cert: &Path, md: &str) -> PathBuf {
    let dir = lab.dir.join(format!("{ca}-{md}-crl"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    let config = dir.join("ca.cnf");
    std::fs::write(
        &config,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\ncrlnumber = {0}/crlnumber\n\
             default_md = {md}\ndefault_crl_days = 30\n",
            dir.display()
        ),
    )
    .unwrap();
    let crl = dir.join("crl.pem");
    let (ca_cert, ca_key) = (
        lab.dir.join(format!("{ca}.crt")),
        lab.dir.join(format!("{ca}.key")),
    );
    for action in [
        vec!["-revoke", cert.to_str().unwrap()],
        vec!["-gencrl", "-out", crl.to_str().unwrap()],
    ] {
        let status = Command::new("openssl")
            .arg("ca")
            .arg("-config")
            .arg(&config)
            .arg("-keyfile")
            .arg(&ca_key)
            .arg("-cert")
            .arg(&ca_cert)
            .args(action)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl ca");
    }
    crl
}

/// `openssl s_server -www` on `addr`: a TLS target answering every GET with a status page.
pub(crate) fn tls_target(lab: &Lab, addr: SocketAddr) -> ProcessBackend {
    let (cert, key) = self_signed(lab, "target", "target.internal");
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-www", "-quiet", "-accept", &addr.to_string()])
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key);
    ProcessBackend::spawn(command, addr)
}

#[test]
fn https_target_groups_are_checked_and_reached_over_tls() {
    let lab = Lab::new("tls-targets", 25);
    let target = SocketAddr::from((lab.ip('a', 10), 9443));
    let _server = tls_target(&lab, target);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb_arn, vpc) = aws.load_balancer("tls-targets");
    let tg = aws.ok(&[
        "elbv2",
        "create-target-group",
        "--name",
        "tls-targets",
        "--protocol",
        "HTTPS",
        "--port",
        "9443",
        "--vpc-id",
        &vpc,
        "--target-type",
        "ip",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
    ]);
    let tg = &tg["TargetGroups"][0];
    assert_eq!(
        tg["HealthCheckProtocol"], "HTTPS",
        "checks speak the group's protocol"
    );
    let tg_arn = tg["TargetGroupArn"].as_str().unwrap().to_owned();
    aws.register(&tg_arn, &[target.ip().to_string()]);
    aws.forward_listener(&lb_arn, 8080, &tg_arn);
    aws.ok(&[
        "elbv2",
        "wait",
        "target-in-service",
        "--target-group-arn",
        &tg_arn,
    ]);
    let node = lab.node('a', 8080);
    elbd.wait_until("the listener", || TcpStream::connect(node).is_ok());
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{node}/")])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("s_server"), "the TLS target answered: {body}");
}
