"""Stages of the exercises without a gradient: log buckets, rel_to_abs, an AdamW step, Viterbi."""
import numpy as np

from .cases import value_stage


# ---------------------------------------------------------------- relative positions
def make_log_bucket_position():
    def case(name, adds, distances, bucket_size, max_position):
        def call(pkg):
            out = pkg.get("relative_position.make_log_bucket_position")(distances.copy(), bucket_size, max_position)
            return {"buckets": np.asarray(out)}

        return value_stage(name, adds, call, labels={"buckets": distances})

    short = np.arange(-4, 5)
    return [
        case("|distance| <= bucket_size // 2 (8 buckets)", "the identity inside the linear zone", short, 8, 24),
        case("distances up to +-23 (8 buckets, max 24)", "log-spaced buckets beyond bucket_size // 2, with the sign",
             np.arange(-23, 24), 8, 24),
        case("distances past max_position (+-40, max 24)", "the formula keeps going past max_position (no clip)",
             np.arange(-40, 41), 8, 24),
        case("v3 sizes: 256 buckets, max 512, a (300, 300) matrix", "any shape; the sizes of every official v3 model",
             np.arange(300)[:, None] - np.arange(300)[None, :], 256, 512),
    ]


def rel_to_abs():
    fn = "relative_position.rel_to_abs"

    def table(shape, seed=0):
        return np.random.default_rng(seed).normal(size=shape)

    def plain(name, adds, shape, transpose=False):
        def call(pkg):
            t = table(shape)
            if transpose:
                t = t.transpose(1, 0, 2, 3)  # (H, B, N, 2N-1) -> (B, H, N, 2N-1), not contiguous
            return {"scores by key": np.asarray(pkg.get(fn)(t))}

        return value_stage(name, adds, call)

    def view(pkg):
        t = table((2, 4, 7))
        out = pkg.get(fn)(t)
        shares = bool(np.shares_memory(out, t))
        out[...] = np.arange(out.size, dtype=float).reshape(out.shape)
        return {"a view of the table (no copy)": shares, "the table after writing into the result": t}

    def refuses(pkg):
        try:
            pkg.get(fn)(table((4, 6)))
        except ValueError:
            return {"a (4, 6) table raises ValueError": True}
        return {"a (4, 6) table raises ValueError": False}

    return [
        plain("one (4, 7) table", "out[i, j] = table[i, j - i + N - 1]", (4, 7)),
        plain("a (2, 3, 5, 9) batch of tables", "leading axes (batch, heads) carried along", (2, 3, 5, 9)),
        value_stage("writing through the result", "a view, not a copy: the backward writes through it", view),
        plain("a transposed, non-contiguous table", "strides taken from the table, not assumed", (3, 2, 4, 7), True),
        value_stage("a table of the wrong width", "a (..., N, W) table with W != 2N-1 is refused", refuses),
    ]


# ---------------------------------------------------------------- AdamW
def adamw_step():
    shapes = {"dense.weight": (3, 4), "dense.bias": (3,), "LayerNorm.weight": (4,)}

    def case(name, adds, steps, weight_decay, betas=(0.9, 0.999), lrs=None):
        def call(pkg):
            rng = np.random.default_rng(0)
            params = {k: rng.normal(size=s) for k, s in shapes.items()}
            originals = dict(params)
            opt = pkg.get("optim.AdamW")(params, lr=0.1, betas=betas, eps=1e-8, weight_decay=weight_decay)
            for t in range(steps):
                if lrs is not None:
                    opt.lr = lrs[t]
                opt.step({k: rng.normal(size=s) for k, s in shapes.items()})
            out = {k: originals[k] for k in shapes}
            out.update({f"exp_avg[{k}]": opt.exp_avg[k] for k in shapes})
            out.update({f"exp_avg_sq[{k}]": opt.exp_avg_sq[k] for k in shapes})
            out["steps counted (t)"] = opt.t
            out["parameters updated in place"] = all(opt.params[k] is originals[k] for k in shapes)
            return out

        return value_stage(name, adds, call)

    return [
        case("one step, no weight decay", "the moments and the bias-corrected update", 1, 0.0),
        case("one step, weight decay 0.1", "decoupled decay theta *= 1 - lr wd; biases and LayerNorm exempt", 1, 0.1),
        case("five steps", "the step count t in the bias corrections 1 - beta^t", 5, 0.1),
        case("five steps, other betas, lr changing", "betas and the lr read at every step (a schedule sets it)",
             5, 0.05, (0.3, 0.9), [0.1, 0.05, 0.2, 0.01, 0.0]),
    ]


# ---------------------------------------------------------------- unigram Viterbi
def _pieces(result):
    """A segmentation as a list of (text, id) tuples; anything else as it is, to be shown as wrong."""
    try:
        return [tuple(piece) for piece in result]
    except TypeError:
        return result


def unigram_segment():
    def case(name, adds, vocab, texts):
        def call(pkg):
            u = pkg.get("tokenizer.unigram")
            pieces = [u.Piece("<unk>", 0.0, u.UNKNOWN)] + [u.Piece(t, s, u.NORMAL) for t, s in vocab.items()]
            model = u.SentencePieceModel(pieces, u.UNIGRAM, False, False, "identity", b"", True, True, True)
            segmenter = u.Unigram(model)
            return {f"segment({t!r})": _pieces(segmenter.segment(t)) for t in texts}

        return value_stage(name, adds, call)

    chars = {c: -2.0 for c in "▁abcd"}
    return [
        case("every character a piece", "the lattice, and reading the best path back from the end", chars,
             ["▁abc", "▁a▁b"]),
        case("longer pieces", "pieces longer than a character, when they score more", {**chars, "ab": -1.0,
             "▁abc": -3.0}, ["▁abc", "▁ab", "▁abcabd"]),
        case("the best total, not the greedy longest", "best[end] = max(best[start] + score): Viterbi, not greedy",
             {**chars, "▁ab": -10.0, "▁a": -1.0, "bc": -1.0, "c": -5.0}, ["▁abc", "▁abcbc"]),
        case("ties", "on an exact tie the piece that starts earliest (the longer one) is kept",
             {"▁": -1.0, "a": -1.0, "b": -1.0, "ab": -2.0, "▁a": -2.0}, ["▁ab", "▁abab"]),
        case("unknown characters", "a character no piece covers: the unknown piece, scored below every piece",
             {**chars, "ab": -1.0}, ["▁axb", "▁éab", "▁zz"]),
    ]
