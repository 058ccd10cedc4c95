//! What Redis and the other hubs of a cluster send: the RESP reply parser
//! (replies back to back, as a socket delivers them) and the hub-to-hub
//! message decoder, whose every accepted message must re-encode to its
//! own bytes. Neither may panic, hang or allocate past its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wshub::__private::cluster::parse_untrusted(data);
});
