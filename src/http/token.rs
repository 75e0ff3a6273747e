//! The pieces of RFC 7230 §3.2.6 that header-value grammars are built
//! from: `tchar`, `token`, `quoted-string`, and optional whitespace (§3.2.3),
//! read by a cursor over a header value. `Sec-WebSocket-Extensions`
//! (RFC 6455 §9.1, `ws::handshake::offer`) and `Forwarded` (RFC 7239 §4,
//! `http::forwarded`) each put their own rules on top.
//!
//! RFC 7230 §3.2.3, §3.2.6.

/// `tchar`: what a token is made of.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A position in a header value being parsed.
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    /// The next byte, not taken.
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Take the next byte (the one [`Cursor::peek`] showed).
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// Skip `OWS`: spaces and tabs.
    pub fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The token here, possibly empty.
    pub fn token(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned()
    }

    /// The quoted-string at its opening quote, unescaped (`\x` is `x`);
    /// `None` when its closing quote is missing.
    pub fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            let b = match self.peek()? {
                b'"' => break,
                b'\\' => {
                    self.pos += 1;
                    self.peek()?
                }
                b => b,
            };
            value.push(char::from(b));
            self.pos += 1;
        }
        self.pos += 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_quoted_strings_and_whitespace() {
        let mut c = Cursor::new(b"  abc-1;\"a\\\"b\" \"open");
        c.skip_whitespace();
        assert_eq!(c.token(), "abc-1");
        assert_eq!(c.peek(), Some(b';'));
        assert_eq!(c.token(), "", "no token at a separator");
        c.bump();
        assert_eq!(c.quoted().as_deref(), Some("a\"b"));
        c.skip_whitespace();
        assert_eq!(c.quoted(), None, "no closing quote");
        assert!(is_tchar(b'~') && !is_tchar(b'"') && !is_tchar(b' ') && !is_tchar(0xc3));
    }
}
