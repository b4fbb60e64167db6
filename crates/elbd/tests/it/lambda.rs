//! Lambda functions as targets: an ALB invokes them through the Lambda Invoke API at
//! `[settings] lambda_endpoint`, which the test's boto3 script serves itself.

use std::net::SocketAddr;

use crate::api::boto3;
use crate::harness::{Elbd, Lab};

/// boto3 makes `lambda` groups and curl goes through the ALB: the function's status,
/// headers (single and multi-value) and base64 body come back, the event has ALB's shape,
/// failures are 502 and a slow function a 504, bodies over 1 MB a 413, health checks judge
/// the function's status, the access log names each failure by ALB's reason code, and every
/// invocation is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_invokes_lambda_functions_through_the_invoke_api() {
    let lab = Lab::new("lambda", 66);
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
    let data = lab.dir.join("data");
    let node = lab.node('a', 8080).to_string();
    let api = format!("http://{api}");
    boto3(
        "lambda_targets.py",
        &[&api, &invoke.to_string(), &node, data.to_str().unwrap()],
    );
}

/// The config file declares a `lambda` group like any other (no protocol or port, the
/// function by ARN, checks on): the ALB it declares invokes the function, and checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_group_declared_in_the_config_file_is_invoked_and_checked() {
    let lab = Lab::new("lambda-file", 30);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let invoke = SocketAddr::from((lab.ip('a', 60), 9300));
    let settings = lab.settings().replacen(
        "[settings]\n",
        &format!("[settings]\nlambda_endpoint = \"http://{invoke}\"\n"),
        1,
    );
    let declared = r#"
[[load_balancer]]
name = "fn-file"
availability_zones = ["us-east-1a", "us-east-1b"]

[[load_balancer.listener]]
protocol = "HTTP"
port = 8080
default_action = { forward = "fn-file-tg" }

[[target_group]]
name = "fn-file-tg"
target_type = "lambda"
targets = ["arn:aws:lambda:us-east-1:123456789012:function:echo"]
health_check = { enabled = true, path = "/health", interval_seconds = 5, timeout_seconds = 2 }
"#;
    let config = lab.write("elbd.toml", &format!("{settings}{declared}"));
    let _elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    boto3(
        "lambda_targets.py",
        &[
            "file",
            &invoke.to_string(),
            &lab.node('a', 8080).to_string(),
        ],
    );
}
