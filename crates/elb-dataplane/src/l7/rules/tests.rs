use super::*;
use elb_model::QueryPair;

/// AWS's documented wildcard examples, and the edges around them.
#[test]
fn wildcards_as_aws_documents_them() {
    let cases: &[(&str, bool, &str, bool)] = &[
        ("*.example.com", true, "test.example.com", true),
        ("*.example.com", true, "example.com", false),
        ("*.example.com", true, "A.EXAMPLE.COM", true),
        ("example.com", true, "EXAMPLE.com", true),
        ("www.example.?om", true, "www.example.com", true),
        ("/img/*", false, "/img/a/b.png", true),
        ("/img/*", false, "/img", false),
        ("/img/*", false, "/IMG/a", false),
        ("/api/v?/users", false, "/api/v2/users", true),
        ("/api/v?/users", false, "/api/v22/users", false),
        ("*", false, "", true),
        ("a*b*c", false, "aXXbYYbZZc", true),
        ("a*b*c", false, "aXXbYYbZZ", false),
        ("\\*literal", false, "*literal", true),
        ("\\*literal", false, "xliteral", false),
    ];
    for (pattern, ci, text, want) in cases {
        assert_eq!(
            Glob::new(pattern, *ci).matches(text),
            *want,
            "{pattern:?} vs {text:?}"
        );
    }
}

fn view<'a>(headers: &'a HeaderMap, path: &'a str, query: Option<&'a str>) -> RequestView<'a> {
    RequestView {
        method: "GET",
        host: Some("api.example.com"),
        authority: Some("api.example.com:8443"),
        path,
        query,
        headers,
        peer: "127.0.9.9".parse().unwrap(),
    }
}

#[test]
fn every_condition_type() {
    let mut headers = HeaderMap::new();
    headers.append("user-agent", "curl/8".parse().unwrap());
    headers.append("x-env", "staging".parse().unwrap());
    headers.append("x-env", "canary".parse().unwrap());
    let req = view(&headers, "/api/users", Some("version=v2&debug=1"));
    let m = |c: Condition| Matcher::compile(&c).matches(&req);
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(m(Condition::HostHeader {
        values: s(&["*.example.com"]),
        regex_values: Vec::new(),
    }));
    assert!(!m(Condition::HostHeader {
        values: s(&["www.example.com"]),
        regex_values: Vec::new(),
    }));
    assert!(m(Condition::PathPattern {
        values: s(&["/img/*", "/api/*"]),
        regex_values: Vec::new(),
    }));
    assert!(m(Condition::HttpHeader {
        name: "User-Agent".into(),
        values: s(&["*CURL*"]),
        regex_values: Vec::new(),
    }));
    assert!(
        m(Condition::HttpHeader {
            name: "x-env".into(),
            values: s(&["canary"]),
            regex_values: Vec::new(),
        }),
        "each occurrence"
    );
    assert!(!m(Condition::HttpHeader {
        name: "x-missing".into(),
        values: s(&["*"]),
        regex_values: Vec::new(),
    }));
    assert!(m(Condition::HttpRequestMethod {
        values: s(&["POST", "GET"])
    }));
    assert!(
        !m(Condition::HttpRequestMethod {
            values: s(&["get"])
        }),
        "methods are case-sensitive"
    );
    let pair = |k: Option<&str>, v: &str| QueryPair {
        key: k.map(str::to_owned),
        value: v.to_owned(),
    };
    assert!(m(Condition::QueryString {
        values: vec![pair(Some("VERSION"), "v*")]
    }));
    assert!(
        m(Condition::QueryString {
            values: vec![pair(None, "1")]
        }),
        "a value under any key"
    );
    assert!(!m(Condition::QueryString {
        values: vec![pair(Some("version"), "v3")]
    }));
    assert!(m(Condition::SourceIp {
        values: vec!["127.0.9.0/24".parse().unwrap()],
        ip_address_type: None,
    }));
    assert!(!m(Condition::SourceIp {
        values: vec!["10.0.0.0/8".parse().unwrap()],
        ip_address_type: None,
    }));
}

#[test]
fn regular_expressions_are_found_anywhere_and_see_the_host_with_its_port() {
    let mut headers = HeaderMap::new();
    headers.append("x-env", "staging-7".parse().unwrap());
    let req = view(&headers, "/api/v2/users", None);
    let m = |c: Condition| Matcher::compile(&c).matches(&req);
    let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let host = |v: &[&str]| Condition::HostHeader {
        values: Vec::new(),
        regex_values: r(v),
    };
    let path = |v: &[&str]| Condition::PathPattern {
        values: Vec::new(),
        regex_values: r(v),
    };
    assert!(
        m(host(&["^api\\.example\\.com:8443$"])),
        "the port is there"
    );
    assert!(!m(host(&["^api\\.example\\.com$"])));
    assert!(m(path(&["/v[0-9]+/"])), "found anywhere");
    assert!(!m(path(&["^/v[0-9]+/"])));
    assert!(!m(path(&["/API/"])), "case-sensitive");
    assert!(m(path(&["(?i)/API/"])));
    assert!(m(Condition::HttpHeader {
        name: "x-env".into(),
        values: Vec::new(),
        regex_values: r(&["^(staging|canary)-[0-9]$"]),
    }));
}

#[test]
fn the_first_matching_rule_in_priority_order_wins() {
    let headers = HeaderMap::new();
    let path = |p: &str| {
        vec![Matcher::compile(&Condition::PathPattern {
            values: vec![p.into()],
            regex_values: Vec::new(),
        })]
    };
    let rules = vec![(path("/api/admin/*"), "admin"), (path("/api/*"), "api")];
    assert_eq!(
        first_match(&rules, &view(&headers, "/api/admin/x", None)),
        Some(&"admin")
    );
    assert_eq!(
        first_match(&rules, &view(&headers, "/api/x", None)),
        Some(&"api")
    );
    assert_eq!(first_match(&rules, &view(&headers, "/other", None)), None);
}
