"""checks.py: the one integer validator (config, encoding, train, optim and the command line use it), and
the dtype check."""
import numpy as np
import pytest

from minideberta.checks import NotAnInteger, check_float_dtype, check_integer


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_integers_come_back_as_int(value):
    assert check_integer(value, "n", minimum=1) == 3 and type(check_integer(value, "n")) is int


@pytest.mark.parametrize("value, message", [
    (True, "n must be an integer, got True (bool)"), (2.0, "n must be an integer, got 2.0 (float)"),
    ("2", "n must be an integer, got '2'"), (None, "n must be an integer, got None (NoneType)"),
])
def test_a_non_integer_is_both_a_type_and_a_value_error(value, message):
    with pytest.raises(NotAnInteger) as error:
        check_integer(value, "n")
    assert str(error.value) == message and isinstance(error.value, TypeError) and isinstance(error.value, ValueError)


def test_the_minimum_and_none():
    with pytest.raises(ValueError, match=r"^max_length=-1 must be >= 0$"):
        check_integer(-1, "max_length", minimum=0)
    with pytest.raises(ValueError, match=r"^must be at least 1, got 0$"):  # argparse names the option itself
        check_integer(0, None, minimum=1)
    assert check_integer(None, "eval_every", minimum=1, optional=True) is None
    with pytest.raises(ValueError, match=r"^eval_every=0 must be >= 1 \(or None\)$"):
        check_integer(0, "eval_every", minimum=1, optional=True)


def test_every_place_uses_it():
    """config, tokenizer encoding, train, optim and the CLI refuse a bad integer with the validator's message."""
    from minideberta import DebertaV2Config
    from minideberta.apps.cli.errors import positive as _positive
    from minideberta.apps.train.loop import _positive_int
    from minideberta.optim import LinearWarmupSchedule
    from minideberta.tokenizer.encoding import non_negative_int

    with pytest.raises(NotAnInteger, match="hidden_size must be an integer, got 1.5"):
        DebertaV2Config(hidden_size=1.5)
    with pytest.raises(NotAnInteger, match="max_length must be an integer"):
        non_negative_int(1.5, "max_length")
    with pytest.raises(ValueError, match=r"^batch_size=0 must be >= 1$"):
        _positive_int("batch_size", 0)
    with pytest.raises(NotAnInteger, match="total_steps must be an integer"):
        LinearWarmupSchedule(10.0)
    with pytest.raises(Exception, match="must be at least 1, got 0"):
        _positive("0")


def test_float_dtypes():
    assert [check_float_dtype(d) for d in (np.float16, "float32", np.dtype("f8"))] == [
        np.dtype("float16"), np.dtype("float32"), np.dtype("float64")]
    with pytest.raises(ValueError, match="use one of float16, float32, float64"):
        check_float_dtype("bfloat16")
