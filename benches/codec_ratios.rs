//! Codec ratio summary (placeholder; filled in by the next commit).
fn main() {}
