//! An HTTP request the server refuses, and the status that says why.

use std::fmt;

/// A request the server refuses, with the status that says why. The reason
/// is sent as a one-line body so that a person with `curl` sees it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed, or not a valid WebSocket upgrade.
    BadRequest(&'static str),
    /// 403: an `Origin` the server does not accept (§4.2.2, §10.2); the
    /// reason names the origin and how to allow it.
    Forbidden(String),
    /// 404: no such file.
    NotFound,
    /// 405: a method other than GET (or HEAD for files).
    MethodNotAllowed,
    /// 408: the head did not arrive in time.
    RequestTimeout,
    /// 426: a `Sec-WebSocket-Version` other than 13 (§4.2.2).
    UpgradeRequired(&'static str),
    /// 431: too many or too large headers.
    HeadersTooLarge(&'static str),
    /// 503: too many connections.
    ServiceUnavailable(&'static str),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Forbidden(_) => 403,
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed => 405,
            HttpError::RequestTimeout => 408,
            HttpError::UpgradeRequired(_) => 426,
            HttpError::HeadersTooLarge(_) => 431,
            HttpError::ServiceUnavailable(_) => 503,
        }
    }

    pub fn reason_phrase(&self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "Bad Request",
            HttpError::Forbidden(_) => "Forbidden",
            HttpError::NotFound => "Not Found",
            HttpError::MethodNotAllowed => "Method Not Allowed",
            HttpError::RequestTimeout => "Request Timeout",
            HttpError::UpgradeRequired(_) => "Upgrade Required",
            HttpError::HeadersTooLarge(_) => "Request Header Fields Too Large",
            HttpError::ServiceUnavailable(_) => "Service Unavailable",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            HttpError::Forbidden(why) => why,
            HttpError::BadRequest(why)
            | HttpError::UpgradeRequired(why)
            | HttpError::HeadersTooLarge(why)
            | HttpError::ServiceUnavailable(why) => why,
            HttpError::NotFound => "no such file",
            HttpError::MethodNotAllowed => "only GET and HEAD are allowed",
            HttpError::RequestTimeout => "request head not received in time",
        }
    }

    /// The whole response. The connection is closed after it.
    pub fn response(&self) -> Vec<u8> {
        let body = format!("{}\n", self.detail());
        let extra = match self {
            HttpError::UpgradeRequired(_) => "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n",
            HttpError::MethodNotAllowed => "Allow: GET, HEAD\r\n",
            _ => "",
        };
        format!(
            "HTTP/1.1 {} {}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status(),
            self.reason_phrase(),
            body.len()
        )
        .into_bytes()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status(),
            self.reason_phrase(),
            self.detail()
        )
    }
}

impl std::error::Error for HttpError {}
