//! A parsed request head, from `httparse`.

use super::{HeadLimits, HttpError};

/// A parsed request head. Header names are lower-cased; values are raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// Parse a complete head (as delimited by [`HeadScanner`]).
    pub fn parse(head: &[u8], limits: &HeadLimits) -> Result<Request, HttpError> {
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::BadRequest("incomplete request head"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::HeadersTooLarge("too many headers"));
            }
            Err(httparse::Error::Version) => {
                return Err(HttpError::BadRequest("unsupported HTTP version"));
            }
            Err(_) => return Err(HttpError::BadRequest("malformed request head")),
        }
        let headers = req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), trim(h.value).to_vec()))
            .collect();
        Ok(Request {
            method: req.method.unwrap_or_default().to_owned(),
            path: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(0),
            headers,
        })
    }

    /// The value of a header that must appear at most once; `Err` when it
    /// appears twice (a smuggling shape: two parsers may pick different ones).
    pub fn single(&self, name: &str, duplicated: &'static str) -> Result<Option<&[u8]>, HttpError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(HttpError::BadRequest(duplicated));
        }
        Ok(first)
    }

    /// Every value of a header, in order.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of a header as text, if it is ASCII.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.all(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Does this request ask for a WebSocket at all? Anything that carries
    /// an `Upgrade` header or a `Sec-WebSocket-Key` is judged as one, so
    /// a broken handshake gets a WebSocket answer rather than a file.
    pub fn wants_websocket(&self) -> bool {
        self.all("upgrade").next().is_some() || self.all("sec-websocket-key").next().is_some()
    }
}

/// `value` without leading and trailing spaces and tabs (RFC 9110 §5.5).
pub fn trim(value: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}
