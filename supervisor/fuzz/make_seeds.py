#!/usr/bin/env python3
"""Writes the hand-made regression seeds of supervisor/fuzz to regression/<target>/seed-*
(checked in). Deterministic: rerun after changing a target's input format and commit the
difference. `cargo test -p ferrosfu --test fuzz_regression` replays them.

    python3 supervisor/fuzz/make_seeds.py

turn_messages inputs are records [kind][len u16 BE][bytes] (kind 0: UDP datagram, 1: TCP
chunk); secret, realm and "now" are those of src/turn_messages.rs.
"""

import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret"
REALM = b"fuzz"
NOW = 1_800_000_000
COOKIE = 0x2112A442

ALLOCATE, REFRESH, SEND, CREATE_PERMISSION, CHANNEL_BIND = 0x003, 0x004, 0x016, 0x008, 0x009


def attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)


def xor_addr(t, ip, port, tid):
    a = bytes(int(x) for x in ip.split("."))
    x = struct.pack(">I", struct.unpack(">I", a)[0] ^ COOKIE)
    return attr(t, struct.pack(">BBH", 0, 1, port ^ (COOKIE >> 16)) + x)


def message(mtype, attrs, tid, user=None, password=None):
    body = b"".join(attrs)
    if user is not None:
        body += attr(0x0006, user) + attr(0x0014, REALM) + attr(0x0015, b"nonce-from-elsewhere")
        key = hashlib.md5(user + b":" + REALM + b":" + password).digest()
        head = struct.pack(">HHI", mtype, len(body) + 24, COOKIE) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
    return struct.pack(">HHI", mtype, len(body), COOKIE) + tid + body


def rest(user, expiry):
    u = f"{expiry}:{user}".encode()
    return u, base64.b64encode(hmac.new(SECRET, u, hashlib.sha1).digest())


def rec(kind, data):
    return struct.pack(">BH", kind, len(data)) + data


def seeds():
    tid = bytes(range(12))
    udp_transport = attr(0x0019, bytes([17, 0, 0, 0]))
    tcp_transport = attr(0x0019, bytes([6, 0, 0, 0]))
    user, pw = rest("alice", NOW + 3600)
    old, old_pw = rest("old", NOW - 1)
    bare_allocate = message(ALLOCATE, [udp_transport], tid)
    auth_allocate = message(ALLOCATE, [udp_transport], tid, user, pw)
    yield "allocate-unauthenticated", rec(0, bare_allocate)
    yield "allocate-authenticated", rec(0, bare_allocate) + rec(0, auth_allocate)
    yield "allocate-tcp-relay-refused", rec(0, message(ALLOCATE, [tcp_transport], tid, user, pw))
    yield "allocate-expired", rec(0, message(ALLOCATE, [udp_transport], tid, old, old_pw))
    yield "allocate-wrong-password", rec(0, message(ALLOCATE, [udp_transport], tid, user, b"x"))
    yield "permission-forbidden", rec(0, message(
        CREATE_PERMISSION, [xor_addr(0x0012, "10.0.0.1", 9, tid)], tid, user, pw))
    yield "permission-allowed", rec(0, message(
        CREATE_PERMISSION, [xor_addr(0x0012, "127.0.0.1", 20000, tid)], tid, user, pw))
    yield "channel-bind-forbidden-port", rec(0, message(
        CHANNEL_BIND, [attr(0x000C, b"\x40\x00\0\0"), xor_addr(0x0012, "127.0.0.1", 21000, tid)],
        tid, user, pw))
    yield "send-indication-forbidden", rec(0, message(
        SEND, [xor_addr(0x0012, "10.0.0.1", 9, tid), attr(0x0013, b"hello")], tid))
    yield "refresh-zero", rec(0, message(REFRESH, [attr(0x000D, b"\0\0\0\0")], tid, user, pw))
    yield "channel-data", rec(0, b"\x40\x00\x00\x05hello")
    # A TCP stream: an Allocate split across two chunks, then padded ChannelData, then garbage.
    stream = auth_allocate + b"\x40\x00\x00\x05hello\0\0\0"
    yield "tcp-split", rec(1, stream[:7]) + rec(1, stream[7:]) + rec(1, b"\xff\xff\xff\xff")
    yield "garbage", rec(0, b"\x00\x01\x00\x08garbage") + rec(0, b"\xff" * 40)


def main():
    d = os.path.join(HERE, "regression", "turn_messages")
    os.makedirs(d, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(d, f"seed-{name}"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
