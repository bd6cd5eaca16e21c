"""One config path: every TrainConfig field reaches a run from the CLI, the Python API, a sweep spec and
gradcheck, through the field table alone (config.setting). Walks the real fields, so a new one is
checked the day it is added."""

from __future__ import annotations

import dataclasses
import json

import pytest

import bpttbench
from bpttbench import defaults
from bpttbench.training import runner
from bpttbench.cli import gradcheck as gradcheck_command, run as run_command
from bpttbench.config import FIELD_KINDS, OPTION_FIELDS, TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.sweep import parse_spec, plan_sweep

from conftest import invoke, tiny_corpus

# The fields each command sets through options of its own.
OWN_OPTIONS = {"scheme": "--scheme", "seed": "--seed", "budget_seconds": "--budget", "budget_steps": "--steps"}


def other_value(name: str):
    """A valid value of the field other than its default."""
    default, kind = getattr(defaults.TRAIN, name), FIELD_KINDS[name]
    if isinstance(kind, tuple):
        return next(choice for choice in kind if choice != default)
    return default * 2 + 2 if kind is int else default / 2


def test_every_field_is_an_option_or_set_by_a_command_of_its_own():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(OPTION_FIELDS) | set(OWN_OPTIONS) == names


@pytest.mark.parametrize("name", OPTION_FIELDS)
def test_the_cli_run_and_the_api_take_every_field(name, monkeypatch, tmp_path, capsys):
    planned = []
    monkeypatch.setattr(runner, "execute", lambda units, *a, **k: planned.append(units) or _stop())
    value = other_value(name)
    flag = f"--{name.replace('_', '-')}"
    assert flag in {o for p in run_command.params for o in p.opts}
    code, _, err = invoke(["run", "--scheme", "single", "--steps", "40", flag, str(value), "--corpus", "lag:3:n=5000",
                           "--out", str(tmp_path / "cli")], capsys)
    assert code == 1 and "planned" in err, err
    with pytest.raises(_Planned):
        bpttbench.run("single", steps=40, corpus="lag:3:n=5000", out=tmp_path / "api", **{name: value})
    (cli_units,), (api_units,) = planned[:1], planned[1:]
    assert getattr(cli_units[0], name) == getattr(api_units[0], name) == value


class _Planned(Exception):
    """Stands in for training: the plan is what these tests read."""

    def __str__(self):
        return "planned"


def _stop():
    raise _Planned()


def test_the_api_refuses_a_field_it_sets_through_its_own_arguments_and_an_unknown_one(tmp_path):
    with pytest.raises(ConfigError, match="seed is set by run's own argument"):
        bpttbench.run("single", steps=40, seed=3, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown setting k3; known: "):
        bpttbench.run("single", steps=40, k3=3, out=tmp_path / "b")


@pytest.mark.parametrize("name", OPTION_FIELDS)
def test_a_sweep_spec_takes_every_field_as_a_parameter(name):
    value = other_value(name)
    spec = parse_spec(f'schemes = ["single"]\nsteps = 40\n[parameters.{name}]\nvalue = {json.dumps(value)}\n')
    (point,) = plan_sweep(spec, tiny_corpus(n=200_000)).points
    assert getattr(point.cfg, name) == value


@pytest.mark.parametrize("name", OPTION_FIELDS)
def test_gradcheck_takes_every_field_a_trajectory_depends_on(name, tmp_path):
    from bpttbench.fidelity import gradcheck

    offered = {o for p in gradcheck_command.params for o in p.opts}
    flag = f"--{name.replace('_', '-')}"
    if name in defaults.GRADCHECK_UNUSED:
        assert flag not in offered or name in ("k2", "lr")  # k2 and lr: lists of them
        with pytest.raises(ConfigError, match=f"gradcheck does not take {name}"):
            gradcheck.gradcheck(tiny_corpus(), **{name: other_value(name)})
        return
    assert flag in offered
    value = 3 if name in ("hidden", "batch") else other_value(name)
    gradcheck.gradcheck(tiny_corpus(), k2s=(4,), lrs=(0.01,), steps=24, every=3, n_fd=0, out_dir=tmp_path, formats=(),
                        **{"hidden": 3, name: value})
    recorded = json.loads((tmp_path / gradcheck.MANIFEST_NAME).read_text())["settings"]
    assert recorded[name] == value
