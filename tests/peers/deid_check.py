#!/usr/bin/env python3
"""An independent check of triaged's de-identified exports (pydicom).

    deid_check.py stuff TABLE OUT_DIR FILE...
        Copy each FILE into OUT_DIR with every attribute of Table E.1-1
        that pydicom's dictionary knows added (where the file lacks it) with
        a synthetic value containing SECRET, nested ones inside a sequence,
        an overlay, a curve and a private block (not the Content Sequence:
        a received object with a content tree is refused).

    deid_check.py check TABLE --dates remove|shift ORIGINAL_DIR EXPORT_DIR
        Read every attribute, at every depth, of every exported file against
        its original (paired by SOP Class, Series Number and Instance
        Number) and the table: X absent, Z empty or a dummy, D a different
        non-empty value, U a new UID (the same new UID for the same original
        everywhere, and never the same for two originals), dates shifted by
        one number of days for the patient (--dates shift), anything else
        unchanged; nothing private; no SECRET or original patient name left
        in any file's bytes; the de-identification marked. Prints each
        problem; exit status 1 if there is any.
"""
import argparse
import os
import re
import sys
from datetime import date, timedelta

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

MARKS = {0x00120062, 0x00120063, 0x00120064, 0x00280303}


def read_table(path):
    exact, patterns, private = {}, [], None
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        tag, basic, dates, name = line.rstrip("\n").split("\t")
        rule = (basic, dates, name)
        if tag == "private":
            private = rule
        elif "x" in tag:
            rx = re.compile("^" + tag.replace(",", "").replace("x", "[0-9A-F]") + "$")
            patterns.append((rx, rule))
        else:
            exact[int(tag.replace(",", ""), 16)] = rule
    assert private is not None

    def rule(tag):
        if (tag >> 16) % 2 == 1:
            return private
        if tag in exact:
            return exact[tag]
        t = f"{tag:08X}"
        for rx, r in patterns:
            if rx.match(t) and (tag >> 16) % 2 == 0:
                return r
        return None

    return exact, rule


# --- stuff ----------------------------------------------------------------

def synthetic(tag, vr):
    t = f"{tag:08X}"
    if vr == "PN":
        return f"SECRET^P{t}"
    if vr in ("LO", "LT", "ST", "UT", "UC"):
        return f"SECRET {t}"
    if vr in ("SH", "AE"):
        return f"SECRET{t}"[:16]
    if vr == "CS":
        return f"SECRET{t}"[:16]
    if vr == "UR":
        return f"http://secret.example/{t}"
    if vr == "DA":
        return "20240315"
    if vr == "TM":
        return "101500"
    if vr == "DT":
        return "20240315101500"
    if vr == "AS":
        return "042Y"
    if vr == "UI":
        return f"2.25.9{tag}"
    if vr == "IS":
        return "42"
    if vr == "DS":
        return "4.2"
    if vr in ("US", "UL", "SS", "SL", "UV", "SV"):
        return 7
    if vr in ("FL", "FD"):
        return 4.5
    if vr == "AT":
        return 0x00100010
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return b"SECRET" + t.encode()
    raise ValueError(vr)


def nested_item():
    """What a sequence's item may hold: identifying attributes inside."""
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    item.ReferencedSOPInstanceUID = "2.25.97001"
    item.PatientName = "SECRET^NESTED"
    item.PersonName = "SECRET^PERSON"
    item.CodeValue = "121008"
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = "Person Observer Name"
    return item


def stuff(table, out, files):
    exact, _ = read_table(table)
    os.makedirs(out, exist_ok=True)
    for f in files:
        ds = pydicom.dcmread(f)
        for tag in sorted(exact):
            group = tag >> 16
            # File meta and command groups are not data set attributes;
            # the trailing padding and signatures cannot be written here.
            if group in (0x0000, 0x0002) or group >= 0xFFFA or tag in ds:
                continue
            # A received object with a content tree is refused whole (its
            # free text cannot be cleaned): not what this study is about.
            if tag == 0x0040A730:
                continue
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            vr = vr.split(" or ")[0]
            if vr == "SQ":
                ds.add_new(tag, "SQ", Sequence([nested_item()]))
            else:
                ds.add_new(tag, vr, synthetic(tag, vr))
        ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)
        ds.add_new(0x60004000, "LT", "SECRET overlay comment")
        ds.add_new(0x50000030, "SH", "SECRET curve")
        block = ds.private_block(0x0009, "SECRET CREATOR", create=True)
        block.add_new(0x01, "LO", "SECRET private value")
        name = os.path.basename(f)
        ds.save_as(os.path.join(out, name), enforce_file_format=True)


# --- check ----------------------------------------------------------------

def key_of(ds):
    return (str(ds.SOPClassUID), str(ds.get("SeriesNumber", "")), str(ds.get("InstanceNumber", "")))


def values(elem):
    v = elem.value
    if v is None:
        return []
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return [str(x) for x in v]
    if isinstance(v, bytes):
        return [v]
    s = str(v)
    return [s] if s != "" else []


def is_uid(s):
    return bool(re.fullmatch(r"[0-9]+(\.[0-9]+)*", s)) and len(s) <= 64


class Checker:
    def __init__(self, rule, dates):
        self.rule = rule
        self.dates = dates
        self.problems = []
        self.uids = {}  # original -> new
        self.shift = None  # days, once seen

    def problem(self, where, what):
        self.problems.append(f"{where}: {what}")

    def new_uid(self, where, old, new):
        if not is_uid(new):
            self.problem(where, f"replacement {new!r} is not a UID")
        if old == new:
            self.problem(where, f"UID {old} not replaced")
        seen = self.uids.setdefault(old, new)
        if seen != new:
            self.problem(where, f"UID {old} replaced by {seen} elsewhere, here by {new}")

    def shifted(self, where, vr, old, new):
        def day(s):
            return date(int(s[0:4]), int(s[4:6]), int(s[6:8]))
        try:
            days = (day(old) - day(new)).days
        except (ValueError, IndexError):
            self.problem(where, f"{new!r} is not a shifted {old!r}")
            return
        if vr == "DT" and old[8:] != new[8:]:
            self.problem(where, f"time of {old!r} changed to {new!r}")
        if self.shift is None:
            self.shift = days
        if days != self.shift or not 1 <= days <= 3650:
            self.problem(where, f"{old!r} -> {new!r}: {days} days, not {self.shift}")

    def walk(self, orig, out, where, top=True):
        for elem in out:
            tag = elem.tag
            here = f"{where}({tag.group:04X},{tag.element:04X})"
            if tag.is_private:
                self.problem(here, "private attribute kept")
                continue
            o = orig.get(tag) if orig is not None else None
            rule = self.rule(int(tag))
            if int(tag) in MARKS and top:
                continue  # checked below
            if rule is None:
                if o is None:
                    self.problem(here, "not in the original")
                elif elem.VR == "SQ":
                    self.sequences(o, elem, here)
                elif values(o) != values(elem):
                    self.problem(here, f"changed from {values(o)} to {values(elem)} (not in the table)")
                continue
            basic, dates, _ = rule
            old, new = (values(o) if o is not None else []), values(elem)
            if o is None:
                self.problem(here, f"added (action {basic})")
                continue
            if self.dates == "shift" and dates == "C" and elem.VR in ("DA", "DT", "TM"):
                if elem.VR == "TM":
                    if old != new:
                        self.problem(here, f"time changed from {old} to {new}")
                elif len(old) != len(new):
                    self.problem(here, f"{old} -> {new}")
                else:
                    for a, b in zip(old, new):
                        self.shifted(here, elem.VR, a, b)
                continue
            if basic == "X":
                # Kept only as the empty value it had (a Type 2 blank).
                if new or old:
                    self.problem(here, "present (action X)")
            elif elem.VR == "SQ":
                if basic in ("Z", "X/Z"):
                    if len(elem.value) != 0:
                        self.problem(here, f"sequence not emptied (action {basic})")
                else:
                    self.sequences(o, elem, here)
            elif basic in ("U", "X/Z/U*") or (elem.VR == "UI" and basic != "Z"):
                if len(new) != len(old):
                    self.problem(here, f"{len(old)} UIDs became {len(new)}")
                for a, b in zip(old, new):
                    self.new_uid(here, a, b)
            elif basic == "Z" or basic == "X/Z":
                if new and new == old:
                    self.problem(here, f"kept {old} (action {basic})")
            else:  # D and the compounds that may be D
                if not new:
                    self.problem(here, f"empty (action {basic}: a dummy value)")
                elif new == old:
                    self.problem(here, f"kept {old} (action {basic})")
        # What the original had and the export lost.
        for elem in orig if orig is not None else []:
            tag = elem.tag
            if tag.is_private or tag.element == 0 or tag in out or (top and int(tag) in MARKS):
                continue
            here = f"{where}({tag.group:04X},{tag.element:04X})"
            rule = self.rule(int(tag))
            if rule is None:
                self.problem(here, "lost (not in the table: kept)")
            elif rule[0] in ("Z", "D", "U", "Z/D"):
                self.problem(here, f"removed (action {rule[0]} keeps it)")

    def sequences(self, o, elem, here):
        if len(o.value) != len(elem.value):
            self.problem(here, f"{len(o.value)} items became {len(elem.value)}")
        for i, (a, b) in enumerate(zip(o.value, elem.value)):
            self.walk(a, b, f"{here}[{i}]", top=False)


def check(table, dates, original_dir, export_dir):
    _, rule = read_table(table)
    c = Checker(rule, dates)
    originals = {}
    names = set()
    for n in sorted(os.listdir(original_dir)):
        ds = pydicom.dcmread(os.path.join(original_dir, n))
        k = key_of(ds)
        if k in originals:
            sys.exit(f"two originals with SOP class, series and instance number {k}")
        originals[k] = ds
        names.add(str(ds.get("PatientName", "")))
    exported = sorted(n for n in os.listdir(export_dir) if n.endswith(".dcm"))
    if not exported:
        c.problem(export_dir, "no exported file")
    sops = set()
    for n in exported:
        path = os.path.join(export_dir, n)
        ds = pydicom.dcmread(path)
        k = key_of(ds)
        orig = originals.get(k)
        if orig is None:
            c.problem(n, f"no original with SOP class, series and instance number {k}")
            continue
        c.walk(orig, ds, f"{n} ")
        sops.add(str(ds.SOPInstanceUID))
        if n != f"{ds.SOPInstanceUID}.dcm":
            c.problem(n, "not named by its SOP Instance UID")
        if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
            c.problem(n, "file meta names another SOP Instance UID")
        if ds.get("BurnedInAnnotation", "NO") == "YES":
            c.problem(n, "burned-in annotation exported")
        if ds.get("PatientIdentityRemoved") != "YES":
            c.problem(n, "Patient Identity Removed is not YES")
        codes = [i.CodeValue for i in ds.get("DeidentificationMethodCodeSequence", [])]
        want = ["113100"] + (["113107"] if dates == "shift" else [])
        if codes != want:
            c.problem(n, f"de-identification method codes {codes}, not {want}")
        temporal = ds.get("LongitudinalTemporalInformationModified")
        if temporal != ("MODIFIED" if dates == "shift" else "REMOVED"):
            c.problem(n, f"Longitudinal Temporal Information Modified is {temporal}")
        raw = open(path, "rb").read()
        if b"SECRET" in raw:
            c.problem(n, "SECRET left in the file")
        for name in names:
            if name and name.encode() in raw:
                c.problem(n, f"the original patient name {name!r} left in the file")
    # A reference to an exported original points at its exported copy.
    original_sops = {str(ds.SOPInstanceUID) for ds in originals.values()}
    back = {new: old for old, new in c.uids.items()}
    for n in exported:
        ds = pydicom.dcmread(os.path.join(export_dir, n))
        for ref in refs(ds):
            if back.get(ref) in original_sops and ref not in sops:
                c.problem(n, f"references {ref}, which no exported file is")
    for p in c.problems:
        print(p)
    print(f"checked {len(exported)} files, {len(c.uids)} UIDs replaced, "
          f"shift {c.shift} days, {len(c.problems)} problems")
    sys.exit(1 if c.problems else 0)


def refs(ds):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from refs(item)
        elif elem.tag == 0x00081155:
            yield str(elem.value)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stuff")
    s.add_argument("table")
    s.add_argument("out")
    s.add_argument("files", nargs="+")
    c = sub.add_parser("check")
    c.add_argument("table")
    c.add_argument("--dates", choices=["remove", "shift"], required=True)
    c.add_argument("original")
    c.add_argument("export")
    a = ap.parse_args()
    if a.cmd == "stuff":
        stuff(a.table, a.out, a.files)
    else:
        check(a.table, a.dates, a.original, a.export)


if __name__ == "__main__":
    main()
