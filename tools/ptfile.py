"""Read PyTorch .pt files without PyTorch: numpy and the standard library.

torch.save (1.6 and later) writes a zip: `<name>/data.pkl`, a pickle whose
tensors refer by key to raw storages `<name>/data/<key>`. This reader
unpickles it with tensors rebuilt as numpy arrays (Parameters too) and every
other class as a `Stub` holding the attributes it was pickled with, so a
state dict comes back as a dict of arrays and a whole pickled module (as
torchxrayvision ships its models) as a tree of stubs whose parameters and
buffers `state_dict()` collects. Nothing from the file is executed: classes
are never imported, only named.

    import ptfile
    obj = ptfile.load("model.pt")
    state = ptfile.state_dict(obj)      # {"features.conv0.weight": ndarray, ...}
"""
import collections
import pickle
import zipfile

import numpy as np

# Storage classes as torch pickles them, and their element types.
STORAGES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class Stub:
    """An object of a class this reader does not know: its pickled state."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state

    def __repr__(self):
        return f"<{self.qualname}>"


def _stub_class(module, name):
    return type(name, (Stub,), {"qualname": f"{module}.{name}"})


class _Storage:
    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, data


def _rebuild_tensor(storage, offset, size, stride, *_):
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage.data[offset], dtype=storage.dtype)
    item = np.dtype(storage.dtype).itemsize
    flat = storage.data
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    ).copy()


def _rebuild_parameter(data, *_):
    return data


def _rebuild_from_type(func, _type, args, _state):
    return func(*args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _rebuild_from_type
        if module == "torch" and name in STORAGES:
            return STORAGES[name]
        if module == "torch" and name == "Size":
            return tuple
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "tuple", "list", "dict", "slice"):
            return getattr(__import__("builtins"), name)
        return _stub_class(module, name)

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            dtype = storage_type if isinstance(storage_type, type) else np.uint8
            self.storages[key] = _Storage(dtype, np.frombuffer(raw, dtype=dtype))
        return self.storages[key]


def load(path):
    """The object torch.save wrote to `path`."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: not a PyTorch zip file (torch.save since 1.6)")
        prefix = pkl[0][: -len("/data.pkl")]
        with z.open(pkl[0]) as f:
            return _Unpickler(f, z, prefix).load()


def is_module(obj):
    return isinstance(obj, Stub) and isinstance(getattr(obj, "_parameters", None), dict)


def state_dict(obj, prefix=""):
    """Parameters and persistent buffers of a pickled module, by their
    state-dict names; a dict is returned as it is (a state dict, or a
    checkpoint's `state_dict` / `model` entry)."""
    if isinstance(obj, dict) and not is_module(obj):
        for k in ("state_dict", "model"):
            if k in obj and isinstance(obj[k], dict):
                return dict(obj[k])
        return dict(obj)
    if not is_module(obj):
        raise ValueError(f"neither a module nor a state dict: {obj!r}")
    out = {}
    for name, p in obj._parameters.items():
        if p is not None:
            out[prefix + name] = p
    skip = getattr(obj, "_non_persistent_buffers_set", set()) or set()
    for name, b in getattr(obj, "_buffers", {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, child in getattr(obj, "_modules", {}).items():
        if child is not None:
            out.update(state_dict(child, f"{prefix}{name}."))
    return out
