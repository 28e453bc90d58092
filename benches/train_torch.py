#!/usr/bin/env python3
"""PyTorch baseline for benches/train.rs: the same MLP, data, batches, epochs and optimizer.

    python benches/train_torch.py --x x.npy --y y.npy --epochs 20 --batch 64 --hidden 256 --threads 2

Architecture: Linear(in, hidden) -> LayerNorm -> GELU -> Dropout(0.2) -> Linear(hidden, classes),
softmax cross-entropy, AdamW (lr 2e-3, weight decay 1e-4), gradient-norm clip 1.0; reshuffled
every epoch. Prints JSON {"seconds": ..., "final_loss": ...}.
"""

import argparse
import json
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--y", required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(np.load(args.x).astype(np.float32))
    y = torch.from_numpy(np.load(args.y).astype(np.int64))
    k = int(y.max()) + 1
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], args.hidden),
        torch.nn.LayerNorm(args.hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(args.hidden, k),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    start = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i : i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss) * len(idx)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "final_loss": total / n}))


if __name__ == "__main__":
    main()
