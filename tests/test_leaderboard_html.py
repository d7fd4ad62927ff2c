"""``fasbench leaderboard --html``: the page's numbers are the CSV's (parsed with html.parser), every
table says its threshold policy and checkpoint selection, reported rows are marked, links are
relative and resolve, and nothing is loaded from elsewhere."""
from __future__ import annotations

import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from fasbench import cli
from fasbench.leaderboard import REPORTED_LABEL, format_cell
from fasbench.records import load_records

ROOT = Path(__file__).resolve().parents[1]
MICO = ROOT / "leaderboard" / "records" / "MICO"
BOARD64 = ROOT / "leaderboard" / "records" / "synthetic-64px" / "MICO"
REPORTED = Path(__file__).parent / "data" / "records" / "reported.csv"


class Page(HTMLParser):
    """Sections (policy, heading, statement), table rows with their metric cells, links, tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[dict] = []
        self.rows: list[dict] = []
        self.links: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self._text: list[str] | None = None
        self._into: tuple | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self.sections.append({"class": a.get("class"), "policy": a.get("data-policy"), "h2": "", "p": "",
                                  "svg": 0, "rows": []})
        elif tag == "svg" and self.sections:
            self.sections[-1]["svg"] += 1
        elif tag == "tr" and ("data-run" in a or "data-reported" in a):
            row = {"run": a.get("data-run"), "policy": a.get("data-policy"), "reported": a.get("data-reported"),
                   "cells": [], "text": []}
            self.rows.append(row)
            self.sections[-1]["rows"].append(row)
        elif tag == "td" and self.rows and self._text is None:
            self._text = []
            self._into = ("td", a)
        elif tag in ("h2", "p") and self.sections and self._text is None:
            self._text = []
            self._into = (tag, a)
        elif tag == "a":
            self.links.append(a.get("href", ""))

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._into is not None and tag == self._into[0]:
            text = "".join(self._text or []).strip()
            kind, attrs = self._into
            if kind == "td":
                self.rows[-1]["text"].append(text)
                if "data-key" in attrs:
                    self.rows[-1]["cells"].append({**attrs, "text": text})
            elif not self.sections[-1][kind]:
                self.sections[-1][kind] = text
            self._text, self._into = None, None


def _num(value: str) -> float | None:
    return None if value == "" else float(value)


def _csv_num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@pytest.fixture(scope="module")
def built(module_tmp):
    runs = module_tmp("runs")
    shutil.copytree(MICO, runs / "MICO")
    for task in ("OCI_to_M", "OMI_to_C"):  # three seeds (std cells), two of four tasks (no average)
        shutil.copytree(BOARD64 / "erm" / task, runs / "board64" / "erm" / task)
    out = runs / "board"
    assert cli.main(["leaderboard", "--runs", str(runs), "--out", str(out), "--html", "--reported", str(REPORTED)]) == 0
    page = Page()
    page.feed((out / "MICO.html").read_text(encoding="utf-8"))
    csv = pd.read_csv(out / "MICO.csv")
    csv["reported"] = csv["reported"].fillna("")
    return runs, out, page, csv


def test_every_number_on_the_page_is_the_csvs(built):
    _, _, page, csv = built
    measured = csv[csv["reported"] == ""]
    assert len([r for r in page.rows if r["run"]]) == len(measured) == 2 * 3  # 3 settings x 2 policies
    checked = 0
    for row in page.rows:
        if row["reported"]:
            continue
        (line,) = measured[(measured["run"] == row["run"]) & (measured["policy"] == row["policy"])].to_dict("records")
        assert row["text"][0] == line["method"] and row["text"][1] == row["run"]
        assert len(row["cells"]) == 4 * 3 + 3  # OCI->M ... ICM->O x HTER, AUC, TPR@FPR=1%, then the averages
        for cell in row["cells"]:
            key = cell["data-key"]
            mean, std, ci = _num(cell["data-mean"]), _num(cell["data-std"]), _num(cell["data-ci95"])
            want_mean, want_std = _csv_num(line[f"{key} mean"]), _csv_num(line[f"{key} std"])
            want_ci = _csv_num(line.get(f"{key} ci95"))
            for got, want in ((mean, want_mean), (std, want_std), (ci, want_ci)):
                assert (got is None) == (want is None), (key, got, want)
                if got is not None:
                    assert got == pytest.approx(want, abs=5.1e-5)  # the CSV keeps 4 decimals
            assert cell["text"] == format_cell(mean, std, ci)
            checked += 1
    assert checked == 6 * 15
    # the rows with three seeds show a std, the one-seed rows none; a row without every task has no average
    stds = {(r["run"], r["policy"]): any(c["data-std"] for c in r["cells"]) for r in page.rows if r["run"]}
    assert sorted(stds.values()) == [False] * 4 + [True] * 2
    partial = [r for r in page.rows if r["run"] and stds[(r["run"], r["policy"])]]
    for r in partial:
        assert [c["text"] for c in r["cells"] if c["data-key"].startswith(("OCM->I", "ICM->O", "Average"))] == ["—"] * 9


def test_each_table_states_policy_and_selection_and_has_its_chart(built):
    _, _, page, csv = built
    measured = [s for s in page.sections if s["class"] == "measured"]
    assert [s["policy"] for s in measured] == ["source-val-threshold", "target-eer-threshold"]
    assert measured[0]["h2"] == "target, threshold from source-val (deployable)"
    assert measured[1]["h2"] == "target, threshold at target EER (idealized: reads target labels)"
    for s in measured:
        assert s["p"].startswith(f"Threshold policy {s['policy']}:")
        assert s["p"].endswith("Checkpoint selection: last (no target data).")
        assert s["svg"] == 1  # the chart, inline
        assert {r["policy"] for r in s["rows"]} == {s["policy"]}
        assert [r["run"] for r in s["rows"]] == csv[csv["policy"] == s["policy"]]["run"].tolist()


def test_reported_rows_are_marked_and_match_the_csv(built):
    _, _, page, csv = built
    (section,) = [s for s in page.sections if s["class"] == "reported"]
    assert section["h2"] == "Reported (not reproduced)" and "not produced by this harness" in section["p"]
    (row,) = section["rows"]
    assert row["reported"] == REPORTED_LABEL and row["text"][:2] == ["example-paper", REPORTED_LABEL]
    (line,) = csv[csv["reported"] != ""].to_dict("records")
    values = {c["data-key"]: _num(c["data-mean"]) for c in row["cells"] if c["data-mean"]}
    assert values == {"OCI->M HTER": 7.5, "OCI->M AUC": 97.0, "ICM->O HTER": 15.25, "Average HTER": 11.4}
    for key, value in values.items():
        assert line[f"{key} mean"] == pytest.approx(value)


def test_links_are_relative_and_resolve(built):
    runs, out, page, _ = built
    hrefs = [h for h in page.links if h]
    assert hrefs
    for href in hrefs:
        assert not urlparse(href).scheme and not href.startswith("/"), href
        assert (out / unquote(href)).is_file(), href
    records = {(out / unquote(h)).resolve() for h in hrefs if h.endswith("record.json")}
    assert records == {Path(r.source).resolve() for r in load_records(runs)}
    figures = {h for h in hrefs if h.endswith(".png")}  # each run is in both policy tables
    assert sum(h.endswith("/hist.png") for h in figures) == len(records)
    assert sum(h.endswith("/curves.png") for h in figures) == len(records)
    assert {h.rsplit("/", 1)[-1] for h in figures} >= {"roc.png", "det.png"}
    assert {"MICO.csv", "MICO.md", "MICO.tex"} <= set(hrefs)


def test_page_is_self_contained(built):
    _, out, page, _ = built
    text = (out / "MICO.html").read_text(encoding="utf-8")
    assert not [t for t, a in page.tags if t in ("script", "img", "link", "iframe") and (a.get("src") or a.get("href"))]
    assert not re.search(r"https?://(?!www\.w3\.org/)", text)  # only the SVG/XLink namespaces
    assert "<style>" in text and "table.sortable" in text and 'class="board sortable"' in text


def test_default_out_is_inside_the_runs_directory(tmp_path, capsys, monkeypatch):
    """Without --out the tables go to RUNS/leaderboard, never to ./leaderboard (a checkout's committed board)."""
    shutil.copytree(MICO / "erm", tmp_path / "runs" / "MICO" / "erm")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leaderboard").mkdir()
    assert cli.main(["leaderboard", "--runs", "runs"]) == 0
    assert "wrote runs/leaderboard/MICO.md" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "runs" / "leaderboard").iterdir()) == ["MICO.csv", "MICO.md", "MICO.tex"]
    assert not list((tmp_path / "leaderboard").iterdir())
    assert cli.main(["leaderboard", "--runs", "runs", "--out", "leaderboard"]) == 0
    assert sorted(p.name for p in (tmp_path / "leaderboard").iterdir()) == ["MICO.csv", "MICO.md", "MICO.tex"]


def test_a_record_without_scores_keeps_its_row_and_loses_only_its_score_figures(tmp_path, capsys):
    runs = tmp_path / "runs"
    for task in ("OCI_to_M", "OMI_to_C"):
        shutil.copytree(MICO / "erm" / task, runs / "erm" / task)
    (runs / "erm" / "OMI_to_C" / "seed0" / "scores.csv.gz").unlink()
    assert cli.main(["leaderboard", "--runs", str(runs), "--html"]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: no ROC, DET or histogram for ")
    assert "OMI_to_C/seed0/record.json" in lines[0] and "scores.csv.gz: cannot be read" in lines[0]
    assert f"wrote {runs / 'leaderboard' / 'MICO.html'}" in out
    page = Page()
    page.feed((runs / "leaderboard" / "MICO.html").read_text(encoding="utf-8"))
    hrefs = set(page.links)
    assert sum(h.endswith("record.json") for h in hrefs) == 2
    assert sum(h.endswith("/hist.png") for h in hrefs) == 1 and sum(h.endswith("/curves.png") for h in hrefs) == 2
    assert any(h.endswith("OCI_to_M-seed0/hist.png") for h in hrefs)
