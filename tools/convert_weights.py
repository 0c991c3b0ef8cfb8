#!/usr/bin/env python3
"""Convert PyTorch weights (a torchxrayvision `.pt`, which pickles the whole
module, or a plain state dict / checkpoint) into what triaged loads: a
safetensors file of float32 tensors named as in the state dict, and a model
manifest (TOML) with the file's SHA-256 and, when the module carries them,
torchxrayvision's labels (`pathologies`) and operating thresholds
(`op_threshs`).

Unpickling runs code from the file: convert only weights you trust.

    python tools/convert_weights.py MODEL.pt OUT_DIR --name NAME --architecture densenet121 \\
        [--version V] [--input-spec xrv] [--input-size 224]
"""
import argparse
import hashlib
import json
import os
import sys
import struct

import torch


def state_dict_of(obj):
    """The state dict inside whatever torch.load returned."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj:
                return state_dict_of(obj[key])
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise SystemExit(f"no state dict found in a {type(obj).__name__}")


def write_safetensors(tensors, path):
    """The safetensors format: u64 header length, JSON header, raw data."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("out_dir")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1")
    ap.add_argument("--architecture", required=True, help="densenet121, resnet50, ...")
    ap.add_argument("--input-spec", default="xrv")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--densenet", help='JSON for architecture "densenet": '
                    '{"growth_rate":..,"block_config":[..],"num_init_features":..,"bn_size":..}')
    a = ap.parse_args()

    obj = torch.load(a.weights, map_location="cpu", weights_only=False)
    state = {k: v for k, v in state_dict_of(obj).items() if not k.endswith("num_batches_tracked")}
    os.makedirs(a.out_dir, exist_ok=True)
    weights = os.path.join(a.out_dir, "weights.safetensors")
    write_safetensors(state, weights)
    with open(weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    labels = [str(p) for p in getattr(obj, "pathologies", [])]
    op = getattr(obj, "op_threshs", None)
    thresholds = [] if op is None else [float(t) for t in torch.as_tensor(op).flatten()]
    # torchxrayvision marks the labels a model does not predict with a NaN
    # operating threshold (its output there is an untrained head, often
    # with an empty name): they go to not_predicted, which triaged never
    # reports; their threshold is a placeholder.
    not_predicted = []
    for i, t in enumerate(thresholds):
        if t != t:
            if i < len(labels) and not labels[i].strip():
                labels[i] = f"unused-{i}"
            if i < len(labels):
                not_predicted.append(labels[i])
            thresholds[i] = 0.5
    empty = [i for i, l in enumerate(labels) if not l.strip()]
    if empty:
        sys.exit(f"labels {empty} have no name and a real threshold: name them (the manifest's labels)")
    first_conv = next(v for v in state.values() if v.dim() == 4)
    lines = [
        f"name = {toml_str(a.name)}",
        f"version = {toml_str(a.version)}",
        f"architecture = {toml_str(a.architecture)}",
        f"in_channels = {first_conv.shape[1]}",
        'weights = "weights.safetensors"',
        f'sha256 = "{sha}"',
        f"labels = [{', '.join(toml_str(l) for l in labels)}]",
        f"not_predicted = [{', '.join(toml_str(l) for l in not_predicted)}]",
        f"thresholds = [{', '.join(repr(t) for t in thresholds)}]",
        f"recalibrate = {'true' if op is not None else 'false'}",
        "validated = false",
        'intended_use = "converted from PyTorch; state the intended use before enabling"',
        "[input]",
        f"spec = {toml_str(a.input_spec)}",
        f"size = {a.input_size}",
    ]
    if a.densenet:
        d = json.loads(a.densenet)
        lines += ["[densenet]"] + [f"{k} = {json.dumps(v)}" for k, v in d.items()]
    with open(os.path.join(a.out_dir, "model.toml"), "w") as f:
        f.write("# Written by tools/convert_weights.py; review before use.\n" + "\n".join(lines) + "\n")
    print(f"{len(state)} tensors -> {weights} (sha256 {sha[:16]}...)")


if __name__ == "__main__":
    main()
