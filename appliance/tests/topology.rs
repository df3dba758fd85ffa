//! Interop: topology hiding. Calls sipp UAC → portcullis → sipp UAS with `-trace_msg`
//! on both sides; no address, Call-ID, tag or Via branch seen on one side may appear in
//! any message seen on the other side (the B2BUA makes two independent dialogs).

mod sipp_harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sipp_harness::*;

/// Identifiers found in one side's sipp message log.
#[derive(Debug, Default)]
struct Ids {
    call_ids: BTreeSet<String>,
    tags: BTreeSet<String>,
    branches: BTreeSet<String>,
}

/// The token after `key` up to the next `;`, `>`, `,` or whitespace.
fn params(line: &str, key: &str) -> Vec<String> {
    line.match_indices(key)
        .filter_map(|(i, _)| line.get(i + key.len()..))
        .map(|rest| {
            rest.split(|c: char| c == ';' || c == '>' || c == ',' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every Call-ID, tag and Via branch in a sipp `-trace_msg` log.
fn ids(log: &str) -> Ids {
    let mut out = Ids::default();
    for line in log.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("call-id:") || lower.starts_with("i:") {
            if let Some((_, v)) = line.split_once(':') {
                out.call_ids.insert(v.trim().to_owned());
            }
        }
        out.tags.extend(params(line, "tag="));
        out.branches.extend(params(line, "branch="));
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn no_identifier_crosses_the_b2bua() {
    let _serial = serial();
    let p = Ports::for_test(31);
    let app = Appliance::start(&config(p, ROUTE_LEFT_RIGHT));
    let dir = app.dir.path().to_path_buf();
    let calls = 5;
    let uas_log = dir.join("uas_messages.log");
    let uac_log = dir.join("uac_messages.log");
    let mut uas = start_uas(
        &dir,
        p,
        &[
            "-sn",
            "uas",
            "-m",
            &calls.to_string(),
            "-trace_msg",
            "-message_file",
            uas_log.to_str().expect("utf-8 path"),
        ],
    );
    let target = sip_target(p);
    let mut uac = start_uac(
        &dir,
        p,
        &[
            "-sn",
            "uac",
            &target,
            "-m",
            &calls.to_string(),
            "-r",
            "5",
            "-trace_msg",
            "-message_file",
            uac_log.to_str().expect("utf-8 path"),
        ],
    );
    uac.wait_ok(Duration::from_secs(60), "sipp uac failed");
    uas.wait_ok(Duration::from_secs(30), "sipp uas failed");

    let a_text = read(&uac_log);
    let b_text = read(&uas_log);
    let a = ids(&a_text);
    let b = ids(&b_text);
    // Both sides saw whole calls: at least one Call-ID per call, the two tags of each
    // dialog, a branch per transaction.
    for (side, s) in [("A", &a), ("B", &b)] {
        assert!(s.call_ids.len() >= calls, "side {side}: {s:?}");
        assert!(s.tags.len() >= 2 * calls, "side {side}: {s:?}");
        assert!(s.branches.len() >= calls, "side {side}: {s:?}");
    }
    let leak = |what: &str, x: &BTreeSet<String>, y: &BTreeSet<String>| {
        let common: Vec<_> = x.intersection(y).collect();
        assert!(
            common.is_empty(),
            "{what} seen on both sides: {common:?}\n--- A ---\n{a_text}\n--- B ---\n{b_text}"
        );
    };
    leak("Call-ID", &a.call_ids, &b.call_ids);
    leak("tag", &a.tags, &b.tags);
    leak("Via branch", &a.branches, &b.branches);

    // Addresses: the UAC's signalling and media addresses never reach the UAS, and
    // the UAS's never reach the UAC (all hosts are 127.0.0.1, so the ports tell).
    let a_sig = format!("127.0.0.1:{}", p.left);
    let b_sig = format!("127.0.0.1:{}", p.right);
    let a_media = format!("m=audio {} ", p.sipp_media);
    let b_media = format!("m=audio {} ", p.sipp_media + 100);
    for (needle, text) in [
        (&a_sig, &a_text),
        (&b_sig, &b_text),
        (&a_media, &a_text),
        (&b_media, &b_text),
    ] {
        assert!(
            text.contains(needle.as_str()),
            "{needle:?} not in its own side's log"
        );
    }
    for (needle, text, side) in [
        (&a_sig, &b_text, "B"),
        (&a_media, &b_text, "B"),
        (&b_sig, &a_text, "A"),
        (&b_media, &a_text, "A"),
    ] {
        assert!(
            !text.contains(needle.as_str()),
            "{needle:?} leaked to side {side}:\n{text}"
        );
    }
    let cdrs = app.wait_cdrs(calls, Duration::from_secs(10));
    assert_eq!(cdrs.len(), calls);
}
