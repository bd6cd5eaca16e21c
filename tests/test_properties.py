"""Property-based tests (hypothesis) of what users feed bpttbench: corpus files of arbitrary bytes,
configurations, durations.

- The corpus loader never fails on any bytes except with the documented CorpusError, and what it
  accepts is exactly the file's text (less a byte-order mark), with a sorted vocabulary.
- Any valid TrainConfig survives the manifest: TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
  == cfg, and so does what RunWriter's own JSON writer makes of it; any invalid value is a ConfigError.
- parse_duration accepts 90, 90s, 2m, 1.5h and refuses everything else with a ConfigError.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bpttbench.config import DTYPES, INJECTS, MAX_HIDDEN, UNTRUNCATED_SCHEMES, OPTIMIZERS, SCHEME_NAMES, TrainConfig, parse_duration
from bpttbench.data.corpus import check_corpus_fits, corpus_from_text, load_corpus
from bpttbench.errors import ConfigError, CorpusError
from bpttbench.files import write_json

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- corpora

# Bytes that stress the decoder: BOMs, NULs, truncated and overlong UTF-8, surrogates encoded in UTF-8.
SPECIAL = [b"\xef\xbb\xbf", b"\x00", b"\xc3", b"\xc3\xa9", b"\xe2\x82", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80",
           b"\xc0\xaf", b"\xff\xfe", b"\n", b"a", b"\r\n"]
corpus_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(SPECIAL) | st.binary(max_size=3), max_size=60).map(b"".join),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


@SETTINGS
@given(data=corpus_bytes)
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
@example(data=b"\xef\xbb\xbf\xef\xbb\xbf")
@example(data=b"\xff\xfeh\x00i\x00")
@example(data="é".encode("latin-1"))
def test_corpus_loader_accepts_text_or_refuses_with_corpus_error(scratch, data):
    path = scratch / "corpus.txt"
    path.write_bytes(data)
    try:
        corpus = load_corpus(str(path))
    except CorpusError as exc:
        message = str(exc)
        assert message and "\n" not in message and str(path) in message
        return
    text = data.decode("utf-8").removeprefix("\ufeff")
    assert text and "\0" not in text
    assert corpus.n_chars == len(text) and corpus.decode(corpus.ids) == text
    assert list(corpus.vocab) == sorted(set(text))
    assert corpus.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert corpus.n_train + corpus.n_val == corpus.n_chars


@SETTINGS
@given(text=st.text(min_size=1, max_size=200, alphabet=st.characters(codec=None)),
       k2=st.integers(-3, 300), eval_chars=st.integers(-3, 300), batch=st.integers(-3, 50))
def test_corpus_from_text_and_fit_check_raise_only_corpus_error(text, k2, eval_chars, batch):
    try:
        corpus = corpus_from_text(text, name="prop")
    except CorpusError as exc:  # lone surrogates cannot be UTF-8
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text) and "\n" not in str(exc)
        return
    assert corpus.decode(corpus.ids) == text
    try:
        check_corpus_fits(corpus, k2=k2, eval_chars=eval_chars, batch=batch)
    except CorpusError as exc:
        assert "\n" not in str(exc) and ("lower" in str(exc) or "longer corpus" in str(exc))


# ----------------------------------------------------------------------------- configurations


@st.composite
def valid_configs(draw) -> TrainConfig:
    scheme = draw(st.sampled_from(SCHEME_NAMES))
    k2 = draw(st.integers(1, 500))
    online = scheme in UNTRUNCATED_SCHEMES  # no truncation: k1 is free and there is no window to inject
    k1 = k2 if scheme in ("chunked", "adaptive") else draw(st.integers(1, 1000 if online else k2))
    finite = dict(allow_nan=False, allow_infinity=False)
    steps = draw(st.none() | st.integers(1, 10**12))
    seconds = draw(st.floats(min_value=1e-6, max_value=1e9, **finite) | st.integers(1, 10**6)) if steps is None else draw(
        st.none() | st.floats(min_value=1e-6, max_value=1e9, **finite))
    return TrainConfig(
        scheme=scheme, k1=k1, k2=k2,
        inject="new" if online else draw(st.sampled_from(INJECTS)),
        hidden=draw(st.integers(1, MAX_HIDDEN)),
        batch=draw(st.integers(1, 4096)),
        optimizer=draw(st.sampled_from(OPTIMIZERS)),
        lr=draw(st.floats(min_value=0.0, max_value=1e30, **finite)),
        clip=draw(st.floats(min_value=0.0, max_value=1e30, **finite)),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**64)),
        budget_seconds=seconds, budget_steps=steps,
        log_every=draw(st.integers(1, 10**9)),
        eval_every=draw(st.integers(0, 10**9)),
        eval_chars=draw(st.integers(2, 10**9)),
    )


@SETTINGS
@given(cfg=valid_configs())
def test_any_valid_config_round_trips_through_the_manifest(scratch, cfg):
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # ... and through the writer run directories use (strict JSON, atomic replace).
    path = scratch / "manifest.json"
    write_json(path, {"configuration": [cfg.to_dict()]})
    back = TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["configuration"][0])
    assert back == cfg and back.to_dict() == cfg.to_dict()
    assert cfg.replace() == cfg


anything = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(), st.text(max_size=8),
                     st.lists(st.integers(), max_size=2))


@SETTINGS
@given(base=valid_configs(), field=st.sampled_from(sorted(TrainConfig.__dataclass_fields__)), value=anything)
def test_any_value_in_any_field_is_accepted_or_a_config_error(base, field, value):
    try:
        cfg = base.replace(**{field: value})
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # Whatever is accepted is sane, and round-trips too.
    assert (cfg.k1 <= cfg.k2 or cfg.scheme in UNTRUNCATED_SCHEMES) and 1 <= cfg.hidden <= MAX_HIDDEN and math.isfinite(cfg.lr) and cfg.lr >= 0
    assert (cfg.budget_seconds is None or (math.isfinite(cfg.budget_seconds) and cfg.budget_seconds > 0))
    assert cfg.budget_seconds is not None or cfg.budget_steps is not None
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_from_dict_refuses_unknown_keys():
    data = TrainConfig(budget_steps=5).to_dict() | {"hiden": 8}
    with pytest.raises(ConfigError, match="unknown configuration key"):
        TrainConfig.from_dict(data)


# ----------------------------------------------------------------------------- durations

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


@SETTINGS
@given(value=st.floats(min_value=1e-3, max_value=1e6, allow_nan=False) | st.integers(1, 10**6),
       unit=st.sampled_from(sorted(UNITS)), upper=st.booleans(), pad=st.sampled_from(["", " ", "\t"]))
def test_parse_duration_reads_numbers_with_units(value, unit, upper, pad):
    text = f"{pad}{value!r}{unit.upper() if upper else unit}{pad}"
    assert parse_duration(text) == pytest.approx(float(value) * UNITS[unit], rel=1e-12)


@SETTINGS
@given(text=st.text(max_size=12))
@example(text="0")
@example(text="-5")
@example(text="abc")
@example(text="nan")
@example(text="inf")
@example(text="1e400")
@example(text="1e308h")
@example(text="s")
@example(text="")
@example(text="5 m")
def test_parse_duration_is_a_positive_finite_number_or_a_config_error(text):
    try:
        seconds = parse_duration(text)
    except ConfigError as exc:
        assert "\n" not in str(exc) and ("90s" in str(exc) or "2m" in str(exc))
        return
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0
