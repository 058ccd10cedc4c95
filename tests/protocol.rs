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

/// `config.max_frame_size` bounds single frames below `max_message_size`
/// (the decoder used to get `max_message_size` for both): a larger frame
/// closes with 1009, while the same bytes in small fragments pass.
#[test]
fn max_frame_size_is_enforced_per_frame() {
    let mut config = test_config();
    config.max_message_size = 1000;
    config.max_frame_size = Some(100);
    let hub = TestHub::start(config);

    let mut c = RawClient::upgrade(hub.addr, "user_id=fragments");
    let text = format!(
        r#"{{"message_type":"no_relay","content":"{}"}}"#,
        "x".repeat(150)
    );
    let (a, b) = text.as_bytes().split_at(90);
    c.send(&client_frame(0x01, a)); // text, not final
    c.send(&client_frame(0x80, b)); // continuation, final
    c.send(&client_frame(0x89, b"still open")); // ping
    let (op, payload) = c
        .read_frame()
        .expect("a pong: the fragmented message passed");
    assert_eq!((op, payload.as_slice()), (0xA, &b"still open"[..]));

    let mut c = RawClient::upgrade(hub.addr, "user_id=big");
    c.send(&client_frame(0x81, text.as_bytes()));
    assert_eq!(c.read_close_code(), Some(1009));
}
