//! Fixed-capacity building blocks of the loop: the ring queue and the
//! hashed timing wheel.

pub(crate) mod escape;
pub mod queue;
pub mod timer;
