#!/usr/bin/env python3
"""An independent DICOMweb client (dicomweb-client, PyPI) for tests/dicomweb.rs.

    dicomweb_peer.py URL TOKEN store FILE...
        STOW-RS the files in one request; print the answer's DICOM JSON.
    dicomweb_peer.py URL TOKEN store-each FILE...
        STOW-RS each file in a request of its own, in turn; print a JSON
        list of the HTTP statuses (null: no answer, e.g. the server died).
    dicomweb_peer.py URL TOKEN search [KEY=VALUE...]
        QIDO-RS studies; print the JSON array.
    dicomweb_peer.py URL TOKEN retrieve STUDY FILE...
        WADO-RS the study; exit 1 unless its instances are the files' data
        sets, attribute for attribute; print how many matched.
"""
import json
import sys

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient


def main():
    url, token, cmd, *args = sys.argv[1:]
    client = DICOMwebClient(url=url, headers={"Authorization": f"Bearer {token}"})
    if cmd == "store":
        datasets = [pydicom.dcmread(f) for f in args]
        answer = client.store_instances(datasets=datasets)
        print(json.dumps(answer.to_json_dict()))
    elif cmd == "store-each":
        # One attempt a file: the caller resends what got no 200.
        client.set_http_retry_params(retry=False)
        statuses = []
        for f in args:
            try:
                client.store_instances(datasets=[pydicom.dcmread(f)])
                statuses.append(200)
            except requests.exceptions.HTTPError as e:
                statuses.append(e.response.status_code)
            except requests.exceptions.RequestException:
                statuses.append(None)
        print(json.dumps(statuses))
    elif cmd == "search":
        filters = dict(a.split("=", 1) for a in args)
        print(json.dumps(client.search_for_studies(search_filters=filters)))
    elif cmd == "retrieve":
        study, *files = args
        got = {str(ds.SOPInstanceUID): ds for ds in client.retrieve_study(study)}
        want = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(f) for f in files)}
        if set(got) != set(want):
            sys.exit(f"retrieved {sorted(got)}, sent {sorted(want)}")
        for uid, ds in want.items():
            if ds != got[uid]:
                sys.exit(f"{uid} differs")
        print(f"same {len(got)}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
