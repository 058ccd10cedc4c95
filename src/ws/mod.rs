//! The WebSocket protocol (RFC 6455), server side, with no dependency on
//! the hub: frames, the decoder, encoders, close codes, and the HTTP
//! upgrade ([`http`]).
//!
//! Decoding is zero-copy on the fast path. The hub reads from a socket into
//! one shared scratch buffer and lends the fresh bytes to the connection's
//! [`Decoder`] with [`Decoder::feed`]. Complete frames are unmasked in place
//! and handed out as [`Frame`]s that borrow the scratch buffer, so a frame
//! that arrives in one read costs no allocation and no copy. A decoder keeps
//! bytes of its own only while a frame is incomplete or a fragmented message
//! is being assembled, and frees them as soon as they have been delivered: an
//! idle decoder owns no heap memory.
//!
//! Decoding is strict: every violation of RFC 6455 that a server can detect
//! (unmasked frames, reserved bits and opcodes, malformed control frames,
//! fragmentation errors, invalid UTF-8, invalid close codes, oversized
//! frames) is reported as a [`ProtocolError`] that knows which close code to
//! answer with. The one extension is permessage-deflate ([`deflate`]), with
//! a codec shared by every connection.
//!
//! Encoding covers what a server sends: unmasked frames, built with
//! [`encode_header`], [`encode_frame`] and [`encode_close`].
//!
//! # Example
//!
//! ```
//! use wshub::CloseCode;
//! use wshub::__private::ws::{Decoder, Frame, Limits, OpCode, apply_mask, encode_close, encode_frame, encode_header};
//!
//! // A frame as a client sends it: masked, here with a fixed key.
//! fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
//!     let mut header = [0; 10];
//!     let n = encode_header(opcode, fin, payload.len(), &mut header);
//!     header[1] |= 0x80; // mask bit
//!     let mask = [0x37, 0xfa, 0x21, 0x3d];
//!     let mut frame = [&header[..n], &mask[..], payload].concat();
//!     apply_mask(&mut frame[n + 4..], mask, 0);
//!     frame
//! }
//!
//! let mut wire = [
//!     client_frame(OpCode::Text, true, br#"{"n":1}"#),
//!     client_frame(OpCode::Ping, true, b"are you there?"),
//!     client_frame(OpCode::Binary, false, &[1, 2]), // first fragment
//!     client_frame(OpCode::Continuation, true, &[3, 4]),
//!     client_frame(OpCode::Close, true, &[0x03, 0xe8]), // 1000
//!     client_frame(OpCode::Text, true, b"ignored: sent after close"),
//! ]
//! .concat();
//!
//! let mut decoder = Decoder::new(Limits::default());
//! let mut outbox: Vec<Vec<u8>> = Vec::new();
//! let mut texts = Vec::new();
//!
//! // Two socket reads that happen to cut the ping frame in half.
//! let (read1, read2) = wire.split_at_mut(15);
//! 'reads: for read in [read1, read2] {
//!     let mut feed = decoder.feed(read);
//!     loop {
//!         match feed.next_frame() {
//!             Ok(Some(Frame::Text(text))) => texts.push(text.to_owned()), // e.g. parse JSON
//!             Ok(Some(Frame::Binary(data))) => assert_eq!(data, [1, 2, 3, 4]),
//!             Ok(Some(Frame::Ping(payload))) => outbox.push(encode_frame(OpCode::Pong, payload)),
//!             Ok(Some(Frame::Pong(_))) => {}
//!             Ok(Some(Frame::Close(close))) => {
//!                 let code = close.map_or(CloseCode::NORMAL, |c| c.code);
//!                 outbox.push(encode_close(code, ""));
//!                 break 'reads;
//!             }
//!             Ok(None) => break, // input used up: read more
//!             Err(e) => {
//!                 outbox.push(encode_close(e.close_code(), &e.to_string()));
//!                 break 'reads;
//!             }
//!         }
//!     }
//! }
//!
//! assert_eq!(texts, [r#"{"n":1}"#]);
//! assert_eq!(outbox.len(), 2); // pong + close
//! assert_eq!(decoder.buffered_capacity(), 0);
//! ```
//!
//! # Files
//!
//! | file | concern |
//! |---|---|
//! | `frame` | [`OpCode`], the decoded [`Frame`] and its [`CloseFrame`] |
//! | `close` | [`CloseCode`] |
//! | `error` | [`ProtocolError`]: each violation and its close code |
//! | `header` | parsing and checking a client frame header |
//! | `decode` | [`Decoder`], [`Feed`], [`Limits`], reassembly of fragments |
//! | `utf8` | UTF-8 validation across chunk boundaries |
//! | `mask` | [`apply_mask`] |
//! | `encode` | server frames: [`encode_header`], [`encode_frame`], [`encode_close`] |
//! | `deflate` | permessage-deflate: negotiation, the shared [`Deflater`](deflate::Deflater) and [`Inflater`](deflate::Inflater) |
//! | `http` | the HTTP/1.1 request head, the upgrade, and responses |

mod close;
mod decode;
pub mod deflate;
mod encode;
mod error;
mod frame;
mod header;
pub(crate) mod http;
mod mask;
mod utf8;

pub use close::CloseCode;
pub use decode::{Decoder, Feed, Limits};
pub use encode::{encode_close, encode_frame, encode_header};
pub use error::ProtocolError;
pub use frame::{CloseFrame, Frame, OpCode};
pub use mask::apply_mask;
