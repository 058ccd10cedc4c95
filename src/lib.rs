//! # wshub
//!
//! A single-threaded, embedded-friendly WebSocket hub runtime with
//! first-class failure handling.
//!
//! The host owns the thread: it calls [`Hub::poll`] in its own loop (or
//! [`Hub::run`]) and drains [`HubEvent`]s. One `mio` poller drives every
//! socket; clients live in a slab preallocated to the connection limit and
//! each holds a fixed-capacity ring of outbound frames (`QUEUE`, a const
//! generic); heartbeats and timeouts wait in a hashed timing wheel (`WHEEL`
//! slots). Messages are encoded once and shared by every recipient; the hot
//! path — route, enqueue, write — does not allocate.
//!
//! Other threads talk to the hub through a [`HubHandle`].
//!
//! ```no_run
//! use wshub::{DefaultHub, HubConfig, HubEvent};
//!
//! let mut config = HubConfig::default();
//! config.listen = "127.0.0.1:8080".parse()?;
//! let mut hub = DefaultHub::bind(config)?;
//! hub.run(|hub, event| {
//!     if let HubEvent::Message { message, .. } = event {
//!         let to = message.receiver.clone();
//!         if let Err(e) = hub.send_to_user(&to, &message) {
//!             eprintln!("relay to {to} failed: {e}");
//!         }
//!     }
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod auth;
mod cluster;
pub mod config;
mod conn;
mod delivery;
mod error;
mod event;
pub mod failure;
mod group;
mod handle;
mod hub;
pub mod message;
pub mod retry;
mod stats;
#[cfg(test)]
mod testutil;
mod tls;
mod util;
mod ws;

pub use failure::reason;

pub use auth::{Authenticator, Identity, Rejection};
pub use config::HubConfig;
pub use delivery::{DeliveryId, Envelope, MessageId, SendAttempt, SendResult};
pub use error::{BuildError, SendError};
pub use event::{ConnId, DisconnectReason, HubEvent};
pub use failure::{
    ConnectionErrorHandler, Failure, QueueFullHandler, SendFailureHandler, TimeoutHandler,
    UserOfflineHandler,
};
pub use group::{GroupAction, GroupError, GroupPolicy, GroupRequest, MAX_GROUP_NAME};
pub use handle::{HandleError, HubHandle, PendingSend};
pub use hub::{DEFAULT_QUEUE, DEFAULT_WHEEL, DefaultHub, Hub, RelayVerdict, RelayView, Target};
pub use message::{Message, Payload, Priority};
pub use reason::{FailureReason, TimeoutKind};
pub use stats::Stats;
pub use tls::TlsError;
pub use ws::CloseCode;
pub use ws::http::Request;

/// Internals that the crate's own benches, fuzz targets and integration
/// tests reach into. Not part of the API: anything here may change or go
/// away in any release.
#[doc(hidden)]
pub mod __private {
    /// The WebSocket protocol layer: frames, the decoder, encoders and the
    /// HTTP upgrade.
    pub mod ws {
        pub use crate::ws::deflate;
        pub use crate::ws::http::{
            HandshakeError, HttpError, head_worth_parsing, parse_request, percent_decode,
            websocket_accept, write_error, write_response, write_switching_protocols,
        };
        pub use crate::ws::http::{negotiate_deflate, write_switching_protocols_with};
        pub use crate::ws::{
            CloseFrame, Decoder, Feed, Frame, Limits, OpCode, ProtocolError, apply_mask,
            encode_close, encode_frame, encode_header,
        };
    }

    /// The retry budget's bucket and the jitter's random source.
    pub mod retry {
        pub use crate::retry::budget::RetryBudget;
        pub use crate::retry::jitter::{RandomSource, SplitMix64};
    }

    /// The ring queue and the timing wheel (`src/util`).
    pub mod util {
        pub use crate::util::{
            queue::RingQueue,
            timer::{TimerKey, TimerWheel},
        };
    }
    pub use crate::util::escape::Esc;

    /// The cluster's parsers: RESP replies and hub-to-hub messages.
    pub mod cluster {
        /// Feeds `bytes` to the RESP parser and the cluster message decoder
        /// (as what Redis or another hub might send); a message that
        /// decodes must encode back to the same bytes. Panics on a bug.
        pub fn parse_untrusted(bytes: &[u8]) {
            crate::cluster::check_untrusted(bytes);
        }
    }
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod thread_safety {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn the_hub_moves_to_its_thread_and_handles_are_shared() {
        send::<crate::DefaultHub>();
        send_sync::<crate::HubHandle>();
        send::<crate::PendingSend>();
        send_sync::<crate::Failure>();
    }
}
