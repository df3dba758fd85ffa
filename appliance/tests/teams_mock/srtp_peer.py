#!/usr/bin/python3
"""The media side of the mock Teams: a real SRTP implementation (libsrtp via pylibsrtp).

Usage: srtp_peer.py LISTEN_PORT RX_KEY_B64 TX_KEY_B64 PEER_IP PEER_PORT COUNT SECONDS

Binds 127.0.0.1:LISTEN_PORT, decrypts the SRTP that arrives (AES_CM_128_HMAC_SHA1_80,
master key||salt RX_KEY_B64: the SBC's a=crypto) and prints one line per packet:
`rx SEQ PAYLOAD_HEX` (or `rx-fail REASON`). Meanwhile it sends COUNT SRTP packets
(PCMU, 20 ms apart, encrypted with TX_KEY_B64: the mock's a=crypto) to PEER_IP:PEER_PORT
and prints `tx SEQ PAYLOAD_HEX` for each. Stops after SECONDS.
"""
import base64
import os
import select
import socket
import struct
import sys
import time

import pylibsrtp


def main():
    port, rx_key, tx_key, peer_ip, peer_port, count, seconds = sys.argv[1:8]
    port, peer_port, count, seconds = int(port), int(peer_port), int(count), float(seconds)
    profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    rx = pylibsrtp.Session(
        policy=pylibsrtp.Policy(
            key=base64.b64decode(rx_key),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile,
        )
    )
    tx = pylibsrtp.Session(
        policy=pylibsrtp.Policy(
            key=base64.b64decode(tx_key),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile,
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    ssrc = 0x7EA5_0001
    start = time.monotonic()
    deadline = start + seconds
    sent = 0
    next_send = start
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sent < count and now >= next_send:
            seq = 1000 + sent
            payload = bytes([0xA0 + (sent % 16)]) + os.urandom(159)
            hdr = struct.pack("!BBHII", 0x80, 0, seq, 160 * sent, ssrc)
            sock.sendto(tx.protect(hdr + payload), (peer_ip, peer_port))
            print("tx %d %s" % (seq, payload.hex()), flush=True)
            sent += 1
            next_send = now + 0.02
        wait = max(0.0, min(next_send if sent < count else deadline, deadline) - time.monotonic())
        r, _, _ = select.select([sock], [], [], wait)
        if not r:
            continue
        data, _ = sock.recvfrom(4096)
        if len(data) < 12 or (data[0] >> 6) != 2 or 192 <= (data[1] & 0x7F) <= 223:
            continue  # not RTP (RTCP on the muxed port, STUN)
        try:
            plain = rx.unprotect(data)
        except Exception as e:  # authentication or replay failure
            print("rx-fail %s" % e, flush=True)
            continue
        cc = plain[0] & 0x0F
        off = 12 + 4 * cc
        if plain[0] & 0x10 and len(plain) >= off + 4:
            off += 4 + 4 * struct.unpack("!H", plain[off + 2 : off + 4])[0]
        seq = struct.unpack("!H", plain[2:4])[0]
        print("rx %d %s" % (seq, plain[off:].hex()), flush=True)


if __name__ == "__main__":
    main()
