//! The WebSocket protocol, with no dependency on the hub: frames, the
//! decoder, encoders, close codes, and the HTTP upgrade.

pub mod codec;
pub mod http;
