//! Lambda functions as targets: an ALB invokes them through the Lambda Invoke API at
//! `[settings] lambda_endpoint`, which the test's boto3 script serves itself.

use std::net::SocketAddr;
use std::process::Command;

use crate::harness::{Elbd, Lab, venv};

/// boto3 makes `lambda` groups and curl goes through the ALB: the function's status,
/// headers (single and multi-value) and base64 body come back, the event has ALB's shape,
/// failures are 502 and a slow function a 504, bodies over 1 MB a 413, health checks judge
/// the function's status, the access log names each failure by ALB's reason code, and every
/// invocation is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_invokes_lambda_functions_through_the_invoke_api() {
    let lab = Lab::new("lambda", 9);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let invoke = SocketAddr::from((lab.ip('a', 60), 9300));
    let lambda = format!(
        "[settings]\nlambda_endpoint = \"http://{invoke}\"\n\
         lambda_access_key_id = \"AKIDLAMBDA\"\nlambda_secret_access_key = \"lambda-secret\"\n\
         access_log_interval_seconds = 1\n"
    );
    let settings = lab.settings().replacen("[settings]\n", &lambda, 1);
    let config = lab.write("elbd.toml", &settings);
    let _elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/lambda_targets.py");
    let out = Command::new(venv().join("bin/python"))
        .args([script, &format!("http://{api}"), &invoke.to_string()])
        .arg(lab.node('a', 8080).to_string())
        .arg(lab.dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
