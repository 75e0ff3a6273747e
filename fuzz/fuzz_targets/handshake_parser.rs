//! The opening handshake on arbitrary bytes: `HeadScanner` (fed in a
//! chunking derived from the input), `Request::parse`, `check_upgrade` and
//! the client's `check_response`. Nothing may panic, and:
//! - the scanner finds exactly the first blank line, whatever the chunking,
//!   or reports 431 exactly when the head cannot fit in `max_head`;
//! - every refusal is one of the statuses the server may send, and its
//!   response is a well-formed HTTP response with that status;
//! - an accepted upgrade yields the accept value of its key, and our own
//!   101 response passes the client's check with it, and fails it with any
//!   other accept value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::http::{HeadLimits, HeadScanner, HttpError, Request};
use wschat::ws::handshake::{accept_key, accept_response, check_response, check_upgrade};

/// The first position just after a blank line (`\n\n` or `\n\r\n`).
fn naive_end(bytes: &[u8]) -> Option<usize> {
    (2..=bytes.len()).find(|&e| bytes[..e].ends_with(b"\n\n") || bytes[..e].ends_with(b"\n\r\n"))
}

fn check_http_error(error: &HttpError) {
    assert!(matches!(error.status(), 400 | 405 | 426 | 431), "{error}");
    let response = error.response();
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut slots);
    let status = parsed.parse(&response).expect("our error response parses");
    assert!(status.is_complete());
    assert_eq!(parsed.code, Some(error.status()));
    let len: usize = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
        .unwrap();
    assert_eq!(response.len(), status.unwrap() + len);
}

const HEADS: [usize; 4] = [16, 128, 1024, 8192];
const COUNTS: [usize; 4] = [0, 1, 4, 64];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let limits = HeadLimits {
        max_head: HEADS[usize::from(ctl & 3)],
        max_headers: COUNTS[usize::from((ctl >> 2) & 3)],
    };
    let chunk = 1 + usize::from(ctl >> 4);

    // The scanner, fed `chunk` bytes at a time.
    let mut scanner = HeadScanner::default();
    let mut buf = Vec::new();
    let mut outcome = Ok(None);
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        outcome = scanner.find_end(&buf, &limits);
        if !matches!(outcome, Ok(None)) {
            break;
        }
    }
    let expected = match naive_end(input) {
        Some(end) if end <= limits.max_head => Ok(Some(end)),
        _ if input.len() >= limits.max_head => Err(431),
        _ => Ok(None),
    };
    assert_eq!(outcome.clone().map_err(|e| e.status()), expected);

    // The client's check never panics on arbitrary bytes.
    let _ = check_response(input, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    let head = match outcome {
        Ok(Some(end)) => &input[..end],
        Err(e) => {
            check_http_error(&e);
            return;
        }
        // Parse what there is anyway: it must be refused or be complete.
        Ok(None) => input,
    };
    let request = match Request::parse(head, &limits) {
        Ok(request) => request,
        Err(e) => {
            check_http_error(&e);
            return;
        }
    };
    let _ = request.wants_websocket();
    match check_upgrade(&request) {
        Err(e) => check_http_error(&e),
        Ok(upgrade) => {
            assert_eq!(request.method, "GET");
            assert_eq!(request.version, 1);
            let key = request.single("sec-websocket-key", "dup").unwrap().unwrap();
            assert_eq!(upgrade.accept, accept_key(key));
            let response = accept_response(&upgrade, None);
            let mut scanner = HeadScanner::default();
            assert_eq!(
                scanner.find_end(&response, &HeadLimits::default()),
                Ok(Some(response.len()))
            );
            assert_eq!(check_response(&response, &upgrade.accept), Ok(()));
            assert!(check_response(&response, "dGhlIHNhbXBsZSBub25jZQ==").is_err());
        }
    }
});
