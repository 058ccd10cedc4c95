//! Protocol details found by the Autobahn|Testsuite run against the echo
//! example, pinned here over real loopback sockets so that `cargo test`
//! catches a regression without the suite installed.

mod common;

use common::{RawClient, TestHub, client_frame, test_config};

/// Autobahn 2.10: ten pings sent at once each get their pong, in order, with
/// their payload (the control lane used to hold four and drop the rest).
#[test]
fn a_burst_of_pings_gets_every_pong_in_order() {
    let hub = TestHub::start(test_config());
    let mut c = RawClient::upgrade(hub.addr, "user_id=pinger");
    let mut burst = Vec::new();
    for i in 0..10 {
        burst.extend(client_frame(0x89, format!("payload-{i}").as_bytes()));
    }
    c.send(&burst);
    for i in 0..10 {
        let (op, payload) = c.read_frame().expect("a pong");
        assert_eq!(op, 0xA, "frame {i} is not a pong");
        assert_eq!(payload, format!("payload-{i}").as_bytes());
    }
    c.send(&client_frame(0x88, &1000u16.to_be_bytes()));
    assert_eq!(c.read_close_code(), Some(1000));
}
