//! [`AuthConfig`]: how the hub decides who a connection is (`auth:` in a
//! file), and the bound of the JWT clock leeway.
//!
//! The default is safe: with no `auth:` key the hub reads identities from
//! the query string (go-wsc's trusted-network mode) only on a loopback
//! address; [`Hub::bind`](crate::Hub::bind) refuses it elsewhere unless the
//! config says `auth: {mode: query}` on purpose. `mode` is an `Option` so
//! that "said so" and "left at the default" stay different.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values;

/// The largest JWT clock leeway accepted: a token expired longer ago than
/// this is never honoured, whatever the config says.
pub const MAX_LEEWAY: Duration = Duration::from_secs(600);

/// Where identities come from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// go-wsc's `?user_id=&client_id=&user_type=`: anyone who can reach the
    /// port can claim any identity. For demos and trusted networks.
    Query,
    /// A signed JSON Web Token (`?token=` or `Authorization: Bearer`), see
    /// [`JwtConfig`].
    Jwt,
}

impl AuthMode {
    /// The mode's name as a config file spells it.
    ///
    /// ```
    /// assert_eq!(wshub::config::AuthMode::Jwt.as_str(), "jwt");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Query => "query",
            AuthMode::Jwt => "jwt",
        }
    }
}

/// The `auth:` section.
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
///
/// ```
/// # use wshub::config::{AuthMode, HubConfig};
/// let cfg = HubConfig::from_yaml_str(
///     "wsc:\n  auth:\n    mode: jwt\n    jwt: {secret: s3cret-s3cret-s3cret-s3cret-32b!, leeway: 5s}\n",
/// ).unwrap();
/// assert_eq!(cfg.auth.mode, Some(AuthMode::Jwt));
/// assert_eq!(cfg.auth.jwt.leeway, std::time::Duration::from_secs(5));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `jwt` or `query`. Default (absent): `query`, allowed on loopback
    /// addresses only.
    pub mode: Option<AuthMode>,
    /// The token settings (used when `mode` is `jwt`).
    pub jwt: JwtConfig,
}

impl AuthConfig {
    /// The mode in force: the one written, else `query`.
    ///
    /// ```
    /// assert_eq!(wshub::config::AuthConfig::default().effective_mode(), wshub::config::AuthMode::Query);
    /// ```
    pub fn effective_mode(&self) -> AuthMode {
        self.mode.unwrap_or(AuthMode::Query)
    }
}

/// The `auth.jwt:` section: the key a token must be signed with and the
/// claims it must carry. `exp` is always required.
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret for HS256, HS384 and HS512 (at least 32 bytes, as
    /// RFC 7518 3.2 asks for HS256).
    pub secret: Option<String>,
    /// PEM file with the public key for RS*, PS*, ES256/384 or EdDSA. Exactly
    /// one of `secret` and `public_key_file` is set.
    pub public_key_file: Option<PathBuf>,
    /// When set, the token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, the token's `aud` must contain it.
    pub audience: Option<String>,
    /// Clock skew allowed for `exp` and `nbf`. Default: 0; at most
    /// [`MAX_LEEWAY`].
    #[serde(deserialize_with = "values::duration")]
    pub leeway: Duration,
}
