"""minideberta.torch_pickle against files written by the real ``torch.save``.

torch is used here only to write genuine checkpoints; the loader never imports it.
"""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from minideberta.checkpoints.torch_pickle import bfloat16_to_float32, load_torch_bin

FORMATS = pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])


def save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def as_numpy(t):
    t = t.detach()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def assert_same(loaded, reference):
    assert list(loaded) == list(reference)
    for name, t in reference.items():
        a, ref = loaded[name], as_numpy(t)
        assert a.dtype == ref.dtype and a.shape == ref.shape, name
        assert np.array_equal(a, ref, equal_nan=a.dtype.kind == "f"), name
        assert a.flags.c_contiguous and a.flags.owndata and a.flags.writeable, name


@FORMATS
def test_every_dtype(tmp_path, legacy):
    g = torch.Generator().manual_seed(0)
    sd = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "f64": torch.randn(2, dtype=torch.float64, generator=g),
        "i64": torch.arange(-3, 3),
        "i32": torch.arange(4, dtype=torch.int32),
        "bool": torch.tensor([True, False, True]),
        "u8": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    assert_same(load_torch_bin(save(sd, tmp_path / "w.bin", legacy)), sd)


@FORMATS
def test_views_and_shared_storage(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"base": base, "transposed": base.t(), "strided": base[1:3, ::2], "row": base[2],
          "half_t": base.half().t()}
    loaded = load_torch_bin(save(sd, tmp_path / "w.bin", legacy))
    assert_same(loaded, sd)
    loaded["transposed"][0, 0] = -1  # copies, not views of one buffer
    assert loaded["base"][0, 0] == 0


@FORMATS
def test_module_state_dict_and_parameters(tmp_path, legacy):
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    sd = module.state_dict()  # an OrderedDict carrying _metadata
    assert_same(load_torch_bin(save(sd, tmp_path / "m.bin", legacy)), sd)
    params = dict(module.named_parameters())  # nn.Parameter goes through _rebuild_parameter
    assert_same(load_torch_bin(save(params, tmp_path / "p.bin", legacy)), params)


def test_bfloat16_widening_is_exact(tmp_path):
    values = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.0e38, 1.0e-40, float("inf"), float("nan")])
    t = values.bfloat16()
    loaded = load_torch_bin(save({"x": t}, tmp_path / "b.bin", False))["x"]
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded.view(np.uint32), t.float().numpy().view(np.uint32))
    bits = t.view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(bfloat16_to_float32(bits).view(np.uint32), bits.astype(np.uint32) << 16)


def test_any_top_folder_name(tmp_path):
    path = save({"w": torch.ones(2)}, tmp_path / "w.bin", False)
    renamed = tmp_path / "renamed.bin"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(renamed, "w") as dst:
        for item in src.infolist():
            dst.writestr("archive/" + item.filename.split("/", 1)[1], src.read(item))
    assert np.array_equal(load_torch_bin(renamed)["w"], np.ones(2, np.float32))


def test_non_tensor_entries_are_left_out(tmp_path):
    path = save({"w": torch.ones(1), "step": 3, "note": "x"}, tmp_path / "w.bin", False)
    assert list(load_torch_bin(path)) == ["w"]


# --- malicious files: loading must refuse before anything runs --------------------------

class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_zip(path, pickled):
    """A torch zip checkpoint whose data.pkl is ``pickled``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
    return path


def write_legacy(path, pickled):
    """A legacy torch stream (magic, protocol, sys_info) whose main pickle is ``pickled``."""
    sys_info = {"protocol_version": 1001, "little_endian": True}
    head = b"".join(pickle.dumps(o, protocol=2) for o in (0x1950A86A20F9469CFC6C, 1001, sys_info))
    path.write_bytes(head + pickled + pickle.dumps([], protocol=2))
    return path


def evil_pickles(marker):
    """Three ways a pickle reaches code: a __reduce__, and hand-written GLOBAL + REDUCE."""
    return {
        "os.system": pickle.dumps({"w": RunsCode(marker)}, protocol=2),
        "builtins.exec": b"\x80\x02cbuiltins\nexec\n(Vopen(%r, 'w')\ntR." % str(marker).encode(),
        "posix.system": b"\x80\x02cposix\nsystem\n(Vtouch %s\ntR." % str(marker).encode(),
    }


@pytest.mark.parametrize("container", ["zip", "legacy", "bare pickle"])
@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "posix.system"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, container, attack):
    marker = tmp_path / "pwned"
    pickled = evil_pickles(marker)[attack]
    path = tmp_path / "evil.bin"
    if container == "zip":
        write_zip(path, pickled)
    elif container == "legacy":
        write_legacy(path, pickled)
    else:
        path.write_bytes(pickled)
    name = attack.split(".")[1]
    with pytest.raises(pickle.UnpicklingError, match=rf"refused global \w+\.{name}"):
        load_torch_bin(path)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "posix.system"])
def test_the_attacks_are_real(tmp_path, attack):
    """The same bytes do run code under a plain pickle.loads, so the refusal above matters."""
    marker = tmp_path / "pwned"
    pickle.loads(evil_pickles(marker)[attack])
    assert marker.exists()


def test_a_pickle_cannot_alter_the_stand_ins_for_later_loads(tmp_path):
    """BUILD sets attributes on whatever the pickle holds; here, on the allowed globals."""
    edit_storage = (b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtype"
                    b"X\x01\x00\x00\x00Os\x86b.")
    with pytest.raises(pickle.UnpicklingError, match="AttributeError"):
        load_torch_bin(write_zip(tmp_path / "a.bin", edit_storage))
    edit_class = (b"\x80\x02ccollections\nOrderedDict\nN}X\x0b\x00\x00\x00__setitem__"
                  b"ctorch._utils\n_rebuild_parameter\ns\x86b.")
    with pytest.raises(ValueError, match="holds a type"):
        load_torch_bin(write_zip(tmp_path / "b.bin", edit_class))
    sd = torch.nn.Linear(2, 2).state_dict()
    assert_same(load_torch_bin(save(sd, tmp_path / "good.bin", False)), sd)


def test_disallowed_global_named_in_error(tmp_path):
    pickled = pickle.dumps({"d": collections.Counter()}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="collections.Counter"):
        load_torch_bin(write_zip(tmp_path / "c.bin", pickled))


# --- damaged or foreign files -----------------------------------------------------------

class CraftedTensor:
    """Pickles like a torch tensor, with whatever layout the test asks for."""

    def __init__(self, offset, shape, stride):
        self.layout = (offset, shape, stride)

    def __reduce__(self):
        storage = ("storage", torch.FloatStorage, "0", "cpu", 4)
        return (torch._utils._rebuild_tensor_v2,
                (storage, *self.layout, False, collections.OrderedDict()))


class CraftingPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj if isinstance(obj, tuple) and obj[:1] == ("storage",) else None


FOUR_FLOATS = np.arange(4, dtype="<f4").tobytes()


def crafted_zip(path, tensor, data=FOUR_FLOATS):
    buf = io.BytesIO()
    CraftingPickler(buf, protocol=2).dump({"w": tensor})
    write_zip(path, buf.getvalue())
    with zipfile.ZipFile(path, "a") as z:
        if data is not None:
            z.writestr("archive/data/0", data)
    return path


def test_crafted_layout_within_bounds_loads(tmp_path):
    loaded = load_torch_bin(crafted_zip(tmp_path / "ok.bin", CraftedTensor(1, (2,), (2,))))
    assert np.array_equal(loaded["w"], np.array([1, 3], np.float32))


@pytest.mark.parametrize("layout", [(0, (5,), (1,)), (3, (2,), (1,)), (0, (2, 2), (3, 1)),
                                    (0, (2,), (-1,)), (-1, (1,), (1,)), (0, (2,), (1, 1))])
def test_out_of_bounds_layout_is_refused(tmp_path, layout):
    with pytest.raises(ValueError, match="tensor|layout"):
        load_torch_bin(crafted_zip(tmp_path / "bad.bin", CraftedTensor(*layout)))


def test_missing_storage_record(tmp_path):
    path = crafted_zip(tmp_path / "bad.bin", CraftedTensor(0, (4,), (1,)), data=None)
    with pytest.raises(ValueError, match="no record archive/data/0"):
        load_torch_bin(path)


@pytest.mark.parametrize("content", [b"", b"hello, world\n", b'{"a": 1}', bytes(range(256)),
                                     pickle.dumps(12345, protocol=2)])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint: expected a zip archive"):
        load_torch_bin(path)


def test_zip_that_is_not_torch(tmp_path):
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pytorch.model.bin", b"")
    with pytest.raises(ValueError, match="not a torch.save checkpoint: expected exactly one"):
        load_torch_bin(path)


def test_big_endian_zip_is_refused(tmp_path):
    path = save({"w": torch.ones(2)}, tmp_path / "w.bin", False)
    patched = tmp_path / "big.bin"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as dst:
        for item in src.infolist():
            big = item.filename.endswith("/byteorder")
            dst.writestr(item.filename, b"big" if big else src.read(item))
    with pytest.raises(ValueError, match="big-endian"):
        load_torch_bin(patched)


def test_truncated_legacy_file(tmp_path):
    path = save({"w": torch.ones(100)}, tmp_path / "w.bin", True)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_torch_bin(path)


@FORMATS
def test_not_a_dict(tmp_path, legacy):
    with pytest.raises(ValueError, match="holds a list, expected a state dict"):
        load_torch_bin(save([torch.ones(1)], tmp_path / "l.bin", legacy))
