//! Test support shared by files under `tests/` that ask for it (not a test
//! crate of its own).
#![allow(dead_code)]

pub mod proxy;
pub mod redis;

/// Whether a client's read only timed out (its socket has a read timeout
/// so that the client can look at its stop flag), rather than failed.
pub fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e)
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}
