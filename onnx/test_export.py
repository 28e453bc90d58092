"""End-to-end test of `onnx/export.py --source` (bring your own backbone): a sentence-transformers
model directory in, a tandem backbone out (three graphs, tokenizer, manifest, validation cosines),
computing what the installed default backbone computes from the same weights.

The source directory is made from the installed all-MiniLM-L6-v2: its weights read back out of
its fp32 graph, written as `model.safetensors` with a config, tokenizer and pooling modules, as a
Hugging Face download would have them. Needs the default setup (scripts/setup.sh).

    cd onnx && ~/.cache/tandem/venv/bin/python -m unittest test_export    (scripts/test.sh runs it)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_graph  # noqa: E402
import export as exporter  # noqa: E402


def cache_dir():
    """Where setup put the backbones (the rule of src/home.rs)."""
    if os.environ.get("TANDEM_HOME"):
        return os.environ["TANDEM_HOME"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "tandem")
    return os.path.join(os.path.expanduser("~"), ".cache", "tandem")


DEFAULT = os.path.join(cache_dir(), "models", "all-MiniLM-L6-v2")
TEXTS = [
    "Who wrote Romeo and Juliet?",
    "The quarterly report shows revenue growth across every region.",
    "win a free cruise now!!! reply YES",
    "How many days are in a leap year?",
]


def embed(graph, tokenizer_path, texts):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    enc = tok.encode_batch(texts)
    n = max(len(e.ids) for e in enc)
    ids = np.zeros((len(texts), n), np.int64)
    mask = np.zeros((len(texts), n), np.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in sess.get_inputs()}
    return sess.run(["sentence_embedding"], {k: v for k, v in feed.items() if k in names})[0]


def write_source(dst):
    """A sentence-transformers directory holding the default backbone's weights."""
    from safetensors.numpy import save_file

    with open(os.path.join(DEFAULT, "manifest.json")) as f:
        manifest = json.load(f)
    src = bert_graph.read_onnx_source(os.path.join(DEFAULT, manifest["graphs"]["fp32"]), heads=12)
    os.makedirs(os.path.join(dst, "1_Pooling"))
    save_file({k: np.ascontiguousarray(v) for k, v in src["weights"].items()}, os.path.join(dst, "model.safetensors"))
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(dict(src["config"], architectures=["BertModel"]), f)
    shutil.copy(os.path.join(DEFAULT, "tokenizer.json"), os.path.join(dst, "tokenizer.json"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    with open(os.path.join(dst, "modules.json"), "w") as f:
        json.dump(modules, f)
    with open(os.path.join(dst, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}, f)
    return manifest


def export(*args):
    return subprocess.run([sys.executable, os.path.join(HERE, "export.py"), *args], capture_output=True, text=True)


@unittest.skipUnless(os.path.isdir(DEFAULT), f"needs the default backbone in {DEFAULT} (scripts/setup.sh)")
class ExportSourceTest(unittest.TestCase):
    def test_a_local_directory_becomes_a_backbone(self):
        with tempfile.TemporaryDirectory() as tmp:
            src, out = os.path.join(tmp, "my-minilm"), os.path.join(tmp, "out", "my-minilm")
            installed = write_source(src)
            run = export("--source", src, "--out", out)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            with open(os.path.join(out, "manifest.json")) as f:
                m = json.load(f)
            self.assertEqual(m["format"], "tandem-backbone/1")
            self.assertEqual(m["name"], "my-minilm")
            self.assertEqual((m["architecture"], m["dim"], m["layers"]), ("bert", 384, 6))
            self.assertEqual((m["pooling"], m["normalize"]), ("mean", True))
            self.assertEqual(sorted(m["graphs"]), ["fp32", "int8", "opt"])
            for name, digest in m["files"].items():
                self.assertEqual(exporter.sha256(os.path.join(out, name)), digest, name)
            # The same weights, the same embeddings as the installed backbone; int8 within its bar.
            tok = os.path.join(out, "tokenizer.json")
            mine = embed(os.path.join(out, m["graphs"]["fp32"]), tok, TEXTS)
            theirs = embed(os.path.join(DEFAULT, installed["graphs"]["fp32"]), tok, TEXTS)
            self.assertGreater(cosines(mine, theirs).min(), 0.99999)
            int8 = embed(os.path.join(out, m["graphs"]["int8"]), tok, TEXTS)
            self.assertGreater(cosines(int8, mine).mean(), 0.99)
            # A second run finds it up to date and leaves it alone.
            again = export("--source", src, "--out", out)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertIn("up to date", again.stdout)

    def test_a_directory_without_weights_is_refused_and_nothing_is_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            run = export("--source", tmp, "--out", out)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("no model.safetensors", run.stderr)
            self.assertFalse(os.path.exists(out))

    def test_a_model_of_another_family_is_refused_naming_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            src, out = os.path.join(tmp, "src"), os.path.join(tmp, "out")
            write_source(src)
            with open(os.path.join(src, "config.json")) as f:
                config = json.load(f)
            config["model_type"] = "distilbert"
            with open(os.path.join(src, "config.json"), "w") as f:
                json.dump(config, f)
            run = export("--source", src, "--out", out)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("distilbert", run.stderr)
            self.assertFalse(os.path.exists(out))


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


if __name__ == "__main__":
    unittest.main()
