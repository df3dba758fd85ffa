"""libsrtp peer for tests/interop_pylibsrtp.rs (driven over stdin/stdout).

Usage: pylibsrtp_peer.py protect|unprotect 80|32 KEY_SALT_HEX
Each stdin line is "rtp HEX" or "rtcp HEX"; each stdout line is the
transformed packet in hex, or "ERR <libsrtp error>".
"""
import sys

import pylibsrtp


def main() -> None:
    mode, suite, key_hex = sys.argv[1], sys.argv[2], sys.argv[3]
    profile = {
        "80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        "32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    }[suite]
    ssrc_type = (
        pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        if mode == "protect"
        else pylibsrtp.Policy.SSRC_ANY_INBOUND
    )
    policy = pylibsrtp.Policy(
        key=bytes.fromhex(key_hex), ssrc_type=ssrc_type, srtp_profile=profile
    )
    session = pylibsrtp.Session(policy=policy)
    for line in sys.stdin:
        kind, data = line.split()
        packet = bytes.fromhex(data)
        try:
            if mode == "protect":
                out = session.protect(packet) if kind == "rtp" else session.protect_rtcp(packet)
            else:
                out = session.unprotect(packet) if kind == "rtp" else session.unprotect_rtcp(packet)
            print(out.hex(), flush=True)
        except pylibsrtp.Error as exc:
            print("ERR", exc, flush=True)


if __name__ == "__main__":
    main()
