//! The opening handshake (RFC 6455 §4): the accept computation, every
//! requirement the server checks (§4.2.1) and the status it answers with,
//! the request-head scanner and its limits, and the client side (§4.1).

use std::collections::HashSet;

use wschat::http::{HeadLimits, HeadScanner, HttpError, Request};
use wschat::ws::handshake::{
    ClientHandshakeError, ExtensionOffer, Upgrade, accept_key, accept_response, check_response,
    check_upgrade, client_request, client_request_offering,
};
use wschat::ws::mask::MaskSource;

// §1.3's example key and the accept value the RFC gives for it, and
// header lines → a head.
mod support;
use support::{ACCEPT, KEY, head};

/// The request of §1.3, as header lines.
fn rfc_lines() -> Vec<String> {
    vec![
        "GET /chat HTTP/1.1".into(),
        "Host: server.example.com".into(),
        "Upgrade: websocket".into(),
        "Connection: Upgrade".into(),
        format!("Sec-WebSocket-Key: {KEY}"),
        "Origin: http://example.com".into(),
        "Sec-WebSocket-Version: 13".into(),
    ]
}

/// The §1.3 request with the header named `name` (case-insensitively)
/// removed, and `extra` lines added.
fn request_with(without: &[&str], extra: &[&str]) -> Vec<u8> {
    let mut lines: Vec<String> = rfc_lines()
        .into_iter()
        .filter(|line| {
            !without.iter().any(|name| {
                line.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
        })
        .collect();
    lines.extend(extra.iter().map(|s| s.to_string()));
    head(&lines)
}

fn check(head: &[u8]) -> Result<Upgrade, HttpError> {
    let request = Request::parse(head, &HeadLimits::default())?;
    check_upgrade(&request)
}

fn status(head: &[u8]) -> u16 {
    match check(head) {
        Ok(_) => 101,
        Err(e) => e.status(),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

// ---------------------------------------------------------------------------
// The accept value.

#[test]
fn rfc_sample_key_gives_rfc_accept() {
    assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
    let upgrade = check(&head(&rfc_lines())).unwrap();
    assert_eq!(upgrade.accept, ACCEPT);
    assert_eq!(upgrade.path, "/chat");
    assert_eq!(upgrade.host, "server.example.com");
    assert_eq!(upgrade.origin.as_deref(), Some("http://example.com"));
    let response = accept_response(&upgrade, None);
    assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(contains(
        &response,
        &format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")
    ));
    assert_eq!(check_response(&response, ACCEPT), Ok(()));
}

// ---------------------------------------------------------------------------
// §4.2.1, one requirement at a time.

#[test]
fn only_get_is_accepted_405() {
    for method in ["POST", "HEAD", "PUT", "DELETE", "OPTIONS", "get"] {
        let mut lines = rfc_lines();
        lines[0] = format!("{method} /chat HTTP/1.1");
        let err = check(&head(&lines)).unwrap_err();
        assert_eq!(err, HttpError::MethodNotAllowed, "{method}");
        assert_eq!(err.status(), 405);
        assert!(contains(&err.response(), "Allow: GET, HEAD\r\n"));
    }
}

#[test]
fn http_1_0_is_400() {
    let mut lines = rfc_lines();
    lines[0] = "GET /chat HTTP/1.0".into();
    assert_eq!(status(&head(&lines)), 400);
}

#[test]
fn missing_or_duplicated_host_is_400() {
    assert_eq!(status(&request_with(&["host"], &[])), 400);
    assert_eq!(status(&request_with(&[], &["Host: other.example"])), 400);
}

#[test]
fn missing_or_duplicated_upgrade_is_400() {
    assert_eq!(status(&request_with(&["upgrade"], &[])), 400);
    assert_eq!(status(&request_with(&[], &["Upgrade: websocket"])), 400);
}

#[test]
fn upgrade_not_websocket_is_400() {
    for value in ["h2c", "websockets", "web socket", "", "TLS/1.0"] {
        let req = request_with(&["upgrade"], &[&format!("Upgrade: {value}")]);
        assert_eq!(status(&req), 400, "{value:?}");
    }
}

#[test]
fn connection_without_upgrade_token_is_400() {
    for value in ["keep-alive", "close", "upgraded", "up-grade", ""] {
        let req = request_with(&["connection"], &[&format!("Connection: {value}")]);
        assert_eq!(status(&req), 400, "{value:?}");
    }
    let req = request_with(&["connection"], &[]);
    assert_eq!(status(&req), 400, "no Connection header");
}

#[test]
fn connection_with_upgrade_among_other_tokens_is_accepted() {
    // Firefox sends "keep-alive, Upgrade".
    for value in [
        "keep-alive, Upgrade",
        "Upgrade, keep-alive",
        "keep-alive,upgrade",
        " UPGRADE ",
    ] {
        let req = request_with(&["connection"], &[&format!("Connection: {value}")]);
        assert_eq!(status(&req), 101, "{value:?}");
    }
    // The token may also come in a second Connection header.
    let req = request_with(
        &["connection"],
        &["Connection: keep-alive", "Connection: Upgrade"],
    );
    assert_eq!(status(&req), 101);
}

#[test]
fn missing_duplicated_or_malformed_key_is_400() {
    assert_eq!(status(&request_with(&["sec-websocket-key"], &[])), 400);
    assert_eq!(
        status(&request_with(
            &[],
            &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]
        )),
        400
    );
    for key in [
        "",
        "AAAAAAAAAAAAAAAAAAAA",         // 15 bytes
        "AAAAAAAAAAAAAAAAAAAAAAA=",     // 17 bytes
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 21 bytes
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ", // unpadded
    ] {
        let req = request_with(
            &["sec-websocket-key"],
            &[&format!("Sec-WebSocket-Key: {key}")],
        );
        assert_eq!(status(&req), 400, "{key:?}");
    }
}

#[test]
fn version_other_than_13_is_426_with_version_header() {
    for version in ["8", "12", "14", "", "13, 8"] {
        let req = request_with(
            &["sec-websocket-version"],
            &[&format!("Sec-WebSocket-Version: {version}")],
        );
        let err = check(&req).unwrap_err();
        assert_eq!(err.status(), 426, "{version:?}");
        let response = err.response();
        assert!(response.starts_with(b"HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(contains(&response, "\r\nSec-WebSocket-Version: 13\r\n"));
    }
    // Missing altogether: also 426 (§4.2.2: tell the client what we speak).
    let err = check(&request_with(&["sec-websocket-version"], &[])).unwrap_err();
    assert_eq!(err.status(), 426);
    assert!(contains(
        &err.response(),
        "\r\nSec-WebSocket-Version: 13\r\n"
    ));
    // Duplicated: 400.
    assert_eq!(
        status(&request_with(&[], &["Sec-WebSocket-Version: 13"])),
        400
    );
}

#[test]
fn body_on_upgrade_is_400() {
    for extra in [
        "Content-Length: 5",
        "Content-Length: x",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: identity",
    ] {
        assert_eq!(status(&request_with(&[], &[extra])), 400, "{extra}");
    }
    // An explicit empty body is no body, however the zero is written.
    assert_eq!(status(&request_with(&[], &["Content-Length: 0"])), 101);
    assert_eq!(status(&request_with(&[], &["Content-Length: 00"])), 101);
}

#[test]
fn header_names_and_tokens_are_case_insensitive() {
    let lines: Vec<String> = [
        "GET /chat HTTP/1.1",
        "HOST: server.example.com",
        "upgrade: WebSocket",
        "CONNECTION: UpGrAdE",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        "SEC-WEBSOCKET-VERSION: 13",
    ]
    .map(String::from)
    .to_vec();
    let upgrade = check(&head(&lines)).unwrap();
    assert_eq!(upgrade.accept, ACCEPT);
    // Duplicates are found whatever their case.
    let req = request_with(&[], &["host: again.example"]);
    assert_eq!(status(&req), 400);
    let req = request_with(&[], &["sec-WEBSOCKET-key: AAAAAAAAAAAAAAAAAAAAAA=="]);
    assert_eq!(status(&req), 400);
}

#[test]
fn header_values_are_trimmed() {
    let req = request_with(
        &["sec-websocket-key", "upgrade"],
        &[
            "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t",
            "Upgrade:websocket",
        ],
    );
    assert_eq!(check(&req).unwrap().accept, ACCEPT);
}

#[test]
fn response_never_names_an_extension_or_subprotocol() {
    let req = request_with(
        &[],
        &[
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Protocol: chat, superchat",
        ],
    );
    let upgrade = check(&req).unwrap();
    let response = accept_response(&upgrade, None);
    assert!(!contains(&response, "Sec-WebSocket-Extensions"));
    assert!(!contains(&response, "Sec-WebSocket-Protocol"));
    assert!(!contains(&response, "permessage-deflate"));
    assert!(!contains(&response, "chat"));
    assert_eq!(check_response(&response, ACCEPT), Ok(()));
}

#[test]
fn malformed_heads_are_400() {
    for bad in [
        &b"GET\r\n\r\n"[..],
        b"GET /chat HTTP/1.1\r\nHost server\r\n\r\n",
        b"GET /chat HTTP/2.0\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost: x\r\n", // incomplete
    ] {
        let err = Request::parse(bad, &HeadLimits::default()).unwrap_err();
        assert_eq!(err.status(), 400, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn every_error_response_is_well_formed() {
    for err in [
        HttpError::BadRequest("why"),
        HttpError::Forbidden("origin".into()),
        HttpError::NotFound,
        HttpError::MethodNotAllowed,
        HttpError::RequestTimeout,
        HttpError::UpgradeRequired("version"),
        HttpError::HeadersTooLarge("big"),
        HttpError::ServiceUnavailable("busy"),
    ] {
        let response = err.response();
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut slots);
        let body_at = match parsed.parse(&response) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{err}: {other:?}"),
        };
        assert_eq!(parsed.code, Some(err.status()));
        assert_eq!(parsed.reason, Some(err.reason_phrase()));
        let content_length: usize = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(response.len() - body_at, content_length, "{err}");
        assert!(contains(&response, "\r\nConnection: close\r\n"));
    }
}

// ---------------------------------------------------------------------------
// The head scanner and the head limits.

#[test]
fn head_fed_byte_by_byte_ends_exactly_at_the_blank_line() {
    let limits = HeadLimits::default();
    for (name, request) in [
        ("crlf", head(&rfc_lines())),
        (
            "bare lf",
            head(&rfc_lines())
                .into_iter()
                .filter(|&b| b != b'\r')
                .collect(),
        ),
    ] {
        // Frame bytes already follow the head in the same stream.
        let mut stream = request.clone();
        stream.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4, b'\n', b'\n', b'\r', b'\n', 0]);
        let mut scanner = HeadScanner::default();
        let mut found = None;
        for i in 1..=stream.len() {
            match scanner.find_end(&stream[..i], &limits).unwrap() {
                None => assert!(i < request.len(), "{name}: missed the end at {i}"),
                Some(end) => {
                    assert_eq!((i, end), (request.len(), request.len()), "{name}");
                    found = Some(end);
                    break;
                }
            }
        }
        assert_eq!(found, Some(request.len()), "{name}");
        // Whole, or with the following bytes, it is the same end.
        for whole in [&request[..], &stream[..]] {
            let end = HeadScanner::default().find_end(whole, &limits).unwrap();
            assert_eq!(end, Some(request.len()), "{name}");
        }
        let parsed = Request::parse(&request, &limits).unwrap();
        assert_eq!(check_upgrade(&parsed).unwrap().accept, ACCEPT);
    }
}

#[test]
fn blank_line_split_across_reads_is_found() {
    let request = head(&rfc_lines());
    let limits = HeadLimits::default();
    for cut in 1..request.len() {
        let mut scanner = HeadScanner::default();
        assert_eq!(
            scanner.find_end(&request[..cut], &limits),
            Ok(None),
            "cut {cut}"
        );
        assert_eq!(
            scanner.find_end(&request, &limits),
            Ok(Some(request.len())),
            "cut {cut}"
        );
    }
}

#[test]
fn head_over_max_head_is_431() {
    let limits = HeadLimits::default();
    // A head that never ends: refused as soon as max_head bytes are in.
    let mut endless = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    endless.resize(limits.max_head + 100, b'a');
    let mut scanner = HeadScanner::default();
    for i in 1..=endless.len() {
        match scanner.find_end(&endless[..i], &limits) {
            Ok(None) => assert!(i < limits.max_head, "not refused at {i}"),
            Ok(Some(end)) => panic!("found an end at {end}"),
            Err(e) => {
                assert_eq!(i, limits.max_head);
                assert_eq!(e.status(), 431);
                break;
            }
        }
    }
    // A head that ends just past the limit, arriving in one read.
    let mut long = rfc_lines();
    long.push(format!("X-Filler: {}", "a".repeat(limits.max_head)));
    let long = head(&long);
    let err = HeadScanner::default().find_end(&long, &limits).unwrap_err();
    assert_eq!(err.status(), 431);
    assert!(
        err.response()
            .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    );
    // Exactly at the limit is fine.
    let mut exact = rfc_lines();
    let base = head(&exact).len();
    exact.push(format!(
        "X-Filler: {}",
        "a".repeat(limits.max_head - base - 12)
    ));
    let exact = head(&exact);
    assert_eq!(exact.len(), limits.max_head);
    assert_eq!(
        HeadScanner::default().find_end(&exact, &limits),
        Ok(Some(limits.max_head))
    );
}

#[test]
fn too_many_headers_is_431() {
    let limits = HeadLimits::default();
    let base = rfc_lines().len() - 1; // minus the request line
    let mut lines = rfc_lines();
    lines.extend((base..limits.max_headers).map(|i| format!("X-H{i}: v")));
    assert_eq!(status(&head(&lines)), 101, "exactly max_headers");
    lines.push("X-One-Too-Many: v".into());
    let err = Request::parse(&head(&lines), &limits).unwrap_err();
    assert_eq!(err.status(), 431);
    // With a smaller cap too.
    let small = HeadLimits {
        max_head: 8192,
        max_headers: 3,
    };
    let err = Request::parse(&head(&rfc_lines()), &small).unwrap_err();
    assert_eq!(err, HttpError::HeadersTooLarge("too many headers"));
}

/// A head that arrives one byte at a time must cost linear work: each call
/// may look only at the bytes that are new since the last call (and the
/// three before them, where a blank line could have started). This is
/// shown by structure rather than by timing: after 8 KiB have been scanned
/// a byte at a time, a blank line is planted in the *old* bytes, which the
/// contract says never change. A scanner that went back over them would
/// find it; ours must not, while a blank line completed by the newest bytes
/// is found at once.
#[test]
fn bytewise_head_costs_linear_work() {
    let limits = HeadLimits {
        max_head: 64 * 1024,
        max_headers: 64,
    };
    let mut buf = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    buf.resize(8 * 1024, b'a');
    let mut scanner = HeadScanner::default();
    for i in 1..=buf.len() {
        assert_eq!(scanner.find_end(&buf[..i], &limits), Ok(None), "at {i}");
    }
    // Plant a blank line in bytes that were already scanned.
    buf[100..104].copy_from_slice(b"\r\n\r\n");
    buf[5000..5002].copy_from_slice(b"\n\n");
    let len = buf.len();
    buf[len - 4..].copy_from_slice(b"aaaa");
    buf.push(b'a');
    assert_eq!(
        scanner.find_end(&buf, &limits),
        Ok(None),
        "the scanner went back over bytes it had already seen"
    );
    // A blank line whose first bytes were seen in earlier calls is found.
    buf.extend_from_slice(b"\r\n\r");
    assert_eq!(scanner.find_end(&buf, &limits), Ok(None));
    buf.push(b'\n');
    assert_eq!(scanner.find_end(&buf, &limits), Ok(Some(buf.len())));
}

// ---------------------------------------------------------------------------
// The client side (§4.1).

#[test]
fn client_request_is_accepted_by_the_server_side() {
    let mut randomness = MaskSource::new();
    let request = client_request("127.0.0.1:9001", "/chat?room=a", &mut randomness);
    let limits = HeadLimits::default();
    let end = HeadScanner::default()
        .find_end(&request.bytes, &limits)
        .unwrap();
    assert_eq!(end, Some(request.bytes.len()));
    let parsed = Request::parse(&request.bytes, &limits).unwrap();
    assert_eq!(parsed.method, "GET");
    assert_eq!(parsed.version, 1);
    let upgrade = check_upgrade(&parsed).unwrap();
    assert_eq!(upgrade.path, "/chat?room=a");
    assert_eq!(upgrade.host, "127.0.0.1:9001");
    assert_eq!(upgrade.accept, request.expected_accept);
    // And the server's answer passes the client's check.
    let response = accept_response(&upgrade, None);
    assert_eq!(check_response(&response, &request.expected_accept), Ok(()));
}

#[test]
fn client_keys_differ_between_calls() {
    let mut randomness = MaskSource::new();
    let accepts: HashSet<String> = (0..200)
        .map(|_| client_request("h:1", "/", &mut randomness).expected_accept)
        .collect();
    assert_eq!(accepts.len(), 200);
    // Separate sources too.
    let a = client_request("h:1", "/", &mut MaskSource::new());
    let b = client_request("h:1", "/", &mut MaskSource::new());
    assert_ne!(a.bytes, b.bytes);
}

fn response(lines: &[&str]) -> Vec<u8> {
    head(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

const GOOD: [&str; 4] = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
];

#[test]
fn check_response_accepts_a_good_answer() {
    assert_eq!(check_response(&response(&GOOD), ACCEPT), Ok(()));
    // Names and tokens in any case.
    let lower = [
        "HTTP/1.1 101 Switching Protocols",
        "UPGRADE: WebSocket",
        "connection: upgrade",
        "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    ];
    assert_eq!(check_response(&response(&lower), ACCEPT), Ok(()));
}

#[test]
fn check_response_rejects_a_wrong_accept() {
    assert_eq!(
        check_response(&response(&GOOD), "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(ClientHandshakeError::BadAccept)
    );
    let mut lines = GOOD.to_vec();
    lines.pop();
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::BadAccept),
        "missing accept"
    );
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::BadAccept),
        "duplicated accept"
    );
    // The accept value is case-sensitive base64.
    let mut lines = GOOD.to_vec();
    lines[3] = "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=";
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::BadAccept)
    );
}

#[test]
fn check_response_rejects_a_non_101_status() {
    for (line, code) in [
        ("HTTP/1.1 200 OK", 200),
        ("HTTP/1.1 400 Bad Request", 400),
        ("HTTP/1.1 426 Upgrade Required", 426),
        ("HTTP/1.1 100 Continue", 100),
    ] {
        let mut lines = GOOD.to_vec();
        lines[0] = line;
        assert_eq!(
            check_response(&response(&lines), ACCEPT),
            Err(ClientHandshakeError::Status(code))
        );
    }
}

#[test]
fn check_response_rejects_missing_upgrade_or_connection() {
    for drop in [1, 2] {
        let mut lines = GOOD.to_vec();
        lines.remove(drop);
        assert_eq!(
            check_response(&response(&lines), ACCEPT),
            Err(ClientHandshakeError::NotUpgraded)
        );
    }
    let mut lines = GOOD.to_vec();
    lines[1] = "Upgrade: h2c";
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::NotUpgraded)
    );
}

#[test]
fn check_response_rejects_an_extension_or_subprotocol_we_did_not_offer() {
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Extensions: permessage-deflate");
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::Unrequested("extension"))
    );
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Protocol: chat");
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::Unrequested("subprotocol"))
    );
    // Even an empty one.
    let mut lines = GOOD.to_vec();
    lines.push("sec-websocket-protocol:");
    assert_eq!(
        check_response(&response(&lines), ACCEPT),
        Err(ClientHandshakeError::Unrequested("subprotocol"))
    );
}

#[test]
fn check_response_rejects_malformed_heads() {
    for bad in [
        &b""[..],
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
        b"SIP/2.0 101 Nope\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
    ] {
        assert_eq!(
            check_response(bad, ACCEPT),
            Err(ClientHandshakeError::Malformed),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

// ---------------------------------------------------------------------------
// Extensions (§9.1): the offers, the 101 that names one, the client's check.

#[test]
fn every_extensions_header_and_every_offer_is_parsed_in_order() {
    let req = request_with(
        &[],
        &[
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, foo",
            "Sec-WebSocket-Extensions: bar; baz=\"1\"",
        ],
    );
    let upgrade = check(&req).unwrap();
    assert_eq!(
        upgrade.extensions,
        [
            ExtensionOffer::new("permessage-deflate").param("client_max_window_bits", None),
            ExtensionOffer::new("foo"),
            ExtensionOffer::new("bar").param("baz", Some("1")),
        ]
    );
    // None offered: none parsed.
    assert!(check(&head(&rfc_lines())).unwrap().extensions.is_empty());
}

#[test]
fn a_malformed_extensions_header_is_400() {
    for bad in [
        "Sec-WebSocket-Extensions: permessage-deflate;",
        "Sec-WebSocket-Extensions: a b",
        "Sec-WebSocket-Extensions: ,",
    ] {
        let req = request_with(&[], &[bad]);
        assert_eq!(
            check(&req),
            Err(HttpError::BadRequest(
                "malformed Sec-WebSocket-Extensions header"
            )),
            "{bad}"
        );
        assert_eq!(status(&req), 400);
    }
}

#[test]
fn the_101_names_the_negotiated_extension_and_the_offering_client_accepts_it() {
    let offer = ExtensionOffer::new("permessage-deflate").param("client_max_window_bits", None);
    let request = client_request_offering("h:1", "/", Some(offer.clone()), &mut MaskSource::new());
    assert!(contains(
        &request.bytes,
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    ));
    let parsed = Request::parse(&request.bytes, &HeadLimits::default()).unwrap();
    let upgrade = check_upgrade(&parsed).unwrap();
    assert_eq!(upgrade.extensions, [offer]);
    let accepted = ExtensionOffer::new("permessage-deflate")
        .param("server_no_context_takeover", None)
        .param("client_max_window_bits", Some("10"));
    let response = accept_response(&upgrade, Some(&accepted));
    assert!(contains(
        &response,
        "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10\r\n"
    ));
    assert!(response.ends_with(b"\r\n\r\n"));
    assert_eq!(request.check_response(&response), Ok(Some(accepted)));
    // Not named: accepted without it.
    let plain = accept_response(&upgrade, None);
    assert_eq!(request.check_response(&plain), Ok(None));
    // A client that offered nothing fails the connection on it (§4.1).
    assert_eq!(
        check_response(&response, &request.expected_accept),
        Err(ClientHandshakeError::Unrequested("extension"))
    );
}

#[test]
fn a_101_naming_an_extension_not_offered_fails_the_connection() {
    let offer = ExtensionOffer::new("permessage-deflate");
    let mut request = client_request_offering("h:1", "/", Some(offer), &mut MaskSource::new());
    request.expected_accept = ACCEPT.to_owned();
    for named in [
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame",
        "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate",
        "Sec-WebSocket-Extensions: permessage-deflate, foo",
    ] {
        let mut lines = GOOD.to_vec();
        lines.push(named);
        assert_eq!(
            request.check_response(&response(&lines)),
            Err(ClientHandshakeError::Unrequested("extension")),
            "{named}"
        );
    }
    // Two headers (§11.3.2: at most one in a response).
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Extensions: permessage-deflate");
    lines.push("Sec-WebSocket-Extensions: permessage-deflate");
    assert_eq!(
        request.check_response(&response(&lines)),
        Err(ClientHandshakeError::Unrequested("extension"))
    );
    // Malformed.
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Extensions: permessage-deflate;");
    assert_eq!(
        request.check_response(&response(&lines)),
        Err(ClientHandshakeError::Malformed)
    );
    // The one offered, in another case, with parameters: accepted.
    let mut lines = GOOD.to_vec();
    lines.push("Sec-WebSocket-Extensions: PerMessage-Deflate; server_no_context_takeover");
    assert_eq!(
        request.check_response(&response(&lines)),
        Ok(Some(
            ExtensionOffer::new("PerMessage-Deflate").param("server_no_context_takeover", None)
        ))
    );
}
