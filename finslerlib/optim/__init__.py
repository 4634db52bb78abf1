"""Optimizer helpers: weight-decay parameter groups and a check for non-Riemannian optimizers."""

from finslerlib.optim.groups import check_optimizer, param_groups

__all__ = ["check_optimizer", "param_groups"]
