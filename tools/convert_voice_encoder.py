"""Convert resemblyzer's voice encoder to the ONNX file podarchive ships.

    pip download resemblyzer==0.1.4 --no-deps
    pip install onnx
    python tools/convert_voice_encoder.py Resemblyzer-0.1.4-py3-none-any.whl pipeline/data/voice-encoder.onnx

The wheel's ``resemblyzer/pretrained.pt`` is a legacy (non-zip) torch pickle: read here
without torch, by tools/torch_checkpoint.py, whose unpickler knows only the four names
such a checkpoint uses.
The network (a 3-layer LSTM of 256 units over 40 mel bands, a 256x256 projection, ReLU,
L2 norm: resemblyzer/voice_encoder.py) becomes ONNX operators with its weights stored as
float16, so onnxruntime, which faster-whisper already installs, runs it.
"""

from __future__ import annotations

import sys

import numpy as np
from converting import onnx_gates, save_model, wheel_member
from torch_checkpoint import arrays, read_legacy_checkpoint

LAYERS = 3
HIDDEN = 256


def encoder_model(weights: dict):
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes = [], []

    def constant(name: str, value: np.ndarray) -> str:
        """A float16 initializer, cast to float32 where it is used: half the file."""
        initializers.append(numpy_helper.from_array(value.astype(np.float16), name + "_f16"))
        nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        return name

    def axes(name: str, axis: int) -> str:
        initializers.append(numpy_helper.from_array(np.array([axis], np.int64), name))
        return name

    nodes.append(helper.make_node("Transpose", ["mels"], ["sequence0"], perm=[1, 0, 2]))  # frames first
    for layer in range(LAYERS):
        w = constant(f"W{layer}", onnx_gates(weights[f"lstm.weight_ih_l{layer}"])[None])
        r = constant(f"R{layer}", onnx_gates(weights[f"lstm.weight_hh_l{layer}"])[None])
        b = constant(f"B{layer}", np.concatenate([onnx_gates(weights[f"lstm.bias_ih_l{layer}"]),
                                                  onnx_gates(weights[f"lstm.bias_hh_l{layer}"])])[None])
        nodes.append(helper.make_node("LSTM", [f"sequence{layer}", w, r, b], [f"Y{layer}", f"last{layer}"],
                                      hidden_size=HIDDEN))
        nodes.append(helper.make_node("Squeeze", [f"Y{layer}", axes(f"direction{layer}", 1)],
                                      [f"sequence{layer + 1}"]))
    nodes.append(helper.make_node("Squeeze", [f"last{LAYERS - 1}", axes("direction", 0)], ["hidden"]))
    nodes.append(helper.make_node("Gemm", ["hidden", constant("linear_w", weights["linear.weight"]),
                                           constant("linear_b", weights["linear.bias"])], ["projected"], transB=1))
    nodes.append(helper.make_node("Relu", ["projected"], ["positive"]))
    nodes.append(helper.make_node("LpNormalization", ["positive"], ["embedding"], axis=1, p=2))
    graph = helper.make_graph(
        nodes, "resemblyzer_voice_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", 40])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="podarchive")
    return model


def main(wheel: str, output: str) -> None:
    save_model(encoder_model(arrays(read_legacy_checkpoint(wheel_member(wheel, "resemblyzer/pretrained.pt"))["model_state"])), output)


if __name__ == "__main__":
    main(*sys.argv[1:])
