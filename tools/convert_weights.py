#!/usr/bin/env python3
"""Convert PyTorch weights into what triaged loads: a safetensors file of
float32 tensors named as in the state dict, and a model manifest (TOML).

Reads the .pt file without PyTorch (tools/ptfile.py: numpy only; nothing in
the file is executed). For a whole pickled torchxrayvision module no other
flag than --name is needed: the architecture (and a DenseNet's layout) comes
from the tensors; labels from the module (`pathologies`, else its class's
`targets`); operating thresholds from its `op_threshs` buffer (removed from
the weights; NaN marks a label the model does not predict: listed in
`not_predicted`, named `unused-<i>` if it has no name); the input size from
its weights' table entry or class (DenseNet 224, ResNet 512) with xrv's
own crop and resize (`resize = "skimage"`); ResNet's
`model.` key prefix is dropped; and a chest radiograph applicability
(CR/DX, CHEST, PA/AP). A plain state dict carries none of that: name the
torchxrayvision weights it came from (--xrv-weights, looked up in
tools/xrv_weights.json) or give --labels. Review the manifest before use.

    python tools/convert_weights.py MODEL.pt OUT_DIR --name NAME
        [--xrv-weights densenet121-res224-all] [--labels '["A", "B"]']
        [--architecture densenet121|resnet50|densenet] [--densenet JSON]
    (a DenseNet's or bottleneck ResNet's layout other than DenseNet-121 or
    ResNet-50 is read from the tensors: `[densenet]` or `[resnet]`)
        [--input-spec xrv] [--input-size 224] [--version V]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptfile  # noqa: E402

XRV = "torchxrayvision.models."
CHEST = ['[applicability]', 'modalities = ["CR", "DX"]', 'body_parts = ["CHEST"]', 'view_positions = ["PA", "AP"]']


def fail(message):
    sys.exit(f"convert_weights: {message}")


def xrv_table():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "xrv_weights.json")) as f:
        return json.load(f)


def write_safetensors(tensors, path):
    """The safetensors format: u64 header length, JSON header, raw data."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        data = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def toml_str(s):
    return json.dumps(str(s))


def densenet_layout(state):
    """growth_rate, block_config, num_init_features, bn_size from a
    torchvision-style DenseNet state dict."""
    blocks = []
    b = 1
    while any(k.startswith(f"features.denseblock{b}.") for k in state):
        layers = {k.split(".")[2] for k in state if k.startswith(f"features.denseblock{b}.")}
        blocks.append(len(layers))
        b += 1
    first = "features.denseblock1.denselayer1"
    growth = state[f"{first}.conv2.weight"].shape[0]
    return {"growth_rate": int(growth), "block_config": blocks,
            "num_init_features": int(state["features.conv0.weight"].shape[0]),
            "bn_size": int(state[f"{first}.conv1.weight"].shape[0] // growth)}


def resnet_layout(state):
    """layers (blocks per stage) and widths (each stage's bottleneck width)
    from a torchvision-style bottleneck ResNet state dict."""
    stages = []
    i = 1
    while f"layer{i}.0.conv1.weight" in state:
        stages.append(i)
        i += 1
    if any(f"layer{i}.0.conv3.weight" not in state for i in stages):
        fail("a ResNet of basic blocks (ResNet-18/34): triaged builds bottleneck ResNets (ResNet-50 and kin)")
    return {"layers": [len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in stages],
            "widths": [int(state[f"layer{i}.0.conv1.weight"].shape[0]) for i in stages]}


def architecture_of(state, given, densenet):
    """(architecture, (section name, table) or None) for the manifest."""
    if given:
        return given, ("densenet", json.loads(densenet)) if densenet else None
    if "features.denseblock1.denselayer1.conv1.weight" in state:
        layout = densenet_layout(state)
        if layout == {"growth_rate": 32, "block_config": [6, 12, 24, 16], "num_init_features": 64, "bn_size": 4}:
            return "densenet121", None
        return "densenet", ("densenet", layout)
    if "layer1.0.conv1.weight" in state and "fc.weight" in state:
        layout = resnet_layout(state)
        if layout == {"layers": [3, 4, 6, 3], "widths": [64, 128, 256, 512]}:
            return "resnet50", None
        return "resnet", ("resnet", layout)
    fail("cannot tell the architecture from the tensors (not a torchvision DenseNet or ResNet): pass --architecture")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("out_dir")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1")
    ap.add_argument("--architecture", help="densenet121, resnet50 or densenet (default: from the tensors)")
    ap.add_argument("--labels", help='JSON list of label names, in output order')
    ap.add_argument("--xrv-weights", help="the torchxrayvision weights a state dict came from "
                    "(e.g. densenet121-res224-all): labels, thresholds and input size")
    ap.add_argument("--input-spec", default="xrv")
    ap.add_argument("--input-size", type=int, help="default: torchxrayvision's for the model, else 224")
    ap.add_argument("--densenet", help='JSON for architecture "densenet" (default: from the tensors): '
                    '{"growth_rate":..,"block_config":[..],"num_init_features":..,"bn_size":..}')
    a = ap.parse_args()

    table = xrv_table()
    try:
        obj = ptfile.load(a.weights)
        state = {k: np.asarray(v) for k, v in ptfile.state_dict(obj).items()}
    except (OSError, ValueError) as e:
        fail(f"{a.weights}: {e}")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    module = obj if ptfile.is_module(obj) else None
    cls = module.qualname if module is not None else None
    is_xrv = cls is not None and cls.startswith(XRV)
    weights_name = a.xrv_weights or (getattr(module, "weights", None) if module is not None else None)
    entry = None
    if weights_name:
        entry = table["weights"].get(weights_name)
        if entry is None:
            fail(f"--xrv-weights {weights_name!r} is not one of: {', '.join(table['weights'])}")
    class_entry = table["classes"].get(cls) if cls else None

    # torchxrayvision's ResNet wraps torchvision's as `self.model`.
    if state and all(k.startswith("model.") or k == "op_threshs" for k in state):
        state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    # Operating thresholds: a buffer in xrv's modules (not a weight).
    op = state.pop("op_threshs", None)
    if op is None and module is not None and getattr(module, "op_threshs", None) is not None:
        op = np.asarray(module.op_threshs)
    thresholds = [float(t) for t in np.asarray(op, dtype=np.float64).ravel()] if op is not None else None
    if thresholds is None and entry is not None:
        thresholds = [math.nan if t is None else float(t) for t in entry["op_threshs"]]

    if a.labels:
        labels = [str(l) for l in json.loads(a.labels)]
    elif module is not None and getattr(module, "pathologies", None):
        labels = [str(l) for l in module.pathologies]
    elif entry is not None:
        labels = list(entry["labels"])
    elif class_entry is not None:
        labels = list(class_entry["labels"])
    else:
        fail("no label names: this file carries none. Pass --xrv-weights NAME (the torchxrayvision "
             "weights it came from, e.g. densenet121-res224-all) or --labels '[\"A\", \"B\", ...]'")
    if thresholds is not None and len(thresholds) != len(labels):
        fail(f"{len(thresholds)} operating thresholds for {len(labels)} labels")

    # NaN thresholds: labels the model does not predict.
    not_predicted = []
    for i, t in enumerate(thresholds or []):
        if t != t:
            if not labels[i].strip():
                labels[i] = f"unused-{i}"
            not_predicted.append(labels[i])
            thresholds[i] = 0.5
    empty = [i for i, l in enumerate(labels) if not l.strip()]
    if empty:
        fail(f"labels {empty} have no name: name them with --labels")

    architecture, layout = architecture_of(state, a.architecture, a.densenet)
    head = next((state[k] for k in ("classifier.weight", "fc.weight") if k in state), None)
    if head is not None and head.shape[0] != len(labels):
        fail(f"the classifier has {head.shape[0]} outputs for {len(labels)} labels")
    size = a.input_size or (entry or {}).get("input_resolution") or (class_entry or {}).get("input_resolution") or 224

    os.makedirs(a.out_dir, exist_ok=True)
    weights = os.path.join(a.out_dir, "weights.safetensors")
    write_safetensors(state, weights)
    with open(weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    first_conv = next(v for v in state.values() if v.ndim == 4)
    lines = [
        f"name = {toml_str(a.name)}",
        f"version = {toml_str(a.version)}",
        f"architecture = {toml_str(architecture)}",
        f"in_channels = {first_conv.shape[1]}",
        'weights = "weights.safetensors"',
        f'sha256 = "{sha}"',
        f"labels = [{', '.join(toml_str(l) for l in labels)}]",
        f"not_predicted = [{', '.join(toml_str(l) for l in not_predicted)}]",
    ]
    if thresholds is not None:
        lines.append(f"thresholds = [{', '.join(repr(t) for t in thresholds)}]")
    lines += [
        f"recalibrate = {'true' if thresholds is not None else 'false'}",
        "validated = false",
        'intended_use = "converted from PyTorch; state the intended use before enabling"',
        "[input]",
        f"spec = {toml_str(a.input_spec)}",
        f"size = {size}",
    ]
    if (is_xrv or a.xrv_weights) and a.input_spec == "xrv":
        # torchxrayvision's own crop and resize, which its models learnt on.
        lines.append('resize = "skimage"')
    if layout:
        section, table = layout
        lines += [f"[{section}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    if is_xrv or a.xrv_weights:
        lines += CHEST
    with open(os.path.join(a.out_dir, "model.toml"), "w") as f:
        f.write("# Written by tools/convert_weights.py; review before use.\n" + "\n".join(lines) + "\n")
    print(f"{len(state)} tensors -> {weights} (sha256 {sha[:16]}...); {architecture}, "
          f"{len(labels)} labels ({len(not_predicted)} not predicted), input {size}")


if __name__ == "__main__":
    main()
