"""``python -m fasbench`` works like the ``fasbench`` command."""
from fasbench.cli import entry

if __name__ == "__main__":
    entry()
