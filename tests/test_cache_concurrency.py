"""Many processes, one cache: two processes that start together on an empty cache both warm
the synthetic world and the DTDA teacher stand-ins (whose corpus is a synthetic world too).
One process generates / pretrains each entry, the other waits on its file lock and reads it:
both see the same bytes, and the cache holds one complete copy of each, no temporary files."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("fasbench_dtda", reason="the DTDA plugin (pip install -e plugins/dtda) pretrains the teacher stand-ins")

WARM = textwrap.dedent("""
    import hashlib, json, sys, time
    from pathlib import Path

    from fasbench.data.synthetic import SyntheticConfig, load_or_generate
    from fasbench_dtda.pretrain import PretrainConfig, ensure_synthetic_teachers

    cache, me, other = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    me.touch()
    deadline = time.time() + 120
    while not other.exists() and time.time() < deadline:  # start together
        time.sleep(0.01)
    world = SyntheticConfig(domains="MCI", subjects=6, dev_subjects=None, test_subjects=None, live_videos=1,
                            print_videos=1, replay_videos=1, frames_per_video=2, image_size=48)
    fingerprint = load_or_generate(world, cache_dir=cache).fingerprint()
    # the smallest stand-in recipe of tests/test_dtda.py: seconds of pretraining
    tiny = PretrainConfig(subjects=4, live_videos=2, frames_per_video=2, image_size=32, arc_steps=3, arc_batch=8,
                          vq_steps=3, vq_batch=4, vq_width=8)
    dirs = ensure_synthetic_teachers(tiny, cache_dir=cache, progress=False)
    print(json.dumps({"world": fingerprint, **{role: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
                                               for role, d in dirs.items()}}))
""")


@pytest.mark.slow
def test_two_processes_warm_one_empty_cache(cli_env, tmp_path):
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    procs = [subprocess.Popen([sys.executable, "-c", WARM, str(cache), str(me), str(other)], env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me, other in ((a, b), (b, a))]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0] == results[1]  # the same world, the same teachers, byte for byte
    assert len(results[0]["world"]) == 16 and len(results[0]["perceptual"]) == len(results[0]["generative"]) == 64
    # one process pretrained, the other waited for it (or found the teachers done)
    assert sum(err.count("teacher(s) once") for _, err in outs) == 1, [err for _, err in outs]
    # one complete entry per world (the protocol's tiny world and the teachers' corpus), one teacher folder
    worlds = sorted(p for p in (cache / "synthetic").iterdir() if not p.name.endswith(".lock"))
    assert len(worlds) == 2 and all((w / "content.json").is_file() for w in worlds), worlds
    (teachers,) = [p for p in (cache / "teachers").iterdir() if p.is_dir()]
    for role in ("perceptual", "generative"):
        assert {p.name for p in (teachers / role).iterdir()} == {"model.safetensors", "config.json", "pretrain.json"}
    leftovers = [str(p) for p in cache.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
