"""An independent permessage-deflate peer (RFC 7692) for tests/interop/deflate.rs.

Python's `websockets` library (Debian's python3-websockets, 10.x) with its
own DEFLATE (Python's zlib), so that nothing of wschat's is on this side of
the wire:

  deflate_peer.py client URL CHECK   run one group of checks against a wschat
                                     echo server at URL; prints "PASS name"
                                     per check, exits non-zero at the first
                                     failure (CHECK: messages, big, windows)
  deflate_peer.py server [--server-no-context-takeover]
                         [--client-max-window-bits N]
                                     an echo server on 127.0.0.1, port 0:
                                     prints "PORT n", then one JSON line per
                                     frame in and out (RSV1, bytes on the
                                     wire) for the first connection, and
                                     exits when it ends (at most 120 s)

Frames are observed where websockets applies the extension: the compressed
payload as it was on the wire, before inflating (received) or after
deflating (sent). The longest back-reference in a compressed payload is
measured by inflating it here with a small DEFLATE decoder of our own
(RFC 1951), which is how the window a peer compressed with is checked: zlib
itself does not refuse a reference beyond a negotiated window when its
output buffer is large enough to hold it.
"""

import asyncio
import json
import random
import sys
import zlib

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

TAIL = b"\x00\x00\xff\xff"
BIG = 16 * 1024 * 1024
THRESHOLD = 256  # wschat's default --deflate-threshold
TIMEOUT = 60


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)


def passed(name):
    print(f"PASS {name}", flush=True)


# ------------------------------------------------------------ RFC 1951


class _Bits:
    def __init__(self, data):
        self.data = data
        self.pos = 0  # in bits

    def bit(self):
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise Failed("DEFLATE stream ends inside a block")
        b = (self.data[byte] >> (self.pos & 7)) & 1
        self.pos += 1
        return b

    def bits(self, n):
        v = 0
        for i in range(n):
            v |= self.bit() << i
        return v

    def align(self):
        self.pos = (self.pos + 7) & ~7

    def at_end(self):
        return (self.pos + 7) >> 3 >= len(self.data)


class _Huffman:
    """Canonical Huffman code from code lengths (RFC 1951 §3.2.2), decoded
    one bit at a time as in zlib's puff.c."""

    def __init__(self, lengths):
        self.counts = [0] * 16
        for n in lengths:
            self.counts[n] += 1
        self.counts[0] = 0
        offs = [0] * 16
        for n in range(1, 16):
            offs[n] = offs[n - 1] + self.counts[n - 1]
        self.symbols = [0] * len(lengths)
        for sym, n in enumerate(lengths):
            if n:
                self.symbols[offs[n]] = sym
                offs[n] += 1

    def decode(self, bits):
        code = first = index = 0
        for n in range(1, 16):
            code |= bits.bit()
            count = self.counts[n]
            if code - count < first:
                return self.symbols[index + (code - first)]
            index += count
            first = (first + count) << 1
            code <<= 1
        raise Failed("bad Huffman code")


_LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43,
             51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
_LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4,
              4, 4, 5, 5, 5, 5, 0]
_DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257,
              385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289,
              16385, 24577]
_DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9,
               9, 10, 10, 11, 11, 12, 12, 13, 13]
_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
_FIXED = (_Huffman([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8), _Huffman([5] * 30))


def inflate_measuring(payload):
    """Inflate one message's payload compressed on its own (RFC 7692 §7.2.2:
    the sync flush's tail put back); returns (bytes, the longest
    back-reference distance in it)."""
    bits = _Bits(payload + TAIL)
    out = bytearray()
    longest = 0
    final = False
    while not final and not bits.at_end():
        final = bits.bit() == 1
        kind = bits.bits(2)
        if kind == 0:
            bits.align()
            n = bits.bits(16)
            check(bits.bits(16) == n ^ 0xFFFF, "stored block length check")
            at = bits.pos >> 3
            out += bits.data[at:at + n]
            bits.pos += 8 * n
            continue
        if kind == 1:
            lit, dist = _FIXED
        elif kind == 2:
            hlit, hdist, hclen = bits.bits(5) + 257, bits.bits(5) + 1, bits.bits(4) + 4
            code_lengths = [0] * 19
            for i in range(hclen):
                code_lengths[_ORDER[i]] = bits.bits(3)
            code = _Huffman(code_lengths)
            lengths = []
            while len(lengths) < hlit + hdist:
                sym = code.decode(bits)
                if sym < 16:
                    lengths.append(sym)
                elif sym == 16:
                    check(lengths, "repeat with no previous length")
                    lengths += [lengths[-1]] * (3 + bits.bits(2))
                elif sym == 17:
                    lengths += [0] * (3 + bits.bits(3))
                else:
                    lengths += [0] * (11 + bits.bits(7))
            lit, dist = _Huffman(lengths[:hlit]), _Huffman(lengths[hlit:])
        else:
            raise Failed("reserved block type 3")
        while True:
            sym = lit.decode(bits)
            if sym < 256:
                out.append(sym)
            elif sym == 256:
                break
            else:
                sym -= 257
                length = _LEN_BASE[sym] + bits.bits(_LEN_EXTRA[sym])
                d = dist.decode(bits)
                distance = _DIST_BASE[d] + bits.bits(_DIST_EXTRA[d])
                check(distance <= len(out), "reference before the start of the window")
                longest = max(longest, distance)
                for _ in range(length):
                    out.append(out[-distance])
    return bytes(out), longest


def self_test():
    """The decoder against zlib, and the distances it measures."""
    block = random_letters(random.Random(7), 3000)
    data = (block * 6).encode()
    for wbits in (9, 15):
        c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
        payload = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        check(payload.endswith(TAIL), "zlib's sync flush tail")
        out, longest = inflate_measuring(payload[:-4])
        check(out == data, "the DEFLATE decoder disagrees with zlib")
        if wbits == 9:
            check(0 < longest <= 512, f"window 9: distance {longest}")
        else:
            check(longest >= 3000, f"window 15: distance {longest}")


# ------------------------------------------------------------- content


WORDS = ("the quick brown fox jumps over lazy dog chat message hello world "
         "deflate window context takeover frame server client é ✓ 𝄞 "
         "lorem ipsum dolor sit amet").split()


def random_words(rng, n_bytes):
    """About `n_bytes` of words drawn at random (UTF-8, some of 2-4 bytes),
    cut at a character boundary at or below `n_bytes`."""
    raw = " ".join(rng.choices(WORDS, k=n_bytes // 4 + 1)).encode()[:n_bytes]
    return raw.decode("utf-8", "ignore")


def random_letters(rng, n):
    return "".join(rng.choice("abcdefghijklmnop") for _ in range(n))


def long_distance_text(rng):
    """32 KiB whose only repeats are 3,000 bytes apart: compressible only
    with a window above 9 bits (it still compresses without repeats, the
    letters being 4 bits of information each)."""
    return random_letters(rng, 3000) * 11


# ------------------------------------------------------------- client


class Observed:
    """Frames as they were on the wire, through the negotiated extension."""

    def __init__(self, ws):
        self.received = []  # (opcode, rsv1, wire bytes, payload)
        self.sent = []
        check(len(ws.extensions) == 1, f"extensions in use: {ws.extensions}")
        ext = ws.extensions[0]
        decode, encode = ext.decode, ext.encode

        def on_decode(frame, *, max_size=None):
            self.received.append((frame.opcode, frame.rsv1, len(frame.data), bytes(frame.data)))
            return decode(frame, max_size=max_size)

        def on_encode(frame):
            out = encode(frame)
            if out.opcode < 8:
                self.sent.append((out.opcode, out.rsv1, len(out.data), b""))
            return out

        ext.decode, ext.encode = on_decode, on_encode

    def last_message(self):
        """The frames of the last data message received."""
        frames = []
        for f in reversed(self.received):
            if f[0] >= 8:
                continue
            frames.append(f)
            if f[0] != 0:
                break
        return list(reversed(frames))


def header(ws, name):
    return ws.response_headers.get(name)


async def connect(url, *factories, max_size=2 * BIG):
    return await websockets.connect(
        url, extensions=list(factories), compression=None, max_size=max_size,
        open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None,
    )


async def echo(ws, message):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    return got


async def round_trip(ws, message, what):
    got = await echo(ws, message)
    want = message if isinstance(message, (str, bytes)) else joined(message)
    check(type(got) is type(want), f"{what}: echo is {type(got).__name__}")
    check(got == want, f"{what}: echo differs ({len(got)} vs {len(want)} bytes or characters)")


def joined(fragments):
    return "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)


async def close_normally(ws, what):
    await ws.close(1000, "done")
    check(ws.close_code == 1000, f"{what}: closed with {ws.close_code}")


async def check_messages(url):
    ws = await connect(url, ClientPerMessageDeflateFactory())
    ext = header(ws, "Sec-WebSocket-Extensions")
    check(ext == "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
          f"101 names {ext!r}")
    pmd = ws.extensions[0]
    check((pmd.remote_no_context_takeover, pmd.local_no_context_takeover) == (True, True),
          "both no_context_takeover agreed")
    check((pmd.remote_max_window_bits, pmd.local_max_window_bits) == (15, 15), "windows of 15")
    passed("101 names permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    seen = Observed(ws)
    rng = random.Random(1)

    text = random_words(rng, 20_000)
    await round_trip(ws, text, "20 KB text")
    (op, rsv1, wire, _), = seen.last_message()
    check(seen.sent[-1][1], "websockets sent it compressed")
    check(op == 1 and rsv1, f"text echo: opcode {op}, RSV1 {rsv1}")
    check(wire < len(text.encode()) // 2, f"text echo: {wire} bytes on the wire for {len(text.encode())}")
    passed(f"compressible text: {len(text.encode())} bytes echoed as {wire} compressed (RSV1)")

    binary = bytes(rng.randrange(4) * 60 for _ in range(30_000))
    await round_trip(ws, binary, "30 KB binary")
    (op, rsv1, wire, _), = seen.last_message()
    check(op == 2 and rsv1 and wire < len(binary) // 2, f"binary echo: opcode {op}, RSV1 {rsv1}, {wire} bytes")
    passed(f"compressible binary: {len(binary)} bytes echoed as {wire} compressed (RSV1)")

    short = "x" * (THRESHOLD - 1)
    await round_trip(ws, short, "short text")
    (_, rsv1, wire, _), = seen.last_message()
    check(not rsv1 and wire == len(short), f"below the threshold: RSV1 {rsv1}, {wire} bytes")
    at = "x" * THRESHOLD
    await round_trip(ws, at, "text at the threshold")
    (_, rsv1, wire, _), = seen.last_message()
    check(rsv1 and wire < THRESHOLD, f"at the threshold: RSV1 {rsv1}, {wire} bytes")
    passed(f"{THRESHOLD - 1} bytes echoed uncompressed, {THRESHOLD} compressed (--deflate-threshold)")

    noise = rng.randbytes(8192)
    await round_trip(ws, noise, "incompressible binary")
    (_, rsv1, wire, _), = seen.last_message()
    check(not rsv1 and wire == len(noise), f"incompressible: RSV1 {rsv1}, {wire} bytes")
    passed("incompressible 8 KiB echoed uncompressed (compressed only when smaller)")

    # Fragmented: websockets sends an iterable as one message in several
    # frames (and an empty last one), RSV1 on the first only (RFC 7692
    # §6.1), each fragment sync-flushed; the echo is one frame.
    fragments = ["é" * 3000, "✓" * 2000, " plain ", "𝄞" * 1500]
    for message, opcode in ((fragments, 1), ([rng.randbytes(100) * 50 for _ in range(5)], 2)):
        sent_before = len(seen.sent)
        await round_trip(ws, message, f"fragmented, opcode {opcode}")
        frames = seen.sent[sent_before:]
        check(len(frames) >= len(message)
              and [(f[0], f[1]) for f in frames] == [(opcode, True)] + [(0, False)] * (len(frames) - 1),
              f"websockets sent {[(f[0], f[1]) for f in frames]}")
        (_, rsv1, _, _), = seen.last_message()
        check(rsv1, f"fragmented message's echo (opcode {opcode}) not compressed")
    passed(f"fragmented compressed text and binary ({len(frames)} frames) round-trip")

    # Many in a row, alike: each is compressed on its own both ways (no
    # context takeover), so each one's echo is about as long as the first's.
    doc = random_words(rng, 5000)
    sizes = []
    for i in range(60):
        message = f"#{i}: {doc}" if i % 3 else doc.encode() + i.to_bytes(2, "big")
        await round_trip(ws, message, f"message {i} of 60")
        (_, rsv1, wire, _), = seen.last_message()
        check(rsv1, f"message {i}: echo not compressed")
        sizes.append(wire)
    check(min(sizes) > max(sizes) * 0.8, f"echo sizes vary: {min(sizes)}..{max(sizes)}")
    passed(f"60 messages of 5 KB in a row, each echoed compressed on its own ({min(sizes)}-{max(sizes)} bytes)")

    # Pipelined: sent before any echo is read, echoed in order.
    batch = [random_words(rng, 3000) for _ in range(20)]
    for m in batch:
        await ws.send(m)
    for i, m in enumerate(batch):
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(got == m, f"pipelined message {i} differs")
    passed("20 pipelined compressed messages echoed in order")
    await close_normally(ws, "messages")
    passed("closed with 1000")


async def check_big(url):
    ws = await connect(url, ClientPerMessageDeflateFactory())
    seen = Observed(ws)
    rng = random.Random(2)
    text = random_words(rng, BIG)
    text += "x" * (BIG - len(text.encode()))
    check(len(text.encode()) == BIG, "16 MiB text")
    await round_trip(ws, text, "16 MiB text")
    frames = seen.last_message()
    wire = sum(f[2] for f in frames)
    check(frames[0][1] and wire < BIG // 2, f"16 MiB echo: RSV1 {frames[0][1]}, {wire} bytes")
    passed(f"16 MiB compressed text round-trips intact (echo: {wire} bytes compressed, sent {seen.sent[-1][2]})")
    binary = rng.randbytes(BIG).translate(bytes(i & 15 for i in range(256)))
    await round_trip(ws, binary, "16 MiB binary")
    frames = seen.last_message()
    wire = sum(f[2] for f in frames)
    check(frames[0][1] and wire < BIG, f"16 MiB binary echo: RSV1 {frames[0][1]}, {wire} bytes")
    passed(f"16 MiB compressed binary round-trips intact (echo: {wire} bytes compressed)")
    # One byte more than the limit once inflated: the limit is on what the
    # message inflates to (RFC 7692 §7.2.2 and the echo's 16 MiB).
    await ws.send(b"\0" * (BIG + 1))
    try:
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        raise Failed(f"16 MiB + 1 was echoed ({len(got)} bytes)")
    except websockets.ConnectionClosed:
        pass
    check(ws.close_code == 1009, f"16 MiB + 1 (about 16 KiB compressed): closed with {ws.close_code}")
    passed(f"16 MiB + 1 byte, {seen.sent[-1][2]} bytes compressed, is closed with 1009")


async def check_windows(url):
    rng = random.Random(3)
    text = long_distance_text(rng)
    for bits in (9, 12, 15):
        ws = await connect(url, ClientPerMessageDeflateFactory(server_max_window_bits=bits))
        ext = header(ws, "Sec-WebSocket-Extensions")
        want = ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                f"server_max_window_bits={bits}")
        check(ext == want, f"window {bits}: 101 names {ext!r}")
        seen = Observed(ws)
        await round_trip(ws, text, f"window {bits}")
        (_, rsv1, wire, payload), = seen.last_message()
        check(rsv1, f"window {bits}: echo not compressed")
        out, longest = inflate_measuring(payload)
        check(out == text.encode(), f"window {bits}: our own inflate disagrees")
        check(longest <= 1 << bits, f"window {bits}: a back-reference of {longest} bytes")
        if bits > 9:
            check(longest >= 3000, f"window {bits}: no reference reached back 3000 bytes ({longest})")
        await round_trip(ws, ["ab" * 2000, "cd" * 2000], f"window {bits}, fragmented")
        await close_normally(ws, f"window {bits}")
        passed(f"server_max_window_bits={bits} echoed; 32 KiB echoed as {wire} bytes, "
               f"longest back-reference {longest} (at most {1 << bits})")
    # 8 is declined (zlib cannot compress raw DEFLATE with a 256-byte
    # window): no extension, and the messages go plain.
    ws = await connect(url, ClientPerMessageDeflateFactory(server_max_window_bits=8))
    check(header(ws, "Sec-WebSocket-Extensions") is None and ws.extensions == [],
          f"window 8: 101 names {header(ws, 'Sec-WebSocket-Extensions')!r}")
    await round_trip(ws, text, "window 8 declined, plain")
    await close_normally(ws, "window 8")
    passed("server_max_window_bits=8 declined: no extension, plain messages")
    # Several offers in one header: the first the server can honour wins.
    ws = await connect(url, ClientPerMessageDeflateFactory(server_max_window_bits=8),
                       ClientPerMessageDeflateFactory(server_max_window_bits=10))
    check(ws.request_headers["Sec-WebSocket-Extensions"].count("permessage-deflate") == 2, "two offers sent")
    ext = header(ws, "Sec-WebSocket-Extensions")
    check(ext is not None and ext.endswith("server_max_window_bits=10"), f"two offers: 101 names {ext!r}")
    seen = Observed(ws)
    await round_trip(ws, text, "second offer")
    (_, _, _, payload), = seen.last_message()
    _, longest = inflate_measuring(payload)
    check(longest <= 1024, f"second offer: back-reference of {longest}")
    await close_normally(ws, "two offers")
    passed("offers of window 8 then 10: the second accepted, and honoured")


CHECKS = {"messages": check_messages, "big": check_big, "windows": check_windows}


# ------------------------------------------------------------- server


def emit(**event):
    print(json.dumps(event), flush=True)


async def serve(server_no_context_takeover, client_max_window_bits):
    done = asyncio.get_running_loop().create_future()
    async def handler(ws):
        emit(event="open",
             offer=ws.request_headers.get("Sec-WebSocket-Extensions"),
             response=ws.response_headers.get("Sec-WebSocket-Extensions"))
        if ws.extensions:
            ext = ws.extensions[0]
            decode, encode = ext.decode, ext.encode
            pending = []

            def on_decode(frame, *, max_size=None):
                if frame.opcode < 8:
                    if frame.opcode != 0:
                        pending.clear()
                        pending.append((frame.opcode, frame.rsv1))
                    pending.append(bytes(frame.data))
                    if frame.fin:
                        (opcode, rsv1), payload = pending[0], b"".join(pending[1:])
                        longest = None
                        if rsv1 and client_max_window_bits:
                            _, longest = inflate_measuring(payload)
                        emit(event="in", opcode=opcode, rsv1=rsv1, wire=len(payload),
                             longest=longest)
                return decode(frame, max_size=max_size)

            def on_encode(frame):
                out = encode(frame)
                if out.opcode < 8:
                    emit(event="out", opcode=out.opcode, rsv1=out.rsv1, wire=len(out.data))
                return out

            ext.decode, ext.encode = on_decode, on_encode
        try:
            async for message in ws:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass
        emit(event="closed", code=ws.close_code)
        if not done.done():
            done.set_result(None)

    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=server_no_context_takeover,
        client_max_window_bits=client_max_window_bits,
    )
    async with websockets.serve(handler, "127.0.0.1", 0, extensions=[factory], compression=None,
                                max_size=2 * BIG, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.wait_for(done, 120)


def main(argv):
    if len(argv) >= 2 and argv[1] == "client" and len(argv) == 4:
        self_test()
        try:
            asyncio.run(asyncio.wait_for(CHECKS[argv[3]](argv[2]), 300))
        except Failed as e:
            print(f"FAIL {e}", flush=True)
            return 1
        return 0
    if len(argv) >= 2 and argv[1] == "server":
        self_test()
        args = argv[2:]
        no_takeover = "--server-no-context-takeover" in args
        bits = None
        if "--client-max-window-bits" in args:
            bits = int(args[args.index("--client-max-window-bits") + 1])
        asyncio.run(serve(no_takeover, bits))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
