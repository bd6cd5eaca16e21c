"""A sweep spec: TOML text (plus `--set` overrides) read into a checked SweepSpec.

Every problem is one SpecError that names the key and where it was set: the spec's line, or
the `--set` that overrode it. The keys are described in bpttbench/sweep/__init__.py.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from bpttbench import defaults
from bpttbench.config import FIELD_KINDS, SCHEME_NAMES, TRUNCATED_SCHEMES, TrainConfig, parse_duration
from bpttbench.errors import ConfigError, UserError

TOP_KEYS = ("method", "name", "description", "corpus", "budget", "steps", "seeds", "schemes", "parameters")
# Set elsewhere in a spec than under [parameters]: where to set it instead.
NOT_PARAMETERS = {"scheme": "schemes", "seed": "seeds", "budget_seconds": "budget", "budget_steps": "steps"}
PARAMETER_TYPES: dict[str, Any] = FIELD_KINDS  # every field commands offer as an option: its type or choices
assert set(PARAMETER_TYPES) | set(NOT_PARAMETERS) == {f.name for f in fields(TrainConfig)}


class SpecError(UserError):
    """A sweep spec that cannot be read or used; the message names the key and the line."""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    corpus: str | None
    budget_seconds: float | None
    budget_steps: int | None
    # A count is kept as a range, so that `seeds = 1000000` costs nothing until the grid is built.
    seeds: Sequence[int]
    schemes: tuple[str, ...]
    parameters: dict[str, tuple] = field(default_factory=dict)  # name -> values, spec order
    source: str = ""  # the spec file, for messages and the manifest
    text: str = ""  # the spec as written

    @property
    def swept(self) -> list[str]:
        """The parameters that take more than one value."""
        return [k for k, v in self.parameters.items() if len(v) > 1]

    def to_dict(self) -> dict:
        return {"name": self.name, "corpus": self.corpus, "budget_seconds": self.budget_seconds,
                "budget_steps": self.budget_steps, "seeds": list(self.seeds), "schemes": list(self.schemes),
                "parameters": {k: list(v) for k, v in self.parameters.items()}, "source": self.source}


# ----------------------------------------------------------------------------- where a key was set


def _key_lines(text: str) -> list[tuple[int, tuple[str, ...]]]:
    """(line number, dotted key path) for every table header and key assignment in TOML text."""
    out = []
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$", stripped)
        if header:
            table = _split_key(header.group(1))
            out.append((number, table))
            continue
        key = re.match(r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=", stripped)
        if key:
            out.append((number, table + _split_key(key.group(1))))
    return out


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", dotted)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())


class _Where:
    """Says where a key was set: the spec's line, or the --set override."""

    def __init__(self, text: str, source: str, overridden: set[tuple[str, ...]]):
        self.lines = _key_lines(text)
        self.source = source
        self.overridden = overridden

    def __call__(self, *path: str) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in self.overridden:
                shown = path[1] if path[0] == "parameters" and len(path) > 1 else path[0]
                return f"--set {shown}"
        for n in range(len(path), 0, -1):
            for number, key in self.lines:
                if key == path[:n]:
                    return f"{self.source}, line {number}"
        return self.source

    def error(self, path: tuple[str, ...], problem: str) -> SpecError:
        return SpecError(f"{self(*path)}: {'.'.join(path)}: {problem}")


# ----------------------------------------------------------------------------- --set


def parse_override(text: str) -> tuple[str, list]:
    """`k2=5,10,20` -> ('k2', [5, 10, 20]); numbers become int or float, anything else stays text."""
    if "=" not in text:
        raise SpecError(f"--set {text}: expected KEY=VALUE[,VALUE...], e.g. --set k2=5,10,20")
    key, _, raw = text.partition("=")
    key = key.strip()
    items = [item.strip() for item in raw.split(",")]
    if not key or not raw.strip() or any(not item for item in items):
        raise SpecError(f"--set {text}: expected KEY=VALUE[,VALUE...] with no empty values, e.g. --set k2=5,10,20")

    def number(item: str):
        for kind in (int, float):
            try:
                return kind(item)
            except ValueError:
                pass
        return item

    return key, [number(item) for item in items]


def _apply_overrides(raw: dict, overrides: list[tuple[str, list]]) -> set[tuple[str, ...]]:
    overridden: set[tuple[str, ...]] = set()
    for key, values in overrides:
        if key in NOT_PARAMETERS:
            raise SpecError(f"--set {key}: set `{NOT_PARAMETERS[key]}` instead, e.g. --set {NOT_PARAMETERS[key]}=...")
        if key in PARAMETER_TYPES:
            params = raw.setdefault("parameters", {})
            if not isinstance(params, dict):
                raise SpecError("--set: the spec's `parameters` is not a table; fix the spec first")
            params[key] = {"values": values}
            overridden.add(("parameters", key))
        elif key in ("seeds", "schemes"):
            raw[key] = values[0] if key == "seeds" and len(values) == 1 else values
            overridden.add((key,))
        elif key in ("budget", "steps", "corpus", "method", "name", "description"):
            if len(values) != 1:
                raise SpecError(f"--set {key}: takes one value, got {len(values)}")
            raw[key] = values[0] if key != "corpus" else str(values[0])
            if key in ("budget", "steps"):  # one replaces the other
                raw.pop("steps" if key == "budget" else "budget", None)
            overridden.add((key,))
        else:
            known = ", ".join([*(k for k in TOP_KEYS if k != "parameters"), *PARAMETER_TYPES])
            raise SpecError(f"--set {key}: unknown key; known keys are {known}")
    return overridden


# ----------------------------------------------------------------------------- the spec


def parse_spec(text: str, source: str = "spec", overrides=()) -> SweepSpec:
    """A SweepSpec from TOML text and `--set` overrides (strings KEY=V1,V2); SpecError naming key and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message).strip() or "invalid TOML"
        at = f", line {where.group(1)}, column {where.group(2)}" if where else ""
        raise SpecError(f"{source}{at}: not valid TOML: {problem}; see https://toml.io for the syntax") from None
    overridden = _apply_overrides(raw, [parse_override(o) if isinstance(o, str) else o for o in overrides])
    where = _Where(text, source, overridden)

    for key in raw:
        if key not in TOP_KEYS:
            hint = f"; did you mean [parameters.{key}]?" if key in PARAMETER_TYPES else ""
            hint = f"; use `{NOT_PARAMETERS[key]}`" if key in NOT_PARAMETERS else hint
            raise where.error((key,), f"unknown key{hint or '; known keys are ' + ', '.join(TOP_KEYS)}")

    method = raw.get("method", "grid")
    if method != "grid":
        raise where.error(("method",), f"only \"grid\" is supported, got {method!r}")
    name = raw.get("name", Path(source).stem or "sweep")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+-]*", name):
        raise where.error(("name",), f"must be a name of letters, digits and . _ = + -, got {name!r}")
    if not isinstance(raw.get("description", ""), str):
        raise where.error(("description",), "must be a string")
    corpus = raw.get("corpus")
    if corpus is not None and (not isinstance(corpus, str) or not corpus.strip()):
        raise where.error(("corpus",), f"must be a corpus name or a file path (a string), got {corpus!r}")

    budget_seconds, budget_steps = _budget(raw, where)
    return SweepSpec(name=name, corpus=corpus, budget_seconds=budget_seconds, budget_steps=budget_steps,
                     seeds=_seeds(raw, where), schemes=_schemes(raw, where), parameters=_parameters(raw, where),
                     source=source, text=text)


def _budget(raw: dict, where: _Where) -> tuple[float | None, int | None]:
    """(budget_seconds, budget_steps), one of them None."""
    if "budget" in raw and "steps" in raw:
        raise where.error(("steps",), "give either `budget` (seconds) or `steps`, not both")
    if "steps" in raw:
        steps = raw["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise where.error(("steps",), f"must be a positive whole number of steps, got {steps!r}")
        return None, steps
    budget = raw.get("budget", defaults.BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, (str, int, float)):
        raise where.error(("budget",), f"must be seconds or a duration like \"90s\" or \"2m\", got {budget!r}")
    try:
        return parse_duration(budget), None
    except ConfigError as exc:
        raise where.error(("budget",), str(exc)) from None


def _seeds(raw: dict, where: _Where) -> Sequence[int]:
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise where.error(("seeds",), f"a count must be at least 1, got {seeds}")
        return range(seeds)
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        return tuple(dict.fromkeys(seeds))
    raise where.error(("seeds",), f"must be a count (3 = seeds 0, 1, 2) or a non-empty list of seeds >= 0, got {_short(seeds)}")


def _short(value) -> str:
    """repr of a spec value, cut short: a list of a million seeds must not become a million-character error."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _schemes(raw: dict, where: _Where) -> tuple[str, ...]:
    """The spec's schemes, "all" expanded, duplicates dropped, order kept.

    The same rule as runner.expand_schemes (a test holds them equal), written here because importing
    runner imports Numba, which would cost a refused or dry-run sweep most of a second.
    """
    schemes = raw.get("schemes", list(defaults.DEFAULT_SCHEMES))
    if isinstance(schemes, str):
        schemes = [schemes]
    if not isinstance(schemes, list) or not schemes or not all(isinstance(s, str) for s in schemes):
        raise where.error(("schemes",), f"must be a scheme name, \"all\", or a non-empty list of names, got {_short(schemes)}")
    out: list[str] = []
    for name in schemes:
        for scheme in TRUNCATED_SCHEMES if name == "all" else (name,):
            if scheme not in SCHEME_NAMES:
                raise where.error(("schemes",), f"unknown scheme {scheme!r}; choose from {', '.join(SCHEME_NAMES)} or all")
            if scheme not in out:
                out.append(scheme)
    return tuple(out)


def _parameters(raw: dict, where: _Where) -> dict[str, tuple]:
    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise where.error(("parameters",), "must be a table of [parameters.NAME] sections")
    parameters: dict[str, tuple] = {}
    for key, entry in params.items():
        path = ("parameters", key)
        if key in NOT_PARAMETERS:
            raise where.error(path, f"not a parameter; set the top-level `{NOT_PARAMETERS[key]}` instead")
        if key not in PARAMETER_TYPES:
            raise where.error(path, f"unknown parameter; known parameters are {', '.join(PARAMETER_TYPES)}")
        if not isinstance(entry, dict):
            raise where.error(path, f"must be a table with `value` or `values`, e.g. [parameters.{key}] values = [...]")
        for sub in entry:
            if sub not in ("value", "values"):
                raise where.error(path + (sub,), "unknown key; a grid parameter has `value` or `values` (distributions need method random, which is not supported)")
        if ("value" in entry) == ("values" in entry):
            raise where.error(path, "give exactly one of `value = x` or `values = [x, y, ...]`")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list):
                raise where.error(path + ("values",), f"must be a list, got {_short(values)}")
            if not values:
                raise where.error(path + ("values",), "is empty: the grid would have no points; give at least one value")
            sub = "values"
        else:
            values, sub = [entry["value"]], "value"
        parameters[key] = tuple(dict.fromkeys(_check_value(key, v, lambda p: where.error(path + (sub,), p)) for v in values))
    return parameters


def _check_value(key: str, value, error: Callable[[str], SpecError]):
    kind = PARAMETER_TYPES[key]
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise error(f"must be whole numbers, got {value!r}")
        return value
    if kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise error(f"must be finite numbers, got {value!r}")
        return float(value)
    if not isinstance(value, str) or value not in kind:
        raise error(f"must be one of {', '.join(kind)}, got {value!r}")
    return value


def load_spec(path: Path, overrides=()) -> SweepSpec:
    """parse_spec on a file, with one-line errors for a file that is missing, not regular or not UTF-8."""
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):  # /dev/zero or a pipe: read forever
        raise SpecError(f"sweep spec {path} is not a regular file (a device, pipe or socket); give the path of a TOML file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"sweep spec {path} does not exist; give the path of a TOML file") from None
    except OSError as exc:
        raise SpecError(f"could not read sweep spec {path}: {exc.strerror or exc}; give the path of a readable TOML file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"sweep spec {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    return parse_spec(text, str(path), overrides)
