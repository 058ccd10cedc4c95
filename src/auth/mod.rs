//! Who a connection is: the identity taken from the handshake, and the hook
//! that decides it.
//!
//! Identity comes from the handshake only. Everything a client later sends is
//! stamped with this identity, so a client can never send as, or ACK for,
//! another user.

mod jwt;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

pub use jwt::JwtAuthenticator;
pub(crate) use jwt::until as expires_in;

/// Longest user id, client id or user type accepted (bytes).
const MAX_ID: usize = 256;

use crate::ws::http::Request;

/// The authenticated identity of one connection (one device of one user).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The user; several connections (devices) may share it.
    pub user_id: Arc<str>,
    /// The device; unique per user. Reconnecting with the same client id
    /// replaces the older connection. Left empty by an authenticator, the hub
    /// assigns a unique one.
    pub client_id: Arc<str>,
    /// The user's type (go-wsc's `user_type`, e.g. `customer`, `agent`).
    pub user_type: Arc<str>,
    /// When the credential behind it expires (a token's `exp`); the hub
    /// closes the connection with 4001 then. `None`: never.
    pub expires_at: Option<SystemTime>,
    /// Groups the connection joins as it opens: a signed token's `groups`
    /// claim (`auth.mode: jwt`), or whatever a custom authenticator sets.
    /// They come from the authenticator, so the hub's
    /// [`GroupPolicy`](crate::GroupPolicy) is not asked; names and
    /// `max_groups_per_connection` / `max_groups` are checked before the
    /// upgrade, which is refused (400, or 503 for `max_groups`) rather than
    /// half done. Empty by default.
    pub groups: Box<[Arc<str>]>,
}

impl Identity {
    /// Builds an identity from its three parts.
    ///
    /// ```
    /// let id = wshub::Identity::new("alice", "phone", "user");
    /// assert_eq!(&*id.user_id, "alice");
    /// ```
    pub fn new(user_id: &str, client_id: &str, user_type: &str) -> Identity {
        Identity {
            user_id: user_id.into(),
            client_id: client_id.into(),
            user_type: user_type.into(),
            expires_at: None,
            groups: Box::default(),
        }
    }
}

/// A refused handshake: the HTTP status and a short body sent before any
/// upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, 401, 403, 429 or 503 are the usual ones.
    pub status: u16,
    /// A short human-readable reason (sent as `text/plain`).
    pub message: String,
}

impl Rejection {
    /// A rejection with the given status and message.
    ///
    /// ```
    /// let r = wshub::Rejection::new(401, "bad token");
    /// assert_eq!(r.status, 401);
    /// ```
    pub fn new(status: u16, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for Rejection {}

/// Decides who a handshaking client is, from its request's path, query and
/// headers. It runs on the hub thread: keep it quick (check a token, not a
/// remote service).
///
/// Any `FnMut(&Request) -> Result<Identity, Rejection> + Send` is an
/// authenticator:
///
/// ```
/// use wshub::{Identity, Rejection, Request};
/// let auth = |req: &Request| -> Result<Identity, Rejection> {
///     if req.header("authorization") != Some("Bearer secret") {
///         return Err(Rejection::new(401, "missing or bad token"));
///     }
///     wshub::auth::identity_from_query(req)
/// };
/// let _hub_auth: Box<dyn wshub::Authenticator> = Box::new(auth);
/// ```
pub trait Authenticator: Send {
    /// Returns the identity of the client behind `req`, or why it is refused.
    fn authenticate(&mut self, req: &Request) -> Result<Identity, Rejection>;

    /// Like [`authenticate`](Self::authenticate), with the certificate a
    /// `wss://` client presented (DER, the client's own first), when the
    /// hub asks for one (`tls.client_ca_file`, mutual TLS). The hub has
    /// already checked that it chains to that CA; its subject can feed the
    /// identity (parse it with an X.509 crate such as `x509-parser`). The
    /// hub calls this method, never `authenticate` directly; the default
    /// ignores the certificate.
    ///
    /// ```
    /// use wshub::{Authenticator, Identity, Rejection, Request};
    /// struct ByCert;
    /// impl Authenticator for ByCert {
    ///     fn authenticate(&mut self, _: &Request) -> Result<Identity, Rejection> {
    ///         Err(Rejection::new(401, "a client certificate is required"))
    ///     }
    ///     fn authenticate_with_cert(
    ///         &mut self,
    ///         req: &Request,
    ///         cert: Option<&[u8]>,
    ///     ) -> Result<Identity, Rejection> {
    ///         match cert {
    ///             // A real one would parse the subject out of `der`.
    ///             Some(der) => Ok(Identity::new(&format!("cert-{}", der.len()), "", "device")),
    ///             None => self.authenticate(req),
    ///         }
    ///     }
    /// }
    /// ```
    fn authenticate_with_cert(
        &mut self,
        req: &Request,
        client_cert: Option<&[u8]>,
    ) -> Result<Identity, Rejection> {
        let _ = client_cert;
        self.authenticate(req)
    }
}

impl<F> Authenticator for F
where
    F: FnMut(&Request) -> Result<Identity, Rejection> + Send,
{
    fn authenticate(&mut self, req: &Request) -> Result<Identity, Rejection> {
        self(req)
    }
}

/// The default authenticator: go-wsc's query parameters. `user_id` is
/// required (400 without it); `client_id` may be absent, and the hub then
/// gives the connection an unguessable one, so two unnamed devices of one
/// user do not replace each other; `user_type` defaults to `user`.
///
/// ```
/// let req = wshub::Request {
///     method: "GET".into(),
///     path: "/ws".into(),
///     query: "user_id=al%20ice".into(),
///     version: 1,
///     headers: Vec::new(),
/// };
/// let id = wshub::auth::identity_from_query(&req).unwrap();
/// assert_eq!((&*id.user_id, &*id.client_id, &*id.user_type), ("al ice", "", "user"));
/// ```
pub fn identity_from_query(req: &Request) -> Result<Identity, Rejection> {
    let user = match req.query_param("user_id") {
        Some(u) if !u.is_empty() => u,
        _ => return Err(Rejection::new(400, "user_id is required")),
    };
    let client = req.query_param("client_id").filter(|c| !c.is_empty());
    let user_type = req.query_param("user_type").filter(|t| !t.is_empty());
    let client = client.as_deref().unwrap_or("");
    let user_type = user_type.as_deref().unwrap_or("user");
    if user.len() > MAX_ID || client.len() > MAX_ID || user_type.len() > MAX_ID {
        return Err(Rejection::new(
            400,
            "identity fields are limited to 256 bytes",
        ));
    }
    Ok(Identity::new(&user, client, user_type))
}

/// The default [`Authenticator`]: [`identity_from_query`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryAuthenticator;

impl Authenticator for QueryAuthenticator {
    fn authenticate(&mut self, req: &Request) -> Result<Identity, Rejection> {
        identity_from_query(req)
    }
}
