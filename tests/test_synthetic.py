"""The synthetic cross-domain FAS world: determinism, manifest, splits, cache, cue sanity."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fasbench.data import synthetic
from fasbench.data.frames import MANIFEST_COLUMNS, FrameSet
from fasbench.data.synthetic import (
    GENERATOR_VERSION,
    SyntheticConfig,
    cache_key,
    generate,
    load_or_generate,
    preview,
)
from fasbench.errors import FasbenchError

# Small worlds keep the whole module well under 15 s on a 2-core CPU.
SMALL = dict(subjects=4, live_videos=1, print_videos=1, replay_videos=1, frames_per_video=2, image_size=64)


@pytest.fixture(scope="module")
def world() -> FrameSet:
    return generate(SyntheticConfig(**SMALL))


@pytest.fixture(scope="module")
def stats_world() -> FrameSet:
    """Enough videos per domain / attack for stable image statistics."""
    return generate(SyntheticConfig(subjects=6, frames_per_video=1, image_size=96))


def test_dataset_component_version_follows_the_generator():
    from fasbench import plugins

    assert plugins.registry("datasets").get("synthetic").version == GENERATOR_VERSION


def test_deterministic_and_seed_dependent(world):
    again = generate(SyntheticConfig(**SMALL))
    assert np.array_equal(world.images, again.images)
    pd.testing.assert_frame_equal(world.manifest, again.manifest)
    other = generate(SyntheticConfig(**{**SMALL, "seed": 1}))
    assert not np.array_equal(world.images, other.images)


def test_domain_independent_of_other_domains(world):
    only_i = generate(SyntheticConfig(**{**SMALL, "domains": "I"}))
    rows = world.manifest.index[world.manifest["domain"] == "I"].to_numpy()
    assert np.array_equal(world.images[rows], only_i.images)
    assert list(world.manifest.loc[rows, "video_id"]) == list(only_i.manifest["video_id"])
    swapped = generate(SyntheticConfig(**{**SMALL, "domains": "OM"}))
    rows_o = world.manifest.index[world.manifest["domain"] == "O"].to_numpy()
    assert np.array_equal(world.images[rows_o], swapped.images[swapped.manifest["domain"] == "O"])


def test_manifest_columns_labels_and_attacks(world):
    m = world.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert world.images.dtype == np.uint8 and world.images.shape[1:] == (64, 64, 3)
    assert set(m["dataset"]) == {"synthetic"}
    assert set(m["attack"]) == {"none", "print", "replay"}
    assert (m.loc[m["attack"] == "none", "label"] == 1).all()
    assert (m.loc[m["attack"] != "none", "label"] == 0).all()
    assert (m["path"] == "synthetic://" + m["domain"] + "/" + m["video_id"]).all()
    for _, g in m.groupby("video_id"):
        assert list(g["frame"]) == list(range(SMALL["frames_per_video"]))
        assert g[["domain", "subject", "split", "label", "attack"]].nunique().max() == 1
    assert world.identity == {
        "dataset": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": {"seed": 0, "domains": "MCIO", **SMALL},
    }


def test_counts_match_config(world):
    m = world.manifest
    per_subject = SMALL["live_videos"] + SMALL["print_videos"] + SMALL["replay_videos"]
    assert len(m) == 4 * SMALL["subjects"] * per_subject * SMALL["frames_per_video"]
    assert world.domains == ["C", "I", "M", "O"]
    assert m["video_id"].nunique() == 4 * SMALL["subjects"] * per_subject
    assert (m.groupby("domain")["subject"].nunique() == SMALL["subjects"]).all()
    cfg = SyntheticConfig(subjects=5, live_videos=2, print_videos=2, replay_videos=1,
                          frames_per_video=3, image_size=48, domains="C")
    m2 = generate(cfg).manifest
    vids = m2.drop_duplicates("video_id")
    assert vids["attack"].value_counts().to_dict() == {"none": 10, "print": 10, "replay": 5}
    assert len(m2) == 25 * 3


def test_frames_of_a_video_differ(world):
    m = world.manifest
    for attack in ("none", "print", "replay"):
        vid = m.loc[m["attack"] == attack, "video_id"].iloc[0]
        rows = m.index[m["video_id"] == vid].to_numpy()
        a, b = world.images[rows[0]].astype(int), world.images[rows[1]].astype(int)
        assert np.abs(a - b).mean() > 0.5


def test_splits_disjoint_by_subject_and_subjects_per_domain(world):
    m = world.manifest
    assert set(m["split"]) == {"train", "dev", "test"}
    split_of = m.groupby("subject")["split"].nunique()
    assert (split_of == 1).all()
    dom_of = m.groupby("subject")["domain"].nunique()
    assert (dom_of == 1).all()
    assert all(s.startswith(d + "-s") for s, d in zip(m["subject"], m["domain"]))
    counts = m.drop_duplicates("subject").groupby(["domain", "split"]).size().unstack()
    assert (counts["train"] == 2).all() and (counts["dev"] == 1).all() and (counts["test"] == 1).all()
    # without split counts: 50/25/25, e.g. 48 subjects -> 24 / 12 / 12
    assert synthetic._splits(48).count("train") == 24 and synthetic._splits(48).count("test") == 12
    # the demo config: 200 subjects, 24 dev and 152 test -> 24 train (a large evaluation world)
    demo = synthetic._splits(200, 24, 152)
    assert (demo.count("train"), demo.count("dev"), demo.count("test")) == (24, 24, 152)
    from fasbench import config

    data = config.compose(["method=erm"]).data
    assert (data.subjects, data.dev_subjects, data.test_subjects) == (200, 24, 152)
    # split counts left unset keep a world's identity (and cache entry) as it was
    assert "dev_subjects" not in synthetic.identity_of(SyntheticConfig())["config"]
    assert synthetic.identity_of(SyntheticConfig(subjects=200, dev_subjects=24, test_subjects=152))["config"][
        "test_subjects"] == 152


def test_bad_config_is_a_clear_error():
    with pytest.raises(FasbenchError, match="domains"):
        generate(SyntheticConfig(domains="MX"))
    with pytest.raises(FasbenchError, match="subjects"):
        generate(SyntheticConfig(subjects=2))
    with pytest.raises(FasbenchError, match=r"subjects=96 with dev_subjects=24 and test_subjects=152 leaves -80 train"):
        generate(SyntheticConfig(subjects=96, dev_subjects=24, test_subjects=152))
    with pytest.raises(FasbenchError, match="image_size"):
        generate(SyntheticConfig(image_size=8))


def test_cache_round_trip(tmp_path, monkeypatch, world):
    cfg = SyntheticConfig(**SMALL)
    first = load_or_generate(cfg, cache_dir=tmp_path)
    entry = tmp_path / "synthetic" / cache_key(cfg)
    assert sorted(p.name for p in entry.iterdir()) == ["content.json", "identity.json", "images.npy", "manifest.csv"]
    assert [p.name for p in (tmp_path / "synthetic").iterdir() if not p.name.endswith(".lock")] == [entry.name]  # no temp dirs left
    assert np.array_equal(first.images, world.images)

    def boom(*a, **k):
        raise AssertionError("regenerated instead of loading the cache")

    monkeypatch.setattr(synthetic, "generate", boom)
    second = load_or_generate(cfg, cache_dir=tmp_path)
    assert isinstance(second.images, np.memmap)
    assert np.array_equal(second.images, world.images)
    pd.testing.assert_frame_equal(second.manifest, world.manifest)
    assert second.identity == world.identity and second.fingerprint() == world.fingerprint()
    # FASBENCH_CACHE is the default location
    monkeypatch.setenv("FASBENCH_CACHE", str(tmp_path))
    assert np.array_equal(load_or_generate(cfg).images, world.images)
    # a different config or generator version is a different key
    assert cache_key(SyntheticConfig(**{**SMALL, "seed": 3})) != cache_key(cfg)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    assert cache_key(cfg) != entry.name


@pytest.mark.parametrize("damage", ["truncate_images", "garbage_manifest", "missing_identity", "foreign_identity"])
def test_corrupt_cache_is_regenerated(tmp_path, world, damage):
    cfg = SyntheticConfig(**SMALL)
    load_or_generate(cfg, cache_dir=tmp_path)
    entry = tmp_path / "synthetic" / cache_key(cfg)
    if damage == "truncate_images":
        blob = (entry / "images.npy").read_bytes()
        (entry / "images.npy").write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage_manifest":
        (entry / "manifest.csv").write_text("not,a\nmanifest,at all\n")
    elif damage == "missing_identity":
        (entry / "identity.json").unlink()
    else:
        (entry / "identity.json").write_text(json.dumps({"dataset": "other"}))
    again = load_or_generate(cfg, cache_dir=tmp_path)
    assert np.array_equal(again.images, world.images)
    pd.testing.assert_frame_equal(again.manifest, world.manifest)
    # and the entry on disk is healthy again
    assert np.array_equal(np.load(entry / "images.npy"), world.images)


def _hf_energy(img: np.ndarray) -> float:
    """Mean absolute Laplacian of the grey image: fine texture (halftone, pixel grid, noise)."""
    g = img.astype(np.float32).mean(-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


def test_domains_differ(stats_world):
    m, imgs = stats_world.manifest, stats_world.images
    live = m["attack"] == "none"
    mean_rgb, hf = {}, {}
    for d in "MCIO":
        rows = np.flatnonzero((live & (m["domain"] == d)).to_numpy())
        px = imgs[rows].reshape(-1, 3).astype(np.float64)
        mean_rgb[d] = px.mean(0) / px.mean()  # chromaticity: the domain's colour cast
        hf[d] = np.mean([_hf_energy(imgs[i]) for i in rows])
    assert mean_rgb["M"][2] < mean_rgb["C"][2]  # warm M vs cool C
    assert mean_rgb["I"][1] > mean_rgb["M"][1]  # greenish fluorescent I
    assert hf["I"] < 0.8 * min(hf["M"], hf["O"])  # low-resolution, blurry I


def _tone_range(img: np.ndarray) -> float:
    """2-98 percentile range of the smoothed grey face region: the picture's tone range, not
    its texture (the Gaussian averages halftone dots and pixel grids away)."""
    from scipy.ndimage import gaussian_filter

    g = gaussian_filter(img.astype(np.float32).mean(-1), 2.0)
    a = g.shape[0] // 4
    g = g[a:-a, a:-a]
    return float(np.percentile(g, 98) - np.percentile(g, 2))


def test_attacks_differ_from_live(stats_world):
    m, imgs = stats_world.manifest, stats_world.images

    def stat(d, attack, fn):
        rows = np.flatnonzero(((m["domain"] == d) & (m["attack"] == attack)).to_numpy())
        return np.mean([fn(imgs[i]) for i in rows])

    for d in "MCO":  # I's low resolution and blur wipe most fine texture out
        assert stat(d, "print", _hf_energy) > 1.15 * stat(d, "none", _hf_energy), d  # halftone
        assert stat(d, "replay", _hf_energy) > 1.15 * stat(d, "none", _hf_energy), d  # pixel grid / moire

    # prints compress the dynamic range: compare each subject's print with its own live video
    ratios = {}
    for (d, _), g in m.groupby(["domain", "subject"]):
        live, printed = g.index[g["attack"] == "none"], g.index[g["attack"] == "print"]
        ratios.setdefault(d, []).append(
            np.mean([_tone_range(imgs[i]) for i in printed]) / np.mean([_tone_range(imgs[i]) for i in live])
        )
    assert np.median(sum(ratios.values(), [])) < 0.85
    for d in "MCI":  # O's strongly varying session illumination swamps it per domain
        assert np.median(ratios[d]) < 0.9, (d, ratios[d])


def test_progress_and_preview(tmp_path, capsys):
    fs = generate(SyntheticConfig(**{**SMALL, "domains": "MI"}), progress=True)
    out = preview(fs, tmp_path / "sheet.png", n=2)
    from PIL import Image

    with Image.open(out) as im:
        w, h = im.size
    assert w > 6 * 64 and h > 2 * 64
