#!/usr/bin/env python3
"""Export a PyTorch image classifier to ONNX for triaged, with a manifest
skeleton beside it (OUT_DIR/model.onnx, OUT_DIR/model.toml).

    python tools/export_onnx.py OUT_DIR --name NAME (--xrv WEIGHTS_NAME |
        --torchvision ARCH | --timm ARCH) [--weights FILE] [--labels JSON]
        [--size N] [--cam] [--version V]

--xrv: a torchxrayvision model (densenet121-res224-all, resnet50-res512-all,
  ...): its architecture, labels, operating thresholds (recalibrate = true;
  NaN thresholds become `not_predicted`) and input size come from
  tools/xrv_weights.json; the graph outputs its logits (xrv's own forward
  ends in op_norm, which triaged applies from the manifest instead); input
  spec `xrv` with torchxrayvision's crop and resize.
--torchvision / --timm: an architecture by name (resnet50, densenet121,
  efficientnet_b0, convnext_tiny; any timm model); --labels names its
  outputs; input spec `imagenet` (grey replicated to 3 channels,
  torchvision's mean/std) at --size (default 224).
--weights: a state dict (torch.save(model.state_dict(), FILE)), loaded with
  weights_only=True (nothing in it is executed). Without it the
  architecture's random initialisation is exported: for trying the
  pipeline, never for patients. Nothing is downloaded.
--cam: the graph gets a second output, `maps`: the classifier's weights
  applied to the last feature maps (1 x labels x h x w), from which triaged
  draws class activation maps (`[heatmap] maps_output = "maps"`). Only for
  networks that end in global average pooling and one linear layer
  (DenseNet, ResNet, EfficientNet, most timm CNNs); without it triaged
  makes heatmaps by occlusion (slower: grid² passes an image).

After the export the graph is run by onnxruntime (if installed) beside
PyTorch on a random image, and the largest difference is printed. Review
the manifest (thresholds, applicability, intended use) before use, then
`triaged models check`.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_weights import CHEST, toml_str, xrv_table  # noqa: E402

IMAGENET = ("imagenet", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def fail(message):
    sys.exit(f"export_onnx: {message}")


class Split(torch.nn.Module):
    """A classifier as features -> global average pool -> linear head, with
    the class maps as a second output when asked for."""

    def __init__(self, features, head, cam):
        super().__init__()
        self.features, self.head, self.cam = features, head, cam

    def forward(self, x):
        f = self.features(x)
        logits = self.head(f.mean(dim=(2, 3)))
        if not self.cam:
            return logits
        return logits, torch.einsum("kc,nchw->nkhw", self.head.weight, f)


def relu_after(features):
    return torch.nn.Sequential(features, torch.nn.ReLU())


def resnet_trunk(m):
    return torch.nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)


def split(model, family, arch):
    """(features, linear head) of a known family, or None."""
    if family == "xrv" or (family == "torchvision" and arch.startswith("densenet")):
        if hasattr(model, "model"):  # xrv's ResNet wraps torchvision's
            return resnet_trunk(model.model), model.model.fc
        return relu_after(model.features), model.classifier
    if family == "torchvision" and (arch.startswith("resnet") or arch.startswith("resnext")
                                    or arch.startswith("wide_resnet")):
        return resnet_trunk(model), model.fc
    if family == "torchvision" and arch.startswith("efficientnet"):
        return model.features, model.classifier[-1]
    if family == "timm":
        head = model.get_classifier()
        pool = getattr(getattr(model, "global_pool", None), "pool_type", "avg")
        norm = getattr(getattr(model, "head", None), "norm", None)
        if isinstance(head, torch.nn.Linear) and pool == "avg" and not isinstance(norm, torch.nn.LayerNorm):
            return model.forward_features, head
    return None


class Features(torch.nn.Module):
    """A bound method (timm's forward_features) as a module."""

    def __init__(self, owner, fn):
        super().__init__()
        self.owner, self.fn = owner, fn

    def forward(self, x):
        return self.fn(x)


def xrv_model(name):
    import torchxrayvision as xrv
    table = xrv_table()["weights"]
    entry = table.get(name)
    if entry is None:
        fail(f"'{name}' is not in tools/xrv_weights.json ({', '.join(sorted(table))})")
    if name.startswith("resnet50"):
        model = xrv.models.ResNet(weights=None)
    else:
        model = xrv.models.DenseNet(weights=None, num_classes=len(entry["labels"]))
    model.op_threshs = None
    return model, entry


def build(a):
    """The module, its labels, thresholds and the manifest's input lines."""
    if a.xrv:
        model, entry = xrv_model(a.xrv)
        labels = list(entry["labels"])
        thresholds = [math.nan if t is None else float(t) for t in entry["op_threshs"]]
        size = a.size or entry.get("input_resolution") or 224
        spec = ["spec = \"xrv\"", f"size = {size}", "resize = \"skimage\""]
        return model, "xrv", a.xrv, labels, thresholds, spec, 1, size
    if not a.labels:
        fail("--labels '[\"A\", \"B\"]' names the outputs")
    labels = [str(l) for l in json.loads(a.labels)]
    if a.torchvision:
        import torchvision
        if not hasattr(torchvision.models, a.torchvision):
            fail(f"torchvision has no model '{a.torchvision}'")
        model = getattr(torchvision.models, a.torchvision)(weights=None, num_classes=len(labels))
        family, arch = "torchvision", a.torchvision
    else:
        import timm
        model = timm.create_model(a.timm, pretrained=False, num_classes=len(labels))
        family, arch = "timm", a.timm
    size = a.size or 224
    _, mean, std = IMAGENET
    spec = ["spec = \"imagenet\"", f"size = {size}", f"mean = {mean}", f"std = {std}"]
    return model, family, arch, labels, None, spec, 3, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--xrv", help="torchxrayvision weights name, e.g. densenet121-res224-all")
    src.add_argument("--torchvision", help="torchvision architecture, e.g. efficientnet_b0")
    src.add_argument("--timm", help="timm architecture, e.g. convnext_tiny")
    ap.add_argument("--weights", help="state dict file (torch.save(model.state_dict(), FILE))")
    ap.add_argument("--labels", help="JSON list of the outputs' names, in order")
    ap.add_argument("--size", type=int, help="input side (default: the model's, else 224)")
    ap.add_argument("--cam", action="store_true", help="also export class maps as output 'maps'")
    a = ap.parse_args()

    model, family, arch, labels, thresholds, spec, channels, size = build(a)
    if a.weights:
        state = torch.load(a.weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if k != "op_threshs"}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            fail(f"{a.weights} does not fit {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        print("export_onnx: no --weights: exporting a random initialisation (not for patients)",
              file=sys.stderr)
    model.eval()
    parts = split(model, family, arch)
    if a.cam and parts is None:
        fail(f"--cam: {arch} does not end in global average pooling and one linear layer; "
             "export without --cam (triaged then uses occlusion)")
    if parts is not None:
        features, head = parts
        if not isinstance(features, torch.nn.Module):
            features = Features(model, features)
        net = Split(features, head, a.cam).eval()
    else:
        net = model
    outputs = ["logits", "maps"] if a.cam else ["logits"]

    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "model.onnx")
    x = torch.rand(1, channels, size, size) * (2048 if family == "xrv" else 1) - (1024 if family == "xrv" else 0)
    with torch.no_grad():
        theirs = net(x)
        torch.onnx.export(net, (x,), path, input_names=["image"], output_names=outputs, opset_version=17,
                          dynamo=False, dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
        if parts is not None:
            # The split must be the model: its logits as the model's own
            # forward computes them.
            mine = theirs[0] if a.cam else theirs
            gap = (mine - model(x)).abs().max().item()
            if gap > 1e-4 * max(1.0, mine.abs().max().item()):
                fail(f"features + head differ from {arch}'s own forward by {gap:.2e}: export without --cam")
    logits = (theirs[0] if a.cam else theirs).numpy()
    if logits.shape[-1] != len(labels):
        fail(f"the model has {logits.shape[-1]} outputs for {len(labels)} labels")
    try:
        import onnxruntime
        got = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
        print(f"onnxruntime vs PyTorch: largest logit difference {np.abs(got[0] - logits).max():.2e}",
              file=sys.stderr)
    except ImportError:
        print("onnxruntime not installed: not compared", file=sys.stderr)

    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    lines = [f"name = {toml_str(a.name)}", f"version = {toml_str(a.version)}", "architecture = \"onnx\"",
             "weights = \"model.onnx\"", f"sha256 = \"{digest}\"",
             f"labels = [{', '.join(toml_str(l) for l in labels)}]"]
    if thresholds is not None:
        unused = [labels[i] for i, t in enumerate(thresholds) if t != t]
        if unused:
            lines.append(f"not_predicted = [{', '.join(toml_str(l) for l in unused)}]")
        lines.append(f"thresholds = [{', '.join(str(0.5 if t != t else t) for t in thresholds)}]")
        lines.append("recalibrate = true")
    lines += ["output = \"logits\"", "output_name = \"logits\"" if a.cam else None,
              "validated = false", "state = \"shadow\"",
              f"intended_use = {toml_str(f'{arch} exported by tools/export_onnx.py: review before use')}"]
    lines = [l for l in lines if l]
    if a.cam:
        lines += ["", "[heatmap]", "maps_output = \"maps\""]
    lines += ["", "[input]"] + spec
    if family == "xrv":
        lines += [""] + CHEST
    with open(os.path.join(a.out_dir, "model.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and model.toml: review it, then `triaged models check`",
          file=sys.stderr)


if __name__ == "__main__":
    main()
