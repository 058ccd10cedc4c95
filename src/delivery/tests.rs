//! Engine unit tests (no sockets).
