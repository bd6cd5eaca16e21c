"""What every command shares: the option helper, list options, output options, the JSON shape.

Environment variables: every option reads BPTTBENCH_<COMMAND>_<OPTION> (click's
auto_envvar_prefix on the group: BPTTBENCH_RUN_K2, BPTTBENCH_GRADCHECK_SCHEME,
BPTTBENCH_CORPUS_INFO_QUIET), so one command's setting never reaches another. The exception is
--scheduler, which reads BPTTBENCH_SCHEDULER in both sweep and study. A value typed on the
command line overrides one from the environment, also across the pairs a command accepts only
one of (--seeds or --seed, --budget or --steps).
"""

from __future__ import annotations

import json
import signal
from contextlib import contextmanager

import click

from bpttbench.config import FIELD_KINDS, OPTION_FIELDS, field_help
from bpttbench.console import stdout
from bpttbench.defaults import TRAIN
from bpttbench.errors import ConfigError
from bpttbench.files import jsonable

COMMAND = {"show_default": True}  # context settings of every command


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so runs close their results the same way."""


class EnvOption(click.Option):
    """An option reading BPTTBENCH_<COMMAND>_<LONG NAME>: named after what the user types
    (BPTTBENCH_RUN_SCHEME, BPTTBENCH_RUN_JSON), where click would use the parameter's name."""

    def _name_envvar(self, ctx: click.Context) -> None:
        if self.envvar is None and ctx.auto_envvar_prefix:
            long = next((o for o in self.opts if o.startswith("--")), self.opts[0])
            self.envvar = f"{ctx.auto_envvar_prefix}_{long.lstrip('-').upper().replace('-', '_')}"

    def resolve_envvar_value(self, ctx):
        self._name_envvar(ctx)
        return super().resolve_envvar_value(ctx)

    def get_help_extra(self, ctx):
        self._name_envvar(ctx)
        return super().get_help_extra(ctx)


def option(*names, **kw):
    """A click option reading its own environment variable, which --help shows."""
    kw.setdefault("show_envvar", True)
    kw.setdefault("cls", EnvOption)
    return click.option(*names, **kw)


def config_options(*, skip=(), defaults: dict | None = None, helps: dict | None = None):
    """An option per TrainConfig field a command offers (config.OPTION_FIELDS, less `skip`), in the
    field table's order, with the table's default, kind and help (`defaults` and `helps` override a
    command's own); the command receives each as a keyword named after its field."""
    defaults, helps = defaults or {}, helps or {}

    def decorate(f):
        for name in reversed([n for n in OPTION_FIELDS if n not in skip]):
            kind = FIELD_KINDS[name]
            f = option(f"--{name.replace('_', '-')}", name, type=click.Choice(kind) if isinstance(kind, tuple) else kind,
                       default=defaults.get(name, getattr(TRAIN, name)), help=helps.get(name, field_help(name)))(f)
        return f
    return decorate


def config_settings(params: dict) -> dict:
    """The TrainConfig fields among a command's parameters (what config_options added)."""
    return {name: params[name] for name in OPTION_FIELDS if name in params}


class CommaList(click.ParamType):
    """One or more values of an inner type, comma-separated: `--k2 5,10` is `--k2 5 --k2 10`."""

    def __init__(self, inner):
        self.inner = click.types.convert_type(inner)
        self.name = self.inner.name

    def get_metavar(self, *args, **kwargs):
        return self.inner.get_metavar(*args, **kwargs)

    def shell_complete(self, ctx, param, incomplete):
        done, _, last = incomplete.rpartition(",")
        prefix = f"{done}," if done else ""
        return [click.shell_completion.CompletionItem(prefix + item.value, type=item.type)
                for item in self.inner.shell_complete(ctx, param, last)]

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        return tuple(self.inner.convert(part.strip(), param, ctx) for part in str(value).split(",") if part.strip())


def _flatten(ctx, param, value):
    return tuple(dict.fromkeys(v for group in value or () for v in group))


def several(*names, type=str, **kw):
    """An option taking several values, repeated or as comma lists (duplicates dropped, order kept)."""
    return option(*names, multiple=True, type=CommaList(type), callback=_flatten, **kw)


def output_options(what: str, json_help: str = "Print the result as JSON on stdout: out, status and the command's own fields."):
    """--quiet and --json, the same on every command."""
    def decorate(f):
        f = option("--json", "as_json", is_flag=True, help=json_help)(f)
        return option("--quiet", "-q", is_flag=True, help=f"Print only {what}.")(f)
    return decorate


def emit_json(out, status: str, **fields) -> None:
    """The one JSON shape: out (the directory or file written, or null), status, then the command's fields."""
    data = {"out": None if out is None else str(out), "status": status, **fields}
    stdout.print_json(json.dumps(jsonable(data)))


def one_of(ctx: click.Context, first: str, second: str, message: str) -> tuple:
    """The values of two options a command accepts only one of.

    Both typed, or both from the environment, is a ConfigError(message); a typed one overrides
    one from the environment (the environment's is returned as None).
    """
    a, b = ctx.params[first], ctx.params[second]
    if a is None or b is None:
        return a, b
    typed = click.core.ParameterSource.COMMANDLINE
    from_a, from_b = ctx.get_parameter_source(first) == typed, ctx.get_parameter_source(second) == typed
    if from_a == from_b:
        raise ConfigError(message)
    return (a, None) if from_a else (None, b)


@contextmanager
def sigterm_as_interrupt():
    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
