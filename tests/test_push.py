"""fasbench push / eval against a fake Hub on 127.0.0.1 that serves the endpoints huggingface_hub
really calls (create repo, branch, YAML check, preupload, LFS batch + upload + verify, NDJSON
commit; downloads through /resolve): what is pushed downloads byte for byte, the model card
carries the record's numbers, and an evaluation of the pushed student without training gives
the original run's numbers exactly."""
from __future__ import annotations

import hashlib
import json

import pytest
from fakehub import fake_hub  # noqa: F401  (a fixture)
from trained import train_tiny_run

from fasbench import cli
from fasbench.records import read_record


@pytest.fixture(scope="module")
def run(module_tmp):
    return train_tiny_run(module_tmp("push"))


@pytest.fixture
def hub(fake_hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
    return fake_hub


def call(capsys, *args):
    rc = cli.main([*map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def push(capsys, run, repo="org/tiny-erm", *extra):
    rc, out, err = call(capsys, "push", run.run_dir, f"hf-hub:{repo}", "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


def test_push_uploads_through_the_real_client_and_downloads_byte_for_byte(run, hub, capsys, tmp_path):
    from huggingface_hub import hf_hub_download

    info = push(capsys, run)
    calls = [c for c in hub.api_requests() if c[1] != "/api/agent-harnesses"]
    assert calls[0] == ("POST", "/api/repos/create")
    assert ("POST", "/api/validate-yaml") in calls
    assert ("POST", "/api/models/org/tiny-erm/preupload/main") in calls
    assert ("POST", "/org/tiny-erm.git/info/lfs/objects/batch") in calls  # the .safetensors and .gz are LFS files
    assert calls[-1] == ("POST", "/api/models/org/tiny-erm/commit/main")
    assert info["commit"] == hub.commit_of("org/tiny-erm", "main")
    on_hub = hub.files("org/tiny-erm")
    assert set(on_hub) == {".gitattributes", "README.md", "model.safetensors", "record.json", "scores.csv.gz"}
    local = {"model.safetensors": run.run_dir / "student.safetensors", "record.json": run.run_dir / "record.json",
             "scores.csv.gz": run.run_dir / "scores.csv.gz"}
    for name, path in local.items():  # downloaded with the real client: the run's files, byte for byte
        got = hf_hub_download("org/tiny-erm", name, revision=info["commit"], cache_dir=str(tmp_path / "cache"))
        assert open(got, "rb").read() == path.read_bytes(), name
    saved = run.record.components.student.model_extra["saved"]
    assert hashlib.sha256(on_hub["model.safetensors"]).hexdigest() == saved["sha256"] == info["model_sha256"]


def test_model_card_states_the_numbers_with_their_policy_and_selection(run, hub, capsys, tmp_path):
    from huggingface_hub import hf_hub_download

    push(capsys, run)
    card = open(hf_hub_download("org/tiny-erm", "README.md", cache_dir=str(tmp_path / "c")), encoding="utf-8").read()
    rec = run.record
    assert card.startswith("---\nlibrary_name: fasbench\n")
    assert f"# erm student: {rec.protocol}, task {rec.task.name} (seed 0)" in card
    sv, te = rec.target["source-val-threshold"], rec.target["target-eer-threshold"]
    rows = {ln.split(" | ")[1]: ln for ln in card.splitlines() if ln.startswith("| ") and " | " in ln}
    sv_row, te_row, val_row = (rows["source-val threshold (deployable)"],
                               rows["target's own EER threshold (idealized: reads target labels)"],
                               rows["its own EER threshold (source data)"])
    for row, block in ((sv_row, sv), (te_row, te), (val_row, rec.val)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        for j, name in enumerate(rec.metric_names):
            value = block.metrics[name]
            assert cells[2 + j].startswith("—" if value is None else f"{value:.2f}"), (name, cells)
        assert cells[2 + len(rec.metric_names)] == f"{block.threshold:.6g}"
    sel = rec.selection
    assert f"Checkpoint: step {sel.selected_step} of {sel.candidates}, selected by rule `source-val` on `val/EER` " \
           "reading source-val data (no target labels)" in card
    assert f"content fingerprint `{rec.data.fingerprint}`" in card
    assert "- student: `timm/resnet18` v1, plugin fasbench" in card and "- method: `erm` v1, plugin baselines" in card
    assert f'fasbench eval hf-hub:org/tiny-erm --protocol "{rec.protocol}" --tasks I' in card
    assert f"| model.safetensors | `{rec.components.student.model_extra['saved']['sha256']}` |" in card


def test_push_to_a_branch_of_a_private_repository(run, hub, capsys, monkeypatch):
    info = push(capsys, run, "org/private-erm", "--revision", "v1", "--private")
    assert hub.is_private("org/private-erm") and info["revision"] == "v1"
    assert "model.safetensors" in hub.files("org/private-erm", "v1")
    assert "model.safetensors" not in hub.files("org/private-erm", "main")  # main keeps only .gitattributes
    monkeypatch.delenv("HF_TOKEN")
    rc, out, err = call(capsys, "weights", "pull", "hf-hub:org/private-erm@v1", "--no-progress")
    assert rc == 2 and "not found" in err  # private: served only with a token


def test_push_without_a_token_is_one_line(run, fake_hub, capsys):  # noqa: F811
    rc, out, err = call(capsys, "push", run.run_dir, "hf-hub:org/x")
    assert rc == 2 and err.count("\n") == 1
    assert "log in with `hf auth login` or set HF_TOKEN" in err and "(401)" in err
    rc, out, err = call(capsys, "push", run.run_dir, "hf-hub:org/x/sub/model.safetensors")
    assert rc == 2 and "give the repository only, hf-hub:ORG/NAME[@REVISION]" in err


@pytest.mark.slow
def test_eval_of_the_pushed_student_gives_the_runs_numbers(run, hub, capsys, tmp_path):
    info = push(capsys, run)
    out_dir = tmp_path / "evals"
    rc, out, err = call(capsys, "eval", f"hf-hub:org/tiny-erm@{info['revision']}", "--protocol", "MC->I",
                        "--out", out_dir, "--no-progress", f"data.cache_dir={run.cache}")
    assert rc == 0, err
    (path,) = list(out_dir.rglob("record.json"))
    ev, orig = read_record(path), run.record
    # same data, same weights: every number and every per-frame score is the original's
    assert ev.data.fingerprint == orig.data.fingerprint
    assert ev.val == orig.val and ev.target == orig.target
    assert ev.scores.sha256 == orig.scores.sha256
    # provenance: the weights came from the Hub, pinned to the pushed commit; nothing was trained
    w = ev.components.student.weights
    assert (w.uri, w.sha256) == (f"hf-hub:org/tiny-erm@{info['commit']}/model.safetensors", info["model_sha256"])
    assert (w.model_extra["repo"], w.model_extra["commit"]) == ("org/tiny-erm", info["commit"])
    assert ev.config["trainer"]["max_steps"] == 0 and ev.timings["steps"] == 0
    assert (ev.selection.rule, ev.selection.selected_step, ev.selection.uses_target_labels) == ("last", 0, False)
    assert ev.config_hash != orig.config_hash  # its own leaderboard row, never merged with trained runs


def test_eval_refuses_weights_that_are_not_the_records(run, hub, capsys):
    info = push(capsys, run)
    hub.publish_bytes("org/tiny-erm", (run.run_dir / "student.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    rc, out, err = call(capsys, "eval", "hf-hub:org/tiny-erm", "--protocol", "MC->I", "--no-progress")
    assert rc == 2 and err.count("\n") == 1 and "is not the student its record.json reports" in err
    assert info["commit"] != hub.commit_of("org/tiny-erm")
