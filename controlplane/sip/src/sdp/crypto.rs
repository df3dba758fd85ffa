//! SDES `a=crypto` (RFC 4568 §9.1) and the SRTP key helpers an SBC needs to bridge
//! Teams (SRTP) and classic trunks (RTP).
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
//! key-params = key-param *(";" key-param)
//! key-param  = "inline:" <base64(key||salt)> ["|" lifetime] ["|" mki-value ":" mki-length]
//! lifetime   = ["2^"] 1*DIGIT
//! ```

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::error::{invalid, missing, CryptoKeyError, SdpErrorKind};
use super::types::{field, is_token, num};

/// The suite Teams Direct Routing offers and expects (RFC 4568 §6.2.1).
pub const AES_CM_128_HMAC_SHA1_80: &str = "AES_CM_128_HMAC_SHA1_80";

/// base64 (RFC 4648 §4 alphabet) that decodes with or without padding and always
/// encodes with padding, as RFC 4568 §6.1 `key-salt` expects.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Master key and master salt lengths in bytes for the SRTP suites of RFC 4568 §6.2,
/// RFC 6188 §7 and RFC 7714 §14.2. `None` for a suite this codec does not know.
pub fn suite_key_salt_len(suite: &str) -> Option<(usize, usize)> {
    Some(match suite {
        "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32" | "F8_128_HMAC_SHA1_80" => (16, 14),
        "AES_192_CM_HMAC_SHA1_80" | "AES_192_CM_HMAC_SHA1_32" => (24, 14),
        "AES_256_CM_HMAC_SHA1_80" | "AES_256_CM_HMAC_SHA1_32" => (32, 14),
        "AEAD_AES_128_GCM" => (16, 12),
        "AEAD_AES_256_GCM" => (32, 12),
        _ => return None,
    })
}

/// Key lifetime of an inline key (RFC 4568 §6.1): `2^n` or a literal packet count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// `2^<exponent>`.
    PowerOfTwo(u8),
    /// A decimal packet count.
    Packets(u64),
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PowerOfTwo(e) => write!(f, "2^{e}"),
            Self::Packets(n) => write!(f, "{n}"),
        }
    }
}

/// Master Key Identifier of an inline key (RFC 4568 §6.1): `<value>:<length in bytes>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    /// MKI value.
    pub value: u64,
    /// MKI field length in bytes on the wire, 1..=128.
    pub length: u8,
}

/// One key parameter. For `inline` the key info is split into its parts; for another
/// key method the whole key info is in `key` and `lifetime`/`mki` are `None`.
///
/// `Debug` does not print the key (it is a secret that must not reach logs); `Display`
/// writes the wire form, key included.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyParam {
    /// `<key-method>`, `inline` for SDES.
    pub method: String,
    /// For `inline`: base64(master key || master salt). Otherwise the key info.
    pub key: String,
    /// Optional key lifetime.
    pub lifetime: Option<Lifetime>,
    /// Optional MKI.
    pub mki: Option<Mki>,
}

impl KeyParam {
    fn parse(s: &str) -> Result<Self, SdpErrorKind> {
        let (method, info) = s
            .split_once(':')
            .ok_or_else(|| missing("crypto", "key-info"))?;
        if !is_token(method) {
            return Err(invalid("crypto", "key-method", method));
        }
        if method != "inline" {
            if info.is_empty() {
                return Err(missing("crypto", "key-info"));
            }
            return Ok(Self {
                method: method.to_owned(),
                key: info.to_owned(),
                lifetime: None,
                mki: None,
            });
        }
        let mut parts = info.split('|');
        let key = parts.next().unwrap_or_default();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            return Err(invalid("crypto", "key-salt", key));
        }
        let mut lifetime = None;
        let mut mki = None;
        for p in parts {
            if let Some((v, l)) = p.split_once(':') {
                let length: u8 = num("crypto", "mki-length", l)?;
                if mki.is_some() || length == 0 || length > 128 {
                    return Err(invalid("crypto", "mki", p));
                }
                mki = Some(Mki {
                    value: num("crypto", "mki-value", v)?,
                    length,
                });
            } else if lifetime.is_none() && mki.is_none() {
                lifetime = Some(match p.strip_prefix("2^") {
                    Some(e) => Lifetime::PowerOfTwo(num("crypto", "lifetime", e)?),
                    None => Lifetime::Packets(num("crypto", "lifetime", p)?),
                });
            } else {
                return Err(invalid("crypto", "lifetime", p));
            }
        }
        Ok(Self {
            method: method.to_owned(),
            key: key.to_owned(),
            lifetime,
            mki,
        })
    }

    /// An `inline:` key parameter carrying `key_salt` with lifetime `2^31` and no MKI.
    pub fn inline(key_salt: &[u8]) -> Self {
        Self {
            method: "inline".to_owned(),
            key: B64.encode(key_salt),
            lifetime: Some(Lifetime::PowerOfTwo(31)),
            mki: None,
        }
    }

    /// Decodes the base64 key||salt of an `inline` parameter.
    pub fn key_salt(&self) -> Result<Vec<u8>, CryptoKeyError> {
        if self.method != "inline" {
            return Err(CryptoKeyError::NoInlineKey);
        }
        B64.decode(&self.key).map_err(|_| CryptoKeyError::BadBase64)
    }
}

impl fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyParam")
            .field("method", &self.method)
            .field("key", &format_args!("<{} chars redacted>", self.key.len()))
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

impl fmt::Display for KeyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.method, self.key)?;
        if let Some(l) = self.lifetime {
            write!(f, "|{l}")?;
        }
        if let Some(m) = self.mki {
            write!(f, "|{}:{}", m.value, m.length)?;
        }
        Ok(())
    }
}

/// SRTP master key and master salt decoded from a crypto attribute.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeyMaterial {
    /// Master key (16, 24 or 32 bytes depending on the suite).
    pub key: Vec<u8>,
    /// Master salt (14 bytes for AES-CM/F8, 12 for AEAD-GCM).
    pub salt: Vec<u8>,
}

impl fmt::Debug for SrtpKeyMaterial {
    /// Never prints the secret bytes, only their sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SrtpKeyMaterial {{ key: <{} bytes>, salt: <{} bytes> }}",
            self.key.len(),
            self.salt.len()
        )
    }
}

/// `a=crypto:` (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Crypto {
    /// `<tag>`: 1 to 9 digits, unique within the media section.
    pub tag: u32,
    /// `<crypto-suite>`, e.g. [`AES_CM_128_HMAC_SHA1_80`].
    pub suite: String,
    /// One or more key parameters (`;`-separated on the wire).
    pub keys: Vec<KeyParam>,
    /// Session parameters (`UNENCRYPTED_SRTCP`, `KDR=n`, `WSH=n`, ...), as sent.
    pub session_params: Vec<String>,
}

impl Crypto {
    /// Parses the value of `a=crypto:`.
    pub fn parse(v: &str) -> Result<Self, SdpErrorKind> {
        let mut it = v.split_ascii_whitespace();
        let tag_s = field(&mut it, "crypto", "tag")?;
        if tag_s.len() > 9 {
            return Err(invalid("crypto", "tag", tag_s));
        }
        let tag = num("crypto", "tag", tag_s)?;
        let suite = field(&mut it, "crypto", "crypto-suite")?;
        if !is_token(suite) {
            return Err(invalid("crypto", "crypto-suite", suite));
        }
        let keys = field(&mut it, "crypto", "key-params")?
            .split(';')
            .map(KeyParam::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tag,
            suite: suite.to_owned(),
            keys,
            session_params: it.map(str::to_owned).collect(),
        })
    }

    /// `<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64(key||salt)>|2^31`: the offer Teams
    /// Direct Routing expects (RFC 4568 §6.2.1 key = 128 bits, salt = 112 bits).
    pub fn aes_cm_128_hmac_sha1_80(tag: u32, key: &[u8; 16], salt: &[u8; 14]) -> Self {
        let mut ks = [0u8; 30];
        let (k, s) = ks.split_at_mut(16);
        k.copy_from_slice(key);
        s.copy_from_slice(salt);
        Self {
            tag,
            suite: AES_CM_128_HMAC_SHA1_80.to_owned(),
            keys: vec![KeyParam::inline(&ks)],
            session_params: Vec::new(),
        }
    }

    /// The master key and salt of the first `inline` key parameter, split at the key
    /// length of the suite.
    ///
    /// Errors when there is no inline key, the suite is unknown, the base64 is bad, or
    /// the decoded length is not key + salt for the suite.
    pub fn key_material(&self) -> Result<SrtpKeyMaterial, CryptoKeyError> {
        let (klen, slen) = suite_key_salt_len(&self.suite)
            .ok_or_else(|| CryptoKeyError::UnknownSuite(self.suite.clone()))?;
        let param = self
            .keys
            .iter()
            .find(|k| k.method == "inline")
            .ok_or(CryptoKeyError::NoInlineKey)?;
        let mut bytes = param.key_salt()?;
        if bytes.len() != klen + slen {
            return Err(CryptoKeyError::WrongLength {
                expected: klen + slen,
                got: bytes.len(),
            });
        }
        let salt = bytes.split_off(klen);
        Ok(SrtpKeyMaterial { key: bytes, salt })
    }
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}")?;
        }
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4568_example() {
        // RFC 4568 §4 example.
        let s =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
        let c = Crypto::parse(s).unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, AES_CM_128_HMAC_SHA1_80);
        assert_eq!(c.keys.len(), 1);
        assert_eq!(c.keys[0].lifetime, Some(Lifetime::PowerOfTwo(20)));
        assert_eq!(
            c.keys[0].mki,
            Some(Mki {
                value: 1,
                length: 4
            })
        );
        assert_eq!(c.to_string(), s);
        let m = c.key_material().unwrap();
        assert_eq!((m.key.len(), m.salt.len()), (16, 14));
        assert_eq!(m.key.get(..4), Some(&b"=-n@"[..]));
    }

    #[test]
    fn several_keys_and_session_params() {
        let s = "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32;inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:32 KDR=1 UNENCRYPTED_SRTCP";
        let c = Crypto::parse(s).unwrap();
        assert_eq!(c.keys.len(), 2);
        assert_eq!(
            c.keys[1].mki,
            Some(Mki {
                value: 2,
                length: 32
            })
        );
        assert_eq!(c.session_params, ["KDR=1", "UNENCRYPTED_SRTCP"]);
        assert_eq!(c.to_string(), s);
        let c = Crypto::parse(
            "3 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1048576",
        )
        .unwrap();
        assert_eq!(c.keys[0].lifetime, Some(Lifetime::Packets(1_048_576)));
        let c = Crypto::parse(
            "4 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|3:2",
        )
        .unwrap();
        assert_eq!(c.keys[0].lifetime, None);
        assert_eq!(
            c.keys[0].mki,
            Some(Mki {
                value: 3,
                length: 2
            })
        );
    }

    #[test]
    fn malformed_rejected() {
        for bad in [
            "",
            "1",
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AA!A",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^31|2^31",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^31",
            "1 AES_CM_128_HMAC_SHA1_80 AAAA",
        ] {
            assert!(Crypto::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn build_and_extract_teams_key() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let salt: [u8; 14] = core::array::from_fn(|i| 0xA0 + i as u8);
        let c = Crypto::aes_cm_128_hmac_sha1_80(1, &key, &salt);
        let text = c.to_string();
        assert!(text.starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(text.ends_with("|2^31"));
        assert_eq!(
            text.len(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:".len() + 40 + 5
        );
        let back = Crypto::parse(&text).unwrap();
        assert_eq!(back, c);
        let m = back.key_material().unwrap();
        assert_eq!(m.key, key);
        assert_eq!(m.salt, salt);
        assert!(
            !format!("{m:?}").contains("160"),
            "Debug must hide key bytes"
        );
        let key_b64 = &back.keys[0].key;
        assert!(
            !format!("{back:?}").contains(key_b64.as_str()),
            "Debug must hide the key"
        );
        assert!(format!("{back:?}").contains("<40 chars redacted>"));
    }

    #[test]
    fn key_material_errors() {
        let mut c = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^31").unwrap();
        assert_eq!(
            c.key_material(),
            Err(CryptoKeyError::WrongLength {
                expected: 30,
                got: 3
            })
        );
        c.suite = "NULL_HMAC_SHA1_80".into();
        assert!(matches!(
            c.key_material(),
            Err(CryptoKeyError::UnknownSuite(_))
        ));
        let c = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:A===").unwrap();
        assert_eq!(c.key_material(), Err(CryptoKeyError::BadBase64));
        let c = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 uri:https://kms.example/k").unwrap();
        assert_eq!(c.key_material(), Err(CryptoKeyError::NoInlineKey));
        // AES-256 keys (46 bytes) need base64 padding; both forms decode.
        let ks = [7u8; 46];
        let padded = B64.encode(ks);
        assert!(padded.ends_with("=="));
        for k in [padded.as_str(), padded.trim_end_matches('=')] {
            let c = Crypto::parse(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{k}")).unwrap();
            let m = c.key_material().unwrap();
            assert_eq!((m.key.len(), m.salt.len()), (32, 14));
        }
    }
}
