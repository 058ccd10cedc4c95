//! The five failure handler kinds and the worker pool that runs them.
//!
//! The hub thread never runs a handler. A failure becomes a [`Failure`] and is
//! offered to a bounded crossbeam channel with `try_send`: a full channel is
//! a counted drop, never a blocked loop. Worker threads take failures off the
//! channel and call every handler that matches, each under `catch_unwind`: a
//! panicking handler is counted and logged, and the pool keeps working.
//!
//! Every failure goes to the general [`SendFailureHandler`]s and to the
//! specialised handlers of its reason: `queue_full` → [`QueueFullHandler`],
//! `user_offline` → [`UserOfflineHandler`], `conn_error` →
//! [`ConnectionErrorHandler`], any timeout → [`TimeoutHandler`].

mod handler;
mod pool;
pub mod reason;
mod report;

pub(crate) use handler::HandlerSet;
pub use handler::{
    ConnectionErrorHandler, Failure, QueueFullHandler, SendFailureHandler, TimeoutHandler,
    UserOfflineHandler,
};
pub(crate) use pool::FailurePool;
pub(crate) use report::Reporter;
