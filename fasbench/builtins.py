"""fasbench's built-in components, registered through the same hooks as any plugin."""
from __future__ import annotations

from fasbench.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        "fasbench.data.synthetic_dataset:build",
        options="fasbench.data.synthetic_dataset:options",  # every data.* key, typed (SyntheticConfig)
        version=2,  # = fasbench.data.synthetic.GENERATOR_VERSION (a test keeps them equal)
        description="Procedurally generated cross-domain FAS world (domains M, C, I, O; domain T, in no protocol, "
                    "is the corpus the DTDA stand-in teachers are pretrained on); no download",
    )
    # Real datasets: one registration each carries everything `fasbench data` and `--data real`
    # need (domain letter, official layout and counts, indexer); plugins register theirs the same way.
    from fasbench.data import indexers as ix  # no pandas/torch import: the indexers are lazy strings

    build = "fasbench.data.real_dataset:build"
    register("real", build, version=1,
             description="Your copies of the real datasets (each one is listed here too, plugins' included) that "
                         "have a root: data.roots.X / FASBENCH_ROOT_X (docs/datasets.md)")
    for name, spec in (
        ("msu_mfsd", ix.DatasetSpec(
            "M", "MSU-MFSD (MSU Mobile Face Spoofing Database)", "fasbench.data.indexers:index_msu",
            {"videos": 280, "live": 70, "spoof": 210, "splits": {"train": 120, "test": 160},
             "attacks": {"printed_photo": 70, "ipad_video": 70, "iphone_video": 70}, "subjects": 35},
            ix.MSU_LAYOUT, "https://sites.google.com/site/huhanhomepage/datasetcode")),
        ("casia_fasd", ix.DatasetSpec(
            "C", "CASIA-FASD (CASIA Face Anti-Spoofing Database)", "fasbench.data.indexers:index_casia",
            {"videos": 600, "live": 150, "spoof": 450, "splits": {"train": 240, "test": 360},
             "attacks": {"warped_photo": 150, "cut_photo": 150, "video_replay": 150}, "subjects": 50},
            ix.CASIA_LAYOUT, "http://www.cbsr.ia.ac.cn/english/FaceAntiSpoof%20Databases.asp")),
        ("replay_attack", ix.DatasetSpec(
            "I", "Idiap Replay-Attack", "fasbench.data.indexers:index_replay",
            {"videos": 1200, "live": 200, "spoof": 1000, "splits": {"train": 360, "dev": 360, "test": 480},
             "attacks": {"print": 200, "photo": 400, "video": 400}, "subjects": 50},
            ix.REPLAY_LAYOUT, "https://www.idiap.ch/en/scientific-research/data/replayattack")),
        ("oulu_npu", ix.DatasetSpec(
            "O", "OULU-NPU", "fasbench.data.indexers:index_oulu",
            {"videos": 4950, "live": 990, "spoof": 3960, "splits": {"train": 1800, "dev": 1350, "test": 1800},
             "attacks": {"print1": 990, "print2": 990, "replay1": 990, "replay2": 990}, "subjects": 55},
            ix.OULU_LAYOUT, "https://sites.google.com/site/oulunpudatabase/")),
        ("celeba_spoof", ix.DatasetSpec(
            "A", "CelebA-Spoof", "fasbench.data.indexers:index_celeba_spoof",
            {"videos": 625537, "live": 156384, "spoof": 469153, "subjects": 10177},
            ix.CELEBA_LAYOUT, "https://github.com/ZhangYuanhan-AI/CelebA-Spoof")),
    ):
        register(name, build, version=1, real=spec,
                 description=f"{spec.title.split(' (')[0]} alone (domain {spec.letter}), from your copy in its official layout")


@hookimpl
def register_protocols(register):
    register("MICO", "fasbench.protocols:mico", version=1,
             description="Leave-one-out over M, C, I, O: OCI->M, OMI->C, OCM->I, ICM->O")
    register("LimitedSource", "fasbench.protocols:limited_source", version=1,
             description="Limited source domains: MI->C, MI->O")
    register("Intra", "fasbench.protocols:intra", version=1,
             description="Intra-domain reference: train/test on disjoint subjects of one domain")
    register("OULU-NPU", "fasbench.protocols:oulu_npu", version=1,
             description="OULU-NPU protocols 1-4 (14 tasks) on the official lists; APCER/BPCER/ACER")
    for k in "1234":
        register(f"OULU-NPU-P{k}", f"fasbench.protocols:oulu_p{k}", version=1,
                 description=f"OULU-NPU protocol {k} on the official lists" + (" (6 phone folds)" if k in "34" else ""))
    register("CrossAttack", "fasbench.protocols:cross_attack", version=1,
             description="Per domain: train without one attack type (print/replay), test on it")


@hookimpl
def register_students(register):
    register("timm", "fasbench.students:build", version=1, options="fasbench.students_options:TimmOptions",
             description="Any timm backbone by name (student.arch=resnet18) + linear live/spoof head")


@hookimpl
def register_aligners(register):
    register("none", "fasbench.api:IdentityAligner", version=1, description="No domain alignment")


@hookimpl
def register_metrics(register):
    from fasbench.metrics import BUILTIN_METRICS  # numpy only

    for name, (fn, uses_threshold, higher_is_better) in BUILTIN_METRICS.items():
        register(name, fn, version=1, uses_threshold=uses_threshold, higher_is_better=higher_is_better,
                 description=(fn.__doc__ or "").strip())


@hookimpl
def register_commands(subparsers):
    from fasbench.commands import add_builtin_commands

    add_builtin_commands(subparsers)
