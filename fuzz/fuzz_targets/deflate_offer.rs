//! permessage-deflate's negotiation on arbitrary bytes. The input, cut at
//! each `\n`, is one or more `Sec-WebSocket-Extensions` values, parsed in
//! order with `parse_extensions` (RFC 6455 §9.1) into one list of offers,
//! as `check_upgrade` does; the offers go to `Params::parse`,
//! `server_accept` and `client_accept`. What they do is checked against a
//! model of RFC 7692 §7.1 written below from the RFC alone (it calls
//! nothing in `deflate/params.rs`):
//! - nothing panics, whatever the bytes;
//! - `Params::parse` accepts exactly the offers the model accepts, with the
//!   same values: the name `permessage-deflate` (§7); only the four
//!   parameters of §7.1, each at most once (§7.1: an unknown or repeated
//!   parameter declines the offer); `server_no_context_takeover` and
//!   `client_no_context_takeover` without a value (§7.1.1.1, §7.1.1.2);
//!   `server_max_window_bits` with a value (§7.1.2.1),
//!   `client_max_window_bits` with or without one (§7.1.2.2); a value a
//!   decimal 8–15 without leading zeros (§7.1.2.1);
//! - `server_accept` answers each offer given alone exactly when the model
//!   accepts it and it does not ask for `server_max_window_bits=8` (which
//!   zlib cannot honour; §7.1 lets a server decline a configuration it does
//!   not support), and answers the whole list with the answer to the first
//!   such offer, or not at all when there is none (§5.1: the client's
//!   order is its preference) — so an offer the model declines is never
//!   the one chosen;
//! - the answer names permessage-deflate with `server_no_context_takeover`
//!   and `client_no_context_takeover` (§7.1.1.1 and §7.1.1.2 let a server
//!   add both), `server_max_window_bits` exactly when the chosen offer has
//!   it, with its value (§7.1.2.1: the same or smaller), and never
//!   `client_max_window_bits` (§7.1.2.2: the server reads any window), each
//!   once; the agreed window is that value, or 15;
//! - the answer written with `Display` parses back with `parse_extensions`
//!   to one element equal to it, which `client_accept` takes with both
//!   no-context-takeover flags and `client_window == Some(15)`;
//! - `client_accept`, given each offer as if it were a server's answer,
//!   accepts exactly what the model accepts as an answer (the same rules,
//!   and `client_max_window_bits` with a value: §7.1.2.2, the server answers
//!   it with the window it allows), with the window the model says.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::deflate::params::{Params, client_accept, server_accept};
use wschat::ws::handshake::{ExtensionOffer, parse_extensions};

// --- the model of RFC 7692 §7.1 ---------------------------------------------

/// One acceptable element's parameters, as the model reads them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// §7.1.2.1: "a decimal integer value without leading zeroes between 8 to
/// 15, inclusive". Written as the list of the eight spellings there are.
fn window_value(value: &str) -> Option<u8> {
    const SPELLINGS: [&str; 8] = ["8", "9", "10", "11", "12", "13", "14", "15"];
    SPELLINGS
        .iter()
        .position(|s| *s == value)
        .map(|i| 8 + i as u8)
}

/// Does the element name permessage-deflate with parameters §7.1 allows?
/// Names are compared ASCII case-insensitively, as tokens of an HTTP
/// header are (the extension's name likewise, RFC 6455 §9.1).
fn model(element: &ExtensionOffer) -> Option<Model> {
    if !element.name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut m = Model::default();
    for (name, value) in &element.params {
        let lower = name.to_ascii_lowercase();
        // §7.1: "multiple extension parameters with the same name".
        if seen.contains(&lower) {
            return None;
        }
        seen.push(lower.clone());
        match (lower.as_str(), value.as_deref()) {
            // §7.1.1.1, §7.1.1.2: these have no value.
            ("server_no_context_takeover", None) => m.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => m.client_no_context_takeover = true,
            // §7.1.2.1: a value is required.
            ("server_max_window_bits", Some(v)) => {
                m.server_max_window_bits = Some(window_value(v)?)
            }
            // §7.1.2.2: a value is optional.
            ("client_max_window_bits", None) => m.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                m.client_max_window_bits = Some(Some(window_value(v)?))
            }
            // A value where none is allowed, none where one is needed, or
            // a parameter not defined for permessage-deflate.
            _ => return None,
        }
    }
    Some(m)
}

/// The offers a server honours: acceptable, and not asking it for a
/// window zlib cannot compress raw DEFLATE with (8 bits).
fn honourable(element: &ExtensionOffer) -> Option<Model> {
    model(element).filter(|m| m.server_max_window_bits != Some(8))
}

/// The window a client may compress with, from an answer the model
/// accepts: `None` when the answer cannot be accepted (a
/// `client_max_window_bits` without a value), else `Some(window)`, where
/// `window` is `None` for 8 bits, which zlib cannot compress raw DEFLATE
/// with (the client then sends uncompressed).
fn client_window(m: &Model) -> Option<Option<u8>> {
    match m.client_max_window_bits {
        None => Some(Some(15)),
        Some(None) => None,
        Some(Some(8)) => Some(None),
        Some(Some(bits)) => Some(Some(bits)),
    }
}

// --- the checks --------------------------------------------------------------

/// The answer `server_accept` gave is the one the model expects for `chosen`.
fn check_answer(answer: &ExtensionOffer, window: u8, chosen: &Model) {
    assert_eq!(answer.name, "permessage-deflate");
    let count = |name: &str| answer.params.iter().filter(|(n, _)| n == name).count();
    let value = |name: &str| {
        answer
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(count("server_no_context_takeover"), 1, "{answer}");
    assert_eq!(value("server_no_context_takeover"), Some(None), "{answer}");
    assert_eq!(count("client_no_context_takeover"), 1, "{answer}");
    assert_eq!(value("client_no_context_takeover"), Some(None), "{answer}");
    assert_eq!(count("client_max_window_bits"), 0, "{answer}");
    match chosen.server_max_window_bits {
        Some(bits) => {
            assert_eq!(count("server_max_window_bits"), 1, "{answer}");
            assert_eq!(
                value("server_max_window_bits"),
                Some(Some(bits.to_string())),
                "{answer}"
            );
            assert_eq!(window, bits);
        }
        None => {
            assert_eq!(count("server_max_window_bits"), 0, "{answer}");
            assert_eq!(window, 15);
        }
    }
    assert_eq!(answer.params.len(), 2 + count("server_max_window_bits"));

    // What the 101 says is what the client reads, and accepts.
    let written = answer.to_string();
    let mut back = Vec::new();
    assert_eq!(
        parse_extensions(written.as_bytes(), &mut back),
        Ok(()),
        "{written}"
    );
    assert_eq!(back.as_slice(), std::slice::from_ref(answer), "{written}");
    let agreed = client_accept(&back[0]).unwrap_or_else(|e| panic!("{written}: {e:?}"));
    assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
    assert_eq!(agreed.client_window, Some(15), "{written}");
}

fn check_offers(offers: &[ExtensionOffer]) {
    for offer in offers {
        let modelled = model(offer);
        // Params::parse agrees with the model, values included.
        match (Params::parse(offer), &modelled) {
            (Ok(p), Some(m)) => {
                assert_eq!(p.server_no_context_takeover, m.server_no_context_takeover);
                assert_eq!(p.client_no_context_takeover, m.client_no_context_takeover);
                assert_eq!(p.server_max_window_bits, m.server_max_window_bits);
                assert_eq!(p.client_max_window_bits, m.client_max_window_bits);
            }
            (Err(_), None) => {}
            (parsed, m) => panic!("{offer}: Params::parse says {parsed:?}, the model {m:?}"),
        }
        // Alone, an offer is answered exactly when the model honours it.
        let alone = server_accept(std::slice::from_ref(offer));
        match (&alone, honourable(offer)) {
            (Some((answer, agreed)), Some(m)) => check_answer(answer, agreed.server_window, &m),
            (None, None) => {}
            (a, m) => panic!("{offer}: server_accept says {a:?}, the model {m:?}"),
        }
        // As a server's answer, to a client that offered
        // `client_max_window_bits` without a value.
        let as_answer = client_accept(offer);
        match (as_answer, modelled.as_ref().and_then(client_window)) {
            (Ok(agreed), Some(window)) => {
                let m = modelled.as_ref().unwrap();
                assert_eq!(agreed.client_window, window, "{offer}");
                assert_eq!(
                    agreed.server_no_context_takeover,
                    m.server_no_context_takeover
                );
                assert_eq!(
                    agreed.client_no_context_takeover,
                    m.client_no_context_takeover
                );
            }
            (Err(_), None) => {}
            (a, w) => panic!("{offer}: client_accept says {a:?}, the model {w:?}"),
        }
    }

    // The whole list: the first honourable offer's answer, or none. That
    // offer is also the first `Params::parse` accepts without a
    // `server_max_window_bits` below 9.
    let first = offers.iter().find_map(honourable);
    let index = offers.iter().position(|o| honourable(o).is_some());
    let by_params = offers.iter().position(|o| {
        Params::parse(o).is_ok_and(|p| p.server_max_window_bits.is_none_or(|bits| bits >= 9))
    });
    assert_eq!(index, by_params);
    match (server_accept(offers), first) {
        (Some((answer, agreed)), Some(m)) => {
            check_answer(&answer, agreed.server_window, &m);
            // And no earlier offer could have been chosen: the list up to
            // the chosen one is declined.
            let index = index.unwrap();
            assert!(server_accept(&offers[..index]).is_none());
            let (alone, _) = server_accept(&offers[index..=index]).unwrap();
            assert_eq!(alone, answer);
        }
        (None, None) => {}
        (a, m) => panic!("{offers:?}: server_accept says {a:?}, the model {m:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut offers = Vec::new();
    let mut well_formed = true;
    for value in data.split(|&b| b == b'\n') {
        if parse_extensions(value, &mut offers).is_err() {
            // `check_upgrade` refuses such a request (400); the elements
            // parsed before the error are offers all the same, checked
            // below, but nothing after it is read.
            well_formed = false;
            break;
        }
    }
    // Every element the parser produced is made of tokens (§9.1), and
    // writes back to itself.
    for offer in &offers {
        let written = offer.to_string();
        let mut back = Vec::new();
        assert_eq!(
            parse_extensions(written.as_bytes(), &mut back),
            Ok(()),
            "{written}"
        );
        assert_eq!(back.as_slice(), std::slice::from_ref(offer), "{written}");
    }
    if well_formed {
        assert!(!offers.is_empty());
    }
    check_offers(&offers);
});
