"""Stages of the model-level exercises: the nGiE convolution, the RTD head, the Enhanced Mask Decoder."""
import numpy as np

from ...config import DebertaV2Config
from ...encoder import attention_masks
from ...params import backbone_shapes
from .cases import copies, gradient_stage, padding_mask, random_params, value_stage
from .tables_model import conv1d_terms, emd_terms, rtd_head_terms


def tiny_config(**overrides):
    """A DeBERTa-v3-shaped config small enough for central differences; dropout off unless asked."""
    values = dict(vocab_size=7, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                  max_position_embeddings=24, relative_attention=True, position_buckets=8, share_att_key=True,
                  pos_att_type="c2p|p2c", norm_rel_ebd="layer_norm", position_biased_input=False,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-7)
    values.update(overrides)
    return DebertaV2Config(**values)


def shapes_under(config, prefix):
    return {k[len(prefix):]: v for k, v in backbone_shapes(config).items() if k.startswith(prefix)}


# ---------------------------------------------------------------- nGiE
def conv1d_backward():
    def case(name, adds, batch, n, c_in, c_out, kernel, groups, seed=0):
        rng = np.random.default_rng(seed)
        arrays = {"x": rng.normal(size=(batch, n, c_in)), "weight": rng.normal(size=(c_out, c_in // groups, kernel)),
                  "bias": rng.normal(size=c_out)}
        pad = (kernel - 1) // 2
        edges = np.zeros((batch, n, c_in), bool)
        edges[:, :pad], edges[:, n - pad:] = True, True
        regions = {"x": {"the first and last (K-1)/2 positions": (edges, "the taps that fall on the zero "
                                                                  "padding are not dropped (or dropped wrongly)")}}

        def forward(pkg, a):
            return pkg.get("ngie.conv1d_forward")({"weight": a["weight"], "bias": a["bias"]}, a["x"], groups)

        def backward(pkg, dy, cache, a):
            dx, grads = pkg.get("ngie.conv1d_backward")({"weight": a["weight"], "bias": a["bias"]}, dy, cache)
            return {"x": dx, "weight": grads.get("weight"), "bias": grads.get("bias")}

        return gradient_stage(name, adds, forward, backward, arrays, seed=seed, regions=regions, terms=conv1d_terms)

    return [
        case("kernel 1, one group", "a per-position linear map: the matmul part", 1, 4, 3, 2, 1, 1),
        case("kernel 3", "each input position feeds K outputs: sum the taps back (col2im)", 1, 5, 3, 2, 3, 1),
        case("kernel 5, a batch of 2", "zero padding at both ends, and the batch", 2, 6, 2, 3, 5, 1),
        case("kernel 3, 2 groups", "grouped channels: each group its own matmul", 2, 4, 4, 6, 3, 2),
    ]


# ---------------------------------------------------------------- RTD head
def rtd_head_backward():
    def case(name, adds, batch, n, act, seed=0):
        config = tiny_config(hidden_act=act)
        rng = np.random.default_rng(seed)
        shapes = {"LayerNorm.weight": (8,), "LayerNorm.bias": (8,), "dense.weight": (8, 8), "dense.bias": (8,),
                  "classifier.weight": (1, 8), "classifier.bias": (1,)}
        arrays = {"hidden": rng.normal(size=(batch, n, 8)), **random_params(shapes, rng)}
        cls = np.zeros((batch, n, 8), bool)
        cls[:, 0] = True
        regions = {"hidden": {"position 0 ([CLS])": (cls, "the [CLS] state was added to every position, so its "
                                                     "gradient also sums the gradients of every position")}}

        def forward(pkg, a):
            p = {k: v for k, v in a.items() if k != "hidden"}
            return pkg.get("heads.rtd_head_forward")(p, a["hidden"], config)

        def backward(pkg, dy, cache, a):
            p = {k: v for k, v in a.items() if k != "hidden"}
            dhidden, grads = pkg.get("heads.rtd_head_backward")(p, dy, cache)
            return {"hidden": dhidden, **{k: grads.get(k) for k in p}}

        return gradient_stage(name, adds, forward, backward, arrays, seed=seed, regions=regions,
                              terms=rtd_head_terms)

    return [
        case("one sequence of 3", "classifier, activation, dense, LayerNorm backwards in turn", 1, 3, "gelu"),
        case("a batch of 2 sequences of 5", "the [CLS] state is added to every token of its own sequence",
             2, 5, "gelu"),
        case("tanh activation", "the activation named by the config", 2, 4, "tanh"),
    ]


# ---------------------------------------------------------------- Enhanced Mask Decoder
EMD_SETUPS = [  # (name, what it adds, config overrides, batch, n, lengths, dropout seed)
    ("4 tokens, no padding", "the last layer applied twice, queries H[-2] + absolute positions", {}, 1, 4, [4]),
    ("padding", "padded tokens attend to nothing and are attended by nothing", {}, 2, 5, [5, 3]),
    ("10 tokens: past the bucket range", "relative distances beyond position_buckets // 2 share rows", {}, 1, 10,
     [10]),
    ("v2 layout", "separate pos_key_proj / pos_query_proj, no LayerNorm on the relative table",
     {"share_att_key": False, "norm_rel_ebd": "none"}, 2, 6, [6, 4]),
    ("dropout", "dropout (a fixed mask) in both passes", {"hidden_dropout_prob": 0.2,
                                                           "attention_probs_dropout_prob": 0.2}, 1, 5, [5]),
]


def _emd_case(setup, seed=0):
    name, adds, overrides, batch, n, lengths = setup
    config = tiny_config(**overrides)
    rng = np.random.default_rng(seed)
    shapes = shapes_under(config, "")
    p = random_params({k: s for k, s in shapes.items() if k.startswith("encoder.") and ".layer.0." not in k}, rng)
    p["embeddings.position_embeddings.weight"] = 0.4 * rng.normal(size=(config.max_position_embeddings, 8))
    hidden = rng.normal(size=(batch, n, 8))
    mask = attention_masks(padding_mask(batch, n, lengths)).pair  # (B, 1, N, N) or None
    position_ids = np.broadcast_to(np.arange(n), (batch, n)).copy()
    dropout = config.hidden_dropout_prob > 0

    def forward(pkg, a):
        params = {k: v for k, v in a.items() if k != "hidden"}
        return pkg.get("emd.forward")(params, a["hidden"], mask, position_ids, config,
                                      rng=np.random.default_rng(seed) if dropout else None)

    return name, adds, forward, {"hidden": hidden, **p}


def emd_forward():
    stages = []
    for setup in EMD_SETUPS:
        name, adds, forward, arrays = _emd_case(setup)
        decoded = lambda pkg, f=forward, a=arrays: {"decoded states": f(pkg, copies(a))[0]}  # noqa: E731
        stages.append(value_stage(name, adds, decoded))
    return stages


def emd_backward():
    stages = []
    for setup in EMD_SETUPS:
        name, adds, forward, arrays = _emd_case(setup)

        def backward(pkg, dy, cache, a):
            dhidden, grads = pkg.get("emd.backward")({k: v for k, v in a.items() if k != "hidden"}, dy, cache)
            return {"hidden": dhidden, **grads}

        stages.append(gradient_stage(name, adds, forward, backward, arrays, max_entries=4, terms=emd_terms))
    return stages
