//! Fixed-capacity building blocks of the loop: the ring queue and the
//! hashed timing wheel.

pub mod queue;
pub mod timer;
