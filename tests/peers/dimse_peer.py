#!/usr/bin/env python3
"""A second, independent DICOM peer (pynetdicom) for triaged's tests.

DCMTK's storescu re-encodes what it sends and refuses malformed files, so
tests that need a *bad* data set on the wire, or an association held open,
use this script.

  dimse_peer.py store PORT CALLED_AE OP [OP ...]
      One association; each OP is sent as a C-STORE in order:
        raw:FILE          the file's data set bytes, as they are
        truncate:FILE:N   only the first N bytes of the data set
        garbage:FILE      4 KiB of noise under the file's UIDs
        wait:PATH         (no C-STORE) wait until PATH exists, at most 60 s
      Prints a JSON list with each response's Status (null: no response).
  dimse_peer.py hold PORT CALLED_AE SECONDS
      Open a Verification association and keep it idle; prints JSON
      {"established": bool, "aborted_by_peer": bool}.
  dimse_peer.py scp PORT AE LOG CLASS [CLASS ...]
      A C-STORE SCP accepting only the given SOP classes (explicit and
      implicit little endian), answering Success and appending one JSON
      line {"class": ..., "instance": ...} per instance to LOG; runs until
      killed.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import time

from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

# Send a file's data set bytes as they are, never decoded and re-encoded.
_config.STORE_SEND_CHUNKED_DATASET = True


def split(path):
    """(file meta, header bytes, data set bytes) of a Part 10 file."""
    meta = read_file_meta_info(path)
    with open(path, "rb") as f:
        data = f.read()
    # Preamble (128) + "DICM" (4) + (0002,0000) element (12) + group length.
    end = 144 + int.from_bytes(data[140:144], "little")
    return meta, data[:end], data[end:]


def store(port, called, ops):
    tmp = tempfile.mkdtemp(prefix="dimse_peer")
    try:
        return store_from(tmp, port, called, ops)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def store_from(tmp, port, called, ops):
    files, contexts = [], set()
    for n, op in enumerate(ops):
        kind, _, rest = op.partition(":")
        if kind == "wait":
            files.append(("wait", rest))
            continue
        if kind == "truncate":
            path, _, size = rest.rpartition(":")
            meta, head, body = split(path)
            body = body[: int(size)]
        elif kind == "garbage":
            meta, head, _ = split(rest)
            # An element whose length runs past the end, then noise.
            rng = random.Random(7)
            body = b"\x08\x00\x05\x00CS\xf0\x7f" + bytes(rng.randrange(256) for _ in range(4088))
        elif kind == "raw":
            meta, head, body = split(rest)
        else:
            sys.exit(f"unknown op {op}")
        out = os.path.join(tmp, f"{n}.dcm")
        with open(out, "wb") as f:
            f.write(head + body)
        files.append(("store", out))
        contexts.add((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    ae = AE(ae_title="PYPEER")
    # How long to wait for each answer. pynetdicom does not stop waiting
    # when the peer's connection closes, only at this timeout.
    ae.dimse_timeout = float(os.environ.get("DIMSE_TIMEOUT", "30"))
    for sop_class, ts in sorted(contexts):
        ae.add_requested_context(sop_class, [ts])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        print(json.dumps({"established": False}))
        return 1
    statuses = []
    for i, (kind, path) in enumerate(files, start=1):
        if kind == "wait":
            deadline = time.time() + 60
            while not os.path.exists(path) and time.time() < deadline:
                time.sleep(0.05)
            continue
        try:
            rsp = assoc.send_c_store(path, msg_id=i)
            statuses.append(int(rsp.Status) if "Status" in rsp else None)
        except Exception:  # the peer went away mid-association
            statuses.append(None)
    if assoc.is_established:
        assoc.release()
    print(json.dumps(statuses))
    return 0


def hold(port, called, seconds):
    ae = AE(ae_title="PYPEER")
    ae.add_requested_context(Verification)
    ae.network_timeout = seconds + 30
    ae.acse_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    established = assoc.is_established
    deadline = time.time() + seconds
    while established and time.time() < deadline and assoc.is_alive():
        time.sleep(0.05)
    aborted = established and assoc.is_aborted
    if assoc.is_established:
        assoc.release()
    print(json.dumps({"established": established, "aborted_by_peer": bool(aborted)}))
    return 0


def scp(port, ae_title, log, classes):
    from pynetdicom import evt

    ae = AE(ae_title=ae_title)
    for c in classes:
        ae.add_supported_context(c, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_supported_context(Verification)

    def on_store(event):
        with open(log, "a") as f:
            f.write(json.dumps({"class": str(event.request.AffectedSOPClassUID),
                                "instance": str(event.request.AffectedSOPInstanceUID)}) + "\n")
        return 0x0000

    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    return 0


def main(argv):
    cmd, port, called = argv[1], int(argv[2]), argv[3]
    if cmd == "scp":
        return scp(port, called, argv[4], argv[5:])
    if cmd == "store":
        return store(port, called, argv[4:])
    if cmd == "hold":
        return hold(port, called, float(argv[4]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
