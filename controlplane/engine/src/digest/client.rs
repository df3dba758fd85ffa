//! Client side of digest authentication: answering a 401/407
//! (RFC 7616 §3.4, RFC 8760 §2.4 challenge selection).

use std::borrow::Cow;
use std::fmt;

use portcullis_sip::header::Auth;

use super::{quote, response_hash, Algorithm, ChallengeKind, DigestError, ResponseInput};

/// Whether a challenge's qop list contains `auth`, or it has no qop at all.
fn qop_mode(challenge: &Auth<'_>) -> Result<Option<&'static str>, DigestError> {
    match challenge.qop() {
        None => Ok(None),
        Some(list) => {
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            {
                Ok(Some("auth"))
            } else {
                Err(DigestError::UnsupportedQop)
            }
        }
    }
}

/// Picks the challenge to answer among those of one 401/407: the strongest
/// supported algorithm with an acceptable qop (RFC 8760 §2.4, RFC 7616 §3.7).
#[must_use]
pub fn select_challenge<'a, 'b>(challenges: &'b [Auth<'a>]) -> Option<(&'b Auth<'a>, Algorithm)> {
    challenges
        .iter()
        .filter(|c| c.is_digest() && qop_mode(c).is_ok() && c.nonce().is_some())
        .filter_map(|c| {
            let alg = match c.param("algorithm") {
                None => Some(Algorithm::Md5),
                Some(a) => Algorithm::from_name(&a),
            }?;
            Some((c, alg))
        })
        .max_by_key(|(_, a)| a.strength())
}

/// A cnonce from caller-supplied randomness (16 hex digits).
#[must_use]
pub fn cnonce(random: u64) -> String {
    format!("{random:016x}")
}

/// What the client side needs to answer a challenge.
#[derive(Clone, Copy)]
pub struct ClientRequest<'a> {
    /// Method of the request being retried (`INVITE`, `BYE`, ...).
    pub method: &'a str,
    /// Its Request-URI (the `uri` parameter).
    pub uri: &'a str,
    /// Our username.
    pub username: &'a str,
    /// Our password.
    pub password: &'a str,
    /// Client nonce (see [`cnonce`]).
    pub cnonce: &'a str,
    /// Nonce count: 1 for the first use of a nonce, then 2, 3, ...
    pub nc: u32,
}

impl fmt::Debug for ClientRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("username", &self.username)
            .field("cnonce", &self.cnonce)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

/// Client side: the `Authorization`/`Proxy-Authorization` value answering
/// `challenge` for `req` (RFC 7616 §3.4; RFC 2069 form when the challenge
/// has no qop).
pub fn answer(challenge: &Auth<'_>, req: &ClientRequest<'_>) -> Result<String, DigestError> {
    let ClientRequest {
        method,
        uri,
        username,
        password,
        cnonce,
        nc,
    } = *req;
    if !challenge.is_digest() {
        return Err(DigestError::NotDigest);
    }
    let alg_param = challenge.param("algorithm");
    let algorithm = match &alg_param {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_name(a).ok_or(DigestError::UnsupportedAlgorithm)?,
    };
    let realm = challenge.realm().ok_or(DigestError::Missing("realm"))?;
    let nonce = challenge.nonce().ok_or(DigestError::Missing("nonce"))?;
    let qop = qop_mode(challenge)?;
    let nc_s = format!("{nc:08x}");
    let uses_cnonce = qop.is_some() || algorithm.is_session();
    let response = response_hash(&ResponseInput {
        algorithm,
        username,
        realm: &realm,
        password,
        method,
        uri,
        nonce: &nonce,
        cnonce: uses_cnonce.then_some(cnonce),
        nc: qop.map(|_| nc_s.as_str()),
        qop,
    });
    let userhash = challenge
        .param("userhash")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let username: Cow<'_, str> = if userhash {
        Cow::Owned(algorithm.hash_hex(&[username.as_bytes(), realm.as_bytes()]))
    } else {
        Cow::Borrowed(username)
    };
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}",
        quote(&username),
        quote(&realm),
        quote(&nonce),
        quote(uri),
        quote(&response)
    );
    if alg_param.is_some() {
        v.push_str(", algorithm=");
        v.push_str(algorithm.name());
    }
    if uses_cnonce {
        v.push_str(", cnonce=");
        v.push_str(&quote(cnonce));
    }
    if let Some(opaque) = challenge.param("opaque") {
        v.push_str(", opaque=");
        v.push_str(&quote(&opaque));
    }
    if let Some(q) = qop {
        v.push_str(", qop=");
        v.push_str(q);
        v.push_str(", nc=");
        v.push_str(&nc_s);
    }
    if userhash {
        v.push_str(", userhash=true");
    }
    Ok(v)
}

/// Client side from raw header values: parses every challenge of a 401/407
/// (`kind` names the header), picks the best ([`select_challenge`]) and
/// answers it. Unparseable values are skipped.
pub fn answer_best(
    kind: ChallengeKind,
    challenge_values: &[&str],
    req: &ClientRequest<'_>,
) -> Result<String, DigestError> {
    let parsed: Vec<Auth<'_>> = challenge_values
        .iter()
        .filter_map(|v| Auth::parse(v, kind.challenge_header()).ok())
        .collect();
    if parsed.is_empty() {
        return Err(DigestError::Malformed);
    }
    let (c, _) = select_challenge(&parsed).ok_or(DigestError::UnsupportedAlgorithm)?;
    answer(c, req)
}
