//! `create_at` timestamps: RFC 3339 in UTC with milliseconds, as go-wsc
//! writes them, formatted into a fixed buffer (no allocation).

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a timestamp: `2026-11-25T15:04:05.123Z`.
pub(crate) const LEN: usize = 24;

/// The current UTC time as RFC 3339 with millisecond precision
/// (`2026-11-25T15:04:05.123Z`), as go-wsc writes `create_at`.
///
/// ```
/// let t = wshub::message::rfc3339_now();
/// assert_eq!(t.len(), 24);
/// assert!(t.ends_with('Z'));
/// ```
pub fn rfc3339_now() -> String {
    Stamp::now().as_str().to_owned()
}

/// The last timestamp formatted, reused while the clock is in the same
/// millisecond: a busy relay stamps many messages a millisecond, and the
/// calendar arithmetic is most of a stamp's cost.
#[derive(Debug, Default)]
pub(crate) struct StampCache {
    at_ms: u128,
    stamp: Option<Stamp>,
}

impl StampCache {
    /// Now, as [`Stamp::now`] would format it.
    pub(crate) fn now(&mut self) -> Stamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ms = since.as_millis();
        match self.stamp {
            Some(stamp) if self.at_ms == ms => stamp,
            _ => {
                let stamp = Stamp::at(since.as_secs(), since.subsec_millis());
                (self.at_ms, self.stamp) = (ms, Some(stamp));
                stamp
            }
        }
    }
}

/// A formatted timestamp, on the stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp([u8; LEN]);

impl Stamp {
    pub(crate) fn now() -> Stamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Stamp::at(since.as_secs(), since.subsec_millis())
    }

    pub(crate) fn at(secs: u64, millis: u32) -> Stamp {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let mut b = [0u8; LEN];
        digits(&mut b[0..4], y.clamp(0, 9999) as u64);
        b[4] = b'-';
        digits(&mut b[5..7], u64::from(m));
        b[7] = b'-';
        digits(&mut b[8..10], u64::from(d));
        b[10] = b'T';
        digits(&mut b[11..13], rem / 3600);
        b[13] = b':';
        digits(&mut b[14..16], rem / 60 % 60);
        b[16] = b':';
        digits(&mut b[17..19], rem % 60);
        b[19] = b'.';
        digits(&mut b[20..23], u64::from(millis.min(999)));
        b[23] = b'Z';
        Stamp(b)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_formats_what_the_clock_says() {
        let mut cache = StampCache::default();
        for _ in 0..1000 {
            let before = Stamp::now();
            let cached = cache.now();
            let after = Stamp::now();
            // Same width and layout, so the strings order as the times do.
            assert!(before.as_str() <= cached.as_str(), "{}", cached.as_str());
            assert!(cached.as_str() <= after.as_str(), "{}", cached.as_str());
        }
    }
}
