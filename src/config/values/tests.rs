use std::time::Duration;

use super::*;

#[test]
fn size_spellings() {
    for (text, bytes) in [
        ("1048576", 1 << 20),
        ("1MiB", 1 << 20),
        ("512KiB", 512 << 10),
        ("512 kib", 512 << 10),
        ("64MiB", 64 << 20),
        ("2MB", 2_000_000),
        ("1GiB", 1 << 30),
        ("7B", 7),
        (" 3 KB ", 3000),
        ("0", 0),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
    }
    for bad in ["", "MiB", "1.5MiB", "-1", "1 MiBs", "1TiB", "0x10"] {
        let err = parse_size(bad).unwrap_err();
        assert!(err.contains("invalid size"), "{bad:?}: {err}");
    }
    let err = parse_size("99999999999999GiB").unwrap_err();
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn duration_spellings() {
    assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
    assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert!(parse_duration("-5ms").unwrap_err().contains("negative"));
    assert!(
        parse_duration("100")
            .unwrap_err()
            .contains("invalid duration")
    );
}

#[test]
fn serde_forms() {
    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "size")]
        size: usize,
        #[serde(default, deserialize_with = "optional_size")]
        frame: Option<usize>,
        #[serde(default, deserialize_with = "optional_duration")]
        cap: Option<Duration>,
        #[serde(deserialize_with = "socket_addr")]
        addr: SocketAddr,
    }
    let t: T = serde_json::from_str(
        r#"{"size": "1MiB", "frame": null, "cap": "2s", "addr": " 127.0.0.1:1 "}"#,
    )
    .unwrap();
    assert_eq!(
        (t.size, t.frame, t.cap),
        (1 << 20, None, Some(Duration::from_secs(2)))
    );
    assert_eq!(t.addr.port(), 1);
    let t: T = serde_json::from_str(r#"{"size": 5, "frame": 3, "addr": "[::1]:2"}"#).unwrap();
    assert_eq!((t.size, t.frame, t.cap), (5, Some(3), None));
    for (bad, says) in [
        (r#"{"size": -1, "addr": "127.0.0.1:1"}"#, "negative"),
        (r#"{"size": 1.5, "addr": "127.0.0.1:1"}"#, "size in bytes"),
        (r#"{"size": 1, "addr": "localhost"}"#, "IP:port"),
        (
            r#"{"size": 1, "cap": 5, "addr": "127.0.0.1:1"}"#,
            "duration",
        ),
    ] {
        let err = serde_json::from_str::<T>(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn human_durations_read_back() {
    #[derive(serde::Serialize)]
    struct W(#[serde(serialize_with = "human_duration")] Duration);
    for d in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_micros(2_000_500),
        Duration::from_secs(86_400),
    ] {
        let text = serde_json::to_value(W(d)).unwrap();
        assert_eq!(parse_duration(text.as_str().unwrap()), Ok(d), "{text}");
    }
}
