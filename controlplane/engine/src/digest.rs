//! SIP digest authentication: RFC 3261 §22.4 (which profiles RFC 2617),
//! RFC 7616 (SHA-256, SHA-512/256, `-sess`, `userhash`) and RFC 8760 (their
//! use in SIP).
//!
//! Both roles, sans-IO:
//!
//! - **Server** ([`DigestServer`]): builds the challenge value for a
//!   `WWW-Authenticate` (we act as a UAS, status 401) or `Proxy-Authenticate`
//!   (we act as a proxy, 407) header, and verifies an `Authorization` /
//!   `Proxy-Authorization` value against a password. Nonces are stateless: a
//!   nonce carries its issue time and a salt, authenticated by an HMAC-SHA-256
//!   under a server secret (and, with [`DigestServer::bound_to`], the client's
//!   address), so an expired one is recognised without a table and answered
//!   with `stale=true` (RFC 7616 §3.3). Replays are refused by
//!   [`NonceCountGuard`]: per nonce, the nonce count must strictly increase,
//!   and a nonce used without `qop` is single-use (bounded table).
//! - **Client** ([`select_challenge`], [`answer`]): given the challenges of a
//!   401/407 (possibly several, RFC 8760 §2.4: one per algorithm), picks the
//!   strongest supported one (SHA-512-256 > SHA-256 > MD5) and computes the
//!   credentials for the retried request.
//!
//! Randomness (nonce salts, cnonces) and time come in as parameters; only
//! `qop=auth` is supported (`auth-int` needs the body hash and is refused).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::Md5;
use portcullis_sip::grammar::unquote;
use portcullis_sip::header::{Auth, AuthParam, HeaderName};
use sha2::{Digest, Sha256, Sha512_256};
use subtle::ConstantTimeEq;

use crate::time::Timestamp;

mod client;
mod replay;

pub use client::{answer, answer_best, cnonce, select_challenge, ClientRequest};
pub use replay::{NonceCountGuard, NONCE_GUARD_CAPACITY};

/// A digest hash algorithm (RFC 7616 §3.2, §6.1 registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5` (the default when `algorithm` is absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, weakest first.
    pub const ALL: [Self; 6] = [
        Self::Md5,
        Self::Md5Sess,
        Self::Sha256,
        Self::Sha256Sess,
        Self::Sha512_256,
        Self::Sha512_256Sess,
    ];

    /// The token used in the `algorithm` parameter.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Parses an `algorithm` token (case-insensitive).
    #[must_use]
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether HA1 is the session variant (RFC 7616 §3.4.2).
    #[must_use]
    pub const fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    /// Preference rank when choosing among several challenges; higher is better.
    const fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 1,
            Self::Sha256 | Self::Sha256Sess => 2,
            Self::Sha512_256 | Self::Sha512_256Sess => 3,
        }
    }

    /// Lower-case hex of the hash of the parts joined by `:`.
    #[must_use]
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self {
            Self::Md5 | Self::Md5Sess => run::<Md5>(parts),
            Self::Sha256 | Self::Sha256Sess => run::<Sha256>(parts),
            Self::Sha512_256 | Self::Sha512_256Sess => run::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which pair of headers a challenge travels in (RFC 3261 §22.2, §22.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// A UAS/registrar challenge: `401`, `WWW-Authenticate` → `Authorization`.
    Www,
    /// A proxy challenge: `407`, `Proxy-Authenticate` → `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The status code carrying the challenge.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::Www => 401,
            Self::Proxy => 407,
        }
    }

    /// The kind for a 401/407 response.
    #[must_use]
    pub const fn from_status(status: u16) -> Option<Self> {
        match status {
            401 => Some(Self::Www),
            407 => Some(Self::Proxy),
            _ => None,
        }
    }

    /// The header carrying the challenge.
    #[must_use]
    pub const fn challenge_header(self) -> HeaderName {
        match self {
            Self::Www => HeaderName::WwwAuthenticate,
            Self::Proxy => HeaderName::ProxyAuthenticate,
        }
    }

    /// The header carrying the answer in the retried request.
    #[must_use]
    pub const fn credentials_header(self) -> HeaderName {
        match self {
            Self::Www => HeaderName::Authorization,
            Self::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// Why a digest exchange failed. Server side, every variant except
/// [`DigestError::Stale`] means "challenge again (or 403)"; `Stale` means the
/// password was right but the nonce expired: challenge again with `stale=true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header could not be parsed.
    #[error("malformed authentication header")]
    Malformed,
    /// The scheme is not `Digest`.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A mandatory parameter is missing.
    #[error("digest parameter `{0}` missing")]
    Missing(&'static str),
    /// The algorithm is unknown or not offered.
    #[error("digest algorithm not supported")]
    UnsupportedAlgorithm,
    /// The qop is not `auth` (or no acceptable qop was offered).
    #[error("digest qop not supported")]
    UnsupportedQop,
    /// The realm is not ours.
    #[error("digest realm mismatch")]
    RealmMismatch,
    /// The username is not the expected one.
    #[error("digest username mismatch")]
    UserMismatch,
    /// The `uri` parameter differs from the Request-URI (RFC 7616 §3.4.6).
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// The nonce was not issued by us (bad MAC, bad format, from the future).
    #[error("digest nonce not issued by this server")]
    BadNonce,
    /// `nc` is not 8 hex digits.
    #[error("digest nonce count malformed")]
    BadNonceCount,
    /// The response hash is wrong (wrong password, or altered parameters).
    #[error("digest response mismatch")]
    WrongResponse,
    /// Correct response, expired nonce: re-challenge with `stale=true`.
    #[error("digest nonce expired")]
    Stale,
    /// Nonce count not above the last one seen for this nonce.
    #[error("digest nonce count replayed")]
    Replay,
}

impl DigestError {
    /// Whether the right answer is a fresh challenge with `stale=true`.
    #[must_use]
    pub const fn is_stale(&self) -> bool {
        matches!(self, Self::Stale)
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Length of a nonce we issue: 16 hex (issue time) + 16 hex (salt) + 32 hex (MAC).
const NONCE_LEN: usize = 64;
/// Accept nonces stamped at most this far in the future (none should be).
const NONCE_FUTURE_SKEW_MS: u64 = 1_000;

/// What a successful verification learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The algorithm the peer used.
    pub algorithm: Algorithm,
    /// The nonce count (`None` for RFC 2069-style credentials without qop).
    pub nc: Option<u32>,
    /// When the nonce was issued.
    pub issued_at: Timestamp,
    /// The nonce's random salt: its identity for [`NonceCountGuard`].
    pub nonce_id: u64,
    /// When the nonce goes stale (`issued_at` + the server's lifetime).
    pub expires_at: Timestamp,
}

/// Server side of digest authentication for one realm.
///
/// Invariant: a nonce verifies only if this server (same secret) issued it;
/// its age is bounded by `nonce_lifetime` without keeping per-nonce state.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    secret: [u8; 32],
    nonce_lifetime: Duration,
    algorithms: Vec<Algorithm>,
    /// The client address the nonces are bound to (in the MAC), if any.
    client: Option<IpAddr>,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("algorithms", &self.algorithms)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server for `realm` offering SHA-256 then MD5 (RFC 8760 §2.4: one
    /// challenge per algorithm, most preferred first). `secret` should be
    /// random per process (a restart invalidates outstanding nonces).
    #[must_use]
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        Self {
            realm: realm.into(),
            secret,
            nonce_lifetime,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            client: None,
        }
    }

    /// Binds the nonces this server issues and accepts to `client` (the request's
    /// source address): a nonce handed to one address is not valid from another.
    #[must_use]
    pub fn bound_to(mut self, client: IpAddr) -> Self {
        self.client = Some(client);
        self
    }

    /// Replaces the offered algorithms (preference order). An empty list is
    /// ignored (there must be something to offer).
    #[must_use]
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The offered algorithms, preference order.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    fn mac(&self, issued: u64, salt: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        // HMAC accepts keys of any length, so this cannot fail.
        if let Ok(mut m) = <HmacSha256 as Mac>::new_from_slice(&self.secret) {
            m.update(&issued.to_be_bytes());
            m.update(&salt.to_be_bytes());
            match self.client {
                // IPv4-mapped IPv6 sources bind like the IPv4 address they carry.
                Some(ip) => m.update(&ip.to_canonical().to_string().into_bytes()),
                None => m.update(b"-"),
            }
            m.update(b"|");
            m.update(self.realm.as_bytes());
            let tag = m.finalize().into_bytes();
            for (o, t) in out.iter_mut().zip(tag.iter()) {
                *o = *t;
            }
        }
        out
    }

    /// A fresh nonce stamped `now`; `salt` should be random per challenge.
    #[must_use]
    pub fn nonce(&self, now: Timestamp, salt: u64) -> String {
        let issued = now.as_millis();
        format!(
            "{issued:016x}{salt:016x}{}",
            hex::encode(self.mac(issued, salt))
        )
    }

    /// Checks that `nonce` is ours (and, when bound, issued to this client) and how
    /// old it is: `Ok(issued)` when fresh, `Err(Stale)` when expired, `Err(BadNonce)`
    /// otherwise.
    pub fn check_nonce(&self, now: Timestamp, nonce: &str) -> Result<Timestamp, DigestError> {
        self.check_nonce_parts(now, nonce).map(|(issued, _)| issued)
    }

    /// [`Self::check_nonce`], also returning the nonce's salt.
    fn check_nonce_parts(
        &self,
        now: Timestamp,
        nonce: &str,
    ) -> Result<(Timestamp, u64), DigestError> {
        let b = nonce.as_bytes();
        if b.len() != NONCE_LEN || !b.iter().all(u8::is_ascii_hexdigit) {
            return Err(DigestError::BadNonce);
        }
        let field = |r: std::ops::Range<usize>| {
            nonce
                .get(r)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or(DigestError::BadNonce)
        };
        let issued = field(0..16)?;
        let salt = field(16..32)?;
        let mac = hex::decode(nonce.get(32..).ok_or(DigestError::BadNonce)?)
            .map_err(|_| DigestError::BadNonce)?;
        if !bool::from(mac.as_slice().ct_eq(&self.mac(issued, salt))) {
            return Err(DigestError::BadNonce);
        }
        if issued > now.as_millis().saturating_add(NONCE_FUTURE_SKEW_MS) {
            return Err(DigestError::BadNonce);
        }
        let issued = Timestamp::from_millis(issued);
        if now - issued > self.nonce_lifetime {
            return Err(DigestError::Stale);
        }
        Ok((issued, salt))
    }

    /// Challenge header values, one per offered algorithm (same nonce), for
    /// `WWW-Authenticate` or `Proxy-Authenticate` (the value is the same; the
    /// caller picks the header with [`ChallengeKind::challenge_header`]).
    /// `stale` adds `stale=true` (RFC 7616 §3.3) after an expired nonce.
    #[must_use]
    pub fn challenges(&self, now: Timestamp, salt: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, salt);
        self.algorithms
            .iter()
            .map(|a| challenge_value(&self.realm, &nonce, *a, stale))
            .collect()
    }

    /// Verifies `Authorization`/`Proxy-Authorization` credentials for a
    /// request with `method` (and, when given, Request-URI `request_uri`,
    /// compared to the `uri` parameter) against the expected `username` and
    /// `password`.
    ///
    /// Order of checks: syntax and scheme, realm, username, algorithm, qop,
    /// nonce authenticity, response hash (constant-time), then nonce age, so
    /// `Stale` is only reported to a peer that knows the password.
    pub fn verify(
        &self,
        now: Timestamp,
        auth: &Auth<'_>,
        method: &str,
        request_uri: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<Verified, DigestError> {
        if !auth.is_digest() {
            return Err(DigestError::NotDigest);
        }
        // Parse the parameter list once (Auth::param rescans it per lookup).
        let params: Vec<AuthParam<'_>> = auth.params().collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name))
                .map(|p| {
                    if p.quoted {
                        unquote(p.value)
                    } else {
                        std::borrow::Cow::Borrowed(p.value)
                    }
                })
        };
        let get = |name: &'static str| param(name).ok_or(DigestError::Missing(name));
        let realm = get("realm")?;
        if realm != self.realm {
            return Err(DigestError::RealmMismatch);
        }
        let algorithm = match param("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_name(&a).ok_or(DigestError::UnsupportedAlgorithm)?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(DigestError::UnsupportedAlgorithm);
        }
        let presented = get("username")?;
        let userhash = param("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let user_ok = if userhash {
            let h = algorithm.hash_hex(&[username.as_bytes(), self.realm.as_bytes()]);
            bool::from(
                presented
                    .to_ascii_lowercase()
                    .as_bytes()
                    .ct_eq(h.as_bytes()),
            )
        } else {
            presented == username
        };
        if !user_ok {
            return Err(DigestError::UserMismatch);
        }
        let uri = get("uri")?;
        if let Some(req_uri) = request_uri {
            if uri.trim() != req_uri.trim() {
                return Err(DigestError::UriMismatch);
            }
        }
        let nonce = get("nonce")?;
        let response = get("response")?;
        let qop = param("qop");
        let (cnonce, nc) = match qop.as_deref() {
            None => (None, None),
            Some(q) if q.eq_ignore_ascii_case("auth") => (Some(get("cnonce")?), Some(get("nc")?)),
            Some(_) => return Err(DigestError::UnsupportedQop),
        };
        if algorithm.is_session() && cnonce.is_none() {
            return Err(DigestError::Missing("cnonce"));
        }
        let nc_value = match &nc {
            Some(nc) => Some(parse_nc(nc)?),
            None => None,
        };
        let fresh = self.check_nonce_parts(now, &nonce);
        if matches!(fresh, Err(DigestError::BadNonce)) {
            return Err(DigestError::BadNonce);
        }
        let expected = response_hash(&ResponseInput {
            algorithm,
            username,
            realm: &self.realm,
            password,
            method,
            uri: &uri,
            nonce: &nonce,
            cnonce: cnonce.as_deref(),
            nc: nc.as_deref(),
            qop: qop.as_ref().map(|_| "auth"),
        });
        let matches = response
            .to_ascii_lowercase()
            .as_bytes()
            .ct_eq(expected.as_bytes());
        if !bool::from(matches) {
            return Err(DigestError::WrongResponse);
        }
        let (issued_at, nonce_id) = fresh?;
        Ok(Verified {
            algorithm,
            nc: nc_value,
            issued_at,
            nonce_id,
            expires_at: issued_at + self.nonce_lifetime,
        })
    }
}

impl DigestServer {
    /// [`DigestServer::verify`] from a raw header value of `kind`
    /// (`Authorization` for [`ChallengeKind::Www`], `Proxy-Authorization`
    /// for [`ChallengeKind::Proxy`]).
    pub fn verify_value(
        &self,
        now: Timestamp,
        kind: ChallengeKind,
        value: &str,
        req: &ServerRequest<'_>,
    ) -> Result<Verified, DigestError> {
        let auth =
            Auth::parse(value, kind.credentials_header()).map_err(|_| DigestError::Malformed)?;
        self.verify(
            now,
            &auth,
            req.method,
            req.request_uri,
            req.username,
            req.password,
        )
    }
}

/// The request being authorised, and the credentials it must carry.
#[derive(Clone, Copy)]
pub struct ServerRequest<'a> {
    /// Request method.
    pub method: &'a str,
    /// Request-URI to compare with the `uri` parameter (`None`: not compared).
    pub request_uri: Option<&'a str>,
    /// Expected username.
    pub username: &'a str,
    /// Expected password.
    pub password: &'a str,
}

impl fmt::Debug for ServerRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRequest")
            .field("method", &self.method)
            .field("request_uri", &self.request_uri)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `nc` is exactly 8 hex digits (RFC 7616 §3.4).
fn parse_nc(nc: &str) -> Result<u32, DigestError> {
    if nc.len() != 8 {
        return Err(DigestError::BadNonceCount);
    }
    u32::from_str_radix(nc, 16).map_err(|_| DigestError::BadNonceCount)
}

/// Quotes a value for a `quoted-string` (RFC 3261 §25.1).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One challenge value: `Digest realm="..", nonce="..", algorithm=.., qop="auth"`.
#[must_use]
pub fn challenge_value(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut v = format!(
        "Digest realm={}, nonce={}, algorithm={}, qop=\"auth\"",
        quote(realm),
        quote(nonce),
        algorithm.name()
    );
    if stale {
        v.push_str(", stale=true");
    }
    v
}

/// Everything that goes into a `response` hash (RFC 7616 §3.4.1).
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Cleartext username (for HA1).
    pub username: &'a str,
    /// Realm.
    pub realm: &'a str,
    /// Password.
    pub password: &'a str,
    /// Request method (`INVITE`, ...).
    pub method: &'a str,
    /// The `uri` parameter (digest-uri).
    pub uri: &'a str,
    /// Server nonce.
    pub nonce: &'a str,
    /// Client nonce (with qop, or for `-sess`).
    pub cnonce: Option<&'a str>,
    /// Nonce count, 8 hex digits (with qop).
    pub nc: Option<&'a str>,
    /// `auth`, or `None` for RFC 2069 compatibility (RFC 3261 §22.4).
    pub qop: Option<&'a str>,
}

/// The `response` parameter, lower-case hex.
#[must_use]
pub fn response_hash(i: &ResponseInput<'_>) -> String {
    let a = i.algorithm;
    let mut ha1 = a.hash_hex(&[
        i.username.as_bytes(),
        i.realm.as_bytes(),
        i.password.as_bytes(),
    ]);
    if a.is_session() {
        ha1 = a.hash_hex(&[
            ha1.as_bytes(),
            i.nonce.as_bytes(),
            i.cnonce.unwrap_or("").as_bytes(),
        ]);
    }
    let ha2 = a.hash_hex(&[i.method.as_bytes(), i.uri.as_bytes()]);
    match i.qop {
        Some(qop) => a.hash_hex(&[
            ha1.as_bytes(),
            i.nonce.as_bytes(),
            i.nc.unwrap_or("").as_bytes(),
            i.cnonce.unwrap_or("").as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => a.hash_hex(&[ha1.as_bytes(), i.nonce.as_bytes(), ha2.as_bytes()]),
    }
}
