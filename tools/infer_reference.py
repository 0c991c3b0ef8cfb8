#!/usr/bin/env python3
"""PyTorch reference outputs for crates/infer's parity tests.

Builds torchvision's DenseNet-121 and ResNet-50 as torchxrayvision uses
them (1 input channel, 18 classes), fills every parameter and buffer with
the deterministic formula of crates/infer/src/formula.rs (reproduced here
bit for bit), runs a formula input, and writes the logits to
fixtures/infer/{densenet121,resnet50,smallcnn}_parity.json (small,
committed); the bundled model's trained weights on the same input go to
fixtures/infer/demo_cxr_parity.json. Formula weights use a per-architecture
`gain` (see crates/infer/src/formula.rs) chosen so the two images of the
batch give clearly different outputs.

Needs torch and torchvision (a venv of its own; they are large):

    python3 -m venv bench/.venv-torch
    bench/.venv-torch/bin/pip install torch==2.15.0 numpy safetensors pillow
    bench/.venv-torch/bin/pip install --no-deps torchvision==0.29.2
    bench/.venv-torch/bin/pip install torchxrayvision==1.5.7 pydicom==3.0.2
    bench/.venv-torch/bin/pip install onnx==1.23.2 onnxruntime==1.31.1 onnxscript==0.7.2
    bench/.venv-torch/bin/python tools/infer_reference.py [xrv|onnx]   # only fixtures/infer/xrv or /onnx
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torchvision

M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix64(z):
    """Vectorised over a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(name, n):
    h = np.uint64(fnv1a64(name))
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    k = splitmix64(h ^ i) >> np.uint64(44)
    return (k.astype(np.float32) / np.float32(1 << 20) - np.float32(0.5)).astype(np.float32)


def values(name, dims, gain=0):
    n = int(np.prod(dims))
    u = uniform(name, n)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = np.float32(0.5) + (u + np.float32(0.5)) / np.float32(2)
    elif leaf == "running_mean":
        v = u / np.float32(8)
    elif leaf == "bias":
        v = u / np.float32(16)
    elif leaf == "weight" and len(dims) == 1:
        v = np.float32(1) + u / np.float32(4)
    else:
        fan_in = max(n // max(dims[0], 1), 1)
        e = math.ceil(math.log2(fan_in) / 2) + 1 - gain
        v = u * np.float32(2.0 ** -e)
    return v.astype(np.float32).reshape(dims)


def fill(model, gain=0):
    state = model.state_dict()
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        t.copy_(torch.from_numpy(values(name, list(t.shape), gain)))
    return model


def densenet121_xrv(gain):
    m = torchvision.models.densenet121(weights=None, num_classes=18)
    m.features.conv0 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return fill(m, gain).eval()


def resnet50_xrv(gain):
    m = torchvision.models.resnet50(weights=None, num_classes=18)
    m.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return fill(m, gain).eval()


class SmallCnn(torch.nn.Module):
    """The project's own small CNN (crates/infer/src/smallcnn.rs)."""

    def __init__(self, in_channels=1, num_classes=5, widths=(16, 32, 64, 128, 256)):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [torch.nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(w),
                       torch.nn.ReLU(inplace=True),
                       torch.nn.Conv2d(w, w, 3, padding=1, bias=False), torch.nn.BatchNorm2d(w),
                       torch.nn.ReLU(inplace=True)]
            c = w
        self.features = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


# The two images of every parity batch: formula noise at full xrv range,
# and quieter noise on a bright offset (a different mean and spread, as
# two radiographs differ). Image n is `uniform * scale[n] + offset[n]`,
# exact in float32 on both sides.
SCALES, OFFSETS = [2048, 512], [0, 700]
GAINS = {"densenet121": 2, "resnet50": 2, "smallcnn": 3}
# The small torchxrayvision DenseNets of the converter fixtures: gain 2
# makes their outputs sensitive enough to the input that a crop one row off
# moves them by 3e-3, far over the 1e-4 parity tolerance (gain 0: 8e-5).
XRV_GAIN = 2


def parity_input(dims):
    u = uniform("input", int(np.prod(dims))).reshape(dims)
    x = np.empty_like(u)
    for n in range(dims[0]):
        x[n] = u[n] * np.float32(SCALES[n]) + np.float32(OFFSETS[n])
    return torch.from_numpy(x)


def write(root, name, model, description, probe_name, probe_dims, dims, gain):
    x = parity_input(dims)
    with torch.no_grad():
        logits = model(x)
    out = {
        "generator": "tools/infer_reference.py",
        "torch": torch.__version__,
        "model": description,
        "gain": gain,
        "input": {"name": "input", "dims": dims, "scale": SCALES, "offset": OFFSETS},
        "logits": logits.numpy().astype(float).tolist(),
        "probe": {probe_name: values(probe_name, probe_dims).ravel()[:4].tolist()},
    }
    dest = os.path.join(root, "fixtures/infer", name)
    with open(dest, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", dest)


def tiny_xrv_module():
    """A DenseNet small enough to commit, dressed as torchxrayvision's
    models are (a whole module with `pathologies` and `op_threshs`), to
    test tools/convert_weights.py end to end."""
    m = torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=3)
    m.features.conv0 = torch.nn.Conv2d(1, 8, kernel_size=7, stride=2, padding=3, bias=False)
    fill(m).eval()
    m.pathologies = ["Effusion", "Pneumothorax", "Cardiomegaly"]
    m.op_threshs = torch.tensor([0.25, 0.5, 0.75])
    return m


def converted(root):
    import subprocess
    import tempfile

    m = tiny_xrv_module()
    out = os.path.join(root, "fixtures/infer/tiny-densenet")
    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "tiny.pt")
        torch.save(m, pt)  # the whole module, as torchxrayvision ships
        subprocess.run([sys.executable, os.path.join(root, "tools/convert_weights.py"), pt, out,
                        "--name", "tiny-densenet", "--architecture", "densenet", "--input-size", "64",
                        "--densenet", json.dumps({"growth_rate": 4, "block_config": [2, 2],
                                                  "num_init_features": 8, "bn_size": 2})], check=True)
    dims = [2, 1, 64, 64]
    x = torch.from_numpy(uniform("input", int(np.prod(dims))).reshape(dims) * np.float32(2048))
    with torch.no_grad():
        logits = m(x)
    # torchxrayvision's op_norm: each label's operating threshold maps to 0.5.
    p, t = torch.sigmoid(logits), m.op_threshs.expand(logits.shape[0], -1)
    below = p < t
    recalibrated = torch.where(below, p / (t * 2), 1.0 - (1.0 - p) / ((1 - t) * 2))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"generator": "tools/infer_reference.py", "torch": torch.__version__,
                   "config": {"growth_rate": 4, "block_config": [2, 2], "num_init_features": 8,
                              "bn_size": 2, "in_channels": 1, "num_classes": 3},
                   "input": {"name": "input", "dims": dims, "scale": 2048},
                   "logits": logits.numpy().astype(float).tolist(),
                   "recalibrated": recalibrated.numpy().astype(float).tolist()}, f, indent=1)


def bundled(root):
    """The bundled model's trained weights (models/demo-cxr) on the parity
    input: its logits and probabilities, for the fast path, candle and this
    file to agree on."""
    import hashlib
    from safetensors.torch import load_file
    path = os.path.join(root, "models/demo-cxr/weights.safetensors")
    m = SmallCnn()
    m.load_state_dict(load_file(path))
    m.eval()
    dims = [2, 1, 96, 96]
    with torch.no_grad():
        logits = m(parity_input(dims))
    out = {
        "generator": "tools/infer_reference.py",
        "torch": torch.__version__,
        "model": "models/demo-cxr (smallcnn, trained weights)",
        "weights_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
        "input": {"name": "input", "dims": dims, "scale": SCALES, "offset": OFFSETS},
        "logits": logits.numpy().astype(float).tolist(),
        "probabilities": torch.sigmoid(logits).numpy().astype(float).tolist(),
    }
    dest = os.path.join(root, "fixtures/infer/demo_cxr_parity.json")
    with open(dest, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", dest)


def xrv_fixtures(root):
    """Real torchxrayvision modules, small, for tools/convert_weights.py in
    the suite (fixtures/infer/xrv/): a DenseNet saved whole as a user has it
    (`weights=None`), its plain state dict, and a pretrained-style instance
    as xrv builds one for `densenet121-res224-nih` (its labels, some empty,
    and its op_threshs buffer, NaN where it predicts nothing). Formula
    weights (gain XRV_GAIN) stand in for trained ones: xrv's random init
    saturates every output. expected.json holds PyTorch's logits on the
    parity input and, for the pretrained-style one, xrv's own forward
    (sigmoid, then op_norm; 0.5 where it predicts nothing)."""
    import torchxrayvision as xrv
    out = os.path.join(root, "fixtures/infer/xrv")
    os.makedirs(out, exist_ok=True)
    small = dict(growth_rate=4, block_config=(2, 2), num_init_features=8)
    dims = [2, 1, 64, 64]
    x = parity_input(dims)
    expected = {"generator": "tools/infer_reference.py", "torch": torch.__version__,
                "torchxrayvision": xrv.__version__,
                "input": {"name": "input", "dims": dims, "scale": SCALES, "offset": OFFSETS}}

    plain = fill(xrv.models.DenseNet(weights=None, **small), XRV_GAIN).eval()
    torch.save(plain, os.path.join(out, "densenet-whole.pt"))
    torch.save(plain.state_dict(), os.path.join(out, "densenet-state.pt"))
    with torch.no_grad():
        expected["densenet"] = {"logits": plain(x).numpy().astype(float).tolist()}

    table = xrv.models.model_urls["densenet121-res224-nih"]
    nih = xrv.models.DenseNet(weights=None, op_threshs=torch.tensor(table["op_threshs"]), **small)
    fill(nih, XRV_GAIN)
    nih.op_threshs.copy_(torch.tensor(table["op_threshs"]))  # fill() overwrote the buffer
    nih.pathologies = list(table["labels"])
    nih.weights = "densenet121-res224-nih"
    nih.eval()
    torch.save(nih, os.path.join(out, "densenet-nih-whole.pt"))
    with torch.no_grad():
        logits = nih.classifier(nih.features2(x))
        normed = nih(x)  # xrv's own forward: sigmoid, then op_norm
    expected["densenet-nih"] = {"logits": logits.numpy().astype(float).tolist(),
                                "op_norm": [[None if v != v else v for v in row] for row in normed.numpy().astype(float).tolist()]}
    # xrv's ResNet loads its weights file in __init__: a state dict of the
    # right shapes, written locally under the name xrv looks for, stands in
    # (nothing downloaded). Its torchvision network is then swapped for a
    # narrow one (bottleneck widths 4..32; two blocks in stage 2) so the
    # fixture stays small; the module keeps xrv's labels, op_threshs
    # (NaN for two labels) and input_resolution.
    import tempfile
    from torchvision.models.resnet import Bottleneck
    name = "resnet50-res512-all"
    with tempfile.TemporaryDirectory() as cache:
        stand_in = torchvision.models.resnet50(num_classes=18, weights=None)
        stand_in.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        torch.save(stand_in.state_dict(),
                   os.path.join(cache, os.path.basename(xrv.models.model_urls[name]["weights_url"])))
        res = xrv.models.ResNet(weights=name, cache_dir=cache)
    narrow = torchvision.models.resnet.ResNet(Bottleneck, [1, 1, 1, 1], num_classes=18)
    narrow.inplanes = 4
    narrow.conv1 = torch.nn.Conv2d(1, 4, kernel_size=7, stride=2, padding=3, bias=False)
    narrow.bn1 = torch.nn.BatchNorm2d(4)
    narrow.layer1 = narrow._make_layer(Bottleneck, 4, 1)
    narrow.layer2 = narrow._make_layer(Bottleneck, 8, 2, stride=2)
    narrow.layer3 = narrow._make_layer(Bottleneck, 16, 1, stride=2)
    narrow.layer4 = narrow._make_layer(Bottleneck, 32, 1, stride=2)
    narrow.fc = torch.nn.Linear(32 * Bottleneck.expansion, 18)
    res.model = fill(narrow, XRV_GAIN)
    res.eval()
    torch.save(res, os.path.join(out, "resnet-whole.pt"))
    torch.save(res.state_dict(), os.path.join(out, "resnet-state.pt"))
    with torch.no_grad():
        logits = res.model(x)
        normed = xrv.models.op_norm(torch.sigmoid(logits), res.op_threshs)
    expected["resnet"] = {"logits": logits.numpy().astype(float).tolist(),
                          "op_norm": [[None if v != v else v for v in row] for row in normed.numpy().astype(float).tolist()]}
    # torchxrayvision's own preprocessing (read_xray_dcm: MONOCHROME1 fixed,
    # normalised; XRayCenterCrop; XRayResizer's default skimage engine) and
    # forward on two radiographs (scripts/xrv_cases.py), at 224.
    import subprocess
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(root, "scripts/xrv_cases.py"), tmp], check=True)
        expected["preprocessed"] = {}
        for case in ("rg1.dcm", "rg1-odd.dcm"):
            img = xrv.utils.read_xray_dcm(os.path.join(tmp, case))
            x = xrv.datasets.XRayResizer(224)(xrv.datasets.XRayCenterCrop()(img[None]))
            with torch.no_grad():
                out_p = nih(torch.from_numpy(x)[None])[0]
            expected["preprocessed"][case] = [None if v != v else v for v in out_p.numpy().astype(float).tolist()]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", out)


class MiniConvNeXt(torch.nn.Module):
    """A small network of operators triaged has no Rust code for
    (depthwise convolution, LayerNorm, GELU, SiLU), ConvNeXt-like, with two
    outputs: class activation maps (the head's weights applied to the last
    feature maps, as tools/export_onnx.py --cam exports them) and the
    labels' probabilities."""

    def __init__(self, classes=4, width=8):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, width, 4, stride=4)
        self.norm1 = torch.nn.LayerNorm(width)
        self.dw = torch.nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 4 * width)
        self.down = torch.nn.Linear(4 * width, width)
        self.reduce = torch.nn.Conv2d(width, 2 * width, 2, stride=2)
        self.head = torch.nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.down(torch.nn.functional.gelu(self.up(self.norm2(y)))).permute(0, 3, 1, 2)
        features = torch.nn.functional.silu(self.reduce(x + y))
        cam = torch.einsum("kc,nchw->nkhw", self.head.weight, features)
        return cam, torch.sigmoid(self.head(features.mean(dim=(2, 3))))


def quadrant_graph(path):
    """A one-label graph built with the onnx package's helpers whose logit
    is the mean of the image's top-left quadrant: occlusion must find
    exactly that quadrant."""
    import onnx
    from onnx import TensorProto, helper
    const = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
    graph = helper.make_graph(
        [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["quadrant"]),
         helper.make_node("ReduceMean", ["quadrant"], ["logits"], axes=[2, 3], keepdims=0)],
        "quadrant",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])],
        [const("starts", [0, 0]), const("ends", [32, 32]), const("axes", [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def unsupported_graphs(out):
    """Graphs triaged must refuse by name (fixtures/infer/onnx/bad/): an
    operator tract lacks (DeformConv, standard since opset 19), a vendor's
    custom operator, and a classifier of 16 numbers, not an image."""
    import onnx
    from onnx import TensorProto, helper
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    rng = np.random.default_rng(0)
    w = lambda name, *dims: helper.make_tensor(name, TensorProto.FLOAT, dims, rng.standard_normal(dims).astype(np.float32).ravel())
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 64, 64])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    pool = [helper.make_node("GlobalAveragePool", ["maps"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "fc", "fc_bias"], ["logits"], transB=1)]
    head = [w("fc", 2, 2), w("fc_bias", 2)]
    graphs = {
        "deform-conv": (helper.make_graph(
            [helper.make_node("Conv", ["image", "offset_w"], ["offset"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("DeformConv", ["image", "w", "offset"], ["maps"], name="deform1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1])] + pool,
            "deform", [image], [logits], [w("offset_w", 18, 1, 3, 3), w("w", 2, 1, 3, 3)] + head), 19),
        "vendor-op": (helper.make_graph(
            [helper.make_node("FancyPool", ["image"], ["maps"], name="vendor_pool", domain="com.example")] + pool,
            "vendor", [image], [logits], head), 17),
        "tabular": (helper.make_graph(
            [helper.make_node("Gemm", ["features", "fc16", "fc_bias"], ["logits"], transB=1)],
            "tabular", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
            [logits], [w("fc16", 2, 16), w("fc_bias", 2)]), 17),
    }
    for name, (graph, opset) in graphs.items():
        imports = [helper.make_opsetid("", opset)]
        if name == "vendor-op":
            imports.append(helper.make_opsetid("com.example", 1))
        model = helper.make_model(graph, opset_imports=imports)
        if name != "vendor-op":
            onnx.checker.check_model(model)
        onnx.save(model, os.path.join(bad, name + ".onnx"))


def onnx_fixtures(root):
    """Small ONNX classifiers and onnxruntime's outputs on the parity input
    (fixtures/infer/onnx/): a torchvision DenseNet exported as logits,
    MiniConvNeXt with two outputs (class maps, probabilities), and a
    one-label graph for occlusion heatmaps."""
    import onnxruntime
    out = os.path.join(root, "fixtures/infer/onnx")
    os.makedirs(out, exist_ok=True)
    dims = [2, 1, 64, 64]
    scales, offsets = [1, 2], [0.5, 0]
    u = uniform("input", int(np.prod(dims))).reshape(dims)
    x = np.stack([u[n] * np.float32(scales[n]) + np.float32(offsets[n]) for n in range(dims[0])])
    expected = {"generator": "tools/infer_reference.py onnx", "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
                "input": {"name": "input", "dims": dims, "scale": scales, "offset": offsets}}
    dense = torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, num_classes=3)
    dense.features.conv0 = torch.nn.Conv2d(1, 8, kernel_size=7, stride=2, padding=3, bias=False)
    torch.manual_seed(0)
    mini = MiniConvNeXt()
    models = {
        "tiny-densenet": (fill(dense, XRV_GAIN).eval(), ["logits"]),
        "mini-convnext": (mini.eval(), ["maps", "probabilities"]),
    }
    for name, (model, outputs) in models.items():
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(model, (torch.from_numpy(x[:1]),), path, input_names=["image"],
                          output_names=outputs, opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        values = session.run(None, {"image": x})
        with torch.no_grad():
            theirs = model(torch.from_numpy(x))
        theirs = theirs[-1] if isinstance(theirs, tuple) else theirs
        assert np.abs(values[-1] - theirs.numpy()).max() < 1e-5, name
        expected[name] = {"outputs": outputs}
        for o, v in zip(outputs, values):
            expected[name][o] = v.astype(float).tolist()
    quadrant_graph(os.path.join(out, "quadrant.onnx"))
    unsupported_graphs(out)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", out)


def main():
    torch.set_num_threads(1)
    root = os.path.join(os.path.dirname(__file__), "..")
    if sys.argv[1:] == ["xrv"]:  # only fixtures/infer/xrv
        xrv_fixtures(root)
        return
    if sys.argv[1:] == ["onnx"]:  # only fixtures/infer/onnx
        onnx_fixtures(root)
        return
    converted(root)
    gains = GAINS
    xrv_fixtures(root)
    onnx_fixtures(root)
    write(root, "densenet121_parity.json", densenet121_xrv(gains["densenet121"]),
          "densenet121, 1 channel, 18 classes, formula weights",
          "features.conv0.weight", [64, 1, 7, 7], [2, 1, 224, 224], gains["densenet121"])
    write(root, "resnet50_parity.json", resnet50_xrv(gains["resnet50"]),
          "resnet50, 1 channel, 18 classes, formula weights",
          "conv1.weight", [64, 1, 7, 7], [2, 1, 224, 224], gains["resnet50"])
    write(root, "smallcnn_parity.json", fill(SmallCnn(), gains["smallcnn"]).eval(),
          "smallcnn, 1 channel, 5 classes, widths 16..256, formula weights",
          "features.0.weight", [16, 1, 3, 3], [2, 1, 256, 256], gains["smallcnn"])
    bundled(root)


if __name__ == "__main__":
    main()
