//! [`CompressionConfig`]: permessage-deflate (RFC 7692), the `compression:`
//! section.

use serde::Deserialize;

use super::{ConfigError, values};

/// Highest zlib compression level.
const MAX_LEVEL: u32 = 9;

/// permessage-deflate: whether the hub accepts a client's offer, and how it
/// compresses.
///
/// The hub keeps no compression state per connection: one compressor and one
/// decompressor serve them all, a message is compressed once however many
/// clients get it, and clients are asked not to take over context. A client
/// that offers no compression (or only invalid offers) gets plain frames.
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
///
/// ```
/// # use wshub::config::HubConfig;
/// let cfg = HubConfig::from_yaml_str(
///     "wsc:\n  compression: {enabled: true, min_size: 512B, level: 1, server_max_window_bits: 10}\n",
/// ).unwrap();
/// assert_eq!(cfg.compression.min_size, 512);
/// assert_eq!(cfg.compression.server_max_window_bits, 10);
/// assert!(HubConfig::from_yaml_str("wsc:\n  compression: {level: 10}\n").is_err());
/// assert!(HubConfig::from_yaml_str("wsc:\n  compression: {server_max_window_bits: 16}\n").is_err());
/// assert!(HubConfig::from_yaml_str("wsc:\n  compression: {client_no_context_takeover: false}\n").is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Accept permessage-deflate offers. Default: true (browsers offer it;
    /// JSON shrinks several times).
    pub enabled: bool,
    /// Messages shorter than this (in bytes; a size: `256B`) go uncompressed
    /// even to clients that negotiated compression; longer ones always go
    /// compressed to them (so set it high, or turn compression off, when
    /// messages are already compressed data).
    ///
    /// Default: 256 bytes. Below that deflate saves a few dozen bytes at best
    /// (small JSON shrinks by about a quarter) for the cost of compressing
    /// and of the client's inflating; see BENCHMARKS.md.
    #[serde(deserialize_with = "values::size")]
    pub min_size: usize,
    /// zlib level, 0 (stored) to 9 (smallest, slowest).
    ///
    /// Default: 3. A broadcast is compressed once for all its recipients, so
    /// the level's cost is paid per message, not per delivery; on chat and
    /// telemetry JSON level 3 is within a few percent of level 9's size at a
    /// fraction of its time (BENCHMARKS.md).
    pub level: u32,
    /// The largest LZ77 window, in bits (`8..=15`: 256 B to 32 KiB), that
    /// the hub's compressed frames use. Below 15 the hub's answer says
    /// `server_max_window_bits=N` even to clients that did not ask (RFC 7692
    /// §7.1.2.1 allows it), so they may inflate with a smaller window; a
    /// client that asked for less gets what it asked. A message longer
    /// than `2^N` bytes is compressed in `2^N`-byte pieces, each from a
    /// reset state (ratio falls as `N` does).
    ///
    /// Default: 15. 8 is honoured exactly: the pieces bound every
    /// back-reference, so the zlib limit that makes other servers turn 8
    /// into 9 (zlib's deflate cannot write raw window-8 streams) does not
    /// apply; clients' inflaters accept 8.
    pub server_max_window_bits: u8,
    /// Ask every client not to take over context between its messages
    /// (`client_no_context_takeover` in the answer). Must stay `true`
    /// (the default): the hub inflates every client's messages with one
    /// shared decompressor, which works only when each message is a stream
    /// of its own. `false` would need an inflate state and a 32 KiB window
    /// per compressing connection (about 44 KiB at rest, eleven times an
    /// idle connection's whole footprint), so it is refused rather than
    /// capped; RFC 7692 lets a server require it of every client, and
    /// browsers accept.
    pub client_no_context_takeover: bool,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size: 256,
            level: 3,
            server_max_window_bits: 15,
            client_no_context_takeover: true,
        }
    }
}

impl CompressionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.level > MAX_LEVEL {
            return Err(ConfigError::TooLarge {
                key: "compression.level",
                value: self.level as usize,
                max: MAX_LEVEL as usize,
            });
        }
        if !(8..=15).contains(&self.server_max_window_bits) {
            return Err(ConfigError::Compression {
                key: "compression.server_max_window_bits",
                message: format!(
                    "{} is outside 8..=15 (RFC 7692: a window of 2^8 to 2^15 bytes)",
                    self.server_max_window_bits
                ),
            });
        }
        if !self.client_no_context_takeover {
            return Err(ConfigError::Compression {
                key: "compression.client_no_context_takeover",
                message: "must be true: client context takeover would need an inflater \
                          with a 32 KiB window per connection (about 44 KiB each at rest); \
                          the hub inflates every client's messages with one shared \
                          decompressor"
                    .to_owned(),
            });
        }
        Ok(())
    }
}
