//! authenticate-oidc and authenticate-cognito actions against a real OpenID Connect provider
//! (the npm package oidc-provider, `oidc/provider.mjs`), laid out once as a generic provider
//! and once as Cognito; a `requests` session logs in through the ALB like a browser. Then
//! jwt-validation, with a key set the test script serves.

use std::net::SocketAddr;
use std::process::Command;

use crate::api::boto3;
use crate::harness::{Aws, Elbd, Lab, ProcessBackend, wait_listening};
use crate::tls::{self_signed, signed_by};

const POOL_ID: &str = "us-east-1_ElbdTest";
const CLIENT_ID: &str = "elbd-client";
// `+`, `/` and `=` must be form-encoded in the Basic credentials (RFC 6749 2.3.1).
const CLIENT_SECRET: &str = "s3cr3t+/=value";

/// A user logs in at the provider and reaches the target with the three `x-amzn-oidc-*`
/// headers, whose JWT verifies with the published key; the session cookie carries later
/// requests without the provider; deny answers 401, allow forwards without the headers, a
/// short session expires, an expired access token is refreshed with the refresh token; authenticate-cognito logs in through Cognito's layout; actions
/// AWS refuses are refused. A jwt-validation listener passes tokens signed by the key set's
/// keys with the claims asked for, refuses the rest with 401, and reads the set again for a
/// new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_through_an_openid_connect_provider_before_reaching_targets() {
    let lab = Lab::new("oidc", 58);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let oidc = SocketAddr::from((lab.ip('a', 61), 9443));
    let cognito = SocketAddr::from((lab.ip('a', 62), 9443));
    let target = SocketAddr::from((lab.ip('a', 63), 9080));
    let jwks = SocketAddr::from((lab.ip('a', 64), 9443));
    let node = lab.node('a', 8443);

    // The provider's certificate, from a CA only elbd is told of.
    let (ca, ca_key) = self_signed(&lab, "idp-ca", "elbd test identity providers");
    let sans = format!(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:{},IP:{},IP:{}\n",
        oidc.ip(),
        cognito.ip(),
        jwks.ip()
    );
    let (cert, key) = signed_by(&lab, (&ca, &ca_key), "idp", "/CN=idp", &sans);

    let settings = lab.settings().replacen(
        "[settings]\n",
        &format!(
            "[settings]\noidc_ca_file = \"{}\"\ncognito_endpoint = \"https://{cognito}\"\n\
             cognito_client_secrets = {{ \"{CLIENT_ID}\" = \"{CLIENT_SECRET}\" }}\n",
            ca.display()
        ),
        1,
    );
    let config = lab.write("elbd.toml", &settings);
    let _elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);

    let provider = format!("{}/tests/it/oidc/provider.mjs", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("node");
    command.arg(provider).arg(&cert).arg(&key).args([
        &oidc.to_string(),
        &cognito.to_string(),
        POOL_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        &format!("https://{node}/oauth2/idpresponse"),
    ]);
    let _provider = ProcessBackend::spawn(command, oidc);
    wait_listening(cognito, "the provider's Cognito layout");

    boto3(
        "oidc_login.py",
        &[
            &format!("http://{api}"),
            &node.to_string(),
            &target.to_string(),
            &oidc.to_string(),
            &cognito.to_string(),
            POOL_ID,
            CLIENT_ID,
            CLIENT_SECRET,
            &jwks.to_string(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );

    // `elbd explain` names the action that runs first, and the callback no rule decides.
    let aws = Aws::new(api);
    let lb = aws.ok(&["elbv2", "describe-load-balancers", "--names", "oidc-alb"]);
    let lb = lb["LoadBalancers"][0]["LoadBalancerArn"].as_str().unwrap();
    let listeners = aws.ok(&["elbv2", "describe-listeners", "--load-balancer-arn", lb]);
    let listener = |port: u16| {
        let all = listeners["Listeners"].as_array().unwrap();
        let found = all.iter().find(|l| l["Port"] == port).unwrap();
        found["ListenerArn"].as_str().unwrap().to_owned()
    };
    let explain = |listener: &str, path: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_elbd"))
            .args(["explain", "--api-url", &format!("http://{api}")])
            .args(["--listener-arn", listener, "--output", "json", "GET", path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let login = listener(node.port());
    let deny = explain(&login, "/deny/x");
    let guard = deny["guard"].as_str().unwrap();
    assert!(
        guard.contains(&format!("authenticate at https://{oidc}")),
        "{deny}"
    );
    assert!(guard.ends_with("without one: 401"), "{deny}");
    let callback = explain(&login, "/oauth2/idpresponse");
    assert_eq!(callback["callback"], true, "{callback}");
    let token = explain(&listener(node.port() + 1), "/api");
    assert!(
        token["guard"]
            .as_str()
            .unwrap()
            .starts_with("jwt-validation"),
        "{token}"
    );
}
