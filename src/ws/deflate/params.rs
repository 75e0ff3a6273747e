//! permessage-deflate's parameters (RFC 7692 §7.1): which offers a server
//! accepts and what it answers, and which answers a client accepts.
//!
//! Pure functions over parsed `Sec-WebSocket-Extensions` elements
//! ([`ExtensionOffer`]); the header's grammar is `handshake/offer.rs`'s.
//!
//! RFC 7692 §5 (negotiation), §7.1 (the four parameters).

use crate::ws::handshake::ExtensionOffer;

/// The extension's name in `Sec-WebSocket-Extensions` (RFC 7692 §7).
pub const NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The LZ77 window sizes a compressor may be limited to (§7.1.2): the
/// base-2 logarithm of the window, 8 to 15.
pub const WINDOW_BITS: std::ops::RangeInclusive<u8> = 8..=15;

/// The smallest window zlib compresses raw DEFLATE with: asked for 8, it
/// uses 9 (RFC 7692 §7.1.2.1 notes this), which would break a limit of 8.
pub const SMALLEST_COMPRESSOR_WINDOW: u8 = 9;

/// One offer's parameters, each at most once (§7.1: an offer with a
/// parameter twice, an unknown one, or a bad value is declined).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N` (§7.1.2.1): a value is required.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits` (§7.1.2.2): in an offer, with or without a
    /// value (`Some(None)`: the client can limit its window if asked); in a
    /// response, always with one.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why an element's parameters are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadParams {
    NotDeflate,
    Unknown(String),
    Duplicate(&'static str),
    /// A parameter that takes no value was given one, or one that needs a
    /// value has none, or the value is not a window size 8–15.
    BadValue(&'static str),
}

impl Params {
    /// Read an element naming permessage-deflate (§7.1). Values are
    /// compared as decimal integers without leading zeros (§7.1.2.1:
    /// `1*DIGIT` in 8–15; a leading zero is refused rather than guessed at).
    pub fn parse(element: &ExtensionOffer) -> Result<Params, BadParams> {
        if !element.is(NAME) {
            return Err(BadParams::NotDeflate);
        }
        let mut params = Params::default();
        for (name, value) in &element.params {
            let value = value.as_deref();
            let name = name.as_str();
            if name.eq_ignore_ascii_case(SERVER_NO_CONTEXT_TAKEOVER) {
                flag(
                    &mut params.server_no_context_takeover,
                    SERVER_NO_CONTEXT_TAKEOVER,
                    value,
                )?;
            } else if name.eq_ignore_ascii_case(CLIENT_NO_CONTEXT_TAKEOVER) {
                flag(
                    &mut params.client_no_context_takeover,
                    CLIENT_NO_CONTEXT_TAKEOVER,
                    value,
                )?;
            } else if name.eq_ignore_ascii_case(SERVER_MAX_WINDOW_BITS) {
                if params.server_max_window_bits.is_some() {
                    return Err(BadParams::Duplicate(SERVER_MAX_WINDOW_BITS));
                }
                let bits = value.ok_or(BadParams::BadValue(SERVER_MAX_WINDOW_BITS))?;
                params.server_max_window_bits = Some(window_bits(bits, SERVER_MAX_WINDOW_BITS)?);
            } else if name.eq_ignore_ascii_case(CLIENT_MAX_WINDOW_BITS) {
                if params.client_max_window_bits.is_some() {
                    return Err(BadParams::Duplicate(CLIENT_MAX_WINDOW_BITS));
                }
                let bits = value
                    .map(|v| window_bits(v, CLIENT_MAX_WINDOW_BITS))
                    .transpose()?;
                params.client_max_window_bits = Some(bits);
            } else {
                return Err(BadParams::Unknown(name.to_owned()));
            }
        }
        Ok(params)
    }
}

fn flag(seen: &mut bool, name: &'static str, value: Option<&str>) -> Result<(), BadParams> {
    if *seen {
        return Err(BadParams::Duplicate(name));
    }
    if value.is_some() {
        return Err(BadParams::BadValue(name));
    }
    *seen = true;
    Ok(())
}

fn window_bits(value: &str, name: &'static str) -> Result<u8, BadParams> {
    let bits = match value.as_bytes() {
        [d @ b'8'..=b'9'] => d - b'0',
        [b'1', d @ b'0'..=b'5'] => 10 + (d - b'0'),
        _ => return Err(BadParams::BadValue(name)),
    };
    debug_assert!(WINDOW_BITS.contains(&bits));
    Ok(bits)
}

/// What a server agreed to, for one connection: every message is
/// compressed and decompressed on its own (no context takeover either
/// way), and what the server sends uses a window of `server_window` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerAgreement {
    pub server_window: u8,
}

/// The server's choice among a request's offers (§5.1): the first offer of
/// permessage-deflate it can honour, and the response element naming it.
///
/// The response always carries `server_no_context_takeover` and
/// `client_no_context_takeover` (§7.1.1.1 and §7.1.1.2 let a server add
/// both to any offer), so that no connection keeps a DEFLATE context
/// between messages and one compressed form of a broadcast serves every
/// receiver of the same window size. It echoes a `server_max_window_bits`
/// it was asked for (§7.1.2.1 requires the same or a smaller value) and
/// never names `client_max_window_bits`: the server inflates with the
/// largest window, which reads whatever the client compressed with.
///
/// An offer with an unknown or repeated parameter or a bad value is
/// declined (§7.1), and so is `server_max_window_bits=8`, which zlib
/// cannot honour ([`SMALLEST_COMPRESSOR_WINDOW`]): the next offer is tried.
pub fn server_accept(offers: &[ExtensionOffer]) -> Option<(ExtensionOffer, ServerAgreement)> {
    offers.iter().find_map(|offer| {
        let params = Params::parse(offer).ok()?;
        let server_window = params.server_max_window_bits.unwrap_or(15);
        if server_window < SMALLEST_COMPRESSOR_WINDOW {
            return None;
        }
        let mut response = ExtensionOffer {
            name: NAME.to_owned(),
            params: Vec::with_capacity(3),
        }
        .param(SERVER_NO_CONTEXT_TAKEOVER, None)
        .param(CLIENT_NO_CONTEXT_TAKEOVER, None);
        if let Some(bits) = params.server_max_window_bits {
            const DIGITS: [&str; 8] = ["8", "9", "10", "11", "12", "13", "14", "15"];
            let bits = DIGITS[usize::from(bits - 8)];
            response = response.param(SERVER_MAX_WINDOW_BITS, Some(bits));
        }
        Some((response, ServerAgreement { server_window }))
    })
}

/// The offer a client makes (§7.1.2.2): permessage-deflate, able to limit
/// its own window if the server asks, asking nothing of the server.
pub fn client_offer() -> ExtensionOffer {
    ExtensionOffer::new(NAME).param(CLIENT_MAX_WINDOW_BITS, None)
}

/// What a client agreed to, from the server's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAgreement {
    /// The server compresses each message on its own: the client's
    /// decompressor may be reset between messages.
    pub server_no_context_takeover: bool,
    /// The client must compress each message on its own.
    pub client_no_context_takeover: bool,
    /// The window the client may compress with; `None` when it is below
    /// what zlib can honour (8), and the client then sends uncompressed.
    pub client_window: Option<u8>,
}

/// Check a server's response to [`client_offer`] (§5.1, §7.1): a response
/// with a parameter the client cannot accept fails the connection.
/// `client_max_window_bits` needs a value here (§7.1.2.2); the client
/// offered it without one, so any value 8–15 is acceptable.
pub fn client_accept(response: &ExtensionOffer) -> Result<ClientAgreement, BadParams> {
    let params = Params::parse(response)?;
    let client_window = match params.client_max_window_bits {
        None => Some(15),
        Some(None) => return Err(BadParams::BadValue(CLIENT_MAX_WINDOW_BITS)),
        Some(Some(bits)) if bits < SMALLEST_COMPRESSOR_WINDOW => None,
        Some(Some(bits)) => Some(bits),
    };
    Ok(ClientAgreement {
        server_no_context_takeover: params.server_no_context_takeover,
        client_no_context_takeover: params.client_no_context_takeover,
        client_window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::handshake::parse_extensions;

    fn offers(headers: &[&str]) -> Vec<ExtensionOffer> {
        let mut out = Vec::new();
        for header in headers {
            parse_extensions(header.as_bytes(), &mut out).unwrap();
        }
        out
    }

    fn accept(headers: &[&str]) -> Option<(String, u8)> {
        server_accept(&offers(headers)).map(|(r, a)| (r.to_string(), a.server_window))
    }

    const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn every_parameter_parses() {
        let o = offers(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=\"12\"",
        ]);
        assert_eq!(
            Params::parse(&o[0]),
            Ok(Params {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(Some(12)),
            })
        );
        let o = offers(&["PerMessage-Deflate; Client_Max_Window_Bits"]);
        assert_eq!(
            Params::parse(&o[0]).unwrap().client_max_window_bits,
            Some(None)
        );
    }

    #[test]
    fn window_values_are_8_to_15_without_leading_zeros() {
        for bits in 8..=15u8 {
            let o = offers(&[&format!(
                "permessage-deflate; server_max_window_bits={bits}"
            )]);
            assert_eq!(
                Params::parse(&o[0]).unwrap().server_max_window_bits,
                Some(bits)
            );
        }
        for bad in ["7", "16", "0", "08", "010", "1", "-9", "9a", "a"] {
            for name in [SERVER_MAX_WINDOW_BITS, CLIENT_MAX_WINDOW_BITS] {
                let o = offers(&[&format!("permessage-deflate; {name}={bad}")]);
                assert_eq!(
                    Params::parse(&o[0]),
                    Err(BadParams::BadValue(name)),
                    "{name}={bad}"
                );
            }
        }
    }

    #[test]
    fn unknown_duplicate_and_misvalued_parameters_are_refused() {
        let cases: &[(&str, BadParams)] = &[
            ("permessage-deflate; foo", BadParams::Unknown("foo".into())),
            (
                "permessage-deflate; server_max_window_bits",
                BadParams::BadValue(SERVER_MAX_WINDOW_BITS),
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                BadParams::BadValue(SERVER_NO_CONTEXT_TAKEOVER),
            ),
            (
                "permessage-deflate; client_no_context_takeover=x",
                BadParams::BadValue(CLIENT_NO_CONTEXT_TAKEOVER),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                BadParams::Duplicate(SERVER_NO_CONTEXT_TAKEOVER),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                BadParams::Duplicate(CLIENT_NO_CONTEXT_TAKEOVER),
            ),
            (
                "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
                BadParams::Duplicate(SERVER_MAX_WINDOW_BITS),
            ),
            (
                "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                BadParams::Duplicate(CLIENT_MAX_WINDOW_BITS),
            ),
            ("x-webkit-deflate-frame", BadParams::NotDeflate),
        ];
        for (header, expected) in cases {
            let o = offers(&[header]);
            assert_eq!(Params::parse(&o[0]).as_ref(), Err(expected), "{header}");
            assert_eq!(accept(&[header]), None, "{header} is declined");
        }
    }

    #[test]
    fn a_browsers_offer_gets_both_no_context_takeovers_and_no_client_window() {
        assert_eq!(
            accept(&["permessage-deflate; client_max_window_bits"]),
            Some((BOTH.to_owned(), 15))
        );
        assert_eq!(accept(&["permessage-deflate"]), Some((BOTH.to_owned(), 15)));
        // A client window hint is never answered: the server reads any window.
        assert_eq!(
            accept(&["permessage-deflate; client_max_window_bits=9"]),
            Some((BOTH.to_owned(), 15))
        );
    }

    #[test]
    fn a_server_window_asked_for_is_echoed_and_8_is_declined() {
        for bits in 9..=15u8 {
            let header = format!("permessage-deflate; server_max_window_bits={bits}");
            assert_eq!(
                accept(&[&header]),
                Some((format!("{BOTH}; server_max_window_bits={bits}"), bits))
            );
        }
        assert_eq!(
            accept(&["permessage-deflate; server_max_window_bits=8"]),
            None
        );
    }

    #[test]
    fn the_first_acceptable_offer_wins_across_elements_and_headers() {
        // Autobahn 13.7: three offers in one header, the first one unacceptable.
        assert_eq!(
            accept(&["permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; server_max_window_bits=10, permessage-deflate"]),
            Some((format!("{BOTH}; server_max_window_bits=10"), 10))
        );
        assert_eq!(
            accept(&[
                "foo, permessage-deflate; bar",
                "permessage-deflate; server_max_window_bits=12"
            ]),
            Some((format!("{BOTH}; server_max_window_bits=12"), 12))
        );
        assert_eq!(accept(&["foo", "bar; baz=1"]), None);
        assert_eq!(accept(&[]), None);
    }

    #[test]
    fn the_server_response_is_what_a_client_accepts() {
        for header in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=9",
        ] {
            let (response, _) = server_accept(&offers(&[header])).unwrap();
            let agreed = client_accept(&response).unwrap();
            assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
            assert_eq!(agreed.client_window, Some(15));
        }
    }

    #[test]
    fn a_client_accepts_any_conforming_response() {
        let agreed = |h: &str| client_accept(&offers(&[h])[0]);
        assert_eq!(
            agreed("permessage-deflate"),
            Ok(ClientAgreement {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                client_window: Some(15)
            })
        );
        assert_eq!(
            agreed("permessage-deflate; client_max_window_bits=10; server_max_window_bits=8")
                .unwrap()
                .client_window,
            Some(10)
        );
        assert_eq!(
            agreed("permessage-deflate; client_max_window_bits=8")
                .unwrap()
                .client_window,
            None
        );
        assert_eq!(
            agreed("permessage-deflate; client_max_window_bits"),
            Err(BadParams::BadValue(CLIENT_MAX_WINDOW_BITS))
        );
        assert!(agreed("permessage-deflate; mystery").is_err());
        assert!(agreed("permessage-deflate; server_max_window_bits=16").is_err());
        assert_eq!(
            client_offer().to_string(),
            "permessage-deflate; client_max_window_bits"
        );
    }
}
