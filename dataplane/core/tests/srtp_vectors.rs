//! Every vector of `shared/vectors/srtp/srtp_vectors.json` (see its SOURCES.md):
//! RFC 3711 B.2 keystream, B.3 key derivation, 26 packet vectors (protect gives the
//! exact bytes, unprotect gives the plaintext back) and 4 negative vectors.

use portcullis_rtp::srtp::{
    aes_cm_apply, derive_session_key, label, SrtpError, SrtpKeys, SrtpProfile, SrtpSession,
};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/srtp/srtp_vectors.json"
);

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS)
        .unwrap_or_else(|e| panic!("cannot read {VECTORS}: {e} (is shared/ beside the repo?)"));
    serde_json::from_str(&text).expect("srtp_vectors.json is JSON")
}

fn hexv(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hexv(v).try_into().expect("length")
}

fn profile(v: &Value) -> SrtpProfile {
    SrtpProfile::from_sdes_name(v["suite"].as_str().unwrap()).expect("known suite")
}

fn keys(v: &Value) -> SrtpKeys {
    SrtpKeys {
        profile: profile(v),
        master_key: arr(&v["master_key"]),
        master_salt: arr(&v["master_salt"]),
    }
}

fn session(v: &Value) -> SrtpSession {
    match v.get("mki") {
        Some(mki) => SrtpSession::with_mki(&keys(v), &hexv(mki)).expect("short MKI"),
        None => SrtpSession::new(&keys(v)),
    }
}

fn ssrc(v: &Value) -> u32 {
    let s = v["ssrc"].as_str().unwrap();
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn is_rtp(v: &Value) -> bool {
    match v["kind"].as_str() {
        Some("rtp") => true,
        Some("rtcp") => false,
        other => panic!("unknown kind {other:?}"),
    }
}

/// Seed the state the vector says applies to this packet.
fn seed(s: &mut SrtpSession, v: &Value) {
    if is_rtp(v) {
        s.set_roc(ssrc(v), v["roc"].as_u64().unwrap() as u32);
    } else {
        s.set_srtcp_index(ssrc(v), v["srtcp_index"].as_u64().unwrap() as u32);
    }
}

fn protect(s: &mut SrtpSession, v: &Value, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 32, 0);
    let n = if is_rtp(v) {
        s.protect_rtp(&mut buf, plain.len())?
    } else {
        s.protect_rtcp(&mut buf, plain.len())?
    };
    buf.truncate(n);
    Ok(buf)
}

fn unprotect(s: &mut SrtpSession, v: &Value, wire: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = wire.to_vec();
    let n = if is_rtp(v) {
        s.unprotect_rtp(&mut buf, wire.len())?
    } else {
        s.unprotect_rtcp(&mut buf, wire.len())?
    };
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let d = load();
    let b2 = &d["rfc3711_b2_aes_cm"];
    let key: [u8; 16] = arr(&b2["session_key"]);
    let blocks = b2["keystream_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 6);
    for b in blocks {
        let counter: [u8; 16] = arr(&b["counter"]);
        let mut ks = [0u8; 16];
        aes_cm_apply(&key, &counter, &mut ks);
        assert_eq!(
            ks.to_vec(),
            hexv(&b["keystream"]),
            "block {}",
            b["block_index"]
        );
    }
    // The same keystream through one long run from the offset IV (blocks 0..=FF01).
    let iv: [u8; 16] = arr(&b2["offset_iv"]);
    let mut run = vec![0u8; 16 * 0xff02];
    aes_cm_apply(&key, &iv, &mut run);
    for b in blocks {
        let i = b["block_index"].as_u64().unwrap() as usize;
        assert_eq!(run[16 * i..16 * i + 16].to_vec(), hexv(&b["keystream"]));
    }
}

#[test]
fn rfc3711_b3_key_derivation() {
    let d = load();
    let b3 = &d["rfc3711_b3_key_derivation"];
    let mk: [u8; 16] = arr(&b3["master_key"]);
    let ms: [u8; 14] = arr(&b3["master_salt"]);
    let mut k = [0u8; 16];
    derive_session_key(&mk, &ms, label::RTP_ENCRYPTION, &mut k);
    assert_eq!(k.to_vec(), hexv(&b3["label_0_cipher_key"]["value"]));
    let mut s = [0u8; 14];
    derive_session_key(&mk, &ms, label::RTP_SALT, &mut s);
    assert_eq!(s.to_vec(), hexv(&b3["label_2_cipher_salt"]["value"]));
    let mut a = [0u8; 94];
    derive_session_key(&mk, &ms, label::RTP_AUTH, &mut a);
    let auth = &b3["label_1_auth_key"];
    assert_eq!(
        a.to_vec(),
        hexv(&auth["full_94_byte_keystream_as_printed_in_rfc"])
    );
    assert_eq!(
        a[..20].to_vec(),
        hexv(&auth["value_first_20_bytes_used_by_hmac_sha1"])
    );
}

#[test]
fn every_packet_vector_protects_and_unprotects_exactly() {
    let d = load();
    let vectors = d["packet_vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 26, "vector file changed: review this test");
    let mut checked = 0;
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let plain = hexv(&v["plaintext"]);
        let wire = hexv(&v["protected"]);
        let tag = v["auth_tag_len"].as_u64().unwrap() as usize;
        let expect_tag = if is_rtp(v) {
            profile(v).rtp_tag_len()
        } else {
            10
        };
        assert_eq!(tag, expect_tag, "{name}: tag length convention");

        let mut tx = session(v);
        seed(&mut tx, v);
        let got = protect(&mut tx, v, &plain).unwrap_or_else(|e| panic!("{name}: protect {e}"));
        assert_eq!(hex::encode(&got), hex::encode(&wire), "{name}: protect");

        let mut rx = session(v);
        seed(&mut rx, v);
        let back = unprotect(&mut rx, v, &wire).unwrap_or_else(|e| panic!("{name}: unprotect {e}"));
        assert_eq!(hex::encode(&back), hex::encode(&plain), "{name}: unprotect");
        // The same packet again is a replay.
        assert_eq!(
            unprotect(&mut rx, v, &wire),
            Err(SrtpError::Replay),
            "{name}: replay"
        );
        checked += 1;
    }
    assert_eq!(checked, 26);
}

/// Vectors sharing a name are consecutive packets of one stream (ROC rollover,
/// SRTCP index 1 then 2): run each group through ONE session, seeding only the
/// state before the first packet, so ROC and index advance by themselves.
#[test]
fn packet_vector_sequences_advance_roc_and_srtcp_index() {
    let d = load();
    let vectors = d["packet_vectors"].as_array().unwrap();
    let mut groups: Vec<(&str, Vec<&Value>)> = Vec::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, g)) => g.push(v),
            None => groups.push((name, vec![v])),
        }
    }
    let mut multi = 0;
    for (name, group) in &groups {
        let mut tx = session(group[0]);
        let mut rx = session(group[0]);
        seed(&mut tx, group[0]);
        seed(&mut rx, group[0]);
        for v in group {
            let got = protect(&mut tx, v, &hexv(&v["plaintext"])).unwrap();
            assert_eq!(
                hex::encode(&got),
                v["protected"].as_str().unwrap(),
                "{name} chained"
            );
            let back = unprotect(&mut rx, v, &got).unwrap();
            assert_eq!(
                hex::encode(&back),
                v["plaintext"].as_str().unwrap(),
                "{name} chained"
            );
            if is_rtp(v) {
                let roc = v["roc"].as_u64().unwrap() as u32;
                assert_eq!(tx.roc(ssrc(v)), Some(roc), "{name}: sender ROC");
                assert_eq!(rx.roc(ssrc(v)), Some(roc), "{name}: receiver ROC");
            }
        }
        if group.len() > 1 {
            multi += 1;
        }
    }
    assert_eq!(
        multi, 4,
        "two ROC rollover and two SRTCP sequences expected"
    );
}

#[test]
fn every_negative_vector_is_rejected() {
    let d = load();
    let vectors = d["negative_vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let mut rx = session(v);
        seed(&mut rx, v);
        let wire = hexv(&v["protected"]);
        assert_eq!(
            unprotect(&mut rx, v, &wire),
            Err(SrtpError::AuthFailed),
            "{name}"
        );
        // A rejected packet does not advance state: the genuine packet (found by
        // undoing the bit flip through the positive vector set) still works.
        let genuine = d["packet_vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                let pw = hexv(&p["protected"]);
                p["suite"] == v["suite"]
                    && pw.len() == wire.len()
                    && pw.iter().zip(&wire).filter(|(a, b)| a != b).count() == 1
            })
            .unwrap_or_else(|| panic!("{name}: no positive vector one bit away"));
        assert_eq!(
            unprotect(&mut rx, v, &hexv(&genuine["protected"])).unwrap(),
            hexv(&genuine["plaintext"]),
            "{name}: genuine packet after the forgery"
        );
    }
}
