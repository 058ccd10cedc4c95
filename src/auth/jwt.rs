//! `auth.mode: jwt`: identities from signed JSON Web Tokens.
//!
//! The token comes from the `token` query parameter (browsers cannot set
//! headers on a WebSocket) or `Authorization: Bearer`. `sub` is the user id;
//! `client_id` and `user_type` are optional claims; `exp` is required and
//! `nbf`, `iss`, `aud` are checked as configured. Query parameters never
//! override a claim. Parsing and claim checks are jsonwebtoken's; the
//! signature is checked by `ring` (see `ring.rs`).

mod ring;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;

use super::{Authenticator, Identity, MAX_ID, Rejection};
use crate::config::{ConfigError, JwtConfig};
use crate::ws::http::Request;

/// Longest token read (a few claims signed with RSA-4096 fit many times).
const MAX_TOKEN: usize = 4096;

/// The claims the hub reads; any others are ignored.
/// `sub` and `exp` are options so that a token without them is refused
/// as lacking a claim, not as malformed.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
    /// Checked by hand, so that a wrong shape gets its own reason.
    #[serde(default)]
    groups: Option<serde_json::Value>,
}

/// Verifies JSON Web Tokens against one configured key (see
/// [`JwtConfig`]); the authenticator `auth.mode: jwt` installs.
///
/// ```
/// use wshub::auth::JwtAuthenticator;
/// use wshub::config::JwtConfig;
/// let mut cfg = JwtConfig::default();
/// cfg.secret = Some("0123456789abcdef0123456789abcdef".into());
/// let mut auth = JwtAuthenticator::from_config(&cfg).unwrap();
/// let token = auth.sign_hs256("alice", 4_000_000_000, None);
/// let req = wshub::Request {
///     method: "GET".into(),
///     path: "/ws".into(),
///     query: format!("token={token}&user_id=bob"),
///     version: 1,
///     headers: Vec::new(),
/// };
/// use wshub::Authenticator;
/// let id = auth.authenticate(&req).unwrap();
/// assert_eq!(&*id.user_id, "alice"); // the query never overrides a claim
/// ```
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    /// The HMAC secret, kept only to mint tokens in tests and examples.
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// Loads the key (reading `public_key_file`) and the claim rules.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Auth`] when neither or both keys are set, the secret
    /// is short, or the PEM file cannot be read or holds no usable key.
    pub fn from_config(cfg: &JwtConfig) -> Result<JwtAuthenticator, ConfigError> {
        ring::install();
        let auth_err = |key, message: String| ConfigError::Auth { key, message };
        let (key, family, secret) = match (&cfg.secret, &cfg.public_key_file) {
            (Some(secret), None) if secret.len() >= 32 => {
                let key = DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| auth_err("auth.jwt.secret", e.to_string()))?;
                (key, AlgorithmFamily::Hmac, Some(secret.as_bytes().to_vec()))
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    auth_err(
                        "auth.jwt.public_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let (key, family) = public_key(&pem).ok_or_else(|| {
                    auth_err(
                        "auth.jwt.public_key_file",
                        format!(
                            "{} holds no RSA, EC or Ed25519 public key in PEM",
                            path.display()
                        ),
                    )
                })?;
                (key, family, None)
            }
            _ => {
                let mut probe = crate::config::HubConfig::default();
                probe.auth.mode = Some(crate::config::AuthMode::Jwt);
                probe.auth.jwt = cfg.clone();
                probe.validate()?;
                return Err(auth_err("auth.jwt", "no usable key".to_owned()));
            }
        };
        let mut validation = Validation::new_for_family(family);
        // RS keys also verify PS signatures; EC keys are checked per curve by ring.
        if family == AlgorithmFamily::Ec {
            validation.algorithms = vec![Algorithm::ES256, Algorithm::ES384];
        }
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = cfg.leeway.as_secs();
        validation.validate_nbf = true;
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(JwtAuthenticator {
            key,
            validation,
            secret,
        })
    }

    /// Checks `token` and returns the identity it carries.
    ///
    /// # Errors
    ///
    /// A 401 [`Rejection`] saying why: malformed, bad signature, expired,
    /// not yet valid, wrong issuer or audience, missing claims.
    pub fn verify(&self, token: &str) -> Result<Identity, Rejection> {
        if token.len() > MAX_TOKEN {
            return Err(Rejection::new(401, "token too long"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| Rejection::new(401, reason(e.kind())))?;
        let c = data.claims;
        let (Some(sub), Some(exp)) = (c.sub, c.exp) else {
            return Err(Rejection::new(
                401,
                reason(&ErrorKind::MissingRequiredClaim(String::new())),
            ));
        };
        let client = c.client_id.unwrap_or_default();
        let user_type = c.user_type.filter(|t| !t.is_empty());
        let user_type = user_type.as_deref().unwrap_or("user");
        if sub.is_empty() {
            return Err(Rejection::new(401, "token has an empty sub"));
        }
        if sub.len() > MAX_ID || client.len() > MAX_ID || user_type.len() > MAX_ID {
            return Err(Rejection::new(
                401,
                "token identity fields are limited to 256 bytes",
            ));
        }
        let mut id = Identity::new(&sub, &client, user_type);
        id.groups = groups_claim(c.groups)?;
        // Capped so that the addition cannot overflow (year 2514).
        id.expires_at = Some(UNIX_EPOCH + Duration::from_secs(exp.min(1 << 34)));
        Ok(id)
    }

    /// Mints an HS256 token for `sub` expiring at `exp` (Unix seconds), for
    /// tests and examples. Empty when the authenticator has no secret.
    pub fn sign_hs256(&self, sub: &str, exp: u64, client_id: Option<&str>) -> String {
        let Some(secret) = &self.secret else {
            return String::new();
        };
        let mut claims = serde_json::json!({"sub": sub, "exp": exp});
        if let Some(c) = client_id {
            claims["client_id"] = c.into();
        }
        let Ok(key) = jsonwebtoken::EncodingKey::from_secret(secret) else {
            return String::new();
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&mut self, req: &Request) -> Result<Identity, Rejection> {
        let bearer = req.header("authorization").and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
        let token = match (req.query_param("token"), bearer) {
            (Some(t), _) if !t.is_empty() => t,
            (_, Some(b)) => b.trim().into(),
            _ => {
                return Err(Rejection::new(
                    401,
                    "missing token (?token= or Authorization: Bearer)",
                ));
            }
        };
        self.verify(&token)
    }
}

/// The `groups` claim: absent, or an array of strings (names and counts are
/// the hub's to check, against its own limits).
fn groups_claim(value: Option<serde_json::Value>) -> Result<Box<[std::sync::Arc<str>]>, Rejection> {
    let bad = || Rejection::new(401, "token groups claim is not an array of strings");
    match value {
        None | Some(serde_json::Value::Null) => Ok(Box::default()),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|g| match g {
                serde_json::Value::String(s) => Ok(s.into()),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// A PEM public key: RSA, EC or Ed25519, whichever parses.
fn public_key(pem: &[u8]) -> Option<(DecodingKey, AlgorithmFamily)> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Some((k, AlgorithmFamily::Rsa));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Some((k, AlgorithmFamily::Ec));
    }
    DecodingKey::from_ed_pem(pem)
        .ok()
        .map(|k| (k, AlgorithmFamily::Ed))
}

/// The 401 body for a refused token: short, and never the token itself.
fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid (nbf)",
        ErrorKind::InvalidSignature => "bad token signature",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (exp, sub)",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token algorithm not accepted"
        }
        _ => "malformed token",
    }
}

/// How long until `exp`, from now; `None` when already past.
pub(crate) fn until(expires_at: SystemTime) -> Option<Duration> {
    expires_at.duration_since(SystemTime::now()).ok()
}
