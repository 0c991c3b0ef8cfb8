#!/usr/bin/env python3
"""An alert webhook receiver for tests/notify.rs: checks each POST's
HMAC-SHA256 signature (X-Triaged-Signature = sha256=HMAC(secret,
"<X-Triaged-Timestamp>.<body>")) with Python's hmac, answers 204 (a
delivery ID seen before is a duplicate: answered, not counted twice); in
mode `unavailable`, 503; in mode `slow`, a delivery ID's first request is
recorded as received and never answered, a repeat answered at once. A bad
signature gets 401. Appends one JSON line per request to LOG, with the time
it came (`at`, seconds since 1970).

  webhook_receiver.py PORT LOG MODE SECRET
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG, MODE, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
seen = set()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        stamp = self.headers.get("X-Triaged-Timestamp", "")
        given = self.headers.get("X-Triaged-Signature", "")
        expected = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        delivery = self.headers.get("X-Triaged-Delivery")
        entry = {"mode": MODE, "at": time.time(), "delivery": delivery, "signed": hmac.compare_digest(given, expected),
                 "content_type": self.headers.get("Content-Type")}
        try:
            entry["payload"] = json.loads(body)
        except ValueError:
            entry["payload"] = None
        if not entry["signed"]:
            status = 401
        elif MODE == "unavailable":
            status = 503
        else:
            status = 204
            with lock:
                entry["duplicate"] = delivery in seen
                seen.add(delivery)
        entry["status"] = status
        with lock, open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if MODE == "slow" and status == 204 and not entry["duplicate"]:
            time.sleep(3600)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
