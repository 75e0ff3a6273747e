//! The extension seam end to end: an `App` that accepts a test extension
//! offered in `Sec-WebSocket-Extensions` gets it named in the 101 and run
//! by the connection's decoder; without the offer (or the App's consent)
//! the 101 names nothing and every RSV bit is still 1002.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use wschat::http::{HttpError, Request};
use wschat::server::{App, Peer};
use wschat::ws::extension::{Extension, InUse, Negotiated, Sink};
use wschat::ws::frame::RSV1;
use wschat::ws::handshake::{ExtensionOffer, Upgrade};
use wschat::ws::{OpCode, ProtocolError, Reader, Sender};

use crate::IO_TIMEOUT;
use crate::support::{
    CONT, InProcessServer, TEXT, Ws, encode, head, header, mask_key, read_head, status_of, tcp,
    upgrade_lines,
};

const NAME: &str = "x-test-flip";

/// Owns RSV1; a message with it has the high bit of every byte inverted.
#[derive(Debug)]
struct Flip;

impl Extension for Flip {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn start_message(&mut self, _opcode: OpCode, rsv: u8) -> Result<bool, ProtocolError> {
        Ok(rsv & RSV1 != 0)
    }

    fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        for piece in input.chunks(64) {
            sink(&piece.iter().map(|b| b ^ 0x80).collect::<Vec<_>>())?;
        }
        Ok(())
    }

    fn finish(&mut self, _sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// Echo, accepting [`Flip`] when it is offered.
struct FlipEcho;

impl App for FlipEcho {
    fn http(&self, _request: &Request) -> Result<Vec<u8>, HttpError> {
        Err(HttpError::NotFound)
    }

    fn check_upgrade(
        &self,
        upgrade: &Upgrade,
        _peer: &Peer,
    ) -> Result<Option<Negotiated>, HttpError> {
        Ok(upgrade
            .extensions
            .iter()
            .any(|offer| offer.is(NAME))
            .then(|| Negotiated {
                response: ExtensionOffer::new(NAME).param("accepted", None),
                in_use: InUse {
                    receive: Box::new(Flip),
                    send: None,
                },
            }))
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, _peer: Peer, _path: String) {
        while let Ok(message) = reader.next_message() {
            if sender.send_message(&message).is_err() {
                break;
            }
        }
    }
}

/// Upgrade with these extra header lines; the 101's head and the socket.
fn upgrade(addr: SocketAddr, extra: &[&str]) -> (String, Ws) {
    let mut lines = upgrade_lines(addr);
    lines.extend(extra.iter().map(|s| s.to_string()));
    let mut stream = tcp(addr);
    stream.write_all(&head(&lines)).unwrap();
    let (head, rest) = read_head(&mut stream, Instant::now() + IO_TIMEOUT).unwrap();
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(rest.is_empty());
    (head, Ws::accepted(stream))
}

fn client(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    encode(first_byte, payload, Some(mask_key()))
}

fn flipped(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b ^ 0x80).collect()
}

#[test]
fn a_negotiated_extension_is_named_in_the_101_and_run_by_the_decoder() {
    let server = InProcessServer::start(wschat::echo::ws_config(), Arc::new(FlipEcho));
    let (head, mut ws) = upgrade(
        server.addr,
        &["Sec-WebSocket-Extensions: permessage-deflate, x-test-flip; p=1"],
    );
    assert_eq!(
        header(&head, "Sec-WebSocket-Extensions"),
        Some("x-test-flip; accepted")
    );
    // Flipped "Hello" is not UTF-8; the assembler sees it after the
    // extension. Fragmented, RSV1 on the first frame only.
    let rsv1 = 0x40;
    ws.send_raw(&client(rsv1 | TEXT, &flipped(b"Hel"))).unwrap();
    ws.send_raw(&client(0x80 | CONT, &flipped(b"lo"))).unwrap();
    let echo = ws.read_server_frame(IO_TIMEOUT);
    assert_eq!((echo.opcode, echo.text()), (TEXT, "Hello".to_owned()));
    // Without RSV1 a message passes it by.
    ws.send_raw(&client(0x80 | TEXT, b"plain")).unwrap();
    assert_eq!(ws.read_server_frame(IO_TIMEOUT).text(), "plain");
    // RSV1 on a continuation frame: 1002.
    ws.send_raw(&client(TEXT, b"a")).unwrap();
    ws.send_raw(&client(0x80 | rsv1 | CONT, b"b")).unwrap();
    let (code, reason, _) = ws.expect_close(IO_TIMEOUT);
    assert_eq!(code, 1002);
    assert_eq!(reason, ProtocolError::MisplacedExtensionBits.to_string());
    drop(ws);
    server.wait_idle();
}

#[test]
fn without_the_offer_nothing_is_named_and_rsv1_is_1002() {
    let server = InProcessServer::start(wschat::echo::ws_config(), Arc::new(FlipEcho));
    let (head, mut ws) = upgrade(
        server.addr,
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
    );
    assert_eq!(header(&head, "Sec-WebSocket-Extensions"), None);
    ws.send_raw(&client(0x80 | 0x40 | TEXT, &flipped(b"Hello")))
        .unwrap();
    let (code, reason, _) = ws.expect_close(IO_TIMEOUT);
    assert_eq!(
        (code, reason),
        (1002, ProtocolError::ReservedBits.to_string())
    );
    drop(ws);
    server.wait_idle();
}
