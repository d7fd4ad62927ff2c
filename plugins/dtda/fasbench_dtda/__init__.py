"""DTDA reference plugin for fasbench."""
__version__ = "0.1.0"
