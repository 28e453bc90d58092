#!/usr/bin/env python3
"""Write the `onnx_graph` fuzz target's seeds: small ONNX graphs of the kinds tandem reads.

    ~/.cache/tandem/venv/bin/python scripts/onnx_seeds.py [fuzz/seeds/onnx_graph]

- head_mlp.onnx: a head MLP as tandem writes one (Gemm, LayerNormalization, exact GELU from
  Erf, Softmax), weights as raw data, as typed float_data and as float16;
- int64_gather.onnx: a feature selection with an int64 initializer (Gather, Sub, Div, Clip);
- torch_mlp.onnx: the MLP head PyTorch's torch.onnx.export writes (anonymous initializer names).
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, path):
    onnx.checker.check_model(model, full_check=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def head_mlp(path):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 6)).astype(np.float32), "heads.0.0.linear.weight")
    b1 = helper.make_tensor("heads.0.0.linear.bias", TensorProto.FLOAT, [4], rng.normal(size=4).tolist())
    g = numpy_helper.from_array(np.ones(4, np.float16), "heads.0.0.norm.weight16")
    beta = numpy_helper.from_array(np.zeros(4, np.float32), "heads.0.0.norm.bias")
    w2 = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "heads.0.out.weight")
    b2 = numpy_helper.from_array(np.zeros(3, np.float32), "heads.0.out.bias")
    c = numpy_helper.from_array(np.array(0.70710677, np.float32), "c")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    nodes = [
        helper.make_node("Gemm", ["x", w1.name, b1.name], ["h"], transB=1, name="l1"),
        helper.make_node("Cast", [g.name], ["gamma"], to=TensorProto.FLOAT),
        helper.make_node("LayerNormalization", ["h", "gamma", beta.name], ["n"], axis=-1, epsilon=1e-5),
        helper.make_node("Mul", ["n", "c"], ["s"]),
        helper.make_node("Erf", ["s"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["n", "half"], ["nh"]),
        helper.make_node("Mul", ["nh", "e1"], ["a"]),
        helper.make_node("Gemm", ["a", w2.name, b2.name], ["z"], transB=1, name="out"),
        helper.make_node("Softmax", ["z"], ["label.probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("label.probabilities", TensorProto.FLOAT, ["batch", 3])],
        [w1, b1, g, beta, w2, b2, c, half, one],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), path)


def int64_gather(path):
    idx = numpy_helper.from_array(np.array([0, 2, 3], np.int64), "normalizer.selected")
    mean = numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "normalizer.mean")
    std = numpy_helper.from_array(np.array([1.0, 2.0, 0.5], np.float32), "normalizer.std")
    lo = numpy_helper.from_array(np.array(-10.0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(10.0, np.float32), "hi")
    nodes = [
        helper.make_node("Gather", ["metadata", idx.name], ["g"], axis=1),
        helper.make_node("Sub", ["g", mean.name], ["c"]),
        helper.make_node("Div", ["c", std.name], ["z"]),
        helper.make_node("Clip", ["z", "lo", "hi"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "normalizer",
        [helper.make_tensor_value_info("metadata", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [idx, mean, std, lo, hi],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), path)


def torch_mlp(path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    net.eval()
    torch.onnx.export(
        net,
        (torch.zeros(2, 6),),
        path,
        input_names=["embedding"],
        output_names=["logits"],
        dynamic_axes={"embedding": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(path), full_check=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds", "onnx_graph")
    os.makedirs(out, exist_ok=True)
    head_mlp(os.path.join(out, "head_mlp.onnx"))
    int64_gather(os.path.join(out, "int64_gather.onnx"))
    torch_mlp(os.path.join(out, "torch_mlp.onnx"))


if __name__ == "__main__":
    main()
