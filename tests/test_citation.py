"""LICENSE and CITATION.cff agree with the package metadata (``cffconvert --validate`` checks the
full CFF 1.2.0 schema; it is not a test dependency, so the required keys are checked here)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

import fasbench

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_has_the_required_keys_and_the_package_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key], key
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    (license_,) = re.findall(r'^license = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert cff["version"] == fasbench.__version__
    assert cff["license"] == license_ == "MIT"
    (dtda,) = [r for r in cff["references"] if "2401.01102" in r["url"]]
    assert dtda["type"] == "article" and dtda["authors"][0] == {"family-names": "Kong", "given-names": "Zhe"}
    for ref in cff["references"]:
        for key in ("type", "title", "authors"):
            assert ref[key], key


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) ") and "the fasbench authors" in text.splitlines()[2]
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
