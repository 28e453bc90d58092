"""Tests of onnx/bert_graph.py: the graph it writes computes what an independent numpy forward pass
of the same weights computes, for both graph shapes and both poolings; sources it cannot build are
refused naming why.

    cd onnx && ~/.cache/tandem/venv/bin/python -m unittest test_bert_graph    (scripts/test.sh runs it)
"""

import json
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_graph  # noqa: E402
import tiny_backbone  # noqa: E402

CONFIG = dict(tiny_backbone.CONFIG, vocab_size=50, max_position_embeddings=16, num_attention_heads=4)


def source(pooling="mean", normalize=True, seed=0):
    w = tiny_backbone.random_weights(CONFIG, seed)
    rng = np.random.default_rng(seed + 1)
    # Not the initialisation's zeros and ones: every bias and scale must reach the output.
    for k in w:
        if k.endswith(".bias") or "LayerNorm" in k:
            w[k] = w[k] + rng.normal(0, 0.1, w[k].shape).astype(np.float32)
    return {"dir": "", "config": dict(CONFIG), "weights": w, "pooling": pooling, "normalize": normalize}


def run(model, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(None, {k: v for k, v in feed.items() if k in names})
    return dict(zip([o.name for o in sess.get_outputs()], out))


class BertGraphTest(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(7)
        ids = rng.integers(0, CONFIG["vocab_size"], (3, 9))
        mask = np.ones((3, 9), np.int64)
        mask[1, 5:] = 0  # padded rows
        mask[2, 2:] = 0
        self.feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def test_hidden_states_match_numpy(self):
        src = source()
        got = run(bert_graph.build(src, library="transformers"), self.feed)["last_hidden_state"]
        want = bert_graph.forward_numpy(src, self.feed["input_ids"], self.feed["attention_mask"])
        valid = self.feed["attention_mask"].astype(bool)
        self.assertLess(np.abs(got[valid] - want[valid]).max(), 1e-5)

    def test_pooled_outputs_match_numpy(self):
        for pooling in ("mean", "cls"):
            for normalize in (True, False):
                src = source(pooling, normalize)
                out = run(bert_graph.build(src), self.feed)
                want = bert_graph.embed_numpy(src, self.feed["input_ids"], self.feed["attention_mask"])
                self.assertLess(np.abs(out["sentence_embedding"] - want).max(), 1e-5, (pooling, normalize))
                if normalize:
                    np.testing.assert_allclose(np.linalg.norm(out["sentence_embedding"], axis=1), 1, atol=1e-5)
        # The two poolings differ: the check above is not vacuous.
        a = bert_graph.embed_numpy(source("mean"), self.feed["input_ids"], self.feed["attention_mask"])
        b = bert_graph.embed_numpy(source("cls"), self.feed["input_ids"], self.feed["attention_mask"])
        self.assertGreater(np.abs(a - b).max(), 1e-2)

    def test_padding_does_not_change_a_text(self):
        src = source()
        model = bert_graph.build(src)
        full = run(model, self.feed)["sentence_embedding"]
        n = int(self.feed["attention_mask"][2].sum())
        alone = run(model, {k: v[2:3, :n] for k, v in self.feed.items()})["sentence_embedding"]
        self.assertLess(np.abs(full[2] - alone[0]).max(), 1e-5)

    def test_layers_are_named_for_tandem(self):
        names = {n.name for n in bert_graph.build(source()).graph.node}
        for i in range(CONFIG["num_hidden_layers"]):
            for suffix in ("attention/self/query/MatMul", "attention/output/LayerNorm/LayerNormalization",
                           "intermediate/dense/MatMul", "output/LayerNorm/LayerNormalization"):
                self.assertIn(f"/0/encoder/layer.{i}/{suffix}", names)

    def test_read_source_strips_prefixes_and_reads_pooling(self):
        from safetensors.numpy import save_file

        with tempfile.TemporaryDirectory() as d:
            w = source()["weights"]
            save_file({"0.auto_model." + k: v for k, v in w.items()}, os.path.join(d, "model.safetensors"))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(CONFIG, f)
            os.makedirs(os.path.join(d, "1_Pooling"))
            with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
                json.dump({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, f)
            with open(os.path.join(d, "modules.json"), "w") as f:
                json.dump([{"type": "sentence_transformers.models.Transformer", "path": ""},
                           {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}], f)
            src = bert_graph.read_source(d)
            self.assertEqual(sorted(src["weights"]), sorted(w))
            self.assertEqual((src["pooling"], src["normalize"]), ("cls", False))

            with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
                json.dump({"pooling_mode_max_tokens": True}, f)
            with self.assertRaisesRegex(bert_graph.SourceError, "pooling_mode_max_tokens"):
                bert_graph.read_source(d)

    def test_unsupported_models_are_refused(self):
        from safetensors.numpy import save_file

        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(bert_graph.SourceError, "no config.json"):
                bert_graph.read_source(d)
            save_file({"x": np.zeros(1, np.float32)}, os.path.join(d, "model.safetensors"))
            for field, value in (("model_type", "roberta"), ("hidden_act", "relu"),
                                 ("position_embedding_type", "relative_key")):
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(dict(CONFIG, **{field: value}), f)
                with self.assertRaisesRegex(bert_graph.SourceError, field):
                    bert_graph.read_source(d)

    def test_mpnet_graph_matches_numpy(self):
        # A random MPNet: no token types, positions from padding_idx + 1, the relative position
        # bias in every layer, attention.attn.{q,k,v,o} module names.
        cfg = dict(CONFIG, model_type="mpnet", pad_token_id=1, relative_attention_num_buckets=32)
        w = {k.replace("attention.self.query", "attention.attn.q").replace("attention.self.key", "attention.attn.k")
             .replace("attention.self.value", "attention.attn.v").replace("attention.output.dense", "attention.attn.o")
             .replace("attention.output.LayerNorm", "attention.LayerNorm"): v
             for k, v in source()["weights"].items() if "token_type" not in k}
        w["encoder.relative_attention_bias.weight"] = np.random.default_rng(3).normal(
            0, 1, (32, CONFIG["num_attention_heads"])).astype(np.float32)
        src = {"dir": "", "config": cfg, "weights": w, "pooling": "mean", "normalize": True}
        model = bert_graph.build(src)
        names = {n.name for n in model.graph.node}
        self.assertIn("/0/encoder/layer.0/attention/attn/q/MatMul", names)
        self.assertNotIn("/0/encoder/layer.0/attention/self/query/MatMul", names)
        out = run(model, self.feed)["sentence_embedding"]
        want = bert_graph.embed_numpy(src, self.feed["input_ids"], self.feed["attention_mask"])
        self.assertLess(np.abs(out - want).max(), 1e-5)
        # The bias matters: without it the embeddings differ.
        w["encoder.relative_attention_bias.weight"][:] = 0
        self.assertGreater(np.abs(run(bert_graph.build(src), self.feed)["sentence_embedding"] - out).max(), 1e-3)

    def test_relative_position_buckets_follow_t5(self):
        b = bert_graph.relative_position_buckets(200)
        self.assertEqual(b[0, 0], 0)
        self.assertEqual(b[1, 0], 1)  # key before the query
        self.assertEqual(b[0, 1], 17)  # key after: the other half of the buckets
        self.assertEqual(b[0, 7], 16 + 7)  # exact up to 8 apart
        # log-spaced beyond: 8 + trunc(log(d / 8) / log(16) * 8), capped at 15
        self.assertEqual(b[20, 0], 8 + int(np.log(20 / 8) / np.log(16) * 8))
        self.assertEqual(b[0, 199], 31)
        self.assertEqual(b[199, 0], 15)

    def test_wrong_weight_shape_is_refused(self):
        src = source()
        src["weights"]["encoder.layer.1.output.dense.weight"] = np.zeros((3, 3), np.float32)
        with self.assertRaisesRegex(bert_graph.SourceError, "encoder.layer.1.output.dense.weight"):
            bert_graph.build(src)


if __name__ == "__main__":
    unittest.main()
