"""``fasbench data check`` and ``fasbench data prepare``: the user's copies of the real datasets
(every dataset registered with a ``real=`` spec, built-in or plugin); ``fasbench data verify``:
the content hashes of every frame cache (synthetic worlds and prepared real data)."""
from __future__ import annotations

import argparse
import json
import sys


def _registered() -> str:
    """``msu_mfsd|M, casia_fasd|C, ...``: the registered real datasets (at help time only)."""
    try:
        from fasbench.data import indexers

        listed = ", ".join(f"{s.name}|{s.letter}" for s in indexers.specs())
    except Exception:  # a broken plugin set must not break --help; `fasbench ls datasets` says why
        listed = ""
    return listed or "see `fasbench ls datasets`"


class _HelpWithDatasets(argparse.HelpFormatter):
    """Fills ``{datasets}`` in a description with the registered real datasets, so the list
    is built only when the help is printed."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("{datasets}", _registered()) if "{datasets}" in text else text)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="check and prepare your copies of the real datasets; verify the frame caches", formatter_class=_HelpWithDatasets,
        description="Real FAS datasets in their official layout (docs/datasets.md): {datasets}. Roots come from "
                    "--root, data.roots.X=PATH, FASBENCH_ROOT_X, or the user config file.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="index a dataset and compare its counts with the official ones",
                       formatter_class=_HelpWithDatasets,
                       description="Index DATASET (a registered real dataset, by name or domain letter: {datasets}) "
                                   "and print its counts next to the official counts.")
    c.add_argument("dataset", help="name or domain letter of a registered real dataset")
    c.add_argument("--root", help="the dataset's root folder (default: the configured root)")
    c.add_argument("--probe", action="store_true", help="also open every video (frame counts, unreadable files)")
    c.add_argument("--json", action="store_true", help="print the counts as JSON")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=check_main, accepts_overrides=True)
    r = sub.add_parser("prepare", help="decode, detect/align/crop faces (MTCNN), fill the frame cache",
                       formatter_class=_HelpWithDatasets,
                       description="Sample frames of every video of DATASET ({datasets}; or 'all' configured "
                                   "datasets), crop the faces and write the memory-mapped frame cache `fasbench run` "
                                   "reads. Interrupted runs resume; unreadable videos are reported and skipped. Extra "
                                   "key=value tokens set data options, e.g. data.preprocess.frames_per_video=8 "
                                   "data.preprocess.sampling=evenly (use the same ones with `fasbench run`).")
    r.add_argument("dataset", help="name or domain letter of a registered real dataset, or 'all'")
    r.add_argument("--root", help="the dataset's root folder (default: the configured root)")
    r.add_argument("--workers", type=int, help="worker processes (default: min(4, CPUs) or $FASBENCH_PREPARE_WORKERS)")
    r.add_argument("--json", action="store_true", help="print the preparation summary as JSON")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=prepare_main, accepts_overrides=True)
    v = sub.add_parser("verify", help="rehash every frame cache and compare with the hash written with it",
                       description="Recompute the content hash (sha256 of the pixels and the manifest) of every "
                                   "frame cache entry under the cache root (synthetic worlds and prepared real "
                                   "data) and compare it with the one written when the entry was made "
                                   "(content.json). One line per entry: ok, MODIFIED or no content hash (an entry "
                                   "of older code: its hash is recorded now). Exit status 1 when an entry was "
                                   "modified or is unreadable, else 0.")
    v.add_argument("datasets", nargs="*", metavar="DATASET",
                   help="only these: synthetic, real, or a registered real dataset (name or letter); default: all")
    v.add_argument("--cache-dir", help="the cache root (default: $FASBENCH_CACHE or ~/.cache/fasbench)")
    v.add_argument("--json", action="store_true", help="print one JSON object per entry (a list)")
    v.add_argument("--no-progress", action="store_true", help="no progress bars")
    v.set_defaults(func=verify_main)


def data_config(overrides: list[str]):
    """The ``real`` dataset's config (the defaults of ``RealDataOptions`` with a ``roots`` key per
    registered letter and name) with ``data.key=value`` overrides (the same keys `fasbench run`
    takes), checked against the declared types."""
    from omegaconf import OmegaConf

    from fasbench.data.real_options import RealDataOptions
    from fasbench.data.roots import COMBINED, roots_node
    from fasbench.errors import FasbenchError
    from fasbench.options import validate

    base = OmegaConf.create({**RealDataOptions().model_dump(mode="json"), "name": COMBINED, "roots": roots_node()})
    dots = []
    for tok in overrides:
        key, eq, _ = tok.partition("=")
        if not eq or not key.startswith("data."):
            raise FasbenchError(f"override {tok!r}: `fasbench data` takes data options only, written "
                                f"data.KEY=VALUE (e.g. data.preprocess.frames_per_video=8)")
        dots.append(tok[len("data."):])
    try:
        OmegaConf.set_struct(base, True)
        cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(dots))
    except Exception as exc:
        raise FasbenchError(f"bad data override ({str(exc).splitlines()[0]}); keys are those of `fasbench ls "
                            "datasets real`, e.g. data.preprocess.size=224, and data.roots.<letter or "
                            "name> of a registered real dataset") from None
    validate(RealDataOptions, cfg, "data")
    return cfg


def _root(name: str, cfg, explicit):
    from fasbench.data import indexers
    from fasbench.data.roots import missing_message, resolve
    from fasbench.errors import FasbenchError

    s = indexers.spec(name)
    root, where = resolve(s.name, cfg.get("roots"), explicit)
    if root is None:
        raise FasbenchError(missing_message([s.letter], f"fasbench data {s.name}", synthetic_hint=False).replace(
            "data.roots.", "--root PATH, data.roots.", 1))
    return s, root, where


def check_main(args) -> int:
    from tabulate import tabulate

    from fasbench.data import indexers

    cfg = data_config(list(args.overrides))
    s, root, where = _root(args.dataset, cfg, args.root)
    res = indexers.index(s.name, root, probe=args.probe, progress=not args.no_progress)
    found = indexers.counts(res.videos)
    rows = indexers.compare(found, s.official)
    diffs = [r for r in rows if not r["ok"]]
    unreadable = res.videos.loc[res.videos["error"] != "", ["path", "error"]].values.tolist() if args.probe else []
    if args.json:
        out = {**found, "dataset": s.name, "domain": s.letter, "title": s.title, "plugin": s.plugin,
               "root": str(root), "layout": s.layout, "official": dict(s.official), "differences": diffs,
               "unrecognised": res.unrecognised, "excluded": res.excluded, "notes": res.notes}
        if args.probe:
            out["frames"] = int(res.videos["n_frames"].sum())
            out["unreadable"] = [{"path": p, "reason": e} for p, e in unreadable]
        print(json.dumps(out, indent=2))
        return 0
    print(f"{s.title} ({s.name}, domain {s.letter}" + (f", plugin {s.plugin}" if s.plugin != "fasbench" else "")
          + f") at {root} ({where})")
    print(tabulate([[r["what"], r["found"], r["official"], "ok" if r["ok"] else "DIFFERS"] for r in rows],
                   headers=["count", "found", "official", ""], tablefmt="simple"))
    for k, v in res.excluded.items():
        print(f"excluded by the protocol: {v} {k} video(s)")
    for n in res.notes:
        print(f"note: {n}")
    if res.unrecognised:
        print(f"{len(res.unrecognised)} video file(s) do not follow the official naming ({s.layout}) and were "
              "not indexed:")
        for p in res.unrecognised[:20]:
            print(f"  {p}")
        if len(res.unrecognised) > 20:
            print(f"  ... and {len(res.unrecognised) - 20} more")
    for p, e in unreadable:
        print(f"unreadable: {p}: {e}")
    if diffs:
        print(f"\n{len(diffs)} count(s) differ from the official ones: "
              + ", ".join(f"{r['what']} {r['found']} (official {r['official']})" for r in diffs[:6])
              + (" ..." if len(diffs) > 6 else ""))
    else:
        print("\nall counts match the official ones")
    return 0


def prepare_main(args) -> int:
    from fasbench.data import indexers
    from fasbench.data.real_dataset import prepare_one
    from fasbench.data.roots import configured
    from fasbench.errors import FasbenchError

    cfg = data_config(list(args.overrides))
    if args.dataset.lower() in ("all", "real"):
        if args.root:
            raise FasbenchError("--root names one dataset's folder; give the dataset too, e.g. "
                                "`fasbench data prepare M --root PATH`")
        letters = list(configured(cfg.get("roots")))
        if not letters:
            raise FasbenchError("no dataset root is configured; name a dataset and its --root, or set "
                                "FASBENCH_ROOT_<LETTER>=... (docs/datasets.md)")
    else:
        letters = [indexers.spec(args.dataset).letter]
    if args.workers is not None and args.workers < 1:
        raise FasbenchError(f"--workers {args.workers}: give at least 1")
    summaries = []
    for L in letters:
        s, root, _ = _root(L, cfg, args.root)
        _, got = prepare_one(L, cfg, root, progress=not args.no_progress, workers=args.workers)
        summaries.append(got.summary)
        if not args.json:
            sm = got.summary
            print(f"{s.name}: {sm['prepared']}/{sm['videos']} videos, {sm['frames']} frames, "
                  f"{sm['faces_found']} with a face, {sm['no_face_frames']} without (fallback: "
                  f"{sm['fallbacks'] or 'none needed'}), {len(sm['skipped'])} skipped"
                  + (f", {sm['resumed']} already done" if sm["resumed"] else "") + f"\n  cache: {sm['cache']}")
            for sk in sm["skipped"]:
                print(f"  skipped {sk['path']}: {sk['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    return 0


def _cache_entries(root, wanted: list[str]) -> list[tuple[str, str, object]]:
    """``(kind, dataset, entry)`` of every cache entry under ``root`` that ``wanted`` selects:
    ``synthetic/<key>`` and ``real/<dataset>/<key>`` (hidden temp folders left out)."""
    from fasbench.errors import FasbenchError

    def dirs(path):
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) if path.is_dir() else []

    real = {d.name: d for d in dirs(root / "real")}
    kinds, names = set(), set()
    for w in wanted:
        if w.lower() in ("synthetic", "real"):
            kinds.add(w.lower())
            continue
        name = w if w in real else None
        if name is None:
            try:
                from fasbench.data import indexers

                name = indexers.spec(w).name
            except FasbenchError:
                raise FasbenchError(f"data verify: no dataset {w!r}; give synthetic, real, or a registered real dataset "
                                    f"(name or letter: {_registered()})") from None
        names.add(name)
    everything = not wanted
    out = []
    if everything or "synthetic" in kinds:
        out += [("synthetic", "synthetic", e) for e in dirs(root / "synthetic")]
    for name, d in real.items():
        if everything or "real" in kinds or name in names:
            out += [("real", name, e) for e in dirs(d)]
    return out


def verify_main(args) -> int:
    from tqdm import tqdm

    from fasbench.data import prepare, synthetic
    from fasbench.util import cache_root

    root = cache_root(args.cache_dir)
    entries = _cache_entries(root, list(args.datasets))
    results = []
    labels = {"ok": "ok", "modified": "MODIFIED", "no-hash": "no content hash", "unreadable": "UNREADABLE",
              "incomplete": "incomplete"}
    for kind, dataset, entry in entries:
        size = sum(p.stat().st_size for p in entry.glob("images*.npy"))
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"{dataset} {entry.name[:12]}", leave=False,
                  disable=True if args.no_progress else None, file=sys.stderr) as bar:
            check = synthetic.verify_entry if kind == "synthetic" else prepare.verify_entry
            res = check(entry, progress=bar.update)
        results.append({"entry": str(entry), "kind": kind, "dataset": dataset, **res})
        if not args.json:
            print(f"{labels[res['status']]:<15}  {entry}  {res['message']}", flush=True)
    bad = [r for r in results if r["status"] in ("modified", "unreadable")]
    if args.json:
        print(json.dumps(results, indent=2))
    elif not results:
        print(f"no frame cache under {root}" + (f" for {' '.join(args.datasets)}" if args.datasets else ""))
    else:
        counts = {labels[k]: sum(r["status"] == k for r in results) for k in labels}
        print(f"{len(results)} cache entr{'y' if len(results) == 1 else 'ies'} under {root}: "
              + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return 1 if bad else 0
