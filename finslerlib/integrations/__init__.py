"""Adapters for third-party libraries; each submodule needs its library (an optional extra).

* `finslerlib.integrations.pml`: `FinslerDistance`, a pytorch-metric-learning distance
  (`pip install "finslerlib[pml]"`).
"""

__all__: list[str] = []
