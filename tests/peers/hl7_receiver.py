#!/usr/bin/env python3
"""An HL7 v2 receiver (a RIS's interface) for tests/notify.rs, built on the
`hl7` package from PyPI: it reads MLLP-framed messages with hl7.mllp,
parses each with hl7, checks that it is an ORU^R01 with the segments
triaged promises, and answers as its mode says:

  aa      ACK AA (a message control ID seen before is a duplicate: it is
          acknowledged again and not filed twice, as interface engines do)
  ae      ACK AE with an ERR segment's text
  slow    files a message the first time its control ID comes and never
          acknowledges it; acknowledges a repeat at once (AA, duplicate)
  silent  reads the message and never answers
  close   closes the connection before the whole message has arrived

Appends one JSON line per message (or connection, for close) to LOG, with
the time it came (`at`, seconds since 1970).

  hl7_receiver.py PORT LOG MODE
"""
import asyncio
import json
import sys
import time

import hl7
from hl7.mllp import start_hl7_server

PORT, LOG, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
filed = set()


def record(entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


def fields(msg):
    """The fields the test checks, by HL7 position, as text."""
    seg = lambda name: msg.segment(name)
    out = {"segments": [str(s[0]) for s in msg]}
    for name, positions in {
        "MSH": [3, 4, 5, 6, 9, 10, 11, 12],
        "PID": [3, 5, 7, 8],
        "ORC": [1, 2, 3],
        "OBR": [2, 3, 4, 5, 7, 22, 25],
        "TQ1": [9],
        "NTE": [3],
    }.items():
        s = seg(name)
        for p in positions:
            out[f"{name}-{p}"] = str(s(p)) if len(s) > p else ""
    out["OBX"] = [
        {"type": str(o(2)), "id": str(o(3)), "value": str(o(5)), "range": str(o(7)),
         "flag": str(o(8)), "status": str(o(11))}
        for o in msg.segments("OBX")
    ]
    return out


async def raw(reader, writer):
    """silent and close: no HL7 library between the socket and the mode."""
    if MODE == "close":
        got = await reader.read(10)
        record({"mode": MODE, "bytes": len(got)})
        writer.transport.abort()
        return
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    record({"mode": MODE, "bytes": len(data)})
    await asyncio.sleep(3600)


async def answer(reader, writer):
    try:
        while not writer.is_closing():
            msg = await reader.readmessage()
            entry = {"mode": MODE, "at": time.time()}
            try:
                assert str(msg.segment("MSH")(9)) == "ORU^R01^ORU_R01", "not an ORU^R01"
                for name in ["PID", "ORC", "OBR", "TQ1", "OBX"]:
                    msg.segment(name)
                entry.update(fields(msg))
                control = entry["MSH-10"]
                entry["duplicate"] = control in filed
                code, text = ("AE", "PID-3 not on file") if MODE == "ae" else ("AA", None)
            except (AssertionError, KeyError, IndexError) as e:
                code, text = "AR", f"malformed: {e}"
                entry["error"] = str(e)
            ack = msg.create_ack(ack_code=code)
            if text:
                ack["MSA.3"] = text
                err = hl7.parse(f"MSH|^~\\&\rERR|||204^Unknown key identifier^HL70357|E||||{text}")
                ack.append(err.segment("ERR"))
            entry["answered"] = code
            record(entry)
            if code == "AA" and MODE == "slow" and not entry["duplicate"]:
                filed.add(entry["MSH-10"])
                await asyncio.sleep(3600)
            if code == "AA":
                filed.add(entry["MSH-10"])
            writer.writemessage(ack)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main():
    if MODE in ("silent", "close"):
        server = await asyncio.start_server(raw, "127.0.0.1", PORT)
    else:
        # MSH-18 says UNICODE UTF-8.
        server = await start_hl7_server(answer, "127.0.0.1", PORT, encoding="utf-8")
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
