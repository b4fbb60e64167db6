//! The config file as a door to the store: SIGHUP applies it whole or not at all.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hyper::StatusCode;

use crate::harness::{Backend, Elbd, Lab, client, get};

fn config(lab: &Lab, listener: bool, extra: &str) -> String {
    let listener = if listener {
        "[[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = { forward = \"tg\" }\n"
    } else {
        ""
    };
    format!(
        "{}\n\
         [[load_balancer]]\nname = \"reload\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         {listener}\
         [[target_group]]\nname = \"tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{}:9001\"]\n\
         {extra}",
        lab.settings(),
        lab.ip('a', 10)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_listener_closes_it_on_every_node_and_lets_requests_finish() {
    let lab = Lab::new("remove-listener", 4);
    let _slow = Backend::start(
        SocketAddr::from((lab.ip('a', 10), 9001)),
        Duration::from_millis(1500),
    )
    .await;
    let path = lab.write("elbd.toml", &config(&lab, true, ""));
    let nodes = [lab.node('a', 8080), lab.node('b', 8080)];
    let mut elbd = Elbd::start(&lab, &path, &[], &nodes);

    let client = client();
    let in_flight = tokio::spawn(async move { get(&client, nodes[0]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    lab.write("elbd.toml", &config(&lab, false, ""));
    elbd.signal("HUP");
    let took = elbd.wait_until("port 8080 to close on both nodes", || {
        nodes.iter().all(|n| TcpStream::connect(n).is_err())
    });
    eprintln!("listener removal: port 8080 closed on both nodes after {took:?}");

    let reply = in_flight.await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the request in flight was cut: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_refused_and_changes_nothing() {
    let lab = Lab::new("broken", 5);
    let _backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let good = config(&lab, true, "");
    let path = lab.write("elbd.toml", &good);
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &path, &[], &[node]);
    let client = client();

    let broken = [
        (
            "bad port",
            good.replace("port = 8080", "port = 80800"),
            "port",
        ),
        (
            "zero port",
            good.replace("port = 8080", "port = 0"),
            "load_balancer[0].listener[0]",
        ),
        (
            "unknown target group",
            good.replace("forward = \"tg\"", "forward = \"nope\""),
            "no target group is named 'nope'",
        ),
        (
            "duplicate name",
            format!("{good}[[target_group]]\nname = \"tg\"\nprotocol = \"HTTP\"\nport = 1\n"),
            "target_group[1].name: target group 'tg' is declared twice",
        ),
        (
            "unknown key",
            good.replace("name = \"reload\"", "name = \"reload\"\ncolour = \"red\""),
            "unknown field `colour`",
        ),
        (
            "new listener and a bad attribute",
            config(
                &lab,
                true,
                "[target_group.attributes]\n\"stickiness.enabled\" = \"maybe\"\n",
            )
            .replace("port = 8080", "port = 8081"),
            "Invalid value 'maybe' for attribute 'stickiness.enabled'",
        ),
    ];
    for (what, text, expected) in &broken {
        let file = lab.write("broken.toml", text);
        let refused = Elbd::refuse(&lab, &file);
        assert!(
            refused.contains(expected),
            "{what}: start-up error does not say {expected:?}:\n{refused}"
        );
        assert!(
            refused.contains("broken.toml"),
            "{what}: the error does not name the file:\n{refused}"
        );

        lab.write("elbd.toml", text);
        let refusals = elbd.logs().matches("config refused").count();
        elbd.signal("HUP");
        let log = elbd.log.clone();
        elbd.wait_until("the reload to be refused", || {
            std::fs::read_to_string(&log)
                .unwrap()
                .matches("config refused")
                .count()
                > refusals
        });
        assert!(
            elbd.logs().contains(expected),
            "{what}: reload error does not say {expected:?}"
        );
        assert_eq!(
            get(&client, node).await.status,
            StatusCode::OK,
            "{what} changed the running state"
        );
        assert!(
            TcpStream::connect(lab.node('a', 8081)).is_err(),
            "{what}: half a file was applied"
        );
    }
}
