//! Incremental UTF-8 validation for text messages (RFC 6455 §5.6, §8.1).
//!
//! A text message may arrive in many fragments, and each fragment in many
//! reads, and a character may be split at any of those boundaries. §8.1 asks
//! us to fail the connection as soon as invalid UTF-8 is seen, not when the
//! message ends, so the validator is fed every piece as it arrives and keeps
//! at most three bytes of an unfinished character between pieces.
//!
//! The bulk of each piece goes through `std::str::from_utf8`, which is fast
//! (word-at-a-time on ASCII); only the unfinished tail is handled here. The
//! validated text is handed out as `&str`, so the message buffer can be a
//! `String` built without a second validation pass and without `unsafe`.

/// The input is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    len: usize,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate `input` as the next piece of the stream, passing every
    /// complete, valid run of characters to `sink`. Fails at the first byte
    /// that cannot belong to valid UTF-8, even when the character it starts
    /// is not finished yet.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut sink: impl FnMut(&str),
    ) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let need = sequence_width(self.partial[0]) - self.len;
            let take = need.min(input.len());
            let mut joined = self.partial;
            joined[self.len..self.len + take].copy_from_slice(&input[..take]);
            let joined = &joined[..self.len + take];
            match std::str::from_utf8(joined) {
                Ok(ch) => {
                    sink(ch);
                    self.len = 0;
                }
                Err(e) if e.error_len().is_none() => {
                    self.partial[..joined.len()].copy_from_slice(joined);
                    self.len = joined.len();
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            input = &input[take..];
        }
        let cut = start_of_unfinished_tail(input);
        let (body, tail) = input.split_at(cut);
        let text = std::str::from_utf8(body).map_err(|_| InvalidUtf8)?;
        if !text.is_empty() {
            sink(text);
        }
        if !tail.is_empty() {
            match std::str::from_utf8(tail) {
                Err(e) if e.error_len().is_none() => {
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.len = tail.len();
                }
                _ => return Err(InvalidUtf8),
            }
        }
        Ok(())
    }

    /// Validate without keeping the text (the codec benchmarks measure this).
    pub fn check(&mut self, input: &[u8]) -> Result<(), InvalidUtf8> {
        self.feed(input, |_| {})
    }

    /// True when no character is left unfinished: a text message may only
    /// end here.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Bytes of an unfinished character held back.
    pub fn pending(&self) -> usize {
        self.len
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }
}

/// How many bytes the sequence started by `lead` has (1 for a byte that is
/// not a valid lead, so that the decoder reports it instead of waiting).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Where the last character of `input` starts, if it is cut short by the
/// end of the input; `input.len()` otherwise. Looks at most 3 bytes back.
fn start_of_unfinished_tail(input: &[u8]) -> usize {
    let n = input.len();
    for back in 1..=n.min(3) {
        let byte = input[n - back];
        if byte & 0xC0 != 0x80 {
            return if sequence_width(byte) > back {
                n - back
            } else {
                n
            };
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<String, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut out = String::new();
        for piece in pieces {
            v.feed(piece, |s| out.push_str(s))?;
        }
        if v.is_complete() {
            Ok(out)
        } else {
            Err(InvalidUtf8)
        }
    }

    #[test]
    fn every_split_of_valid_text_round_trips() {
        let text = "κόσμε a€𝄞 Hello-µ@ßöäüàá-UTF-8!!";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = feed_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]).unwrap();
                assert_eq!(got, text);
            }
        }
    }

    #[test]
    fn byte_at_a_time() {
        let text = "😀 ünïcödé ☃";
        let pieces: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(feed_all(&pieces).unwrap(), text);
    }

    #[test]
    fn fails_on_the_first_invalid_byte_before_the_character_ends() {
        // Autobahn 6.4.1: U+110000 starts F4 90 — invalid as soon as 0x90 arrives.
        let mut v = Utf8Validator::new();
        v.check("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.check(&[0xf4]), Ok(()));
        assert_eq!(v.check(&[0x90]), Err(InvalidUtf8));
        // A surrogate (ED A0 80) is rejected at its second byte.
        let mut v = Utf8Validator::new();
        assert_eq!(v.check(&[0xed, 0xa0]), Err(InvalidUtf8));
        // An overlong encoding (C0 80) at its first byte.
        assert_eq!(Utf8Validator::new().check(&[0xc0]), Err(InvalidUtf8));
    }

    #[test]
    fn unfinished_character_at_message_end_is_not_complete() {
        let mut v = Utf8Validator::new();
        v.check(&[b'a', 0xe2, 0x82]).unwrap();
        assert!(!v.is_complete());
        v.check(&[0xac]).unwrap();
        assert!(v.is_complete());
    }

    #[test]
    fn agrees_with_std_on_every_short_sequence() {
        // All 1- and 2-byte inputs and a spread of 3- and 4-byte ones, fed
        // whole and byte by byte.
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|a| vec![a]).collect();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
        }
        for a in (0xc0..=0xffu8).step_by(3) {
            for b in (0x70..=0xc0u8).step_by(7) {
                for c in (0x70..=0xc0u8).step_by(11) {
                    inputs.push(vec![a, b, c]);
                    inputs.push(vec![a, b, c, 0x80]);
                    inputs.push(vec![a, b, c, 0xbf]);
                }
            }
        }
        for input in inputs {
            let expected = std::str::from_utf8(&input).is_ok();
            assert_eq!(feed_all(&[&input]).is_ok(), expected, "{input:x?} whole");
            let pieces: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(feed_all(&pieces).is_ok(), expected, "{input:x?} bytewise");
        }
    }
}
