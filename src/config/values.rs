//! How config values are spelled in files: durations (`100ms`, `1.5s`, `2m`,
//! via humantime), byte sizes (`65536`, `64KiB`, `1MiB`) and socket
//! addresses. Each is a serde `deserialize_with` function, so a field names
//! its spelling in one attribute; errors say what was expected and the file
//! reader adds the key and the position.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// Serializes a duration in humantime spelling (`100ms`, `1s 500ms`), which
/// [`duration`] reads back exactly.
pub(super) fn human_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// A duration in humantime spelling. Negative ones are rejected with a
/// message of their own (humantime would only say it expected a number).
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;

    impl Visitor<'_> for V {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a duration string such as "100ms", "1.5s" or "2m""#)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
    }

    d.deserialize_str(V)
}

/// [`duration`], or `null` for none.
pub(super) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Present(#[serde(deserialize_with = "duration")] Duration);
    Ok(Option::<Present>::deserialize(d)?.map(|v| v.0))
}

/// A byte size: a non-negative integer, or a number with a unit (`B`, `KB`,
/// `KiB`, `MB`, `MiB`, `GB`, `GiB`; case-insensitive, space allowed).
pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct V;

    impl Visitor<'_> for V {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a size in bytes, or a string such as "64KiB" or "1MiB""#)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom(format_args!("{v} bytes is too large")))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format_args!("size {v} is negative"))),
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            parse_size(v).map_err(E::custom)
        }
    }

    d.deserialize_any(V)
}

/// [`size`], or `null` for none.
pub(super) fn optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    struct Present(#[serde(deserialize_with = "size")] usize);
    Ok(Option::<Present>::deserialize(d)?.map(|v| v.0))
}

/// An `IP:port` socket address, with an error that says so.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct V;

    impl Visitor<'_> for V {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"an IP:port address such as "127.0.0.1:8080""#)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.trim()
                .parse()
                .map_err(|e| E::custom(format_args!("{v:?} is not an IP:port address: {e}")))
        }
    }

    d.deserialize_str(V)
}

/// [`socket_addr`], or `null` for none.
pub(super) fn optional_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    struct Present(#[serde(deserialize_with = "socket_addr")] SocketAddr);
    Ok(Option::<Present>::deserialize(d)?.map(|v| v.0))
}

/// Parses a humantime duration, rejecting negative ones by name.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("duration {text:?} is negative"));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parses `65536`, `64KiB`, `64 kb`, `2MB`: digits, then an optional unit.
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || {
        format!("invalid size {text:?}; use bytes or a number with B, KB, KiB, MB, MiB, GB or GiB")
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests;
