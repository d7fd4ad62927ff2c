"""``fasbench data check`` and ``fasbench data prepare``: the user's copies of the real datasets
(every dataset registered with a ``real=`` spec, built-in or plugin)."""
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
        "data", help="check and prepare your copies of the real datasets", formatter_class=_HelpWithDatasets,
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
