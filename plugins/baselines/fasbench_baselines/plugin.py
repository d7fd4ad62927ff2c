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
