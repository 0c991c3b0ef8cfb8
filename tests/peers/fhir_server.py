#!/usr/bin/env python3
"""A FHIR R4 endpoint for tests/notify.rs. Every transaction Bundle POSTed
to its base is checked with fhir.resources (PyPI; its R4B models, R4's
technical correction, in which Device, Observation and DiagnosticReport
are unchanged): the Bundle and each entry's resource by its own model,
plus the rules triaged promises (transaction, conditional creates,
references that resolve inside the Bundle). A valid Bundle is processed as
a server would: an entry whose ifNoneExist identifier exists creates
nothing. Modes:

  ok           validate; 200 with a transaction-response, or 422 with an
               OperationOutcome saying what is wrong
  reject       422 with an OperationOutcome for every request
  unavailable  503
  slow         as ok, but a Bundle that creates something is never
               answered (the server has committed it; the answer is lost)

GET <base>/metadata answers a CapabilityStatement (what `triaged echo`
asks for). Requires `Authorization: Bearer TOKEN` on POSTs when TOKEN is
given. Appends one JSON
line per request to LOG: the status answered, what was created, the
Bundle.

  fhir_server.py PORT LOG MODE [TOKEN]
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

PORT, LOG, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
TOKEN = sys.argv[4] if len(sys.argv) > 4 else None
store = {}  # "Type|system|value" -> id
lock = threading.Lock()


def outcome(text):
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}]}


def check(bundle):
    """Problems with the Bundle, as text; empty if none."""
    problems = []
    try:
        Bundle.model_validate(bundle)
    except Exception as e:
        problems.append(f"Bundle: {e}")
    if bundle.get("type") != "transaction":
        problems.append("Bundle.type is not transaction")
    urls = {e.get("fullUrl") for e in bundle.get("entry", [])}
    for i, e in enumerate(bundle.get("entry", [])):
        r = e.get("resource", {})
        kind = r.get("resourceType")
        try:
            get_fhir_model_class(kind).model_validate(r)
        except Exception as ex:
            problems.append(f"Bundle.entry[{i}] {kind}: {ex}")
        req = e.get("request", {})
        if req.get("method") != "POST" or req.get("url") != kind or "ifNoneExist" not in req:
            problems.append(f"Bundle.entry[{i}].request is not a conditional create of {kind}")
        text = json.dumps(r)
        for ref in [v for v in text.split('"') if v.startswith("urn:uuid:")]:
            if ref not in urls:
                problems.append(f"Bundle.entry[{i}] refers to {ref}, not in the Bundle")
    return problems


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/metadata"):
            self.answer(200, {"resourceType": "CapabilityStatement", "status": "active",
                              "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"]})
        else:
            self.answer(404, outcome("only /metadata"))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        entry = {"mode": MODE, "at": time.time(), "content_type": self.headers.get("Content-Type")}
        try:
            bundle = json.loads(raw)
        except ValueError:
            bundle = None
        entry["bundle"] = bundle
        if TOKEN and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, outcome("no or wrong bearer token")
        elif MODE == "unavailable":
            status, body = 503, outcome("down for maintenance")
        elif MODE == "reject":
            status, body = 422, outcome("Patient identifier PH-x is not known here")
        elif bundle is None:
            status, body = 400, outcome("the body is not JSON")
        else:
            problems = check(bundle)
            if problems:
                status, body = 422, outcome("; ".join(problems))
            else:
                created, responses = [], []
                with lock:
                    for e in bundle["entry"]:
                        key = e["resource"]["resourceType"] + "|" + e["request"]["ifNoneExist"]
                        if key in store:
                            responses.append({"response": {"status": "200 OK"}})
                        else:
                            store[key] = str(len(store) + 1)
                            created.append(key)
                            responses.append({"response": {"status": "201 Created"}})
                entry["created"] = created
                status, body = 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
        entry["status"] = status
        if status != 200:
            entry["outcome"] = body["issue"][0]["diagnostics"]
        with lock, open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if MODE == "slow" and entry.get("created"):
            time.sleep(3600)
        self.answer(status, body)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
