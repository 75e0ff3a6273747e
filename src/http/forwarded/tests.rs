//! The walk from the right, `X-Forwarded-*`, and the origin a proxy's
//! client used.

use std::net::IpAddr;

use super::*;

fn request(headers: &[(&str, &str)]) -> Request {
    Request {
        method: "GET".into(),
        path: "/ws".into(),
        version: 1,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// 127.0.0.0/8 and 10.0.0.0/8 are the trusted proxies of these tests.
fn trusted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => [127, 10].contains(&v4.octets()[0]),
        IpAddr::V6(_) => false,
    }
}

fn read(headers: &[(&str, &str)]) -> Result<Forwarded, Malformed> {
    forwarded(&request(headers), trusted)
}

fn client(headers: &[(&str, &str)]) -> Option<Node> {
    read(headers)
        .unwrap_or_else(|e| panic!("{headers:?}: {e}"))
        .client
}

fn origin_of(headers: &[(&str, &str)]) -> Option<String> {
    read(headers)
        .unwrap_or_else(|e| panic!("{headers:?}: {e}"))
        .origin
}

fn ip(ip: &str) -> Option<Node> {
    Some(Node::Ip {
        ip: ip.parse().unwrap(),
        port: None,
    })
}

#[test]
fn no_header_names_no_client() {
    assert_eq!(read(&[("Host", "x")]), Ok(Forwarded::default()));
}

#[test]
fn x_forwarded_for_is_walked_from_the_right_past_trusted_addresses() {
    assert_eq!(
        client(&[("X-Forwarded-For", "203.0.113.7")]),
        ip("203.0.113.7")
    );
    // The client forged the left part; the trusted proxies appended the rest.
    assert_eq!(
        client(&[(
            "X-Forwarded-For",
            "198.51.100.1, 203.0.113.7, 10.1.1.1, 127.0.0.1"
        )]),
        ip("203.0.113.7")
    );
    // A forged trusted-looking address left of the client changes nothing.
    assert_eq!(
        client(&[("X-Forwarded-For", "127.0.0.1, 203.0.113.7")]),
        ip("203.0.113.7")
    );
    // Every node trusted: the left-most, the first proxy's report.
    assert_eq!(
        client(&[("X-Forwarded-For", "10.0.0.1, 127.0.0.1")]),
        ip("10.0.0.1")
    );
}

#[test]
fn several_lines_are_one_list_in_order() {
    let lines = [
        ("X-Forwarded-For", "198.51.100.1"),
        ("X-Forwarded-For", "203.0.113.7, 10.0.0.5"),
    ];
    assert_eq!(client(&lines), ip("203.0.113.7"));
    let lines = [
        ("Forwarded", "for=198.51.100.1"),
        ("Forwarded", "for=203.0.113.7, for=10.0.0.5"),
    ];
    assert_eq!(client(&lines), ip("203.0.113.7"));
}

#[test]
fn x_forwarded_for_takes_ports_brackets_and_unknown() {
    let node = |v: &str| client(&[("X-Forwarded-For", v)]);
    assert_eq!(
        node("203.0.113.7:4711"),
        Some(Node::Ip {
            ip: "203.0.113.7".parse().unwrap(),
            port: Some(4711)
        })
    );
    assert_eq!(node("2001:db8::1"), ip("2001:db8::1"));
    assert_eq!(node("[2001:db8::1]"), ip("2001:db8::1"));
    assert_eq!(
        node("[2001:db8::1]:4711"),
        Some(Node::Ip {
            ip: "2001:db8::1".parse().unwrap(),
            port: Some(4711)
        })
    );
    assert_eq!(node("unknown"), Some(Node::Unknown));
    assert_eq!(node(" , 203.0.113.7 ,"), ip("203.0.113.7"));
}

#[test]
fn unknown_and_obfuscated_nodes_stop_the_walk() {
    // What lies left of a hidden hop was sent by someone nobody vouches for.
    assert_eq!(
        client(&[("X-Forwarded-For", "203.0.113.7, unknown, 127.0.0.1")]),
        Some(Node::Unknown)
    );
    assert_eq!(
        client(&[("Forwarded", "for=203.0.113.7, for=_hidden, for=127.0.0.1")]),
        Some(Node::Obfuscated("_hidden".into()))
    );
    // So does a hop without `for`.
    assert_eq!(
        client(&[("Forwarded", "for=203.0.113.7, proto=https")]),
        Some(Node::Unknown)
    );
}

#[test]
fn forwarded_gives_ipv6_clients_with_ports() {
    assert_eq!(
        client(&[(
            "Forwarded",
            r#"for="[2001:db8:cafe::17]:4711", for=127.0.0.1"#
        )]),
        Some(Node::Ip {
            ip: "2001:db8:cafe::17".parse().unwrap(),
            port: Some(4711)
        })
    );
}

#[test]
fn forwarded_supersedes_the_x_forwarded_headers() {
    let headers = [
        ("X-Forwarded-For", "198.51.100.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "other.example"),
        ("Forwarded", "for=203.0.113.7"),
    ];
    assert_eq!(
        read(&headers),
        Ok(Forwarded {
            client: ip("203.0.113.7"),
            origin: None
        })
    );
}

#[test]
fn the_origin_comes_from_the_hop_that_names_the_client() {
    // The edge proxy saw https; the inner one spoke http to us.
    let headers = [(
        "Forwarded",
        r#"for=198.51.100.1;proto=http;host=forged.example, for=203.0.113.7;proto=https;host="chat.example.org", for=10.0.0.5;proto=http;host=inner"#,
    )];
    assert_eq!(
        read(&headers),
        Ok(Forwarded {
            client: ip("203.0.113.7"),
            origin: Some("https://chat.example.org".into())
        })
    );
    // A hop with only one of them gives no origin.
    assert_eq!(
        origin_of(&[("Forwarded", "for=203.0.113.7;proto=https")]),
        None
    );
}

#[test]
fn the_x_forwarded_origin_is_the_right_most_proto_and_host() {
    assert_eq!(
        origin_of(&[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "chat.example.org"),
        ]),
        Some("https://chat.example.org".into())
    );
    assert_eq!(
        origin_of(&[
            ("X-Forwarded-Proto", "http, https"),
            ("X-Forwarded-Host", "forged.example"),
            ("X-Forwarded-Host", "Chat.Example.org:8443"),
        ]),
        Some("https://chat.example.org:8443".into())
    );
    assert_eq!(origin_of(&[("X-Forwarded-Proto", "https")]), None);
    assert_eq!(origin_of(&[("X-Forwarded-Host", "chat.example.org")]), None);
}

#[test]
fn origins_are_serialized_as_browsers_send_them() {
    let origin = |proto: &str, host: &str| {
        origin_of(&[("X-Forwarded-Proto", proto), ("X-Forwarded-Host", host)])
    };
    assert_eq!(
        origin("https", "example.org:443"),
        Some("https://example.org".into())
    );
    assert_eq!(
        origin("http", "example.org:80"),
        Some("http://example.org".into())
    );
    assert_eq!(
        origin("http", "example.org:443"),
        Some("http://example.org:443".into())
    );
    assert_eq!(
        origin("HTTPS", "127.0.0.1:8443"),
        Some("https://127.0.0.1:8443".into())
    );
    assert_eq!(
        origin("https", "[2001:DB8::1]:8443"),
        Some("https://[2001:db8::1]:8443".into())
    );
    assert_eq!(origin("https", "[::1]"), Some("https://[::1]".into()));
    assert_eq!(
        origin("wss", "example.org"),
        Some("https://example.org".into())
    );
    assert_eq!(
        origin("ws", "example.org"),
        Some("http://example.org".into())
    );
}

#[test]
fn malformed_headers_are_refused_with_the_header_named() {
    for (headers, header) in [
        (
            vec![("X-Forwarded-For", "203.0.113.7, example.org")],
            "X-Forwarded-For",
        ),
        (
            vec![("X-Forwarded-For", "203.0.113.7; 10.0.0.1")],
            "X-Forwarded-For",
        ),
        (
            vec![("X-Forwarded-For", "203.0.113.999")],
            "X-Forwarded-For",
        ),
        (vec![("X-Forwarded-For", " , ")], "X-Forwarded-For"),
        (vec![("X-Forwarded-For", "_hidden")], "X-Forwarded-For"),
        (
            vec![("X-Forwarded-For", "203.0.113.7\u{1}")],
            "X-Forwarded-For",
        ),
        (
            vec![("Forwarded", "for=203.0.113.7;for=10.0.0.1")],
            "Forwarded",
        ),
        (vec![("Forwarded", "for=[::1]")], "Forwarded"),
        (vec![("Forwarded", "")], "Forwarded"),
        (
            vec![("Forwarded", "for=203.0.113.7;proto=ftp;host=x")],
            "Forwarded",
        ),
        (
            vec![("Forwarded", "for=203.0.113.7;proto=https;host=\"a/b\"")],
            "Forwarded",
        ),
        (
            vec![("X-Forwarded-Proto", "gopher"), ("X-Forwarded-Host", "x")],
            "X-Forwarded-Proto/Host",
        ),
        (vec![("X-Forwarded-Proto", " ")], "X-Forwarded-Proto"),
        (vec![("X-Forwarded-Host", ",")], "X-Forwarded-Host"),
    ] {
        let err = read(&headers).expect_err(&format!("{headers:?}"));
        assert_eq!(err.header, header, "{headers:?}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("malformed {header}: ")),
            "{err}"
        );
    }
}

#[test]
fn hosts_that_are_refused() {
    for host in [
        "",
        ":443",
        "a b",
        "example.org:",
        "example.org:99999",
        "example.org:+1",
        "example.org:443:1",
        "user@example.org",
        "example.org/path",
        "[::1",
        "[::1]x",
        "[not-v6]",
        "ex%41mple.org",
    ] {
        let got = read(&[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", host)]);
        assert!(got.is_err(), "{host:?}: {got:?}");
    }
}
