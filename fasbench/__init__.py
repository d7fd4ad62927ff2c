"""fasbench: a plugin-based benchmark harness for cross-domain face anti-spoofing."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
