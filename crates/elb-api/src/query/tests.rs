use super::*;

fn params(body: &str) -> Params {
    Params::decode(body.as_bytes()).unwrap()
}

#[test]
fn lists_and_structs() {
    let p = params(
        "Action=X&Subnets.member.2=b&Subnets.member.1=a&Tags.member.1.Key=env&Tags.member.1.Value=t\
         &Tags.member.2.Key=k",
    );
    assert_eq!(p.list("Subnets.member").unwrap(), ["a", "b"]);
    let tags = p.structs("Tags.member").unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0].required("Key").unwrap(), "env");
    assert_eq!(tags[1].optional("Value"), None);
    assert_eq!(p.required("Action").unwrap(), "X");
    p.finish().unwrap();
}

#[test]
fn gaps_bad_indices_and_leftovers_are_refused() {
    let gap = params("Subnets.member.1=a&Subnets.member.3=c");
    assert!(
        gap.list("Subnets.member")
            .unwrap_err()
            .message
            .contains("no member 2")
    );
    assert!(params("L.member.0=a").list("L.member").is_err());
    assert!(params("L.member.01=a").list("L.member").is_err());
    let unread = params("Action=X&Colour=red");
    unread.required("Action").unwrap();
    assert!(unread.finish().unwrap_err().message.contains("Colour"));
}

#[test]
fn malformed_bodies_are_refused() {
    assert!(Params::decode(b"Action=X&\xff\xfe").is_err());
    assert!(Params::decode(b"Action=X&Action=Y").is_err());
    let p = params("Port=80800&Flag=yes");
    assert!(p.int("Port", 1, 65535).is_err());
    assert!(p.bool("Flag").is_err());
}

/// Random bodies never panic the decoder or its accessors, and every error is a 400.
#[test]
fn decoder_survives_random_input() {
    let mut rng = fastrand::Rng::with_seed(7);
    let pieces = [
        "Action", "=", "&", ".member.", ".1", ".2", "Key", "%", "%ZZ", "%e2%82", "L", "0", "9",
        "\u{fffd}", "==",
    ];
    for _ in 0..20_000 {
        let mut body = String::new();
        for _ in 0..rng.usize(0..12) {
            body.push_str(pieces[rng.usize(..pieces.len())]);
        }
        let mut bytes = body.into_bytes();
        if rng.u8(..) < 8 {
            bytes.push(rng.u8(..));
        }
        match Params::decode(&bytes) {
            Ok(p) => {
                for prefix in ["L", "L.member", "Action", "Key"] {
                    if let Err(e) = p.list(prefix) {
                        assert_eq!(e.status, 400);
                    }
                    if let Ok(structs) = p.structs(prefix) {
                        for s in structs {
                            let _ = s.finish();
                        }
                    }
                }
                let _ = p.int("Action", 0, 10);
                let _ = p.finish();
            }
            Err(e) => assert_eq!(e.status, 400),
        }
    }
}

#[test]
fn empty_lists_as_botocore_sends_them_decode_as_empty() {
    let p = params("Action=DescribeLoadBalancers&Names=&Tags=");
    assert!(p.list("Names.member").unwrap().is_empty());
    assert!(p.structs("Tags.member").unwrap().is_empty());
    p.required("Action").unwrap();
    p.finish().unwrap();
    // A list given a value without members is not an empty list.
    let p = params("Names=web");
    assert!(p.list("Names.member").unwrap().is_empty());
    assert!(p.finish().is_err());
}
