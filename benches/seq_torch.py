#!/usr/bin/env python3
"""PyTorch prototype of the sequence head, for per-epoch training time against the native one.

The head trains over FROZEN, CACHED token embeddings: the backbone is never run here.

Inputs (.npy files, little-endian, C order):
  --tokens    float32 [T, D]   every text's token vectors back to back (D = 384 for MiniLM)
  --offsets   int64   [n + 1]  text i is rows offsets[i] .. offsets[i+1] (exclusive) of tokens;
                               offsets[0] = 0, offsets[n] = T, strictly increasing: every text
                               needs at least one token (the cache has [CLS] and [SEP] for each)
  --sentence  float32 [n, D]   pooled sentence embeddings
  --labels    int64   [n]      class indices 0 .. classes-1 (classes = max label + 1)
(other integer dtypes are accepted for offsets/labels, other float dtypes for the vectors).

Architecture, per batch of b texts padded to the batch's longest text L (padding rows are 0):
  attention pooling : scores = Linear(D, Q)(x) [b, L, Q]; padding positions -> -inf; softmax over
                      the tokens of each text; pooled_q = sum_t alpha_tq x_t; the Q pooled
                      vectors concatenated -> [b, Q*D]                      (Q = --queries)
  multi-scale conv  : for each k in --kernels, Conv1d(D, C, k, padding=k//2) over the padded
                      [b, D, L] input, GELU, padding positions -> -inf, max over positions
                      -> [b, C]; concatenated -> [b, C*len(kernels)]        (C = --channels;
                      kernels must be odd so the output keeps length L)
  features          : Dropout(0.1)([attn ; conv]), then [that ; sentence]   width Q*D + C*K + D
  head MLP          : Linear(width, H) -> LayerNorm(H) -> GELU -> Dropout(0.2) -> Linear(H, classes)
                      (the order of src/nn/mlp.rs, H = --hidden, default 256)
Loss and optimizer: softmax cross-entropy (mean over the batch); torch.optim.AdamW(lr 1e-3,
weight decay 0.01, betas (0.9, 0.999), eps 1e-8), constant lr; global gradient-norm clip 1.0
(--clip, 0 = none; tandem's default clip_norm). Initialisation is PyTorch's default.

Each epoch takes a fresh permutation from a torch.Generator seeded with --seed, cuts it into
batches of --batch, and for each batch gathers the texts' token rows, pads them with
torch.nn.utils.rnn.pad_sequence, and builds the mask: what a normal PyTorch prototype does. An
epoch's time covers all of that (gather + pad + forward + backward + step) for every batch.
Nothing is evaluated; timings only. torch.set_num_threads(--threads), and one interop thread.

Output: ONE JSON object on stdout
  {"seconds_per_epoch": [...], "median_epoch_seconds", "final_loss" (mean training loss over the
   last epoch), "examples", "tokens", "threads", "batch", "kernels", "channels", "queries",
   "torch_version"}
and progress on stderr.

How the Rust bench calls it (writes the four arrays with ndarray_npy, e.g. under target/bench/,
then runs the tooling venv's Python and parses stdout as JSON, reading "median_epoch_seconds"
and "seconds_per_epoch"):

    ~/.cache/tandem/venv/bin/python benches/seq_torch.py \\
        --tokens target/bench/seq_tokens.npy --offsets target/bench/seq_offsets.npy \\
        --sentence target/bench/seq_sentence.npy --labels target/bench/seq_labels.npy \\
        --epochs 3 --batch 64 --threads 2 --queries 1 --kernels 1,3,5 --channels 128 --hidden 256

(in Rust: Command::new(tandem::home::cache_dir().join("venv/bin/python"))
 .arg(<CARGO_MANIFEST_DIR>/benches/seq_torch.py).args([...]); a non-zero exit status means an
 error, explained on stderr.)

Synthetic inputs for a run without the Rust side:

    python benches/seq_torch.py --make-synthetic DIR [--n 4400] [--mean-tokens 14] [--classes 6]
        [--dim 384] [--seed 0]

writes DIR/{tokens,offsets,sentence,labels}.npy (lengths uniform in
[max(2, mean-9), mean+9], random normal vectors, labels = argmax of a fixed random projection of
the sentence vector so the loss can fall) and prints {"dir", "examples", "tokens", "classes"}.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_kernels(s):
    try:
        ks = [int(k) for k in s.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"kernels must be comma-separated integers, got {s!r}")
    if not ks or any(k < 1 or k % 2 == 0 for k in ks):
        raise argparse.ArgumentTypeError(f"kernels must be odd positive integers, got {s!r}")
    return ks


class SeqHead(torch.nn.Module):
    def __init__(self, dim, classes, queries, kernels, channels, hidden):
        super().__init__()
        self.attn = torch.nn.Linear(dim, queries)
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv1d(dim, channels, k, padding=k // 2) for k in kernels)
        self.drop = torch.nn.Dropout(0.1)
        width = queries * dim + channels * len(kernels) + dim
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, hidden),
            torch.nn.LayerNorm(hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, classes),
        )

    def forward(self, x, mask, sentence):
        # x [b, L, D] with padding rows 0; mask [b, L] bool, True on real tokens.
        b = x.shape[0]
        pad = ~mask
        scores = self.attn(x).masked_fill(pad.unsqueeze(-1), float("-inf"))  # [b, L, Q]
        alpha = torch.softmax(scores, dim=1)
        attn = torch.einsum("blq,bld->bqd", alpha, x).reshape(b, -1)  # [b, Q*D]
        xt = x.transpose(1, 2)  # [b, D, L]
        conv = [torch.nn.functional.gelu(c(xt)).masked_fill(pad.unsqueeze(1), float("-inf")).amax(dim=2)
                for c in self.convs]  # each [b, C]
        feats = self.drop(torch.cat([attn] + conv, dim=1))
        return self.mlp(torch.cat([feats, sentence], dim=1))


def load_inputs(args):
    tokens = np.load(args.tokens)
    offsets = np.load(args.offsets)
    sentence = np.load(args.sentence)
    labels = np.load(args.labels)
    if tokens.ndim != 2 or sentence.ndim != 2 or offsets.ndim != 1 or labels.ndim != 1:
        sys.exit(f"shapes: tokens {tokens.shape} (want [T, D]), offsets {offsets.shape} (want [n+1]), "
                 f"sentence {sentence.shape} (want [n, D]), labels {labels.shape} (want [n])")
    n = labels.shape[0]
    if offsets.shape[0] != n + 1 or sentence.shape[0] != n or n == 0:
        sys.exit(f"{n} labels need {n + 1} offsets and {n} sentence rows, got {offsets.shape[0]} "
                 f"and {sentence.shape[0]}")
    if sentence.shape[1] != tokens.shape[1]:
        sys.exit(f"sentence width {sentence.shape[1]} != token width {tokens.shape[1]}")
    if not (np.issubdtype(offsets.dtype, np.integer) and np.issubdtype(labels.dtype, np.integer)):
        sys.exit(f"offsets and labels must be integers, got {offsets.dtype} and {labels.dtype}")
    offsets = offsets.astype(np.int64)
    labels = labels.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != tokens.shape[0] or np.any(np.diff(offsets) < 1):
        sys.exit("offsets must start at 0, end at the number of token rows and strictly increase "
                 "(every text needs at least one token)")
    if labels.min() < 0:
        sys.exit("labels must be >= 0")
    return (torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32)), offsets,
            torch.from_numpy(np.ascontiguousarray(sentence, dtype=np.float32)),
            torch.from_numpy(labels))


def make_synthetic(args):
    rng = np.random.default_rng(args.seed)
    lo, hi = max(2, args.mean_tokens - 9), args.mean_tokens + 9
    lengths = rng.integers(lo, hi + 1, size=args.n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.standard_normal((int(offsets[-1]), args.dim), dtype=np.float32)
    sentence = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    proj = rng.standard_normal((args.dim, args.classes), dtype=np.float32)
    labels = (sentence @ proj).argmax(1).astype(np.int64)
    os.makedirs(args.make_synthetic, exist_ok=True)
    for name, arr in (("tokens", tokens), ("offsets", offsets), ("sentence", sentence), ("labels", labels)):
        np.save(os.path.join(args.make_synthetic, f"{name}.npy"), arr)
    print(json.dumps({"dir": args.make_synthetic, "examples": args.n, "tokens": int(offsets[-1]),
                      "classes": args.classes}))


def train(args):
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    tokens, offsets, sentence, labels = load_inputs(args)
    n, dim = sentence.shape
    classes = int(labels.max()) + 1
    model = SeqHead(dim, classes, args.queries, args.kernels, args.channels, args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    log(f"seq_torch: {n} texts, {tokens.shape[0]} tokens (mean {tokens.shape[0] / n:.1f}), dim {dim}, "
        f"{classes} classes; queries {args.queries}, kernels {args.kernels}, channels {args.channels}, "
        f"hidden {args.hidden}; batch {args.batch}, {args.threads} threads, torch {torch.__version__}")

    seconds, final_loss = [], float("nan")
    model.train()
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).tolist()
        total = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            seqs = [tokens[starts[j]:ends[j]] for j in idx]
            x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
            lengths = torch.tensor([ends[j] - starts[j] for j in idx])
            mask = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x, mask, sentence[idx]), labels[idx])
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
        seconds.append(time.perf_counter() - t0)
        final_loss = total / n
        log(f"epoch {epoch + 1}/{args.epochs}: {seconds[-1]:.3f}s, mean loss {final_loss:.4f}")

    print(json.dumps({
        "seconds_per_epoch": seconds,
        "median_epoch_seconds": statistics.median(seconds),
        "final_loss": final_loss,
        "examples": n,
        "tokens": int(tokens.shape[0]),
        "threads": args.threads,
        "batch": args.batch,
        "kernels": args.kernels,
        "channels": args.channels,
        "queries": args.queries,
        "torch_version": torch.__version__,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens")
    ap.add_argument("--offsets")
    ap.add_argument("--sentence")
    ap.add_argument("--labels")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=1)
    ap.add_argument("--kernels", type=parse_kernels, default=[1, 3, 5])
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip, 0 = none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--make-synthetic", metavar="DIR", help="write synthetic inputs to DIR and exit")
    ap.add_argument("--n", type=int, default=4400, help="--make-synthetic: number of texts")
    ap.add_argument("--mean-tokens", type=int, default=14, help="--make-synthetic: mean tokens per text")
    ap.add_argument("--classes", type=int, default=6, help="--make-synthetic: number of classes")
    ap.add_argument("--dim", type=int, default=384, help="--make-synthetic: vector width")
    args = ap.parse_args()
    if args.make_synthetic:
        if args.n < 1 or args.mean_tokens < 1 or args.classes < 2 or args.dim < 1:
            ap.error("--n, --mean-tokens, --dim must be >= 1 and --classes >= 2")
        make_synthetic(args)
        return
    missing = [f"--{k}" for k in ("tokens", "offsets", "sentence", "labels") if not getattr(args, k)]
    if missing:
        ap.error(f"missing {' '.join(missing)} (or use --make-synthetic DIR)")
    if min(args.epochs, args.batch, args.threads, args.queries, args.channels, args.hidden) < 1:
        ap.error("--epochs, --batch, --threads, --queries, --channels, --hidden must be >= 1")
    train(args)


if __name__ == "__main__":
    main()
