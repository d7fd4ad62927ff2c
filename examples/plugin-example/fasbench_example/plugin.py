"""Hooks of fasbench-example-plugin. Importing this module must stay cheap (no torch):
fasbench imports it for every command, including `fasbench --help`."""
from fasbench.hookspecs import hookimpl


@hookimpl
def register_methods(register):
    register(
        "example-center-loss",
        "fasbench_example.method:ExampleMethod",  # lazy: imported only when a run builds it
        version=1,  # bump whenever the method's behaviour changes (it is stored in every record)
        description="ERM + a centre loss pulling live features of all source domains together",
        options="fasbench_example.options:CenterLossOptions",  # typed `method.*` keys; override: method.center_weight=0.5
    )
