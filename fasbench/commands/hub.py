"""``fasbench push RUN_DIR hf-hub:ORG/NAME`` and ``fasbench eval hf-hub:ORG/NAME --protocol P``.

**push** uploads, in one commit through ``huggingface_hub`` (``HfApi.create_repo``, then
``create_commit``; ``create_branch`` first for a ``--revision`` other than ``main``):

* ``model.safetensors``: the run's ``student.safetensors`` byte for byte (the student at the
  selected step, the sha256 its record names in ``components.student.saved``);
* ``README.md``: a model card written from the record (method, protocol, task, seed, every
  number with the data it was computed on, its threshold policy and the checkpoint selection,
  the data fingerprint, components and teachers with their weights, versions);
* ``record.json`` and ``scores.csv.gz``: the run's record and per-frame scores, unchanged.

The Hub, token and cache are huggingface_hub's (``HF_ENDPOINT``, ``HF_TOKEN`` or
``hf auth login``).

**eval** scores a pushed student without training: it downloads ``model.safetensors`` (pinned to
the commit the revision resolves to) and the ``record.json`` of that commit, checks that the
file is the student that record reports (sha256), and runs the record's own configuration
(method, student, data and evaluation settings; the data's local places, ``data.cache_dir`` and
``data.roots``, come from this machine) on ``--protocol``/``--tasks`` with
``trainer.max_steps=0`` and ``student.weights=hf-hub:ORG/NAME@COMMIT/model.safetensors``. It
writes normal run records, under ``runs/hub/ORG/NAME`` by default; each names the weights in
``components.student.weights`` (URI, repository, revision, commit, sha256), and its
``selection`` (rule ``last``, step 0) and ``timings.steps`` (0) say nothing was trained.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

MODEL_FILE = "model.safetensors"
CARD_FILE = "README.md"
#: run-configuration keys that name places on the machine that ran it: eval takes this machine's
NON_PORTABLE = (("out",), ("tasks",), ("device",), ("data", "cache_dir"), ("data", "roots"))


# --------------------------------------------------------------------------- parsers


def add_push_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "push", help="upload a run's student, model card and record to the Hugging Face Hub",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("repo", metavar="hf-hub:ORG/NAME", help="the model repository (created if missing)")
    p.add_argument("--revision", help="branch to commit to (default main; created from main if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private (an existing one keeps its visibility)")
    p.add_argument("--message", help="commit message (default: names the run)")
    p.add_argument("--json", action="store_true", help="print what was pushed as JSON")
    p.set_defaults(func=push_main)


def add_eval_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a student pushed to the Hub (no training) and write run records",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("repo", metavar="hf-hub:ORG/NAME[@REVISION]", help="a repository written by fasbench push")
    p.add_argument("--protocol", "-p", required=True, help="registered protocol or ad hoc, e.g. MICO or 'OCI->M'")
    p.add_argument("--tasks", help="only these tasks, by name or target, e.g. M,C")
    p.add_argument("--out", help="runs directory (default: runs/hub/ORG/NAME)")
    p.add_argument("--seed", type=int, help="seed of the records (bootstrap resampling; default: the pushed run's)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    p.set_defaults(func=eval_main, accepts_overrides=True)


# --------------------------------------------------------------------------- helpers


def parse_repo(uri: str, revision: str | None = None) -> tuple[str, str]:
    """``hf-hub:ORG/NAME[@REV]`` -> ``(ORG/NAME, revision)``; no file path allowed."""
    from fasbench import weights

    text = uri if uri.startswith("hf-hub:") else f"hf-hub:{uri}"
    ref = weights.parse_hf_hub(text)
    rest = text[len("hf-hub:"):]
    if ref.filename != weights.DEFAULT_FILENAME or rest.rstrip("/").count("/") > (3 if "@refs/" in rest else 1):
        raise FasbenchError(f"{uri}: give the repository only, hf-hub:ORG/NAME[@REVISION] (the files are fasbench's: "
                            f"{MODEL_FILE}, {CARD_FILE}, record.json, scores.csv.gz)")
    rev = ref.revision
    if revision:
        if "@" in rest and rev != revision:
            raise FasbenchError(f"{uri} names revision {rev!r} and --revision says {revision!r}; give one")
        rev = revision
        weights._check_revision(uri, rev)
    return ref.repo, rev


def _hub_error(exc: BaseException, repo: str, what: str) -> FasbenchError:
    from fasbench.weights import _first_line, _hub_errors, hub_endpoint

    err = _hub_errors()
    status = getattr(getattr(exc, "response", None), "status_code", None)
    endpoint = hub_endpoint()
    if isinstance(exc, err["RepositoryNotFoundError"]):
        return FasbenchError(f"{what}: repository {repo} not found on {endpoint} (if it is private, log in with "
                             "`hf auth login` or set HF_TOKEN)")
    if isinstance(exc, err["RevisionNotFoundError"]):
        return FasbenchError(f"{what}: {_first_line(exc)} ({repo} on {endpoint})")
    if status in (401, 403):
        return FasbenchError(f"{what}: the Hub ({endpoint}) refused it ({status}): log in with `hf auth login` or set "
                             f"HF_TOKEN to a token that may write to {repo}")
    if isinstance(exc, err["HfHubHTTPError"]):
        return FasbenchError(f"{what}: the Hub ({endpoint}) refused it: {_first_line(exc)}")
    return FasbenchError(f"{what}: the Hub ({endpoint}) could not be reached: {_first_line(exc)}")


def _is_hub_failure(exc: BaseException) -> bool:
    from fasbench.weights import _hub_errors

    err = _hub_errors()
    return isinstance(exc, (err["HfHubHTTPError"], err["RepositoryNotFoundError"], err["RevisionNotFoundError"])) or \
        type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "requests", "urllib3"} or isinstance(exc, ConnectionError)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def model_card(rec: Any, saved: dict[str, Any], files: dict[str, bytes], repo: str = "ORG/NAME") -> str:
    """The README.md of a pushed student, from its record (every number with its data,
    threshold policy and checkpoint selection)."""
    import hashlib

    from fasbench.records import SOURCE_VAL_THRESHOLD, TARGET_EER_THRESHOLD

    sel, task, comps = rec.selection, rec.task, rec.components
    metrics = list(rec.metric_names)
    tags = ["fasbench", "face-anti-spoofing", f"method-{rec.method}", f"protocol-{rec.protocol}"]
    front = ["---", "library_name: fasbench", "pipeline_tag: image-classification", "tags:"]
    front += [f"- {json.dumps(t)}" for t in tags] + ["---", ""]
    src = "+".join(task.sources)
    title = f"# {rec.method} student: {rec.protocol}, task {task.name} (seed {rec.seed})"
    lines = [title, "",
             f"A face anti-spoofing student ({comps.student.name}) trained by the **{rec.method}** method on source domain(s) "
             f"{', '.join(task.sources)} and tested on the unseen domain {task.target}, with fasbench "
             f"{rec.versions.get('fasbench', '?')} (git commit {rec.git.commit or 'unknown'}"
             f"{', uncommitted changes' if rec.git.dirty else ''}). Output: the live probability "
             "(softmax of the student's two logits, class 1 = live).", ""]
    rows = [("source-val split (" + src + ")", "its own EER threshold (source data)", rec.val)]
    if SOURCE_VAL_THRESHOLD in rec.target:
        rows.append((f"target {task.target}", "source-val threshold (deployable)", rec.target[SOURCE_VAL_THRESHOLD]))
    if TARGET_EER_THRESHOLD in rec.target:
        rows.append((f"target {task.target}", "target's own EER threshold (idealized: reads target labels)",
                     rec.target[TARGET_EER_THRESHOLD]))
    lines += ["## Numbers", "",
              f"Percent, {rec.val.level} level (frame scores averaged per video), {rec.precision} training. "
              f"Checkpoint: step {sel.selected_step} of {sel.candidates or [sel.selected_step]}, selected by rule "
              f"`{sel.rule}`" + (f" on `{sel.metric}`" if sel.metric else "") + f" reading {sel.data} data"
              + (" (**uses target labels**)" if sel.uses_target_labels else " (no target labels)") + ".", "",
              "| data | threshold | " + " | ".join(metrics) + " | threshold value | videos (live/spoof) |",
              "|---|---|" + "---|" * len(metrics) + "---|---|"]
    for data, policy, b in rows:
        cells = []
        for m in metrics:
            ci = b.ci.get(m)
            cells.append(_pct(b.metrics.get(m)) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""))
        lines.append(f"| {data} | {policy} | " + " | ".join(cells) + f" | {b.threshold:.6g} | {b.n_videos} ({b.n_live}/{b.n_spoof}) |")
    ci_m = next((b.ci_method for _, _, b in rows if b.ci_method), None)
    if ci_m:
        lines += ["", "Brackets: bootstrap interval over videos (" + ", ".join(f"{k} {v}" for k, v in ci_m.items()) + ")."]
    d = rec.data
    lines += ["", "## Data", "",
              f"- dataset `{d.dataset}`, content fingerprint `{d.fingerprint}`",
              *(f"- {role}: splits {', '.join(s)}" for role, s in d.splits.items()),
              *(f"- frames {role}: {n}" for role, n in d.frames.items())]
    lines += ["", "## Components", ""]
    for role in ("method", "student", "aligner", "dataset", "protocol"):
        c = getattr(comps, role)
        w = f", weights {c.weights.uri} (sha256 {c.weights.sha256})" if c.weights is not None and c.weights.uri else ""
        lines.append(f"- {role}: `{c.name}` v{c.version}, plugin {c.plugin or '?'}{w}")
    for t in comps.teachers:
        w = f", weights {t.weights.uri} (sha256 {t.weights.sha256})" if t.weights is not None and t.weights.uri else ""
        lines.append(f"- teacher: `{t.name}` v{t.version}, plugin {t.plugin or '?'}, kind {t.kind or '?'}{w}")
    crop = rec.config.get("data", {}).get("crop_size")
    lines += ["", "## Use", "",
              f"Input: an RGB face crop in [0, 1], centre-cropped to {crop}x{crop} (the student normalises it itself). "
              f"Decide live when the probability is at least {rec.val.threshold:.6g}, the threshold chosen on the "
              "source-val split (no target data).", "", "```",
              f"fasbench eval hf-hub:{repo} --protocol " + json.dumps(rec.protocol) + f" --tasks {task.target}"
              "   # the numbers above again, no training",
              "fasbench predict RUN_DIR face.jpg   # after eval: RUN_DIR is the run directory it prints", "```", "",
              "## Files", "", "| file | sha256 |", "|---|---|"]
    for name, blob in files.items():
        lines.append(f"| {name} | `{hashlib.sha256(blob).hexdigest()}` |")
    lines += ["", f"`{MODEL_FILE}` is `{saved['file']}` of the run (the student at step {saved['step']}); `record.json` is the "
              "run record (config, versions, curve, every number); `scores.csv.gz` holds the per-frame scores the numbers "
              "come from (`fasbench score` recomputes them).", ""]
    return "\n".join(front + lines)


# --------------------------------------------------------------------------- push


def push_main(args: argparse.Namespace) -> int:
    from fasbench.inference import read_run_record, saved_student, student_file
    from fasbench.weights import hub_endpoint, sha256_file

    repo, revision = parse_repo(args.repo, args.revision)
    rec = read_run_record(args.run_dir)
    saved = saved_student(rec)
    run_dir = Path(rec.source).parent
    files: dict[str, bytes] = {MODEL_FILE: student_file(rec).read_bytes()}
    files["record.json"] = Path(rec.source).read_bytes()
    if rec.scores is not None:
        sp = run_dir / rec.scores.file
        if not sp.is_file() or sha256_file(sp) != rec.scores.sha256:
            raise FasbenchError(f"{sp}: missing or not the scores file its record names (sha256); run the task again")
        files[rec.scores.file] = sp.read_bytes()
    card = model_card(rec, saved, files, repo).encode("utf-8")
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub_endpoint())
    ops = [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card)]
    ops += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=blob) for name, blob in files.items()]
    message = args.message or f"fasbench push: {rec.method} {rec.protocol} {rec.task.name} seed {rec.seed} (step {saved['step']})"
    try:
        url = api.create_repo(repo, private=bool(args.private), exist_ok=True, repo_type="model")
        if revision != "main":
            api.create_branch(repo, branch=revision, exist_ok=True, repo_type="model")
        info = api.create_commit(repo, ops, commit_message=message, revision=revision, repo_type="model")
    except Exception as exc:
        if not _is_hub_failure(exc):
            raise
        raise _hub_error(exc, repo, f"push to {repo}") from None
    commit = info.oid
    pinned = f"hf-hub:{repo}@{commit}"
    out = {"repo": repo, "revision": revision, "commit": commit, "url": str(url), "uri": pinned,
           "files": {n: len(b) for n, b in {CARD_FILE: card, **files}.items()}, "model_sha256": saved["sha256"]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"pushed {', '.join(out['files'])} to {repo} ({revision}), commit {commit}")
        print(f"  weights: {pinned}/{MODEL_FILE} (sha256 {saved['sha256']})")
        print(f"  evaluate it: fasbench eval {pinned} --protocol {json.dumps(rec.protocol)} --tasks {rec.task.target}")
    return 0


# --------------------------------------------------------------------------- eval


def _download(repo: str, filename: str, commit: str) -> Path:
    """One file of ``repo`` at ``commit`` into the Hugging Face cache (fasbench.weights' settings)."""
    from huggingface_hub import hf_hub_download

    from fasbench.weights import _Offline, hub_cache_dir, hub_endpoint, hub_offline

    offline = hub_offline()
    try:
        with _Offline(offline):
            return Path(hf_hub_download(repo_id=repo, filename=filename, revision=commit, cache_dir=hub_cache_dir(),
                                        endpoint=hub_endpoint(), local_files_only=offline))
    except Exception as exc:
        from fasbench.weights import _hub_errors

        err = _hub_errors()
        if isinstance(exc, err["EntryNotFoundError"]):
            raise FasbenchError(f"hf-hub:{repo}@{commit} has no {filename}; it was not written by fasbench push") from None
        if isinstance(exc, (err["LocalEntryNotFoundError"], err["OfflineModeIsEnabled"])):
            raise FasbenchError(f"hf-hub:{repo}@{commit}/{filename} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                                "the Hub cannot be asked (HF_HUB_OFFLINE or no connection)") from None
        if not _is_hub_failure(exc) and not isinstance(exc, OSError):
            raise
        raise _hub_error(exc, repo, f"download of {filename}") from None


def _drop(cfg: dict[str, Any], keys: tuple[str, ...]) -> None:
    node = cfg
    for k in keys[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(keys[-1], None)


def eval_config(rec: Any, weights_uri: str, args: argparse.Namespace) -> Any:
    """The pushed run's config for an evaluation of ``weights_uri`` on this machine."""
    import copy

    from omegaconf import OmegaConf

    from fasbench import config as fconfig

    cfg = copy.deepcopy(rec.config)
    for keys in NON_PORTABLE:
        _drop(cfg, keys)
    # keys this fasbench has and the pushed run's did not (added later) take their defaults
    method, data = (cfg.get("method") or {}).get("name"), (cfg.get("data") or {}).get("name")
    try:
        base = fconfig.compose([f"method={method}", f"data={data}"], check=False)
    except FasbenchError as exc:
        raise FasbenchError(f"the pushed run used method {method!r} on dataset {data!r}, which this fasbench cannot compose "
                            f"(install the plugin that provides it): {exc}") from None
    base = OmegaConf.to_container(base, resolve=True)
    for keys in NON_PORTABLE[:3]:
        _drop(base, keys)
    cfg = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(cfg)), resolve=True)
    cfg["protocol"] = args.protocol
    cfg["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    cfg["seed"] = int(args.seed) if args.seed is not None else int(rec.seed)
    cfg["device"] = args.device or "auto"
    cfg["out"] = args.out or str(Path("runs") / "hub" / weights_uri.split(":", 1)[1].split("@", 1)[0])
    cfg["trainer"]["max_steps"] = 0
    cfg["eval"]["checkpoint"] = "last"  # nothing to select among: the pushed student is the one evaluated
    cfg["student"]["weights"] = weights_uri
    if "pretrained" in cfg["student"]:
        cfg["student"]["pretrained"] = False
    conf = OmegaConf.create(cfg)
    for item in args.overrides or []:
        key, sep, value = item.lstrip("+").partition("=")
        if not sep or not key:
            raise FasbenchError(f"override {item!r}: write key=value, e.g. data.roots.M=/data/MSU-MFSD")
        OmegaConf.update(conf, key, OmegaConf.from_dotlist([f"v={value}"]).v, force_add=True)
    try:
        return fconfig.check_config(conf)
    except FasbenchError as exc:
        raise FasbenchError(f"the configuration of the pushed run does not fit this fasbench: {exc}") from None


def eval_main(args: argparse.Namespace) -> int:
    from fasbench import weights
    from fasbench.engine.run import dump_json, resolve_protocol, results_table, run_protocol
    from fasbench.records import read_record

    repo, revision = parse_repo(args.repo)
    resolve_protocol(args.protocol)  # an unknown protocol fails before any download
    resolved = weights.resolve(f"hf-hub:{repo}@{revision}/{MODEL_FILE}", progress=not args.no_progress)
    commit = resolved.commit or revision
    rec = read_record(_download(repo, "record.json", commit))
    saved = (rec.components.student.model_extra or {}).get("saved") or {}
    if saved.get("sha256") != resolved.sha256:
        raise FasbenchError(f"hf-hub:{repo}@{commit}: {MODEL_FILE} (sha256 {resolved.sha256[:12]}...) is not the student its "
                            f"record.json reports (sha256 {str(saved.get('sha256'))[:12]}...); push the run again")
    if saved.get("predict") == "method":
        raise FasbenchError(f"hf-hub:{repo}@{commit}: method {rec.method!r} overrides predict(); its student alone does not "
                            "give the scores its record reports")
    uri = f"hf-hub:{repo}@{commit}/{MODEL_FILE}"
    cfg = eval_config(rec, uri, args)
    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
    echo(f"evaluating {uri} (sha256 {resolved.sha256[:12]}..., {rec.method} {rec.protocol} {rec.task.name} seed {rec.seed}, "
         f"step {saved.get('step')}); nothing is trained")
    records = run_protocol(cfg, progress=not args.no_progress, echo=echo)
    if args.json:
        print(dump_json(records))
    else:
        print()
        print(f"{repo}@{commit[:12]} ({rec.method} student, not trained here) on {records[0].protocol if records else args.protocol}"
              f" ({cfg.data.name}); metrics in %")
        print(results_table(records))
        print(f"\nrecords under {cfg.out}/")
    return 0
