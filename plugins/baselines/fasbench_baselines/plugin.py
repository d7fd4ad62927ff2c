"""Hook implementations of fasbench-baselines (lazy: importing this module imports no torch)."""
from fasbench.hookspecs import hookimpl


@hookimpl
def register_methods(register):
    register(
        "erm",
        "fasbench_baselines.erm:ERM",
        version=1,
        description="Empirical risk minimisation: cross-entropy on live vs spoof over pooled sources",
        options="fasbench_baselines.options:ERMOptions",
    )
    register(
        "dat",
        "fasbench_baselines.dat:DAT",
        version=1,
        description="Domain-adversarial training: domain discriminator behind gradient reversal (DANN; SSDG-style single side optional)",
        options="fasbench_baselines.options:DATOptions",
    )
