//! permessage-deflate (RFC 7692): each data message's payload compressed
//! with DEFLATE, RSV1 set on its first frame.
//!
//! ```text
//! params.rs    which offers a server accepts, what it answers; which
//!              answers a client accepts                          §5, §7.1
//! inflate.rs   receiving: the Extension that inflates, bounded   §6, §7.2.2
//! compress.rs  sending: one message deflated on its own           §7.2.1
//! pool.rs      DEFLATE contexts shared by threads, not connections §7.1.1
//! ```
//!
//! A server agrees no context takeover in either direction, on every
//! connection: each message is compressed and inflated on its own, so no
//! connection keeps a DEFLATE context while idle, and a broadcast is
//! compressed once per window size, not once per receiver. A client
//! accepts whatever a conforming server answers, context takeover
//! included; a client has one connection, and keeps a context for it when
//! the server keeps one.
//!
//! DEFLATE itself is `flate2`'s, with the pure-Rust `zlib-rs` backend: it
//! has the window sizes 9–15 and the sync flush the extension needs.
//!
//! RFC 7692 (permessage-deflate).

pub mod compress;
pub mod inflate;
pub mod params;
pub mod pool;

use std::sync::Arc;

use super::extension::{InUse, Negotiated};
use super::handshake::ExtensionOffer;
use compress::Deflater;
use inflate::Inflate;
pub use params::{BadParams, NAME, client_offer};
use pool::Pools;

/// Messages shorter than this are sent as they are. Below about a hundred
/// bytes DEFLATE without a shared context rarely saves anything (a fresh
/// stream carries its own code tables), and a chat line is usually shorter.
pub const DEFAULT_THRESHOLD: usize = 256;

/// A server's permessage-deflate, shared by all its connections: the
/// contexts' pools and the size from which a message is compressed.
#[derive(Debug)]
pub struct Deflate {
    pools: Arc<Pools>,
    threshold: usize,
}

impl Deflate {
    pub fn new(threshold: usize) -> Deflate {
        Deflate {
            pools: Arc::default(),
            threshold,
        }
    }

    /// Accept the first offer this server can honour (see
    /// [`params::server_accept`]), or none.
    pub fn negotiate(&self, offers: &[ExtensionOffer]) -> Option<Negotiated> {
        let (response, agreed) = params::server_accept(offers)?;
        Some(Negotiated {
            response,
            in_use: InUse {
                receive: Box::new(Inflate::per_message(Arc::clone(&self.pools))),
                send: Some(Arc::new(Deflater {
                    pools: Arc::clone(&self.pools),
                    window: agreed.server_window,
                    threshold: self.threshold,
                })),
            },
        })
    }

    /// Idle DEFLATE contexts held: (decompressors, compressors).
    pub fn idle_contexts(&self) -> (usize, usize) {
        self.pools.idle()
    }
}

/// A client's side of what the server answered to [`client_offer`]: it
/// inflates with a context kept across messages unless the server
/// compresses each on its own, and compresses each message on its own (a
/// client may always do so, §7.1.1.2), with the window the server allows;
/// when that window is below what zlib can honour, it sends uncompressed.
pub fn client_in_use(response: &ExtensionOffer, threshold: usize) -> Result<InUse, BadParams> {
    let agreed = params::client_accept(response)?;
    let pools = Arc::new(Pools::default());
    let receive: Box<dyn super::extension::Extension> = if agreed.server_no_context_takeover {
        Box::new(Inflate::per_message(Arc::clone(&pools)))
    } else {
        Box::new(Inflate::keeping_context())
    };
    let send = agreed.client_window.map(|window| {
        Arc::new(Deflater {
            pools,
            window,
            threshold,
        }) as Arc<dyn super::extension::Encoder>
    });
    Ok(InUse { receive, send })
}

#[cfg(test)]
mod tests;
