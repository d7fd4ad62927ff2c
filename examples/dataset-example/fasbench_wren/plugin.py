"""The registration: everything `fasbench data` and `fasbench run --data real` need of Wren-PAD.

Importing this module is cheap (no pandas, no torch): fasbench imports it to list components,
and imports the indexer only when a copy is indexed.
"""
from fasbench.data.indexers import DatasetSpec
from fasbench.hookspecs import hookimpl

#: The official layout in one line (shown by `fasbench data check` and by layout errors).
LAYOUT = ("clips/<subject>/<subject>_<bonafide|print|screen>_<cam1|cam2>.mp4 (subjects S001-S030), "
          "lists/train.txt and lists/test.txt (one subject id per line)")

WREN_PAD = DatasetSpec(
    letter="W",  # the domain letter protocols use: --protocol "WC->M"; not one of fasbench's M C I O A
    title="Wren-PAD (a made-up face presentation-attack database)",
    url="https://example.org/wren-pad (made up: there is no such dataset to request)",
    index="fasbench_wren.indexer:index_wren",  # "module:function", imported on first use
    official={"videos": 180, "live": 60, "spoof": 120, "subjects": 30,
              "splits": {"train": 108, "test": 72}, "attacks": {"print": 60, "screen": 60}},
    layout=LAYOUT,
)


@hookimpl
def register_datasets(register):
    register("wren_pad", "fasbench.data.real_dataset:build", version=1, real=WREN_PAD,
             description="Wren-PAD alone (domain W), from your copy in its official layout")
