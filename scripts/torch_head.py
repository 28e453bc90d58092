#!/usr/bin/env python3
"""Write MLP heads the way a server-side PyTorch user would, for tandem's import tests.

    python scripts/torch_head.py OUT_DIR EMBEDDINGS.json --classes 6 [--hidden 64]

EMBEDDINGS.json: {"embeddings": [[...], ...]} (pooled embeddings from tandem's backbone).
Writes, with torch.onnx.export (the TorchScript exporter, opset 17, which spells GELU out with
Erf):
  head.onnx       Linear -> LayerNorm -> GELU -> Dropout -> Linear (-> logits), trained for a
                  few steps on random targets so that no weight is at its initial value
  head_relu.onnx  Linear -> ReLU -> Linear -> Softmax
  head_tanh.onnx  Linear -> Tanh -> Linear            (an activation tandem's heads lack)
  head_bn.onnx    Linear -> BatchNorm1d -> ReLU -> Linear   (an operator tandem's heads lack)
and prints JSON: the softmax probabilities of head.onnx and head_relu.onnx on the embeddings,
computed by PyTorch itself.
"""

import argparse
import json
import os
import warnings

import torch

warnings.filterwarnings("ignore")


def export(net, dim, path):
    net.eval()
    torch.onnx.export(
        net,
        (torch.zeros(2, dim),),
        path,
        input_names=["embedding"],
        output_names=["logits"],
        dynamic_axes={"embedding": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("embeddings")
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.embeddings) as f:
        emb = torch.tensor(json.load(f)["embeddings"], dtype=torch.float32)
    dim, k, h = emb.shape[1], args.classes, args.hidden
    torch.manual_seed(0)

    head = torch.nn.Sequential(
        torch.nn.Linear(dim, h), torch.nn.LayerNorm(h), torch.nn.GELU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(h, k),
    )
    # A few steps, so LayerNorm's affine and every bias move off their initial values.
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    targets = torch.randint(0, k, (emb.shape[0],))
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(emb), targets).backward()
        opt.step()
    export(head, dim, os.path.join(args.out, "head.onnx"))

    relu = torch.nn.Sequential(
        torch.nn.Linear(dim, h), torch.nn.ReLU(), torch.nn.Linear(h, k), torch.nn.Softmax(dim=-1)
    )
    export(relu, dim, os.path.join(args.out, "head_relu.onnx"))
    export(torch.nn.Sequential(torch.nn.Linear(dim, h), torch.nn.Tanh(), torch.nn.Linear(h, k)),
           dim, os.path.join(args.out, "head_tanh.onnx"))
    export(torch.nn.Sequential(torch.nn.Linear(dim, h), torch.nn.BatchNorm1d(h), torch.nn.ReLU(),
                               torch.nn.Linear(h, k)), dim, os.path.join(args.out, "head_bn.onnx"))
    with torch.no_grad():
        head.eval()
        out = {
            "head": torch.softmax(head(emb), -1).tolist(),
            "head_relu": relu(emb).tolist(),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
