//! Token verification on hostile input: any string must be refused with a
//! 401 (never a panic), and a valid token whose claims part is replaced by
//! the input must be refused unless the input is the original claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::auth::JwtAuthenticator;
use wshub::config::JwtConfig;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding, as JWTs write their parts.
fn b64url(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

thread_local! {
    static AUTH: (JwtAuthenticator, String) = {
        let mut cfg = JwtConfig::default();
        cfg.secret = Some("fuzz-secret-fuzz-secret-fuzz-secret!".into());
        let auth = JwtAuthenticator::from_config(&cfg).unwrap();
        let token = auth.sign_hs256("alice", 4_000_000_000, None);
        (auth, token)
    };
}

fuzz_target!(|data: &[u8]| {
    AUTH.with(|(auth, valid)| {
        if let Ok(text) = std::str::from_utf8(data)
            && let Err(r) = auth.verify(text)
        {
            assert_eq!(r.status, 401);
        }
        // The valid token's header and signature around fuzzed claims.
        let mut parts = valid.split('.');
        let (header, claims, sig) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let forged = format!("{header}.{}.{sig}", b64url(data));
        if b64url(data) != claims {
            assert!(auth.verify(&forged).is_err(), "forged claims accepted: {data:?}");
        }
    });
});
