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
///     "wsc:\n  compression: {enabled: true, min_size: 512B, level: 1}\n",
/// ).unwrap();
/// assert_eq!(cfg.compression.min_size, 512);
/// assert!(HubConfig::from_yaml_str("wsc:\n  compression: {level: 10}\n").is_err());
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
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size: 256,
            level: 3,
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
        Ok(())
    }
}
