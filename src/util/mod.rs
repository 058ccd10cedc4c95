//! Fixed-capacity building blocks of the loop: the ring queue and the
//! hashed timing wheel. Crate-private; benches and doctests reach them
//! through `wshub::__private::util`.

pub(crate) mod escape;
pub(crate) mod queue;
pub(crate) mod timer;
