"""`bpttbench export --to tensorboard`: event files that hold each curve, read back by their framing."""

from __future__ import annotations

import json
import struct
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from bpttbench.config import TrainConfig
from bpttbench.training.runner import execute

from conftest import invoke, tiny_corpus


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C (Castagnoli), rotated and offset."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_scalars(folder) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of every scalar in the one event file under folder, checksums checked."""
    from tensorboardX.proto.event_pb2 import Event

    (path,) = folder.glob("events.out.tfevents.*")
    data, offset, scalars = path.read_bytes(), 0, []
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8 : offset + 12])[0] == masked_crc32c(header)
        body = data[offset + 12 : offset + 12 + length]
        assert struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])[0] == masked_crc32c(body)
        offset += 16 + length
        event = Event.FromString(body)
        scalars += [(v.tag, event.step, v.simple_value, event.wall_time) for v in event.summary.value]
    return scalars


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    units = [TrainConfig(scheme=s, seed=n, hidden=4, budget_steps=600, log_every=100, eval_every=200)
             for s in ("single", "sliding") for n in (0, 1)]
    execute(units, tiny_corpus(n=5000), root / "a")
    execute(units[:1], tiny_corpus(n=5000), root / "b")  # single seed 0 again, in another run directory
    return root


def test_each_configuration_and_seed_is_a_tensorboard_run_holding_its_curves(runs, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "tb"
    code, stdout, err = invoke(["export", runs / "a", "--to", "tensorboard", out], capsys)
    assert code == 0 and "tensorboard --logdir" in err
    names = sorted(str(p.parent.relative_to(out)) for p in out.glob("*/*/events.out.tfevents.*"))
    assert names == ["single/seed0", "single/seed1", "sliding/seed0", "sliding/seed1"]
    assert sorted(stdout.split()) == [str(out / name) for name in names]
    curves = pd.read_csv(runs / "a" / "curves.csv")
    manifest = json.loads((runs / "a" / "manifest.json").read_text())
    units = {(u["config"]["scheme"], u["config"]["seed"]): u for u in manifest["units"]}
    for name in names:
        scheme, seed = name.split("/")[0].split("_")[0], int(name.rsplit("seed", 1)[1])
        rows = curves[(curves.scheme == scheme) & (curves.seed == seed)].sort_values(["step", "metric"])
        got = read_scalars(out / name)
        assert [(t, s) for t, s, _, _ in got] == list(zip(rows.metric, rows.step))
        assert {t for t, *_ in got} == {"train_bpc", "val_bpc"}
        np.testing.assert_array_equal([v for *_, v, _ in got], rows.value.to_numpy(np.float32))  # stored as float32
        start = datetime.fromisoformat(units[scheme, seed]["started_at"]).timestamp()
        np.testing.assert_allclose([w for *_, w in got], start + rows.wall_s.to_numpy(), rtol=0, atol=1e-6)


def test_the_same_configuration_from_two_run_directories_is_kept_apart(runs, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "tb"
    code, stdout, _ = invoke(["export", runs / "a", runs / "b", "--to", "tensorboard", out, "--json"], capsys)
    data = json.loads(stdout)
    assert code == 0 and data["out"] == str(out) and data["status"] == "complete"
    run_id = json.loads((runs / "b" / "manifest.json").read_text())["run_id"]
    assert len(data["runs"]) == 5 and f"single/seed0-{run_id}" in data["runs"]
    for name in data["runs"]:
        assert len(list((out / name).glob("events.out.tfevents.*"))) == 1
    code, _, err = invoke(["export", runs / "a", "--to", "tensorboard", out], capsys)
    assert code == 2 and "--force" in err  # an export is never mixed into an older one
    assert invoke(["export", runs / "a", "--to", "tensorboard", out, "--force", "--quiet"], capsys)[:2] == (0, f"{out}\n")
    assert len(list(out.glob("*/*/events.out.tfevents.*"))) == 4


def test_without_tensorboardx_the_error_says_what_to_install(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` now raises ImportError
    code, out, err = invoke(["export", runs / "a", "--to", "tensorboard", tmp_path / "tb"], capsys)
    assert code == 2 and out == "" and err.strip().count("\n") == 0
    assert "pip install 'bpttbench[tensorboard]'" in err
    assert not (tmp_path / "tb").exists()


def test_nothing_to_export_is_one_line(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    (tmp_path / "empty").mkdir()
    code, _, err = invoke(["export", tmp_path / "empty", "--to", "tensorboard", tmp_path / "tb"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "bpttbench run" in err
