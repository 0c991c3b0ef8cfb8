#!/usr/bin/env python3
"""torchxrayvision's model table, for tools/convert_weights.py: per weight
name its labels, operating thresholds (null where xrv has NaN: a label the
model does not predict) and input size, and per model class its default
labels and input size. Written to tools/xrv_weights.json (committed), from
the installed torchxrayvision (no weights are downloaded):

    bench/.venv-torch/bin/pip install torchxrayvision==1.5.7
    bench/.venv-torch/bin/python tools/xrv_table.py
"""
import json
import math
import os

import torchxrayvision as xrv


def clean(values):
    return [None if isinstance(v, float) and math.isnan(v) else float(v) for v in values]


def main():
    weights = {}
    for name, u in xrv.models.model_urls.items():
        weights[name] = {"labels": list(u["labels"]), "op_threshs": clean(u["op_threshs"]),
                         "input_resolution": int(u.get("input_resolution", 224))}
    classes = {
        "torchxrayvision.models.DenseNet": {"labels": list(xrv.models.DenseNet.targets), "input_resolution": 224},
        "torchxrayvision.models.ResNet": {"labels": list(xrv.models.ResNet.targets), "input_resolution": 512},
    }
    out = {"generator": "tools/xrv_table.py", "torchxrayvision": xrv.__version__,
           "weights": weights, "classes": classes}
    dest = os.path.join(os.path.dirname(__file__), "xrv_weights.json")
    with open(dest, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", dest, len(weights), "weight names")


if __name__ == "__main__":
    main()
