"""An example fasbench plugin (see plugin.py and method.py)."""
__version__ = "0.1.0"
