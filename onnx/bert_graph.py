#!/usr/bin/env python3
"""Write a BERT backbone's ONNX graph straight from its safetensors weights: no PyTorch.

    from bert_graph import read_source, build
    src = read_source(model_dir)                 # config.json, model.safetensors, pooling
    onnx.save(build(src, library="sentence_transformers"), "model.onnx")

The graph is the one a PyTorch export of a Hugging Face `BertModel` computes, op for op, in the
classic export's shape, which is what ONNX Runtime's transformer optimizer fuses (Attention,
BiasGelu, EmbedLayerNormalization, SkipLayerNormalization) and what tandem's fine-tuning reads
layers from (`src/onnx/bert.rs` finds each weight through its node, named after the module path
`…/encoder/layer.{i}/attention/self/query/MatMul`):

- embeddings: word + token type + position (absolute), then LayerNorm;
- each layer: Q, K, V projections (MatMul + bias Add, split into heads by a Reshape to [0, 0,
  heads, head_dim] and a Transpose), scores Q·Kᵀ / √head_dim plus the additive padding mask
  ((1 − mask) · −10000), Softmax, the weighted sum of V, the output projection, residual Add and
  LayerNorm; then the feed-forward (MatMul + bias, GELU with erf, MatMul + bias), residual Add and
  LayerNorm;
- `library="sentence_transformers"`: inputs `input_ids`, `attention_mask`; outputs
  `token_embeddings` and `sentence_embedding` (mean or [CLS] pooling, L2-normalized when the model
  has a Normalize module), as sentence-transformers computes them;
- `library="transformers"`: inputs `input_ids`, `attention_mask`, `token_type_ids`; output
  `last_hidden_state` (tandem pools it).

Families: BERT (`model_type` "bert": absolute positions, token types) and MPNet ("mpnet": positions
counted from padding_idx + 1, no token types, a relative position bias added to every layer's
attention scores, module names `attention.attn.{q,k,v,o}`). GELU only; anything else is refused
with the field that differs. tandem fine-tunes BERT layers only: an MPNet graph serves frozen.
"""

import json
import os

import numpy as np

# 18: tandem's whole-model export builds on the backbone graph with opset-18 operators.
OPSET = 18
IR_VERSION = 8
# The additive mask value for padding positions: exp(x − 10000) is exactly 0 in fp32 for any
# score BERT produces, and it is the value ONNX Runtime's fused Attention uses.
MASK_VALUE = -10000.0
# The top-level modules of a BERT checkpoint; everything before them in a weight's name is a
# wrapper's prefix (`bert.`, `0.auto_model.`, ...).
ROOTS = ("embeddings", "encoder", "pooler")


class SourceError(Exception):
    """A model directory tandem cannot build a backbone from; the message says why."""


def strip_prefix(name):
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p in ROOTS:
            return ".".join(parts[i:])
    return name


def read_pooling(model_dir):
    """(pooling, normalize) from a sentence-transformers directory's modules; a plain Hugging Face
    directory has none: mean pooling, normalized (what tandem does with per-token outputs)."""
    modules_path = os.path.join(model_dir, "modules.json")
    if not os.path.isfile(modules_path):
        return "mean", True
    with open(modules_path) as f:
        modules = json.load(f)
    pooling, normalize = "mean", False
    for m in modules:
        kind = m.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            with open(os.path.join(model_dir, m.get("path", ""), "config.json")) as f:
                cfg = json.load(f)
            modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
            if modes == ["pooling_mode_mean_tokens"]:
                pooling = "mean"
            elif modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            else:
                raise SourceError(f"{model_dir}: pooling {modes} is not supported (mean or cls)")
        elif kind == "Normalize":
            normalize = True
        elif kind not in ("Transformer",):
            raise SourceError(f"{model_dir}: module {m.get('type')} is not supported")
    return pooling, normalize


def read_source(model_dir):
    """The config, weights (names without wrapper prefixes) and pooling of a model directory."""
    from safetensors.numpy import load_file

    config_path = os.path.join(model_dir, "config.json")
    weights_path = os.path.join(model_dir, "model.safetensors")
    for p in (config_path, weights_path):
        if not os.path.isfile(p):
            raise SourceError(f"{model_dir}: no {os.path.basename(p)}")
    with open(config_path) as f:
        config = json.load(f)
    checks = {
        "model_type": (config.get("model_type"), tuple(ATTENTION)),
        "hidden_act": (config.get("hidden_act", "gelu"), ("gelu",)),
        "position_embedding_type": (config.get("position_embedding_type", "absolute"), ("absolute",)),
    }
    for field, (value, allowed) in checks.items():
        if value not in allowed:
            raise SourceError(f"{config_path}: {field} is {value!r}; tandem builds {' or '.join(allowed)}")
    weights = {strip_prefix(k): v for k, v in load_file(weights_path).items()}
    pooling, normalize = read_pooling(model_dir)
    return {"dir": model_dir, "config": config, "weights": weights, "pooling": pooling, "normalize": normalize}


LINEAR_MODULES = (
    "attention/self/query", "attention/self/key", "attention/self/value",
    "attention/output/dense", "intermediate/dense", "output/dense",
)


def read_onnx_source(path, heads, pooling="mean", normalize=False, name=None):
    """The weights of a BERT graph that PyTorch exported (module-path node names, Linear weights
    stored transposed under anonymous names, the other parameters under their own) or that
    `build` wrote (the same node names; every parameter under its own name), as `read_source`
    returns them, so that tandem writes its own graphs from them. `heads` is not recoverable from
    the weights; a wrong value fails the validation against the original graph."""
    import re

    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    inits = {t.name: t for t in model.graph.initializer}
    def parameter(k):
        # Prefixed (PyTorch's `0.embeddings...`), or a bare module path ending in a parameter
        # (this file's graphs; their helper constants and transposed copies are left out).
        return strip_prefix(k) != k or (k.split(".")[0] in ROOTS and k.rsplit(".", 1)[-1] in ("weight", "bias"))

    weights = {strip_prefix(k): numpy_helper.to_array(t) for k, t in inits.items() if parameter(k)}
    pattern = re.compile(r"/encoder/layer\.(\d+)/(" + "|".join(LINEAR_MODULES) + r")/MatMul$")
    eps = set()
    for node in model.graph.node:
        m = pattern.search(node.name)
        if m and node.op_type == "MatMul" and node.input[1] in inits:
            key = f"encoder.layer.{m.group(1)}.{m.group(2).replace('/', '.')}.weight"
            weights[key] = numpy_helper.to_array(inits[node.input[1]]).T.copy()
        if node.op_type == "LayerNormalization":
            eps.update(a.f for a in node.attribute if a.name == "epsilon")
    if len(eps) != 1:
        raise SourceError(f"{path}: LayerNorm epsilons {sorted(eps)} (expected one value)")
    word = weights.get("embeddings.word_embeddings.weight")
    if word is None:
        raise SourceError(f"{path}: no embeddings.word_embeddings.weight initializer (not a BERT export)")
    layers = len({k.split(".")[2] for k in weights if k.startswith("encoder.layer.")})
    up = weights.get("encoder.layer.0.intermediate.dense.weight")
    if up is None:
        raise SourceError(f"{path}: no node …/encoder/layer.0/intermediate/dense/MatMul with an initializer weight")
    config = {
        "model_type": "bert",
        "hidden_size": int(word.shape[1]),
        "vocab_size": int(word.shape[0]),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": int(up.shape[0]),
        "max_position_embeddings": int(weights["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(weights["embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": float(eps.pop()),
        "hidden_act": "gelu",
    }
    return {"dir": os.path.dirname(path), "config": config, "weights": weights, "pooling": pooling,
            "normalize": normalize}


def relative_position_buckets(n, num_buckets=32, max_distance=128):
    """MPNet's (T5's bidirectional) relative position bucket of every (query i, key j) pair,
    int64 [n, n], computed as transformers computes it (in float32, truncated)."""
    context = np.arange(n)[:, None]
    memory = np.arange(n)[None, :]
    rel = -(memory - context)
    half = num_buckets // 2
    ret = (rel < 0).astype(np.int64) * half
    rel = np.abs(rel)
    max_exact = half // 2
    large = np.float32(max_exact) + (
        np.log(np.maximum(rel, 1).astype(np.float32) / np.float32(max_exact))
        / np.float32(np.log(max_distance / max_exact))
        * np.float32(half - max_exact)
    )
    large = np.minimum(large.astype(np.int64), half - 1)
    return ret + np.where(rel < max_exact, rel, large)


class Graph:
    """Nodes and initializers, named like a PyTorch export (`{module path}/{Op}`, outputs
    `{node}_output_0`)."""

    def __init__(self):
        self.nodes, self.inits, self.names = [], [], set()

    def init(self, name, array):
        from onnx import numpy_helper

        assert name not in self.names, name
        self.names.add(name)
        # (np.ascontiguousarray would turn a scalar into a 1-element vector.)
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def node(self, op, inputs, name, outputs=None, **attrs):
        from onnx import helper

        assert name not in self.names, name
        self.names.add(name)
        outputs = outputs or [name + "_output_0"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]


def weight(weights, name, shape):
    w = weights.get(name)
    if w is None:
        raise SourceError(f"no weight {name}")
    if tuple(w.shape) != tuple(shape):
        raise SourceError(f"weight {name} has shape {list(w.shape)}, expected {list(shape)}")
    return w.astype(np.float32)


def linear(g, weights, x, module, path, n_in, n_out):
    """x @ Wᵀ + b: MatMul with the transposed weight ([in, out], as torch.onnx stores it), then
    the bias Add (bias first, also as torch.onnx writes it)."""
    w = weight(weights, module + ".weight", (n_out, n_in))
    b = weight(weights, module + ".bias", (n_out,))
    wt = g.init(module + ".weight_t", w.T)
    mm = g.node("MatMul", [x, wt], f"{path}/MatMul")
    return g.node("Add", [g.init(module + ".bias", b), mm], f"{path}/Add")


def layer_norm(g, weights, x, module, path, eps):
    d = weights[module + ".weight"].shape[0]
    return g.node(
        "LayerNormalization",
        [x, g.init(module + ".weight", weight(weights, module + ".weight", (d,))),
         g.init(module + ".bias", weight(weights, module + ".bias", (d,)))],
        f"{path}/LayerNormalization",
        axis=-1,
        epsilon=eps,
    )


# The attention's modules below `encoder.layer.{i}.` per family: query, key, value, the
# attention's output projection, and the LayerNorm after it. The feed-forward is named alike.
ATTENTION = {
    "bert": ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "attention.output.LayerNorm", "attention.self"),
    "mpnet": ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
              "attention.LayerNorm", "attention.attn"),
}


def encoder_layer(g, weights, x, mask, i, prefix, cfg, position_bias=None):
    """One encoder layer. MPNet's adds the relative position bias to the attention scores;
    otherwise its layer is BERT's under other module names."""
    d, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    ff = cfg["intermediate_size"]
    if d % heads:
        raise SourceError(f"hidden_size {d} is not a multiple of num_attention_heads {heads}")
    dh = d // heads
    q_mod, k_mod, v_mod, o_mod, ln_mod, self_mod = ATTENTION[cfg["model_type"]]
    m, p = f"encoder.layer.{i}", f"{prefix}/encoder/layer.{i}"
    s = f"{p}/{self_mod.replace('.', '/')}"
    split = g.init(f"{m}.{self_mod}.heads_shape", np.array([0, 0, heads, dh], np.int64))

    def heads_of(module, perm, n):
        path = f"{p}/{module.replace('.', '/')}"
        t = linear(g, weights, x, f"{m}.{module}", path, d, d)
        r = g.node("Reshape", [t, split], f"{s}/Reshape{n}")
        return g.node("Transpose", [r], f"{s}/Transpose{n}", perm=perm)

    q = heads_of(q_mod, [0, 2, 1, 3], "")
    k = heads_of(k_mod, [0, 2, 3, 1], "_1")
    v = heads_of(v_mod, [0, 2, 1, 3], "_2")
    scores = g.node("MatMul", [q, k], f"{s}/MatMul")
    scaled = g.node("Div", [scores, g.init(f"{m}.{self_mod}.sqrt_head_dim", np.array(np.sqrt(dh), np.float32))],
                    f"{s}/Div")
    if position_bias is not None:
        scaled = g.node("Add", [scaled, position_bias], f"{s}/Add_bias")
    masked = g.node("Add", [scaled, mask], f"{s}/Add")
    probs = g.node("Softmax", [masked], f"{s}/Softmax", axis=-1)
    ctx = g.node("MatMul", [probs, v], f"{s}/MatMul_1")
    ctx = g.node("Transpose", [ctx], f"{s}/Transpose_3", perm=[0, 2, 1, 3])
    ctx = g.node("Reshape", [ctx, g.init(f"{m}.{self_mod}.merge_shape", np.array([0, 0, d], np.int64))],
                 f"{s}/Reshape_3")
    out = linear(g, weights, ctx, f"{m}.{o_mod}", f"{p}/{o_mod.replace('.', '/')}", d, d)
    ln_path = f"{p}/{ln_mod.replace('.', '/')}"
    res = g.node("Add", [out, x], f"{ln_path.rsplit('/', 1)[0]}/Add")
    h = layer_norm(g, weights, res, f"{m}.{ln_mod}", ln_path, eps)

    up = linear(g, weights, h, f"{m}.intermediate.dense", f"{p}/intermediate/dense", d, ff)
    act = f"{p}/intermediate/intermediate_act_fn"
    t = g.node("Div", [up, g.init(f"{m}.gelu.sqrt2", np.array(np.sqrt(2.0), np.float32))], f"{act}/Div")
    t = g.node("Erf", [t], f"{act}/Erf")
    t = g.node("Add", [t, g.init(f"{m}.gelu.one", np.array(1.0, np.float32))], f"{act}/Add")
    t = g.node("Mul", [up, t], f"{act}/Mul")
    t = g.node("Mul", [t, g.init(f"{m}.gelu.half", np.array(0.5, np.float32))], f"{act}/Mul_1")
    down = linear(g, weights, t, f"{m}.output.dense", f"{p}/output/dense", ff, d)
    res = g.node("Add", [down, h], f"{p}/output/Add")
    return layer_norm(g, weights, res, f"{m}.output.LayerNorm", f"{p}/output/LayerNorm", eps)


def build(src, library="sentence_transformers", name="backbone"):
    """The backbone's ONNX graph (see the module doc) as an onnx.ModelProto."""
    import onnx
    from onnx import TensorProto, helper

    cfg = dict(src["config"])
    cfg.setdefault("layer_norm_eps", 1e-12)
    weights = src["weights"]
    d, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    prefix = "/0" if library == "sentence_transformers" else ""
    g = Graph()
    dims = ["batch_size", "sequence_length"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in ("input_ids", "attention_mask")]
    if library == "transformers":
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dims))

    # Embeddings.
    e = f"{prefix}/embeddings"
    mpnet = cfg["model_type"] == "mpnet"
    vocab, positions = cfg["vocab_size"], cfg["max_position_embeddings"]
    word = g.init("embeddings.word_embeddings.weight", weight(weights, "embeddings.word_embeddings.weight", (vocab, d)))
    pos = g.init("embeddings.position_embeddings.weight",
                 weight(weights, "embeddings.position_embeddings.weight", (positions, d)))
    shape = g.node("Shape", ["input_ids"], f"{prefix}/Shape")
    seq = g.node("Gather", [shape, g.init("one_i64", np.array(1, np.int64))], f"{prefix}/Gather", axis=0)
    seq = g.node("Unsqueeze", [seq, g.init("axes_0", np.array([0], np.int64))], f"{prefix}/Unsqueeze")
    w = g.node("Gather", [word, "input_ids"], f"{e}/word_embeddings/Gather")
    if mpnet:
        # MPNet numbers the real tokens from padding_idx + 1 (RoBERTa's scheme) and gives padding
        # padding_idx; it has no token types. From the attention mask, so whatever id pads.
        pad = cfg.get("pad_token_id", 1)
        valid = g.node("Cast", ["attention_mask"], f"{e}/Cast", to=TensorProto.INT64)
        count = g.node("CumSum", [valid, g.init("axis_1", np.array(1, np.int64))], f"{e}/CumSum")
        position_ids = g.node("Add", [g.node("Mul", [count, valid], f"{e}/Mul"),
                                      g.init("padding_idx", np.array(pad, np.int64))], f"{e}/Add_positions")
        x = g.node("Add", [w, g.node("Gather", [pos, position_ids], f"{e}/position_embeddings/Gather")], f"{e}/Add_1")
    else:
        types = cfg.get("type_vocab_size", 2)
        tt = g.init("embeddings.token_type_embeddings.weight",
                    weight(weights, "embeddings.token_type_embeddings.weight", (types, d)))
        position_ids = g.node(
            "Slice",
            [g.init("embeddings.position_ids", np.arange(positions, dtype=np.int64)[None, :]),
             g.init("zero_1d", np.array([0], np.int64)), seq, g.init("axes_1", np.array([1], np.int64))],
            f"{e}/Slice",
        )
        if library == "transformers":
            token_types = "token_type_ids"
        else:
            # sentence-transformers feeds no token types: all zeros, shaped like input_ids.
            token_types = g.node("ConstantOfShape", [shape], f"{prefix}/ConstantOfShape",
                                 value=helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
        t = g.node("Gather", [tt, token_types], f"{e}/token_type_embeddings/Gather")
        x = g.node("Add", [w, t], f"{e}/Add")
        x = g.node("Add", [x, g.node("Gather", [pos, position_ids], f"{e}/position_embeddings/Gather")], f"{e}/Add_1")
    x = layer_norm(g, weights, x, "embeddings.LayerNorm", f"{e}/LayerNorm", cfg["layer_norm_eps"])

    position_bias = None
    if mpnet:
        # [1, heads, seq, seq]: the relative position bias every layer adds to its scores. The
        # buckets depend only on the positions: a table for up to max_position_embeddings
        # tokens, sliced to the batch's length; the bias values stay the model's weights.
        n = positions
        buckets = relative_position_buckets(n, cfg.get("relative_attention_num_buckets", 32))
        table = weight(weights, "encoder.relative_attention_bias.weight",
                       (cfg.get("relative_attention_num_buckets", 32), cfg["num_attention_heads"]))
        b = g.node("Slice", [g.init("encoder.relative_position_buckets", buckets), g.init("zero_2d", np.array([0, 0], np.int64)),
                             g.node("Concat", [seq, seq], "/0/encoder/Concat", axis=0),
                             g.init("axes_01", np.array([0, 1], np.int64))], "/0/encoder/Slice")
        b = g.node("Gather", [g.init("encoder.relative_attention_bias.weight", table), b],
                   "/0/encoder/relative_attention_bias/Gather")
        b = g.node("Transpose", [b], "/0/encoder/Transpose", perm=[2, 0, 1])
        position_bias = g.node("Unsqueeze", [b, "axes_0"], "/0/encoder/Unsqueeze")

    # The additive padding mask, [batch, 1, 1, seq].
    mask = g.node("Unsqueeze", ["attention_mask", g.init("axes_1b", np.array([1], np.int64))], f"{prefix}/Unsqueeze_1")
    mask = g.node("Unsqueeze", [mask, g.init("axes_2", np.array([2], np.int64))], f"{prefix}/Unsqueeze_2")
    mask = g.node("Cast", [mask], f"{prefix}/Cast", to=TensorProto.FLOAT)
    mask = g.node("Sub", [g.init("one_f32", np.array(1.0, np.float32)), mask], f"{prefix}/Sub")
    mask = g.node("Mul", [mask, g.init("mask_value", np.array(MASK_VALUE, np.float32))], f"{prefix}/Mul")

    for i in range(layers):
        x = encoder_layer(g, weights, x, mask, i, prefix, cfg, position_bias)

    outputs = []
    if library == "transformers":
        g.node("Identity", [x], f"{prefix}/last_hidden_state", outputs=["last_hidden_state"])
        outputs.append(helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [d]))
    else:
        g.node("Identity", [x], "/0/token_embeddings", outputs=["token_embeddings"])
        outputs.append(helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, dims + [d]))
        if src["pooling"] == "mean":
            m = g.node("Unsqueeze", ["attention_mask", g.init("axes_m1", np.array([-1], np.int64))], "/1/Unsqueeze")
            m = g.node("Cast", [m], "/1/Cast", to=TensorProto.FLOAT)
            total = g.node("ReduceSum", [g.node("Mul", ["token_embeddings", m], "/1/Mul"), g.init("axes_1c", np.array([1], np.int64))],
                           "/1/ReduceSum", keepdims=0)
            count = g.node("ReduceSum", [m, "axes_1c"], "/1/ReduceSum_1", keepdims=0)
            count = g.node("Clip", [count, g.init("min_count", np.array(1e-9, np.float32))], "/1/Clip")
            pooled = g.node("Div", [total, count], "/1/Div")
        else:
            pooled = g.node("Gather", ["token_embeddings", g.init("zero_i64", np.array(0, np.int64))], "/1/Gather", axis=1)
        if src["normalize"]:
            # √Σx² spelled out: ONNX Runtime's symbolic shape inference, which its optimizer's
            # fusions rely on, does not know ReduceL2's opset-18 axes input.
            sq = g.node("Mul", [pooled, pooled], "/2/Mul")
            norm = g.node("ReduceSum", [sq, g.init("axes_1d", np.array([1], np.int64))], "/2/ReduceSum", keepdims=1)
            norm = g.node("Sqrt", [norm], "/2/Sqrt")
            norm = g.node("Clip", [norm, g.init("min_norm", np.array(1e-12, np.float32))], "/2/Clip")
            g.node("Div", [pooled, norm], "/2/Div", outputs=["sentence_embedding"])
        else:
            g.node("Identity", [pooled], "/2/Identity", outputs=["sentence_embedding"])
        outputs.append(helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch_size", d]))

    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tandem")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _erf(x):
    """erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7): numpy has none, and
    math.erf per element is too slow for a 12-layer check."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def forward_numpy(src, ids, mask):
    """BERT's last hidden states [batch, seq, dim] for int64 ids and mask, computed in float64
    with numpy straight from the weights: an independent check of the ONNX graph (it shares no
    code with `build`, only the formulas of the model)."""
    cfg, w = src["config"], src["weights"]
    eps = cfg.get("layer_norm_eps", 1e-12)
    heads = cfg["num_attention_heads"]

    def p(name):
        return w[name].astype(np.float64)

    seq = ids.shape[1]
    mpnet = cfg["model_type"] == "mpnet"
    q_mod, k_mod, v_mod, o_mod, ln_mod, _ = ATTENTION[cfg["model_type"]]
    if mpnet:
        valid = mask.astype(np.int64)
        positions = np.cumsum(valid, axis=1) * valid + cfg.get("pad_token_id", 1)
        x = p("embeddings.word_embeddings.weight")[ids] + p("embeddings.position_embeddings.weight")[positions]
    else:
        x = p("embeddings.word_embeddings.weight")[ids] + p("embeddings.token_type_embeddings.weight")[0]
        x = x + p("embeddings.position_embeddings.weight")[:seq][None]
    x = _layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * MASK_VALUE
    if mpnet:
        buckets = relative_position_buckets(seq, cfg.get("relative_attention_num_buckets", 32))
        bias = bias + p("encoder.relative_attention_bias.weight")[buckets].transpose(2, 0, 1)[None]
    b, s, d = x.shape
    dh = d // heads
    for i in range(cfg["num_hidden_layers"]):
        m = f"encoder.layer.{i}"

        def lin(t, name):
            return t @ p(f"{m}.{name}.weight").T + p(f"{m}.{name}.bias")

        def split(t):
            return t.reshape(b, s, heads, dh).transpose(0, 2, 1, 3)

        q, k, v = (split(lin(x, n)) for n in (q_mod, k_mod, v_mod))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b, s, d)
        h = _layer_norm(lin(ctx, o_mod) + x, p(f"{m}.{ln_mod}.weight"), p(f"{m}.{ln_mod}.bias"), eps)
        up = lin(h, "intermediate.dense")
        act = 0.5 * up * (1.0 + _erf(up / np.sqrt(2.0)))
        x = _layer_norm(lin(act, "output.dense") + h, p(f"{m}.output.LayerNorm.weight"),
                        p(f"{m}.output.LayerNorm.bias"), eps)
    return x


def embed_numpy(src, ids, mask):
    """The sentence embeddings [batch, dim] of `forward_numpy`, pooled and normalized as the
    source model says."""
    h = forward_numpy(src, ids, mask)
    if src["pooling"] == "cls":
        e = h[:, 0]
    else:
        m = mask[..., None].astype(np.float64)
        e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    if src["normalize"]:
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e
