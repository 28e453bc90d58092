"""Smoke tests for the PyTorch references: scripts/finetune_torch.py and benches/seq_torch.py.

Run either way (about a minute on 2 cores):
    ~/.cache/tandem/venv/bin/python scripts/test_pyref.py
    (cd scripts && python3 -m unittest -q test_pyref)
The scripts themselves always run under the tooling venv's Python ($TANDEM_HOME or
~/.cache/tandem, venv/bin/python), which scripts/setup.sh creates together with the demo data
(data/trec.jsonl) that the fine-tune test uses. No network is needed.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import results  # noqa: E402  (for the same stratified split and CACHE as docs/results.md)

VENV_PY = os.path.join(results.CACHE, "venv", "bin", "python")
TREC = os.path.join(results.CACHE, "data", "trec.jsonl")
SEQ = os.path.join(ROOT, "benches", "seq_torch.py")
FINETUNE = os.path.join(HERE, "finetune_torch.py")


def run_json(args, timeout=300):
    p = subprocess.run([VENV_PY] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {p.stdout!r}"
    return json.loads(lines[0])


@unittest.skipUnless(os.path.exists(VENV_PY), f"{VENV_PY} missing: run scripts/setup.sh")
class SeqTorchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = os.path.join(cls.tmp.name, "syn")
        cls.made = run_json([SEQ, "--make-synthetic", cls.dir, "--n", "300", "--mean-tokens", "10",
                             "--classes", "4", "--seed", "1"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def inputs(self, d=None):
        d = d or self.dir
        return [a for name in ("tokens", "offsets", "sentence", "labels")
                for a in (f"--{name}", os.path.join(d, f"{name}.npy"))]

    def test_synthetic_files(self):
        self.assertEqual(self.made["examples"], 300)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         ["labels.npy", "offsets.npy", "sentence.npy", "tokens.npy"])
        self.assertTrue(1 + 300 <= self.made["tokens"] <= 19 * 300)

    def test_one_epoch_json(self):
        out = run_json([SEQ] + self.inputs() + ["--epochs", "1", "--batch", "64"])
        self.assertEqual(set(out), {"seconds_per_epoch", "median_epoch_seconds", "final_loss", "examples",
                                    "tokens", "threads", "batch", "kernels", "channels", "queries",
                                    "torch_version"})
        self.assertEqual(len(out["seconds_per_epoch"]), 1)
        self.assertGreater(out["seconds_per_epoch"][0], 0)
        self.assertEqual(out["median_epoch_seconds"], out["seconds_per_epoch"][0])
        self.assertTrue(math.isfinite(out["final_loss"]) and out["final_loss"] > 0, out["final_loss"])
        self.assertEqual((out["examples"], out["tokens"]), (300, self.made["tokens"]))
        self.assertEqual((out["threads"], out["batch"], out["kernels"], out["channels"], out["queries"]),
                         (2, 64, [1, 3, 5], 128, 1))

    def test_options_and_loss_falls(self):
        out = run_json([SEQ] + self.inputs() + ["--epochs", "4", "--queries", "2", "--kernels", "3,7",
                                                "--channels", "16", "--batch", "32"])
        self.assertEqual((out["queries"], out["kernels"], out["channels"]), (2, [3, 7], 16))
        self.assertEqual(len(out["seconds_per_epoch"]), 4)
        # Labels are a fixed function of the sentence vector: 4 epochs get well below chance (ln 4).
        self.assertLess(out["final_loss"], math.log(4) * 0.9)

    def test_rejects_bad_inputs(self):
        bad = os.path.join(self.tmp.name, "bad")
        os.makedirs(bad, exist_ok=True)
        # numpy lives in the venv (this file may run under a Python without it)
        subprocess.run([VENV_PY, "-c", (
            "import numpy as np, os, sys; d = sys.argv[1]\n"
            "np.save(os.path.join(d, 'tokens.npy'), np.zeros((5, 8), np.float32))\n"
            "np.save(os.path.join(d, 'offsets.npy'), np.array([0, 3, 3, 5], np.int64))  # empty text\n"
            "np.save(os.path.join(d, 'sentence.npy'), np.zeros((3, 8), np.float32))\n"
            "np.save(os.path.join(d, 'labels.npy'), np.array([0, 1, 0], np.int64))\n"), bad], check=True)
        for extra in ([], ["--kernels", "2"]):
            p = subprocess.run([VENV_PY, SEQ] + self.inputs(bad) + extra, capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stdout, "")


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


@unittest.skipUnless(torch_available(), "torch is not importable here: run with the venv's Python")
class SeqHeadMaskTest(unittest.TestCase):
    def test_padding_does_not_change_outputs(self):
        import torch
        sys.path.insert(0, os.path.join(ROOT, "benches"))
        import seq_torch
        torch.manual_seed(0)
        model = seq_torch.SeqHead(dim=8, classes=3, queries=2, kernels=[1, 3, 5], channels=4, hidden=16).eval()
        a, b = torch.randn(2, 8), torch.randn(5, 8)
        sent = torch.randn(2, 8)
        x = torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)
        mask = torch.tensor([[True, True, False, False, False], [True] * 5])
        with torch.no_grad():
            batched = model(x, mask, sent)
            alone = model(a.unsqueeze(0), torch.ones(1, 2, dtype=torch.bool), sent[:1])
        torch.testing.assert_close(batched[0], alone[0])


@unittest.skipUnless(os.path.exists(VENV_PY), f"{VENV_PY} missing: run scripts/setup.sh")
@unittest.skipUnless(os.path.exists(TREC), f"{TREC} missing: run scripts/setup.sh")
class FinetuneTest(unittest.TestCase):
    def test_tiny_run(self):
        with open(TREC, encoding="utf-8") as f:
            rows = [json.loads(l) for l in f if l.strip()][:400]
        tr, te = results.split(rows, "label", "multiclass", 0)
        with tempfile.TemporaryDirectory() as d:
            train, test = os.path.join(d, "train.jsonl"), os.path.join(d, "test.jsonl")
            results.write_jsonl(train, [rows[i] for i in tr])
            results.write_jsonl(test, [rows[i] for i in te])
            out = run_json([FINETUNE, "--train", train, "--test", test, "--text-field", "text",
                            "--label-field", "label", "--limit", "64", "--epochs", "1"])
        self.assertEqual(set(out), {"macro_f1", "accuracy", "train_seconds", "eval_seconds", "total_seconds",
                                    "epochs", "lr", "batch", "max_length", "train_examples",
                                    "test_examples", "torch_version", "threads"})
        self.assertTrue(0.0 <= out["macro_f1"] <= 1.0, out["macro_f1"])
        self.assertTrue(0.0 <= out["accuracy"] <= 1.0, out["accuracy"])
        self.assertEqual((out["train_examples"], out["test_examples"]), (64, 64))
        self.assertEqual((out["epochs"], out["lr"], out["batch"], out["max_length"], out["threads"]),
                         (1, 5e-5, 32, 128, 2))
        self.assertGreater(out["train_seconds"], 0)
        self.assertGreaterEqual(out["total_seconds"], out["train_seconds"] + out["eval_seconds"])


if __name__ == "__main__":
    unittest.main()
