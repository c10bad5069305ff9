"""Row blocks: a speed device for NumPy's elementwise work (CPU only; measured, see README).

NumPy evaluates an expression one operation at a time, and each operation is a full pass over
its arrays. GELU's ``x/2 * (1 + erf(x / sqrt 2))`` with the float32 erf of ``backend.erf`` is
about twenty passes; on a v3-base FFN activation at (8, 128), a (1024, 3072) float32 array of
12 MiB, every one of them streams 12 MiB from main memory and back. Applied to a few rows at a
time, the same passes find their operands in the core's cache::

    by_row_blocks(f, out, x, dy)     computes     f(x, dy, out=out)

block by block: ``f(x[s], dy[s], out=out[s])`` for consecutive slices ``s`` of the rows (all
axes but the last, flattened), each block ``BLOCK_BYTES`` of the output or less. With the
handful of block-sized temporaries ``f`` makes, the working set then stays inside a 2 MiB L2.

``f`` must be row-wise: row r of its result depends on row r of its inputs only. Elementwise
functions are, and so is anything that reduces along the last axis. The results are then the
same bits as the whole-array call: every element meets the same operations in the same order.
Inputs of the output's shape are cut into the same blocks; smaller ones (a (D,) weight, a
scalar) are passed whole to every block and must broadcast against a block.

The device wraps the formula from outside: ``ops.gelu`` and ``ops.gelu_grad`` are written as the
definitions, usable on whole arrays, and ``gelu_forward`` / ``gelu_backward`` hand them to ``by_row_blocks``. What it
gains, and why LayerNorm and the softmax are not blocked: README, "Speed and memory". On CuPy (a GPU
has no such cache to fit, and a loop would only add kernel launches) and for arrays of one block or
less, ``f`` runs once on the whole arrays.
"""
import numpy as np

from .backend import get_xp

BLOCK_BYTES = 256 * 1024  # of the output per block: 21 rows of a v3-base FFN activation in float32


def rows_per_block(row_bytes, budget=BLOCK_BYTES):
    """How many rows of ``row_bytes`` each make a block of at most ``budget`` bytes (at least one)."""
    return max(1, budget // row_bytes)


def by_row_blocks(f, out, *arrays, budget=BLOCK_BYTES):
    """``f(*arrays, out=out)``, computed on blocks of rows on the CPU (module docstring). Returns ``out``.

    ``out`` must be C-contiguous (the blocks are views into it); the ``arrays`` of ``out``'s shape
    are blocked with it, every other one is passed whole.
    """
    if get_xp(out) is not np or out.size == 0 or out.ndim == 0:
        return f(*arrays, out=out)
    if not out.flags.c_contiguous:
        raise ValueError("by_row_blocks writes through row views of out: out must be C-contiguous, "
                         f"got strides {out.strides} for shape {out.shape}")
    width = out.shape[-1]
    rows = out.size // width
    step = rows_per_block(width * out.itemsize, budget)
    if rows <= step:
        return f(*arrays, out=out)
    for a in arrays:
        if np.ndim(a) > 1 and np.shape(a) != out.shape:
            raise ValueError(f"by_row_blocks: an input of shape {np.shape(a)} is neither out's shape "
                             f"{out.shape} nor a (D,) vector or scalar to pass whole")
    flat_out = out.reshape(rows, width)  # (..., D) -> (rows, D), a view
    flat = [a.reshape(rows, width) if np.shape(a) == out.shape else None for a in arrays]
    for start in range(0, rows, step):
        block = slice(start, start + step)
        f(*(a if whole is None else whole[block] for a, whole in zip(arrays, flat)), out=flat_out[block])
    return out
