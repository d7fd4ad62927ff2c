"""Hook implementations of fasbench-baselines (lazy: importing this module imports no torch)."""
from fasbench.hookspecs import hookimpl


@hookimpl
def register_methods(register):
    register(
        "erm",
        "fasbench_baselines.erm:ERM",
        version=1,
        description="Empirical risk minimisation: cross-entropy on live vs spoof over pooled sources",
        config={"label_smoothing": 0.0},
    )
    register(
        "dat",
        "fasbench_baselines.dat:DAT",
        version=1,
        description="Domain-adversarial training: domain discriminator behind gradient reversal (DANN; SSDG-style single side optional)",
        config={"weight": 1.0, "max_lambda": 1.0, "gamma": 10.0, "hidden": 256, "dropout": 0.5, "single_side": False},
    )
