"""The exact log bucket of a distance, with 50 significant digits: what make_log_bucket_position must give
(tests/unit/test_relative_position.py), and what transformers' float32 misses (tests/parity/)."""
import math
from decimal import Decimal, getcontext


def exact_bucket(d, bucket_size, max_position):
    """The bucket of distance d computed with 50 significant digits."""
    getcontext().prec = 50
    mid = bucket_size // 2
    if abs(d) <= mid:
        return d
    log = (Decimal(abs(d)) / mid).ln() / (Decimal(max_position - 1) / mid).ln() * (mid - 1)
    return int(math.copysign(math.ceil(log) + mid, d))
