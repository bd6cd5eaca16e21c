"""Replication of the shipped reference study: agreement rules, the table, and the README made from the data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bpttbench.report import replication
from bpttbench.report.replication import agreement, format_cell, headline_table, readme_block, replication_lines

README = Path(__file__).resolve().parent.parent / "README.md"


def row(claim="2", corpus="stdlib-docs", verdict="supported", estimate=0.01, lo=0.0, hi=0.02, n=16):
    return {"claim": claim, "corpus": corpus, "verdict": verdict, "estimate": estimate, "lo": lo, "hi": hi, "n": n,
            "unit": "bits/char", "values": []}


@pytest.mark.parametrize("this,ref,agree", [
    (row(), row(estimate=0.015, lo=0.01, hi=0.03), True),  # overlapping intervals, same verdict
    (row(lo=0.0, hi=0.02), row(estimate=0.05, lo=0.03, hi=0.07), False),  # disjoint intervals
    (row(verdict="inconclusive"), row(), False),  # verdicts differ
    (row(lo=None, hi=None, n=3), row(), True),  # no interval here: the estimate lies in the reference's
    (row(estimate=0.5, lo=None, hi=None, n=3), row(), False),  # ...or outside it
    (row(lo=None, hi=None), row(lo=None, hi=None), True),  # nothing to compare but the verdicts
])
def test_agreement_is_the_same_verdict_and_overlapping_intervals(this, ref, agree):
    assert agreement(this, ref)[0] is agree


def test_a_cell_shows_the_verdict_the_estimate_and_the_interval_or_why_there_is_none():
    assert format_cell(row(estimate=-0.004, lo=-0.009, hi=0.002)) == "supported, −0.004 [−0.009, +0.002]"
    assert format_cell(row(verdict="inconclusive", lo=None, hi=None, n=3)) == "inconclusive, +0.010 (3 seeds, no interval)"
    assert format_cell(None) == "–"


def test_the_replication_table_names_rows_the_reference_lacks_and_counts_agreement():
    this = {"preset": "quick", "clock": "cpu", "claims": [row(), row(claim="1", corpus="other")]}
    ref = {"preset": "quick", "clock": "wall", "seeds": 5, "machine": {"cpu": "X", "cores": 2, "load_average": [0.5]},
           "command": ["bpttbench", "study", "--quick"], "claims": [row(estimate=0.012)]}
    text = "\n".join(replication_lines(this, ref))
    assert "| 2 | stdlib-docs | supported, +0.010 [0.000, +0.020] | supported, +0.012 [0.000, +0.020] | yes:" in text
    assert "| 1 | other |" in text and "the reference did not study this corpus" in text
    assert "1 of 1 claims agree" in text and "the reference on the wall clock" in text


@pytest.mark.parametrize("preset", ["full", "quick"])
def test_a_reference_study_ships_for_each_preset_with_its_machine_and_registered_seeds(preset):
    from bpttbench import study

    ref = replication.reference(preset)
    assert ref is not None, f"bpttbench/reference_studies/{preset}.json is missing"
    assert ref["preset"] == preset and ref["clock"] == "cpu"
    assert ref["seeds"] == study.preset_named(preset).seeds  # the reference ran the preset as registered
    assert ref["registered_at"] <= ref["started_at"]
    assert ref["machine"]["cpu"] and ref["machine"]["load_average"]
    claims = {(r["claim"], r["corpus"]) for r in ref["claims"]}
    assert {(c, corpus) for c in ("1", "2", "3", "4", "5", "6a", "6b") for corpus in ref["corpora"]} <= claims


def test_the_readme_study_table_is_made_from_the_shipped_reference():
    text = README.read_text(encoding="utf-8")
    block = re.search(re.escape(replication.README_BEGIN) + ".*?" + re.escape(replication.README_END), text, re.S)
    assert block, "README.md lacks the generated study table"
    assert block.group(0) == readme_block(replication.reference("full")), (
        "README.md's study table differs from bpttbench/reference_studies/full.json: run "
        "`python -m bpttbench.report.replication README.md`")
    assert len(headline_table(replication.reference("full"))) == 2 + 7


def test_the_readme_cells_table_is_made_from_the_shipped_references():
    text = README.read_text(encoding="utf-8")
    block = re.search(re.escape(replication.CELLS_BEGIN) + ".*?" + re.escape(replication.CELLS_END), text, re.S)
    assert block, "README.md lacks the generated per-cell table"
    refs = replication.cell_references()
    assert block.group(0) == replication.cells_block(refs), (
        "README.md's per-cell table differs from bpttbench/reference_studies/quick*.json: run "
        "`python -m bpttbench.report.replication README.md`")
    assert all(ref is not None for ref in refs.values())


def test_the_readme_full_preset_cells_table_is_made_from_the_shipped_full_studies():
    text = README.read_text(encoding="utf-8")
    block = re.search(re.escape(replication.FULL_CELLS_BEGIN) + ".*?" + re.escape(replication.FULL_CELLS_END), text,
                      re.S)
    assert block, "README.md lacks the generated full-preset per-cell table"
    refs = replication.cell_references("full")
    assert block.group(0) == replication.full_cells_block(refs), (
        "README.md's full-preset per-cell table differs from bpttbench/reference_studies/full*.json: run "
        "`python -m bpttbench.report.replication README.md`")
    shipped = [cell for cell, ref in refs.items() if ref is not None]
    assert "lstm" in shipped and len(shipped) >= 2  # the LSTM's and at least one other cell's
    for cell in shipped:
        ref = refs[cell]
        assert ref.get("cell", "lstm") == cell  # the LSTM's was written before studies had a cell
        assert ref["preset"] == "full" and ref["clock"] == "cpu" and ref["registered_at"] <= ref["started_at"]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_a_cell_reference_is_the_quick_preset_run_on_that_cell(cell):
    from bpttbench import study

    ref = replication.reference("quick", cell)
    assert ref is not None and ref["cell"] == cell and ref["preset"] == "quick" and ref["clock"] == "cpu"
    assert ref["seeds"] == study.QUICK.seeds and ref["registered_at"] <= ref["started_at"]
    claims = {(r["claim"], r["corpus"]) for r in ref["claims"]}
    assert {(c, corpus) for c in ("1", "2", "3", "4", "5", "6a", "6b") for corpus in ref["corpora"]} <= claims


def test_the_cells_table_has_a_column_per_cell_and_a_row_per_claim_and_corpus():
    lstm = {"corpora": ["a", "b"], "claims": [row(claim=c, corpus=k) for c in "1234" for k in "ab"]}
    lines = replication.cells_table({"lstm": lstm, "gru": None})
    assert lines[0] == "| # | claim | corpus | lstm | gru |" and len(lines) == 2 + 4 * 2
    assert lines[2].endswith("| a | supported, +0.010 [0.000, +0.020] | – |")
