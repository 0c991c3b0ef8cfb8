#!/usr/bin/env python3
"""Network abuse against a DICOM listener, for tests/reliability.rs.

  abuse.py PORT CALLED_AE SECONDS
Runs every attack below at once and prints one JSON object: for each, how
many connections were made and how many of those the listener handled as
it must within SECONDS (a generous deadline: the attacks end as soon as the
listener acts). A connection that could not be made, or that nothing
happened to by the deadline, is not handled.
  junk        20 connections sending 64 KiB of random bytes
  truncated   20 A-ASSOCIATE-RQ PDUs cut short, then silence
  huge        20 PDU headers announcing 4 GiB
  oversize    5 associations that then send a 4 MiB P-DATA-TF PDU (each
              retries its association until accepted: a rejection is not
              the oversize PDU refused)
  slowloris   50 connections trickling an A-ASSOCIATE-RQ one byte a second
  flood       300 simultaneous well-formed Verification association requests
              (counted: answered with A-ASSOCIATE-AC or -RJ, or closed by the
              listener once its slots and refusals are all busy)
"""
import json
import os
import random
import socket
import sys
import threading
import time


def ae(title):
    return title.encode().ljust(16)


def item(kind, payload):
    return bytes([kind, 0]) + len(payload).to_bytes(2, "big") + payload


def associate_rq(called, calling="ABUSER"):
    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1") + item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, (16384).to_bytes(4, "big")))
    body = (1).to_bytes(2, "big") + b"\0\0" + ae(called) + ae(calling) + bytes(32) + app + pc + user
    return bytes([0x01, 0]) + len(body).to_bytes(4, "big") + body


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(None)
    return s


def closed_within(s, deadline):
    """True if the peer closes (EOF or reset) before the deadline; reads and discards."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            return True
        if not data:
            return True


def attack(name, port, called, n, deadline, body):
    """n connections running `body` at once; results[i] is None when the
    connection could not be made, else whether the listener handled it."""
    results = [None] * n

    def one(i):
        try:
            s = connect(port)
        except OSError:
            return
        try:
            results[i] = body(s, i)
        except OSError:
            # Reset by the listener while we wrote: it closed the connection.
            results[i] = True
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return name, results, threads


def main(argv):
    port, called, seconds = int(argv[1]), argv[2], float(argv[3])
    deadline = time.time() + seconds
    rq = associate_rq(called)

    def junk(s, i):
        s.sendall(random.Random(i).randbytes(65536))
        return closed_within(s, deadline)

    def truncated(s, i):
        s.sendall(rq[: 6 + i])
        return closed_within(s, deadline)

    def huge(s, i):
        s.sendall(bytes([0x04, 0]) + (0xFFFFFFF0).to_bytes(4, "big") + b"\0" * 64)
        return closed_within(s, deadline)

    def oversize(s, i):
        while True:
            s.sendall(rq)
            s.settimeout(max(0.1, deadline - time.time()))
            head = s.recv(6)
            if head and head[0] == 0x02:
                break
            # Rejected while the slots are full: try again until accepted.
            s.close()
            if time.time() > deadline:
                return False
            time.sleep(0.2)
            s = connect(port)
        s.recv(65536)
        pdv = (4 * 1024 * 1024).to_bytes(4, "big") + bytes([1, 0x03]) + b"\0" * 64
        payload = pdv + b"\0" * (4 * 1024 * 1024 - len(pdv))
        try:
            s.sendall(bytes([0x04, 0]) + len(payload).to_bytes(4, "big") + payload)
        except OSError:
            return True
        return closed_within(s, deadline)

    def slowloris(s, i):
        for b in rq:
            if time.time() > deadline:
                return False
            try:
                s.send(bytes([b]))
            except OSError:
                return True
            if closed_within(s, min(deadline, time.time() + 1.0)):
                return True
        return closed_within(s, deadline)

    def flood(s, i):
        try:
            s.sendall(rq)
        except OSError:
            return True  # reset by the listener while we wrote
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            head = s.recv(6)
        except socket.timeout:
            return False
        except OSError:
            return True  # reset: closed by the listener
        # Answered (A-ASSOCIATE-AC or -RJ), or closed unanswered by the
        # listener once its refusals are all busy (EOF).
        return not head or head[0] in (0x02, 0x03)

    runs = [
        attack("junk", port, called, 20, deadline, junk),
        attack("truncated", port, called, 20, deadline, truncated),
        attack("huge", port, called, 20, deadline, huge),
        attack("oversize", port, called, 5, deadline, oversize),
        attack("slowloris", port, called, 50, deadline, slowloris),
        attack("flood", port, called, 300, deadline, flood),
    ]
    out = {}
    for name, results, threads in runs:
        for t in threads:
            t.join()
        out[name] = {"connections": len(results),
                     "connected": sum(r is not None for r in results),
                     "handled": sum(r is True for r in results)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
