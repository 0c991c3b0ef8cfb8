#!/usr/bin/env python3
"""A misbehaving DICOM peer for tests/results.rs, on raw sockets: it accepts
every association (each proposed presentation context with its first
transfer syntax), then answers whatever arrives with a command set that
never ends: P-DATA-TF command fragments without the last-fragment bit,
until the caller closes the connection. Prints one JSON line per
association: how many bytes it sent before the caller gave up.

  endless_scp.py PORT AE_TITLE
"""
import json
import socket
import struct
import sys
import threading


def read_pdu(s):
    head = b""
    while len(head) < 6:
        chunk = s.recv(6 - len(head))
        if not chunk:
            return None, None
        head += chunk
    length = struct.unpack(">I", head[2:6])[0]
    body = b""
    while len(body) < length:
        chunk = s.recv(min(65536, length - len(body)))
        if not chunk:
            return None, None
        body += chunk
    return head[0], body


def item(kind, payload):
    return bytes([kind, 0]) + struct.pack(">H", len(payload)) + payload


def accept(rq, ae):
    """An A-ASSOCIATE-AC for the A-ASSOCIATE-RQ body `rq`."""
    calling = rq[20:36]
    items, off, contexts = rq[68:], 0, []
    while off + 4 <= len(items):
        kind, length = items[off], struct.unpack(">H", items[off + 2:off + 4])[0]
        payload = items[off + 4:off + 4 + length]
        if kind == 0x20:
            ctx, sub, syntax = payload[0], payload[4:], None
            p = 0
            while p + 4 <= len(sub):
                k, n = sub[p], struct.unpack(">H", sub[p + 2:p + 4])[0]
                if k == 0x40 and syntax is None:
                    syntax = sub[p + 4:p + 4 + n]
                p += 4 + n
            contexts.append((ctx, syntax))
        off += 4 + length
    body = struct.pack(">HH", 1, 0) + ae.encode().ljust(16) + calling + bytes(32)
    body += item(0x10, b"1.2.840.10008.3.1.1.1")
    for ctx, syntax in contexts:
        body += item(0x21, bytes([ctx, 0, 0, 0]) + item(0x40, syntax))
    body += item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.826.0.1.3680043.9.7433.1"))
    return bytes([0x02, 0]) + struct.pack(">I", len(body)) + body, contexts[0][0]


def serve(conn, ae):
    sent = 0
    try:
        kind, rq = read_pdu(conn)
        if kind != 0x01:
            return
        ac, ctx = accept(rq, ae)
        conn.sendall(ac)
        # Let the caller send its request, read in the background.
        threading.Thread(target=lambda: [read_pdu(conn) for _ in iter(int, 1)], daemon=True).start()
        fragment = bytes(8000)
        pdv = struct.pack(">I", len(fragment) + 2) + bytes([ctx, 0x01]) + fragment
        pdu = bytes([0x04, 0]) + struct.pack(">I", len(pdv)) + pdv
        while True:
            conn.sendall(pdu)
            sent += len(fragment)
    except OSError:
        pass
    finally:
        print(json.dumps({"sent": sent}), flush=True)
        conn.close()


def main():
    port, ae = int(sys.argv[1]), sys.argv[2]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ae), daemon=True).start()


if __name__ == "__main__":
    main()
