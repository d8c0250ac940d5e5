#!/usr/bin/env python3
"""Writes the hand-made regression seeds to regression/<target>/seed-* (checked in; everything else
the fuzzer adds to corpus/ stays untracked). Deterministic: rerun after changing a target's input
format and commit the difference. `cargo test -p ferrosfu-worker-core --test fuzz_regression` replays them
and checks that seeds named -connects/-fails/-refused (dtls_auth) and -dropped/-resyncs
(recv_stream) still end that way.

    python3 worker/core/fuzz/make_seeds.py

core_datagram, recv_stream and dtls_auth seeds are op sequences in the encoding of
`arbitrary::Unstructured` (1.x) as the target reads them: `int_in_range` takes as many big-endian
bytes as the range width needs, modulo the range (signed ranges: the offset from the start);
`arbitrary::<uN>()` takes N/8 little-endian bytes; `bool` one byte (its low bit); `ratio(1, d)`
is `int_in_range(1..=d) <= 1`; `bytes(n)` takes n bytes.
"""

import hashlib
import hmac
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


# --- packets ---------------------------------------------------------------------------------

def rtp(pt=96, seq=1000, ts=90000, ssrc=0x1111, marker=False, payload=b"", csrcs=(),
        ext=None, padding=0):
    """ext: (profile, body bytes) or None. padding: total padding length incl. count byte."""
    b0 = 0x80 | len(csrcs)
    if ext is not None:
        b0 |= 0x10
    if padding:
        b0 |= 0x20
    v = bytes([b0, (0x80 if marker else 0) | pt]) + struct.pack(">HII", seq, ts, ssrc)
    for c in csrcs:
        v += struct.pack(">I", c)
    if ext is not None:
        profile, body = ext
        body += b"\0" * (-len(body) % 4)
        v += struct.pack(">HH", profile, len(body) // 4) + body
    v += payload
    if padding:
        v += b"\0" * (padding - 1) + bytes([padding])
    return v


def one_byte_ext(elems):
    return 0xBEDE, b"".join(bytes([(i << 4) | (len(d) - 1)]) + d for i, d in elems)


def two_byte_ext(elems):
    # Padding byte between elements, as RFC 8285 allows.
    return 0x1000, b"".join(bytes([i, len(d)]) + d + b"\0" for i, d in elems)


def vp8_payload(key, n=200):
    return bytes([0x10, 0x00 if key else 0x01]) + bytes((i * 31) & 0xFF for i in range(n))


def rtcp_header(count, pt, body):
    assert len(body) % 4 == 0
    return bytes([0x80 | count, pt]) + struct.pack(">H", len(body) // 4) + body


def report_block(ssrc, lost=0x01000003, ehsn=70000, jitter=12, lsr=0x33445566, dlsr=65536):
    return struct.pack(">IIIIII", ssrc, lost, ehsn, jitter, lsr, dlsr)


def sr(ssrc, blocks):
    body = struct.pack(">IQIII", ssrc, 0xE8000000_00000000, 9000, 10, 1000)
    return rtcp_header(len(blocks), 200, body + b"".join(blocks))


def rr(ssrc, blocks):
    return rtcp_header(len(blocks), 201, struct.pack(">I", ssrc) + b"".join(blocks))


def nack(sender, media, pairs):
    return rtcp_header(1, 205, struct.pack(">II", sender, media)
                       + b"".join(struct.pack(">HH", p, blp) for p, blp in pairs))


def pli(sender, media):
    return rtcp_header(1, 206, struct.pack(">II", sender, media))


def fir(sender, media):
    return rtcp_header(4, 206, struct.pack(">III", sender, 0, media) + bytes([7, 0, 0, 0]))


def remb(sender, bitrate_exp, mantissa, ssrcs):
    body = struct.pack(">II", sender, 0) + b"REMB" + bytes([len(ssrcs)])
    body += bytes([(bitrate_exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF])
    body += b"".join(struct.pack(">I", s) for s in ssrcs)
    return rtcp_header(15, 206, body)


def compound():
    return (sr(0x1111, [report_block(0x3001)]) + rr(0x1111, [report_block(0x3001),
                                                             report_block(0x4001)])
            + nack(0x1111, 0x3001, [(10, 0b101), (65535, 0)]) + pli(0x1111, 0x3001))


def stun_request(ufrag, pwd, nominate=True, tid=b"\x01" * 12):
    attrs = b""

    def attr(t, v):
        return struct.pack(">HH", t, len(v)) + v + b"\0" * (-len(v) % 4)

    attrs += attr(0x0006, f"{ufrag}:peer".encode())
    attrs += attr(0x0024, struct.pack(">I", 1853817087))
    attrs += attr(0x802A, struct.pack(">Q", 7))
    if nominate:
        attrs += attr(0x0025, b"")
    # MESSAGE-INTEGRITY over the message with its length covering the integrity attribute.
    hdr = struct.pack(">HHI", 0x0001, len(attrs) + 24, 0x2112A442) + tid
    mac = hmac.new(pwd.encode(), hdr + attrs, hashlib.sha1).digest()
    attrs += attr(0x0008, mac)
    hdr = struct.pack(">HHI", 0x0001, len(attrs) + 8, 0x2112A442) + tid
    crc = (zlib.crc32(hdr + attrs) ^ 0x5354554E) & 0xFFFFFFFF
    attrs += attr(0x8028, struct.pack(">I", crc))
    return hdr + attrs


def dtls_client_hello():
    exts = b""
    exts += struct.pack(">HH", 0x000E, 5) + struct.pack(">HH", 2, 0x0007) + b"\0"  # use_srtp
    exts += struct.pack(">HH", 0x0017, 0)  # extended_master_secret
    exts += struct.pack(">HHH", 0x000A, 4, 2) + struct.pack(">H", 0x0017)  # groups: P-256
    exts += struct.pack(">HH", 0x000B, 2) + b"\x01\x00"  # point formats
    exts += struct.pack(">HHH", 0x000D, 4, 2) + struct.pack(">H", 0x0403)  # ecdsa_secp256r1_sha256
    body = b"\xfe\xfd" + bytes(range(32)) + b"\x00" + b"\x00"  # random, session id, cookie
    body += struct.pack(">H", 2) + struct.pack(">H", 0xC02B) + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    n = len(body)
    hs = bytes([1]) + n.to_bytes(3, "big") + struct.pack(">H", 0) + (0).to_bytes(3, "big") \
        + n.to_bytes(3, "big") + body
    return bytes([22, 0xFE, 0xFD]) + struct.pack(">H", 0) + (0).to_bytes(6, "big") \
        + struct.pack(">H", len(hs)) + hs


def dtls_alert():
    return bytes([21, 0xFE, 0xFD, 0, 1]) + (5).to_bytes(6, "big") + struct.pack(">H", 2) + b"\x02\x28"


# --- core_datagram op encoding -----------------------------------------------------------------

def irange(lo, hi, v):
    """Bytes that make int_in_range(lo..=hi) return v."""
    assert lo <= v <= hi
    delta, off, n = hi - lo, v - lo, 0
    while n < 8 and delta >> (8 * n):
        n += 1
    return off.to_bytes(n, "big")


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def boolean(v):
    return bytes([1 if v else 0])


LOCAL = {"server-udp": 0, "server-tcp": 1, "own": 2, "plain": 3, "unknown": 4}


def op_datagram(local, remote, data):
    return irange(0, 9, 0) + irange(0, 4, LOCAL[local]) + irange(0, 3, remote) \
        + irange(0, 1500, len(data)) + data


def op_stun(transport, local, remote, nominate, tid=b"\x02" * 12):
    return irange(0, 9, 4) + irange(0, 1, transport) + irange(0, 4, LOCAL[local]) \
        + irange(0, 3, remote) + boolean(nominate) + tid + u32(1853817087) + irange(1, 16, 9)


def op_rtp(remote, ssrc_sel, pt_sel, seq, ts, key, payload_len, mid=None, rid=None, ssrc=0):
    """ssrc_sel: 0 producer, 1 producer RTX, 2 0xA000 + ssrc (0..=3), 3 ssrc as given."""
    v = irange(0, 9, 5) + irange(0, 3, remote) + irange(0, 3, ssrc_sel)
    v += {2: irange(0, 3, ssrc) if ssrc_sel == 2 else b"", 3: u32(ssrc)}.get(ssrc_sel, b"")
    v += irange(0, 3, pt_sel)
    v += boolean(True) + u16(seq) + u32(ts)
    v += boolean(mid is not None) + (irange(0, 2, mid) if mid is not None else b"")
    v += boolean(rid is not None) + (irange(0, 2, rid) if rid is not None else b"")
    v += boolean(False)  # no RRID
    v += boolean(key)
    v += irange(0, 1200, payload_len) + bytes((i * 7) & 0xFF for i in range(payload_len))
    return v


def op_rtcp_nack(remote, consumer, base, offsets):
    v = irange(0, 9, 6) + irange(0, 3, remote) + irange(1, 4, 1)
    v += irange(0, 5, 0) + irange(1, 17, len(offsets)) + u16(base)
    v += b"".join(irange(0, 64, o) for o in offsets)
    v += irange(0, 7, 0) + irange(0, 2, consumer)
    return v + u32(0xDEAD0001)


def op_advance(ms):
    if ms > 300:
        return irange(0, 9, 7) + irange(1, 8, 1) + irange(1000, 40000, ms)
    return irange(0, 9, 7) + irange(1, 8, 2) + irange(0, 300, ms)


def op_control(which, target):
    return irange(0, 9, 8) + irange(0, 9, which) + bytes([target])


# --- recv_stream op encoding -------------------------------------------------------------------

def rs_header(seq, ts, step=3000):
    return u16(seq) + u32(ts) + irange(0, 9000, step)


def rs_real(n):
    """n real packets (bursts of at most 64)."""
    v = b""
    while n > 0:
        v += irange(0, 8, 0) + irange(1, 64, min(n, 64))
        n -= 64
    return v


def rs_stray(offset=None, seq=None, ts_offset=0, retransmission=False):
    """A stray `offset` from the next real number (or at `seq`), timestamp `ts_offset` from the
    next real one."""
    v = irange(0, 8, 4)
    if offset is not None:
        v += boolean(True) + irange(-4000, 4000, offset)
    else:
        v += boolean(False) + u16(seq)
    v += boolean(True) + irange(-900000, 900000, ts_offset)
    return v + irange(1, 4, 1 if retransmission else 4)


def rs_sleep(ms):
    if ms > 2000:
        return irange(0, 8, 6) + irange(1, 8, 1) + irange(0, 120000, ms)
    return irange(0, 8, 6) + irange(1, 8, 2) + irange(0, 2000, ms)


def rs_rtcp(which):
    """0 NACKs, 1 receiver report, 2 an SR on the stream's timeline, 3 RTT 100 ms."""
    v = irange(0, 8, 7) + irange(0, 3, which)
    if which == 2:
        v += struct.pack("<i", 0) + boolean(True)
    elif which == 3:
        v += irange(0, 2000, 100)
    return v


def rs_restart(seq, ts):
    return irange(0, 8, 8) + u16(seq) + u32(ts)


# --- dtls_auth encoding -------------------------------------------------------------------------

ALG = {"sha-1": 0, "sha-256": 1, "sha-384": 2, "sha-512": 3, "md5": 4, "SHA-256": 5,
       "sha-257": 6, "": 7}
# Value of a fingerprint: digest of the presented certificate, of another one, the presented
# one's in lower case, right length but wrong, one byte short.
VALUE = {"presented": 0, "other": 1, "lower": 2, "wrong": 3, "short": 4}


def dtls_setup(peer_is_server, fingerprints, no_certificate=False, ice_first=True):
    """fingerprints: [(algorithm, value kind)]."""
    v = boolean(peer_is_server) + irange(1, 8, 1 if no_certificate else 8)
    v += irange(0, 4, len(fingerprints))
    for alg, value in fingerprints:
        v += irange(0, 7, ALG[alg]) + irange(0, 4, VALUE[value])
    return v + boolean(ice_first)


def dtls_deliver(to_core, fate="deliver", index=0, mask=0xFF, keep=0):
    """One record in flight (the oldest one way) as fate says."""
    v = irange(0, 6, 0 if to_core else 2)
    if fate == "deliver":
        return v + irange(0, 7, 0)
    if fate == "drop":
        return v + irange(0, 7, 4)
    if fate == "duplicate":
        return v + irange(0, 7, 5)
    if fate == "flip":
        return v + irange(0, 7, 6) + irange(0, 1023, index) + irange(1, 255, mask)
    return v + irange(0, 7, 7) + irange(0, 1023, keep)


def dtls_flush():
    return irange(0, 6, 4)


def dtls_sleep(ms):
    return irange(0, 6, 5) + irange(0, 3000, ms)


def dtls_next_timer():
    return irange(0, 6, 6)


def dtls_auth_seeds():
    """Named after the outcome tests/fuzz_regression.rs checks: -connects, -fails, -refused."""
    right = [("sha-256", "presented")]
    for role, server in [("client", False), ("server", True)]:
        yield "dtls_auth", f"{role}-authentic-connects", dtls_setup(server, right)
        yield "dtls_auth", f"{role}-other-certificate-fails", \
            dtls_setup(server, [("sha-256", "other")])
        yield "dtls_auth", f"{role}-strongest-mismatches-fails", \
            dtls_setup(server, [("sha-256", "presented"), ("sha-512", "other")])
        yield "dtls_auth", f"{role}-weak-beside-right-connects", \
            dtls_setup(server, [("sha-1", "other"), ("md5", "other"), ("sha-384", "presented")],
                       ice_first=False)
        # Every flight of the peer dropped once, then a duplicate; the handshake recovers.
        yield "dtls_auth", f"{role}-lossy-connects", dtls_setup(server, right) + (
            dtls_deliver(True, "drop") + dtls_next_timer() + dtls_deliver(True, "duplicate")
            + dtls_deliver(False, "duplicate") + dtls_flush() + dtls_sleep(1500)
            + dtls_deliver(True, "drop") + dtls_next_timer() + dtls_flush())
        # A flipped bit in the first record each way, a truncated second one, retransmissions.
        yield "dtls_auth", f"{role}-damaged-records", dtls_setup(server, right) + (
            dtls_deliver(not server, "flip", index=40, mask=0x01) + dtls_sleep(1100)
            + dtls_deliver(not server) + dtls_deliver(server, "flip", index=13, mask=0x80)
            + dtls_deliver(server, "truncate", keep=30) + dtls_sleep(2100) + dtls_flush())
    yield "dtls_auth", "client-without-certificate-fails", dtls_setup(False, right, True)
    yield "dtls_auth", "upper-case-algorithm-lower-case-value-connects", \
        dtls_setup(False, [("SHA-256", "lower"), ("sha-512", "presented")], ice_first=False)
    yield "dtls_auth", "wrong-digest-of-right-length-fails", dtls_setup(True, [("sha-384", "wrong")])
    yield "dtls_auth", "only-weak-algorithms-refused", \
        dtls_setup(False, [("sha-1", "presented"), ("md5", "presented")])
    yield "dtls_auth", "malformed-strongest-refused", \
        dtls_setup(True, [("sha-512", "short"), ("sha-256", "presented")])
    yield "dtls_auth", "unknown-algorithms-refused", \
        dtls_setup(False, [("sha-257", "presented"), ("", "presented")])
    yield "dtls_auth", "no-fingerprint-refused", dtls_setup(True, [])


# --- seeds -------------------------------------------------------------------------------------

def seeds():
    rtp_one = rtp(pt=96, seq=65535, marker=True, payload=vp8_payload(True),
                  ext=one_byte_ext([(1, b"0"), (2, b"r0"), (3, b"\x01\x02\x03")]))
    rtp_two = rtp(pt=97, seq=7, ssrc=0x2222, payload=b"\x03\xe8" + vp8_payload(False, 100),
                  csrcs=(0xCAFE,), ext=two_byte_ext([(1, b"0"), (20, b"x" * 20), (5, b"")]),
                  padding=4)
    rtp_pad = rtp(pt=111, seq=1, ssrc=0x5678, payload=b"opus", padding=3)
    rtp_odd = rtp(pt=96, ext=(0xABCD, b"\x11\x22\x33\x44"), payload=b"unknown profile")
    config = bytes([2, 3, 101, 0b101]) + b"\xAA\xBB\0\0" + struct.pack(">HII", 5, 42, 0x7777)
    config_drop = bytes([3, 6, 100, 0b010]) + b"\x01\x02\0\0" + struct.pack(">HII", 1, 2, 3)
    stun_bad_pwd = stun_request("u", "x" * 22)
    yield "rtp", "one-byte-ext", config + rtp_one
    yield "rtp", "two-byte-ext-csrc-padding", config_drop + rtp_two
    yield "rtp", "padding-only", bytes(18) + rtp_pad
    yield "rtp", "unknown-ext-profile", config + rtp_odd
    yield "rtcp", "sr-rr-nack-pli", compound()
    yield "rtcp", "fir-remb", fir(1, 0x3001) + remb(1, 4, 0x3FFFF, [0x1111, 0x2222])
    yield "rtcp", "rr-empty", rr(0xDEADBEEF, [])
    yield "ice_stun", "binding-wrong-password", stun_bad_pwd
    yield "ice_stun", "binding-wrong-ufrag", stun_request("other", "p" * 22, nominate=False)
    yield "ice_stun", "dtls-client-hello", dtls_client_hello()

    plain = "plain"
    yield "core_datagram", "plain-rtp-nack-rtx", (
        op_rtp(0, 0, 0, 100, 0, True, 300, mid=0)
        + op_rtp(0, 0, 0, 101, 900, False, 300)
        + op_rtp(0, 0, 0, 104, 1800, False, 300)  # gap: the core NACKs 102, 103
        + op_advance(40)
        + op_rtcp_nack(0, 0, 0, [0, 1, 2])  # the subscriber NACKs: RTX out
        + op_datagram(plain, 0, rtp(pt=97, seq=1, ssrc=0x2222, payload=struct.pack(">H", 102)
                                    + vp8_payload(False, 50)))
        + op_advance(1200)
        + op_datagram(plain, 0, compound())
        + op_datagram(plain, 0, rtp_two)
        + op_control(3, 0) + op_control(4, 0)
        + op_advance(300))
    yield "core_datagram", "plain-rid-binding", (
        op_rtp(1, 2, 0, 5000, 0, True, 100, mid=1, rid=0)
        + op_rtp(1, 2, 0, 5001, 0, False, 100)
        + op_rtp(1, 3, 0, 7, 0, True, 100, mid=1, rid=1, ssrc=0xB00B)
        + op_advance(1200)
        + op_datagram(plain, 1, rtp_one))
    yield "core_datagram", "webrtc-server-stun-dtls", (
        op_stun(0, "server-udp", 0, True)
        + op_datagram("server-udp", 0, dtls_client_hello())
        + op_advance(200)
        + op_datagram("server-udp", 0, rtp_one)
        + op_datagram("server-udp", 0, compound())
        + op_datagram("server-tcp", 2, stun_request("nobody", "x" * 22))
        + op_datagram("server-udp", 0, dtls_alert())
        + op_advance(1200))
    yield "core_datagram", "webrtc-own-dtls-client-consent", (
        op_stun(1, "own", 3, False)
        + op_stun(1, "own", 3, True, tid=b"\x03" * 12)
        + op_advance(1200)  # ClientHello retransmission
        + op_datagram("own", 3, dtls_client_hello())
        + op_control(9, 1)  # ICE restart
        + op_datagram("unknown", 0, rtp_pad)
        + op_advance(35000))  # consent expires


def recv_stream_seeds():
    """The issue's cases: one stray far ahead/behind in the middle of a stream, and restarts.
    Named after the outcome tests/fuzz_regression.rs checks: -dropped (one packet dropped for its
    number, no resync), -resyncs (one resync, nothing dropped)."""
    for name, offset in [("stray-plus-3000-dropped", 3000), ("stray-minus-3000-dropped", -3000)]:
        yield "recv_stream", name, (rs_header(1000, 90000) + rs_real(20) + rs_stray(offset)
                                    + rs_real(20) + rs_rtcp(1))
    yield "recv_stream", "stray-plus-32767-dropped", (
        rs_header(1000, 90000) + rs_real(20) + rs_stray(seq=(1020 + 32767) & 0xFFFF)
        + rs_real(20) + rs_rtcp(1))
    yield "recv_stream", "stray-wraps-dropped", (
        rs_header(65530, 4294960000) + rs_real(10) + rs_stray(seq=30000, ts_offset=-900000)
        + rs_real(10) + rs_rtcp(0))
    yield "recv_stream", "restart-random-resyncs", (
        rs_header(1000, 90000) + rs_real(30) + rs_rtcp(2) + rs_sleep(500)
        + rs_restart(48213, 2991002999) + rs_real(30) + rs_rtcp(1))
    yield "recv_stream", "restart-behind-resyncs", (
        rs_header(1000, 0) + rs_real(100) + rs_restart(1050, 2000000000) + rs_real(10)
        + rs_rtcp(1))
    yield "recv_stream", "loss-nack-retransmission", (
        rs_header(200, 0) + rs_real(5) + rs_stray(2) + rs_real(3) + rs_rtcp(3) + rs_rtcp(0)
        + rs_stray(-5, retransmission=True) + rs_sleep(30) + rs_rtcp(0) + rs_real(2))
    yield "recv_stream", "long-pause", (
        rs_header(7, 7) + rs_real(10) + rs_sleep(90000) + rs_real(10) + rs_rtcp(1))
    # A stray 1501 ahead of the next real packet is accepted (within MAX_DROPOUT) and becomes
    # the highest number: the next real packet is then 1501 behind (a jump: held), and the one
    # after it 1500 behind (late) confirms it: both are forwarded (found by this target).
    yield "recv_stream", "late-confirmation-releases-the-held-packet", (
        rs_header(1000, 90000) + rs_real(20) + rs_stray(1501) + rs_real(5))


def vp8_seeds():
    """vp8: PictureID (2 bytes BE) and TL0PICIDX to write, then a VP8 payload."""
    rw = struct.pack(">HB", 0x8123, 200)
    yield "vp8", "minimal-inter", rw + bytes([0x10, 0x01]) + b"\x00" * 20
    yield "vp8", "keyframe-15bit-tl0-tid", (
        rw + bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 0x07, 0b1010_0000, 0x10]) + b"\x9d\x01\x2a" * 8)
    yield "vp8", "7bit-picture-id-non-reference", rw + bytes([0xB0, 0x80, 0x05, 0x01, 0x02])
    yield "vp8", "keyidx-only", rw + bytes([0x90, 0x10, 0x35, 0x00])
    yield "vp8", "truncated-15bit-picture-id", rw + bytes([0x90, 0x80, 0x80])
    yield "vp8", "truncated-tl0", rw + bytes([0x90, 0xC0, 0x05])
    yield "vp8", "descriptor-only", rw + bytes([0x90, 0xE0, 0x81, 0x00, 0x01, 0x40])


def vp9_ss(resolutions=(), group=None):
    """A scalability structure: (width, height) per layer, or only the layer count as an int;
    group: None, or the picture group as (tid, u, p_diffs) per picture."""
    n = resolutions if isinstance(resolutions, int) else len(resolutions)
    v = bytes([((n - 1) << 5) | (0 if isinstance(resolutions, int) else 0x10)
               | (0 if group is None else 0x08)])
    if not isinstance(resolutions, int):
        v += b"".join(struct.pack(">HH", w, h) for w, h in resolutions)
    if group is not None:
        v += bytes([len(group)])
        for tid, u, diffs in group:
            v += bytes([(tid << 5) | (0x10 if u else 0) | (len(diffs) << 2)]) + bytes(diffs)
    return v


def vp9_desc(pid, tid=0, sid=0, key=False, b=True, e=True, u=False, d=False, tl0=0,
             flexible=False, p_diffs=(1,), ss=None):
    """A VP9 descriptor with a 15-bit PictureID and layer indices (P = not key)."""
    b0 = (0xA0 | (0 if key else 0x40) | (0x10 if flexible else 0) | (0x08 if b else 0)
          | (0x04 if e else 0) | (0x02 if ss is not None else 0))
    v = bytes([b0, 0x80 | ((pid >> 8) & 0x7F), pid & 0xFF,
               (tid << 5) | (0x10 if u else 0) | (sid << 1) | (1 if d else 0)])
    if not flexible:
        v += bytes([tl0 & 0xFF])
    elif not key:
        v += bytes((x << 1) | (1 if i + 1 < len(p_diffs) else 0) for i, x in enumerate(p_diffs))
    return v + (ss or b"")


def vp9_op(desc, marker=False, body=3):
    """A vp9 packet operation: its length and marker, then the payload."""
    data = desc + bytes((i * 37) & 0xFF for i in range(body))
    assert len(data) < 64
    return bytes([(0x40 if marker else 0) | len(data)]) + data


def vp9_picture(n, layers, ksvc=False, key=False, packets=2, ss=None, flexible=False, u=True):
    """Picture n of an SVC stream as libwebrtc sends it: TIDs 0, 2, 1, 2; U on upper temporal
    layers; upper spatial layers depend on the lower one on key pictures, always in full SVC."""
    tid = (0, 2, 1, 2)[n % 4]
    out = b""
    for sid in range(layers):
        for k in range(packets):
            last = k == packets - 1
            desc = vp9_desc(n, tid, sid, key, k == 0, last, u=u and tid > 0,
                            d=sid > 0 and (key or not ksvc), tl0=n // 4, flexible=flexible,
                            p_diffs=(1,) if tid else (4, 2), ss=ss if sid == k == 0 else None)
            out += vp9_op(desc, marker=last and sid == layers - 1)
    return out


def vp9_pictures(ns, layers, keys=(), **kw):
    return b"".join(vp9_picture(n, layers, key=n in keys, **kw) for n in ns)


def vp9_target(s, t):
    return bytes([0xC0 | (s << 3) | t])


def vp9_seeds():
    """vp9: [0] the stream (spatial − 1, temporal − 1 << 3, K-SVC 0x40), then operations: a
    target (0b11ss_sttt), no target (0x80), a resync (0x81), a packet (0b0mll_llll + l bytes)."""
    l1t3, l3t3, l3t3_key = bytes([0x10]), bytes([0x12]), bytes([0x52])
    ss3 = vp9_ss([(320, 180), (640, 360), (1280, 720)],
                 [(0, False, [4]), (2, True, [1]), (1, True, [2]), (2, True, [1])])
    yield "vp9", "l1t3-temporal-switches", (
        l1t3 + vp9_target(0, 2) + vp9_pictures(range(0, 8), 1, keys=[0], packets=1)
        + vp9_target(0, 0) + vp9_pictures(range(8, 16), 1, packets=1)
        + vp9_target(0, 1) + vp9_pictures(range(16, 24), 1, packets=1))
    yield "vp9", "l3t3-full-svc-up-and-down", (
        l3t3 + vp9_target(0, 2) + vp9_picture(0, 3, key=True, ss=ss3)
        + vp9_pictures(range(1, 4), 3) + vp9_target(2, 2) + vp9_pictures(range(4, 8), 3)
        + vp9_picture(8, 3, key=True, ss=ss3) + vp9_pictures(range(9, 12), 3)
        + vp9_target(1, 1) + vp9_pictures(range(12, 16), 3))
    yield "vp9", "l3t3-key-ksvc-up-and-down", (
        l3t3_key + vp9_target(2, 2) + vp9_picture(0, 3, ksvc=True, key=True, ss=ss3)
        + vp9_pictures(range(1, 4), 3, ksvc=True) + vp9_target(0, 2)
        + vp9_pictures(range(4, 8), 3, ksvc=True) + vp9_picture(8, 3, ksvc=True, key=True)
        + vp9_pictures(range(9, 12), 3, ksvc=True))
    yield "vp9", "flexible-mode-p-diffs", (
        l3t3 + vp9_target(1, 2) + vp9_pictures(range(0, 8), 2, keys=[0], flexible=True))
    yield "vp9", "no-switching-up-points", (
        l1t3 + vp9_target(0, 2) + vp9_pictures(range(0, 8), 1, keys=[0], u=False))
    yield "vp9", "resync-stop-and-restart", (
        l1t3 + vp9_target(0, 2) + vp9_pictures(range(0, 4), 1, keys=[0])
        + b"\x81" + vp9_pictures(range(4, 8), 1, keys=[6]) + b"\x80"
        + vp9_pictures(range(8, 10), 1, keys=[8]) + vp9_target(0, 1)
        + vp9_pictures(range(10, 14), 1, keys=[12]))
    yield "vp9", "late-and-renumbered-pictures", (
        l3t3 + vp9_target(1, 2) + vp9_pictures(range(0, 6), 3, keys=[0])
        + vp9_picture(2, 3) + vp9_pictures([300, 0, 1], 3, keys=[0]))
    yield "vp9", "layers-beyond-the-stream", (
        bytes([0x09]) + vp9_target(7, 7) + vp9_pictures(range(0, 4), 3, keys=[0])
        + vp9_op(b"\xe8\xff\xff\xff\xff", marker=True))
    # Truncated: the SS's resolutions, its picture group, a P_DIFF chain, a 4th P_DIFF.
    key = vp9_desc(0, key=True, ss=ss3)
    yield "vp9", "truncated-descriptors", (
        l3t3 + vp9_target(2, 2) + vp9_op(key[:10], body=0) + vp9_op(key[:-2], body=0)
        + vp9_op(bytes([0xD8, 0x10, 0x03]), body=0)
        + vp9_op(bytes([0xD8, 0x10, 0x03, 0x05, 0x09, 0x02]), body=0)
        + vp9_op(vp9_desc(1, ss=vp9_ss(2)), body=0))


# --- sctp: ops of fuzz/src/sctp.rs ---------------------------------------------------------

def sctp_chunk(ctype, flags, value, length=None):
    n = 4 + len(value) if length is None else length
    return bytes([ctype, flags]) + struct.pack(">H", n) + value + b"\0" * (-len(value) % 4)


def sctp_data(tsn, stream, ssn, ppid, payload, flags=0x03):
    return sctp_chunk(0, flags, struct.pack(">IHHI", tsn, stream, ssn, ppid) + payload)


def sctp_raw(packet):
    return bytes([0, len(packet)]) + packet


def sctp_chunks(chunks):
    return bytes([1, len(chunks)]) + chunks


def sctp_advance(ms):
    return bytes([2, ms // 4])


def sctp_send(stream, blocks):
    return bytes([3, stream, blocks])


def sctp_forged(delta, stream, ppid, payload):
    return bytes([6, delta, stream, ppid, len(payload)]) + payload


def sctp_forward(d):
    return bytes([7]) + struct.pack("<H", d)


def sctp_seeds():
    dcep_open = b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00chat"
    yield "sctp", "garbage", sctp_raw(bytes((i * 37) & 0xFF for i in range(64))) + sctp_raw(b"\x13\x88")
    yield "sctp", "client-traffic", (
        sctp_send(1, 10) + sctp_send(7, 1) + sctp_send(200, 2) + sctp_advance(1000)
        + sctp_send(1, 255) + sctp_advance(400) + bytes([5, 1]) + sctp_advance(1000))
    yield "sctp", "forged-data", (
        sctp_chunks(sctp_data(1, 1, 0, 53, b"hello"))
        + sctp_chunks(sctp_data(0xFFFFFFF0, 1, 0, 50, dcep_open))
        + sctp_chunks(sctp_data(5, 3, 0, 99, b"unknown ppid"))
        + sctp_chunks(sctp_data(6, 1, 1, 53, b"first", flags=0x02))
        + sctp_chunks(sctp_data(7, 1, 1, 53, b"", flags=0x01)) + sctp_advance(600))
    yield "sctp", "forged-relative", (
        sctp_send(1, 1) + sctp_forged(0, 1, 53, b"forged ok") + sctp_forged(0, 1, 53, b"dup")
        + sctp_forged(3, 1, 51, b"gap") + sctp_forged(5, 9, 53, b"unregistered")
        + sctp_forged(1, 1, 50, dcep_open) + sctp_forged(2, 1, 77, b"odd ppid")
        + sctp_forged(4, 1, 56, b"\0") + sctp_forward(10) + sctp_forward(0xFFFF)
        + sctp_advance(1000))
    yield "sctp", "truncated-chunks", (
        sctp_chunks(sctp_data(1, 1, 0, 53, b"x" * 20)[:18])
        + sctp_chunks(sctp_chunk(0, 3, b"\0" * 8, length=200))
        + sctp_chunks(sctp_chunk(3, 0, b"\0" * 3))
        + sctp_chunks(b"\x00\x03"))
    yield "sctp", "control-chunks", (
        sctp_chunks(sctp_chunk(4, 0, struct.pack(">HH", 1, 8) + b"abcd"))  # HEARTBEAT
        + sctp_chunks(sctp_chunk(192, 0, struct.pack(">IHH", 100, 1, 3)))  # FORWARD-TSN
        # RE-CONFIG: outgoing reset request for stream 1.
        + sctp_chunks(sctp_chunk(130, 0, struct.pack(">HHIIIH", 13, 18, 1, 0, 0, 1)))
        + sctp_chunks(sctp_chunk(1, 0, struct.pack(">IIHHI", 1, 65536, 10, 10, 1)))  # INIT
        + sctp_advance(1000)
        + sctp_chunks(sctp_chunk(7, 0, struct.pack(">I", 0)))  # SHUTDOWN
        + sctp_advance(1000) + sctp_chunks(sctp_chunk(6, 0, b"")))  # ABORT


def write(kind, target, name, data):
    d = os.path.join(HERE, kind, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"seed-{name}"), "wb") as f:
        f.write(data)
    print(f"{kind}/{target}/seed-{name}: {len(data)} bytes")


def main():
    for target, name, data in (list(seeds()) + list(recv_stream_seeds()) + list(dtls_auth_seeds())
                               + list(vp8_seeds()) + list(vp9_seeds()) + list(sctp_seeds())):
        write("regression", target, name, data)


if __name__ == "__main__":
    main()
