"""Read the weights of a torch checkpoint without torch.

Both of torch.save's formats: the legacy one (a pickle followed by the storages' bytes)
and the zip one (``archive/data.pkl`` and a file per storage). The unpickler knows only
the names a weights checkpoint uses; any other class a training framework pickled
alongside (pyannote.audio's task specifications, say) becomes an inert stand-in.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}
TENSOR_REBUILDERS = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}


class _Storage:
    def __init__(self, dtype):
        self.dtype, self.data = dtype, None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        item = self.storage.data.itemsize
        return np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset:], self.size, [step * item for step in self.stride]).copy()


class _StandIn:
    """Whatever a checkpoint pickled besides tensors: read past, never run, its contents dropped."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _CheckpointUnpickler(pickle.Unpickler):
    def __init__(self, file, stand_ins: bool):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}
        self.stand_ins = stand_ins

    def find_class(self, module, name):
        if (module, name) in TENSOR_REBUILDERS:
            return lambda storage, offset, size, stride, *_: _Tensor(storage, offset, size, stride)
        if module == "torch" and name in STORAGE_TYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if self.stand_ins:  # inert: nothing named in the file is ever imported or called
            return type(name, (_StandIn,), {})
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a weights checkpoint")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, _numel, *view = saved_id
        if kind != "storage" or any(view):
            raise pickle.UnpicklingError(f"unexpected persistent id {saved_id!r}")
        return self.storages.setdefault(key, _Storage(STORAGE_TYPES[storage_type]))


def arrays(state: dict) -> dict[str, np.ndarray]:
    return {name: tensor.array() for name, tensor in state.items()}


def read_legacy_checkpoint(data: bytes):
    """The object a legacy torch.save wrote, its tensors readable with ``arrays``."""
    file = io.BytesIO(data)
    for _header in range(3):  # magic number, protocol version, sizes of C types
        pickle.load(file)
    unpickler = _CheckpointUnpickler(file, stand_ins=False)
    checkpoint = unpickler.load()
    for key in pickle.load(file):
        storage = unpickler.storages[key]
        numel = int(np.frombuffer(file.read(8), "<i8")[0])
        storage.data = np.frombuffer(file.read(numel * np.dtype(storage.dtype).itemsize), storage.dtype)
    return checkpoint


def read_zip_checkpoint(data: bytes):
    """The object a zip-format torch.save wrote, its tensors readable with ``arrays``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickled = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
        folder = pickled.rsplit("/", 1)[0]
        unpickler = _CheckpointUnpickler(io.BytesIO(archive.read(pickled)), stand_ins=True)
        checkpoint = unpickler.load()
        for key, storage in unpickler.storages.items():
            storage.data = np.frombuffer(archive.read(f"{folder}/data/{key}"), np.dtype(storage.dtype).newbyteorder("<"))
    return checkpoint
