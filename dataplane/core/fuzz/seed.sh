#!/usr/bin/env bash
# Builds the seed corpora (never committed: fuzz/corpus is gitignored).
#   srtp_unprotect: every protected packet of shared/vectors/srtp/srtp_vectors.json,
#                   prefixed with the selector byte (bit 0: _32 suite, bit 1: RTCP)
#   rtp:            the same packets, and their plaintexts, without selector
#   stun:           the RFC 5769 §2.1 request and §2.2/§2.3 responses
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${VECTORS:-$here/../../../../shared/vectors}"
json="$vectors/srtp/srtp_vectors.json"
if [ ! -f "$json" ]; then
  echo "seed.sh: $json not found (set VECTORS=...)" >&2
  exit 1
fi
corpus="$here/corpus"
mkdir -p "$corpus/srtp_unprotect" "$corpus/rtp" "$corpus/stun"
python3 - "$json" "$corpus" <<'PY'
import json, pathlib, sys
data = json.load(open(sys.argv[1]))
out = pathlib.Path(sys.argv[2])
vecs = data["packet_vectors"] + data["negative_vectors"]
for i, v in enumerate(vecs):
    if "mki" in v:
        continue  # the fuzz session has no MKI
    sel = (1 if v["suite"].endswith("_32") else 0) | (2 if v["kind"] == "rtcp" else 0)
    wire = bytes.fromhex(v["protected"])
    (out / "srtp_unprotect" / f"v{i:02}").write_bytes(bytes([sel]) + wire)
    (out / "rtp" / f"w{i:02}").write_bytes(wire)
    if "plaintext" in v:
        (out / "rtp" / f"p{i:02}").write_bytes(bytes.fromhex(v["plaintext"]))
stun = {
    "rfc5769_request": "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf",
    "rfc5769_v4": "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96",
    "rfc5769_v6": "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c",
}
for name, h in stun.items():
    (out / "stun" / name).write_bytes(bytes.fromhex(h))
PY
echo "seeds: $(ls "$corpus/srtp_unprotect" | wc -l) srtp, $(ls "$corpus/rtp" | wc -l) rtp, $(ls "$corpus/stun" | wc -l) stun"
