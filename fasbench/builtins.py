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


@hookimpl
def register_protocols(register):
    register("MICO", "fasbench.protocols:mico", version=1,
             description="Leave-one-out over M, C, I, O: OCI->M, OMI->C, OCM->I, ICM->O")
    register("LimitedSource", "fasbench.protocols:limited_source", version=1,
             description="Limited source domains: MI->C, MI->O")
    register("Intra", "fasbench.protocols:intra", version=1,
             description="Intra-domain reference: train/test on disjoint subjects of one domain")


@hookimpl
def register_students(register):
    register("timm", "fasbench.students:TimmStudent", version=1,
             description="Any timm backbone by name (student.arch=resnet18) + linear live/spoof head")


@hookimpl
def register_aligners(register):
    register("none", "fasbench.api:IdentityAligner", version=1, description="No domain alignment")


@hookimpl
def register_metrics(register):
    from fasbench.metrics import BUILTIN_METRICS  # numpy only

    for name, fn in BUILTIN_METRICS.items():
        register(name, fn, version=1)


@hookimpl
def register_commands(subparsers):
    from fasbench import cli

    cli.add_builtin_commands(subparsers)
