"""`nn.Linear` variants whose `reset_parameters` is the FAIM layers' own initialization.

Meta-device construction (FSDP2, accelerate's `init_empty_weights`, torchtitan) materializes a
model with `to_empty` and then calls `reset_parameters()` on its modules, often on every module
of `model.modules()` in turn. A plain `nn.Linear` child would then be re-drawn with Kaiming's
init after its parent set it up; these subclasses make the child's own reset the right one, so
the order of the calls does not matter.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class IdentityLinear(nn.Linear):
    """Square `nn.Linear` that (re)initializes to the identity map: weight $I$, bias 0."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.eye(self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.zero_()


class ZeroLinear(nn.Linear):
    """`nn.Linear` that (re)initializes to the zero map."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            if self.bias is not None:
                self.bias.zero_()


class ScaledOrthogonalLinear(nn.Linear):
    r"""`nn.Linear(D, r)` with orthonormal rows scaled by $\sqrt{D/r}$, so $|Px| \approx |x|$."""

    def reset_parameters(self) -> None:
        nn.init.orthogonal_(self.weight, gain=math.sqrt(self.in_features / self.out_features))
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()


def reset_children(module: nn.Module) -> None:
    """Call `reset_parameters()` on every proper submodule of `module` that has one."""
    for name, child in module.named_modules():
        if name and callable(getattr(child, "reset_parameters", None)):
            child.reset_parameters()
