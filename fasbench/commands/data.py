"""``fasbench data check``, ``prepare`` and ``preview``: the user's copies of the real datasets
(every dataset registered with a ``real=`` spec, built-in or plugin) and their prepared crops;
``fasbench data verify``: the content hashes of every frame cache (synthetic worlds and prepared real data)."""
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
        "data", help="check, prepare and preview your copies of the real datasets; verify the frame caches",
        formatter_class=_HelpWithDatasets,
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
    c.add_argument("--strict", action="store_true",
                   help="exit 1 when a count differs from the official one, a video is unreadable (--probe) or the "
                        "prepared cache flags a video without a face (--probe); one line per problem on stderr")
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
    r.add_argument("--strict", action="store_true",
                   help="exit 1 when a video was flagged (no face in most sampled frames) or skipped, or a count "
                        "differs from the official one; one line per problem on stderr")
    r.set_defaults(func=prepare_main, accepts_overrides=True)
    w = sub.add_parser("preview", help="a contact sheet (PNG) of prepared face crops, per domain and live / attack type",
                       formatter_class=_HelpWithDatasets,
                       description="Write a PNG of prepared crops of DATASET ({datasets}; or 'all' configured "
                                   "datasets) from the frame cache (prepared first when missing, unless "
                                   "data.auto_prepare=false): one labelled row block per domain x live / attack type, "
                                   "N crops each, sampled deterministically, fallback crops (no face found) framed in "
                                   "red. Look at it before training: are the crops upright, centred and tight? Extra "
                                   "key=value tokens set data options (the same data.preprocess.* as `data prepare`).")
    w.add_argument("dataset", nargs="+", metavar="DATASET",
                   help="name or domain letter of a registered real dataset (several, or 'all')")
    w.add_argument("--split", help="only this official split (train, dev or test; default: every split)")
    w.add_argument("--n", type=int, default=8, help="crops per domain x type (default: 8)")
    w.add_argument("--out", help="the PNG to write (default: preview-<dataset>[-<split>].png in the current folder)")
    w.add_argument("--root", help="the dataset's root folder (one dataset; default: the configured root)")
    w.add_argument("--tile", type=int, default=96, help="side of each crop on the sheet, in pixels (default: 96)")
    w.add_argument("--seed", type=int, default=0, help="seed of the sample of crops (default: 0)")
    w.add_argument("--json", action="store_true", help="print the path, the groups and their counts as JSON")
    w.add_argument("--no-progress", action="store_true", help="no progress bars")
    w.set_defaults(func=preview_main, accepts_overrides=True)
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


def _strict(problems: list[str], strict: bool) -> int:
    """``--strict``: one line per problem on stderr and exit status 1; else 0."""
    if not strict or not problems:
        return 0
    for p in problems:
        print(f"strict: {p}", file=sys.stderr)
    return 1


def _count_problems(name: str, diffs: list[dict]) -> list[str]:
    return [f"{name}: {r['what']} {r['found']} found, official {r['official']}" for r in diffs]


def _prepared_state(s, cfg, videos) -> dict:
    """What the frame cache says about the videos of ``data check --probe``: the entry that
    ``data prepare`` with the same data.preprocess.* options makes, and its flagged videos."""
    from fasbench.data.real_dataset import no_face_videos, prepared_entry

    entry, got = prepared_entry(s.letter, cfg, videos)
    if got is None:
        others = sorted(p.name for p in entry.parent.glob("*/summary.json")) if entry.parent.is_dir() else []
        return {"status": "not prepared yet", "cache": str(entry), "other_entries": len(others), "no_face_videos": None}
    return {"status": "prepared", "cache": str(entry), "no_face_videos": no_face_videos(got.summary, got.videos)}


def check_main(args) -> int:
    from tabulate import tabulate

    from fasbench.data import indexers
    from fasbench.data.real_dataset import describe_no_face

    cfg = data_config(list(args.overrides))
    s, root, where = _root(args.dataset, cfg, args.root)
    res = indexers.index(s.name, root, probe=args.probe, progress=not args.no_progress)
    found = indexers.counts(res.videos)
    rows = indexers.compare(found, s.official)
    diffs = [r for r in rows if not r["ok"]]
    unreadable = res.videos.loc[res.videos["error"] != "", ["path", "error"]].values.tolist() if args.probe else []
    cache = _prepared_state(s, cfg, res.videos) if args.probe else None
    flagged = (cache or {}).get("no_face_videos") or []
    problems = (_count_problems(s.name, diffs) + [f"{s.name}: unreadable {p}: {e}" for p, e in unreadable]
                + [f"{s.name}: flagged {describe_no_face(v)}" for v in flagged])
    if args.json:
        out = {**found, "dataset": s.name, "domain": s.letter, "title": s.title, "plugin": s.plugin,
               "root": str(root), "layout": s.layout, "official": dict(s.official), "differences": diffs,
               "unrecognised": res.unrecognised, "excluded": res.excluded, "notes": res.notes}
        if args.probe:
            out["frames"] = int(res.videos["n_frames"].sum())
            out["unreadable"] = [{"path": p, "reason": e} for p, e in unreadable]
            out["prepared"] = cache
        print(json.dumps(out, indent=2))
        return _strict(problems, args.strict)
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
    if cache is not None and cache["status"] != "prepared":
        hint = (f" ({cache['other_entries']} other entr{'y' if cache['other_entries'] == 1 else 'ies'} of {s.name} "
                "exist: pass the data.preprocess.* options they were prepared with)" if cache["other_entries"] else "")
        print(f"frame cache: not prepared yet for these videos and data.preprocess options{hint}; "
              f"`fasbench data prepare {s.name}` flags videos without a face")
    elif cache is not None:
        print(f"frame cache: {cache['cache']}: " + (f"{len(flagged)} video(s) flagged, no face in most sampled frames "
              f"(`fasbench data preview {s.name}` shows their crops framed in red):" if flagged else "no video flagged "
              "(a face was found in most sampled frames of every video)"))
        for v in flagged:
            print(f"  {describe_no_face(v)}")
    if diffs:
        print(f"\n{len(diffs)} count(s) differ from the official ones: "
              + ", ".join(f"{r['what']} {r['found']} (official {r['official']})" for r in diffs[:6])
              + (" ..." if len(diffs) > 6 else ""))
    else:
        print("\nall counts match the official ones")
    return _strict(problems, args.strict)


def _letters(dataset: list[str] | str, cfg, root) -> list[str]:
    """The domain letters of DATASET arguments: names or letters, or 'all' (every configured root)."""
    from fasbench.data import indexers
    from fasbench.data.roots import configured
    from fasbench.errors import FasbenchError

    names = [dataset] if isinstance(dataset, str) else list(dataset)
    if any(n.lower() in ("all", "real") for n in names):
        if root:
            raise FasbenchError("--root names one dataset's folder; give the dataset too, e.g. "
                                "`fasbench data prepare M --root PATH`")
        letters = list(configured(cfg.get("roots")))
        if not letters:
            raise FasbenchError("no dataset root is configured; name a dataset and its --root, or set "
                                "FASBENCH_ROOT_<LETTER>=... (docs/datasets.md)")
        return letters
    letters = list(dict.fromkeys(indexers.spec(n).letter for n in names))
    if root and len(letters) > 1:
        raise FasbenchError(f"--root names one dataset's folder, and {len(letters)} datasets were given; "
                            "configure the others' roots (FASBENCH_ROOT_<LETTER>=..., docs/datasets.md)")
    return letters


def _prepared_line(name: str, sm: dict) -> str:
    what = (f"{name}: reused the prepared frame cache" + (" (after waiting for another process)" if sm.get("waited") else "")
            + f", {sm['prepared']}/{sm['videos']} videos" if sm.get("reused") else
            f"{name}: prepared {sm['prepared']}/{sm['videos']} videos"
            + (f" ({sm['resumed']} of them before an interruption)" if sm["resumed"] else ""))
    return (f"{what}, {sm['frames']} frames, {sm['faces_found']} with a face, {sm['no_face_frames']} without (fallback: "
            f"{sm['fallbacks'] or 'none needed'}), {len(sm['skipped'])} skipped\n  cache: {sm['cache']}")


def prepare_main(args) -> int:
    from fasbench.data import indexers
    from fasbench.data.real_dataset import describe_no_face, no_face_videos, prepare_one
    from fasbench.errors import FasbenchError

    cfg = data_config(list(args.overrides))
    letters = _letters(args.dataset, cfg, args.root)
    if args.workers is not None and args.workers < 1:
        raise FasbenchError(f"--workers {args.workers}: give at least 1")
    summaries, problems = [], []
    for L in letters:
        s, root, _ = _root(L, cfg, args.root)
        res, got = prepare_one(L, cfg, root, progress=not args.no_progress, workers=args.workers)
        sm = got.summary
        summaries.append(sm)
        flagged = no_face_videos(sm, got.videos)
        problems += _count_problems(s.name, [r for r in indexers.compare(indexers.counts(res.videos), s.official) if not r["ok"]])
        problems += [f"{s.name}: skipped {sk['path']}: {sk['reason']}" for sk in sm["skipped"]]
        problems += [f"{s.name}: flagged {describe_no_face(v)}" for v in flagged]
        if not args.json:
            print(_prepared_line(s.name, sm))
            if flagged:
                print(f"  {len(flagged)} video(s) flagged: no face found in most sampled frames (their crops are "
                      f"fallbacks; listed as no_face_videos in {sm['cache']}/summary.json and by `fasbench data prepare "
                      f"{s.name} --json`; see them framed in red with `fasbench data preview {s.name}`):")
                for v in flagged[:10]:
                    print(f"    {describe_no_face(v)}")
                if len(flagged) > 10:
                    print(f"    ... and {len(flagged) - 10} more")
            for sk in sm["skipped"]:
                print(f"  skipped {sk['path']}: {sk['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    return _strict(problems, args.strict)


class _Subset:
    """Frames ``index`` of ``images`` (memory-mapped caches stay unread until a tile is drawn)."""

    def __init__(self, images, index) -> None:
        self.images, self.index = images, [int(i) for i in index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.images[self.index[i]]


def preview_main(args) -> int:
    import types

    import numpy as np
    import pandas as pd

    from fasbench.data import indexers
    from fasbench.data.preview import contact_sheet, fallback_flags, write_png
    from fasbench.data.real_dataset import StackedFrames, frame_manifest, prepare_one
    from fasbench.errors import FasbenchError

    cfg = data_config(list(args.overrides))
    if args.n < 1:
        raise FasbenchError(f"--n {args.n}: show at least 1 crop per group")
    if args.tile < 8:
        raise FasbenchError(f"--tile {args.tile}: give at least 8 pixels")
    if args.out and not args.out.lower().endswith(".png"):
        raise FasbenchError(f"--out {args.out}: the preview is a PNG; give a FILE.png")
    letters = _letters(args.dataset, cfg, args.root)
    manifests, arrays, flags, per, keys = [], [], [], set(), {}
    for L in letters:
        s, root, _ = _root(L, cfg, args.root)
        res, got = prepare_one(L, cfg, root, progress=not args.no_progress, allow_prepare=bool(cfg.get("auto_prepare", True)))
        manifests.append(frame_manifest(res.videos, got.videos))
        arrays.append(got.images)
        f, p = fallback_flags(got.videos)
        flags.append(f)
        per.add(p)
        keys[got.summary["dataset"]] = str(got.entry)
    manifest = pd.concat(manifests, ignore_index=True)
    images = arrays[0] if len(arrays) == 1 else StackedFrames(arrays)
    flag = np.concatenate(flags)
    index = np.arange(len(manifest))
    if args.split:
        have = sorted(set(manifest["split"].astype(str)))
        if args.split not in have:
            raise FasbenchError(f"--split {args.split}: the prepared frames have the official split(s) {', '.join(have)}; "
                                "give one of them, or leave --split out for all")
        index = np.flatnonzero((manifest["split"].astype(str) == args.split).to_numpy())
    names = [indexers.spec(L).name for L in letters]
    tag = "real" if any(d.lower() in ("all", "real") for d in args.dataset) else "+".join(names)
    out = args.out or f"preview-{tag}{'-' + args.split if args.split else ''}.png"
    frames = types.SimpleNamespace(manifest=manifest.iloc[index].reset_index(drop=True), images=_Subset(images, index))
    title = f"{', '.join(names)} · split {args.split or 'all'} · {images.shape[1]} px crops, up to {args.n} per group, seed {args.seed}"
    fallback_per = "video" if "video" in per else "frame"
    image, layout = contact_sheet(frames, flag[index], n=args.n, tile=args.tile, seed=args.seed, title=title,
                                  fallback_per=fallback_per)
    path = write_png(image, out)
    if args.json:
        print(json.dumps({"path": str(path), "datasets": names, "caches": keys, "split": args.split, "n": args.n, "size": list(layout.size),
                          "fallback_per": fallback_per,
                          "groups": [g.as_dict(frames.manifest) for g in layout.groups]}, indent=2))
    else:
        print(path)
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
    from fasbench.util import bar_disabled, cache_root

    root = cache_root(args.cache_dir)
    entries = _cache_entries(root, list(args.datasets))
    results = []
    labels = {"ok": "ok", "modified": "MODIFIED", "no-hash": "no content hash", "unreadable": "UNREADABLE",
              "incomplete": "incomplete"}
    for kind, dataset, entry in entries:
        size = sum(p.stat().st_size for p in entry.glob("images*.npy"))
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"{dataset} {entry.name[:12]}", leave=False,
                  disable=bar_disabled(not args.no_progress), file=sys.stderr) as bar:
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
