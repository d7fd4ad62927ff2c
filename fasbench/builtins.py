"""fasbench's built-in components, registered through the same hooks as any plugin."""
from __future__ import annotations

from fasbench.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        "fasbench.data.synthetic_dataset:build",
        version=2,  # = fasbench.data.synthetic.GENERATOR_VERSION (a test keeps them equal)
        description="Procedurally generated cross-domain FAS world (domains M, C, I, O); no download",
    )
    build = "fasbench.data.real_dataset:build"
    register("real", build, version=1,
             description="Your copies of MSU-MFSD (M), CASIA-FASD (C), Replay-Attack (I), OULU-NPU (O), "
                         "CelebA-Spoof (A); roots: data.roots.X / FASBENCH_ROOT_X (docs/datasets.md)")
    for name, letter, title in (("msu_mfsd", "M", "MSU-MFSD"), ("casia_fasd", "C", "CASIA-FASD"),
                                ("replay_attack", "I", "Idiap Replay-Attack"), ("oulu_npu", "O", "OULU-NPU"),
                                ("celeba_spoof", "A", "CelebA-Spoof")):
        register(name, build, version=1, description=f"{title} alone (domain {letter}), from your copy in its official layout")


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
    from fasbench import cli

    cli.add_builtin_commands(subparsers)
