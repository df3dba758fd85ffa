#!/usr/bin/env bash
# Builds the seed corpora from the shared conformance vectors (read at run time,
# never copied into the repository: fuzz/corpus is gitignored).
#   sip_message: every RFC 4475 / RFC 5118 torture message
#   sip_uri:     every Request-URI and <...> URI found in those messages
#   sdp:         the bodies after the empty line of those messages
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${VECTORS:-$here/../../../../shared/vectors}"
src="$vectors/sip-torture"
if [ ! -d "$src" ]; then
  echo "seed.sh: vectors not found at $src (set VECTORS=...)" >&2
  exit 1
fi
corpus="$here/corpus"
mkdir -p "$corpus/sip_message" "$corpus/sip_uri" "$corpus/sdp"
n=0
while IFS= read -r -d '' f; do
  name="$(basename "$(dirname "$f")")_$(basename "$f")"
  cp "$f" "$corpus/sip_message/$name"
  # URIs: the Request-URI and anything between < and >.
  { head -n1 "$f" | tr -d '\r' | awk '{print $2}'; grep -ao '<[^<> ]*>' "$f" | tr -d '<>' || true; } |
    while IFS= read -r u; do
      [ -n "$u" ] || continue
      printf '%s' "$u" > "$corpus/sip_uri/$(printf '%s' "$u" | sha1sum | cut -c1-16)"
    done
  # Body after the first empty line, when it looks like SDP.
  tmp="$corpus/sdp/.tmp"
  awk 'BEGIN{RS="\r\n\r\n"} NR>1{printf "%s", $0 RS}' "$f" > "$tmp" || true
  if [ "$(head -c2 "$tmp")" = "v=" ]; then
    mv "$tmp" "$corpus/sdp/$name"
  fi
  rm -f "$tmp"
  n=$((n + 1))
done < <(find "$src" -type f \( -name '*.dat' -o -path '*/rfc5118/*' \) ! -name '*.json' ! -name '*.md' -print0)
echo "seed.sh: $n messages -> $(ls "$corpus/sip_message" | wc -l) sip_message, $(ls "$corpus/sip_uri" | wc -l) sip_uri, $(ls "$corpus/sdp" | wc -l) sdp seeds"
