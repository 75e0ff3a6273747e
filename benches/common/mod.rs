//! Inputs shared by the codec benchmarks (`codec.rs`, `codec_ratios.rs`),
//! so both time the same bytes.

/// The masking key every benchmark frame uses.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// ASCII text of exactly `len` bytes.
pub fn ascii_text(len: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog. 0123456789\n";
    line.iter().copied().cycle().take(len).collect()
}

/// Latin, Greek, CJK and emoji, cut to at most `len` bytes at a character
/// boundary.
pub fn mixed_text(len: usize) -> Vec<u8> {
    let line = "Grüße, café! Καλημέρα κόσμε. 你好，世界。こんにちは 😀🎉🚀 ok\n";
    let mut text = String::with_capacity(len + line.len());
    while text.len() < len {
        text.push_str(line);
    }
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.into_bytes()
}
