r"""`FAIMBlock`: a layer acting on tangent vectors, $x \mapsto \exp_p(f(\log_p x))$.

The manifold analogue of a residual-free feature layer (like hyperbolic layers): pull the
points back to the tangent space at a base point $p$, apply any module there, and push the
result forward along geodesics. Blocks stack in `nn.Sequential`.
"""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import nn

from finslerlib.nn._init import IdentityLinear, ZeroLinear, reset_children
from finslerlib.nn.functional import compute_dtype

__all__ = ["FAIMBlock"]

_BASE_POINTS = ("shared", "dynamic")


class FAIMBlock(nn.Module):
    r"""Tangent-space layer $x \mapsto \exp_p\big(\mathrm{inner}(\log_p x)\big)$ on a manifold.

    * `base_point="shared"`: $p$ is one learnable `geoopt.ManifoldParameter` `base_point`,
      shape `[D]`, starting at the origin (geoopt optimizers keep it on the manifold).
    * `base_point="dynamic"`: $p(x) = \operatorname{projx}(\exp_0(g(\log_0 x)))$ per sample,
      with $g$ a small MLP `base_map` (`D -> max(D // 4, 1) -> D`, tanh) whose last layer
      starts at zero, so $p$ starts at the origin.

    The log/exp maps run outside `torch.autocast`, in float32 at least; `inner` runs under the
    caller's autocast settings. Since $\exp_p \circ \log_p = \mathrm{id}$, the default `inner`
    (an `nn.Linear(D, D)` with weight $I$ and bias 0) makes a fresh block the identity map.

    Args:
        manifold: a finslerlib manifold of dimension `D`.
        inner: a module mapping tangent vectors `[..., D] -> [..., D]` (Linear, MLP,
            attention over a sequence dimension, ...); default: identity-initialised Linear.
        base_point: `"shared"` or `"dynamic"`.
        dtype: parameter dtype of the default modules (default: torch's default dtype).
        device: parameter device.

    Raises:
        ValueError: unknown `base_point`, or a manifold without a dimension.

    Example:
        >>> from finslerlib import Randers
        >>> block = FAIMBlock(Randers.learnable(4))
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(block(x), x)  # starts as the identity
        True
        >>> stack = torch.nn.Sequential(block, FAIMBlock(Randers.learnable(4), base_point="dynamic"))
        >>> stack(x).shape
        torch.Size([3, 4])
    """

    def __init__(self, manifold: geoopt.Manifold, inner: nn.Module | None = None, *,
                 base_point: str = "shared", dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if base_point not in _BASE_POINTS:
            raise ValueError(f"base_point must be one of {_BASE_POINTS}, got {base_point!r}")
        dim = getattr(manifold, "ambient_dim", getattr(manifold, "dim", None))  # the tensor size
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"manifold must have a positive integer `dim`, got {dim!r}")
        factory: dict[str, Any] = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.manifold = manifold
        self.dim = dim
        self.base_point_mode = base_point
        if inner is None:
            inner = IdentityLinear(dim, dim, **factory)
        self.inner = inner
        if base_point == "shared":
            self.base_point = geoopt.ManifoldParameter(
                manifold.origin(dim, **factory), manifold=manifold
            )
            self.base_map = None
        else:
            self.base_point = None
            hidden = max(dim // 4, 1)
            self.base_map = nn.Sequential(
                nn.Linear(dim, hidden, **factory), nn.Tanh(), ZeroLinear(hidden, dim, **factory)
            )

    def reset_parameters(self) -> None:
        """Back to the constructor's initialization: the identity map with the default `inner`.

        The base point back to the origin, and every submodule's own `reset_parameters` (the
        default `inner` back to the identity, the dynamic base map's last layer back to zero, a
        learnable metric back to the Euclidean one, a custom `inner` to its own initialization).
        Used after meta-device construction (`to_empty(device=...)` then `reset_parameters()`).
        """
        if self.base_point is not None:
            with torch.no_grad():
                self.base_point.copy_(self.manifold.origin(self.dim, dtype=self.base_point.dtype,
                                                           device=self.base_point.device))
        reset_children(self)

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base point $p$: shape `[D]` (shared) or `[..., D]` like `x` (dynamic).

        Args:
            x: Tensor, shape `[..., D]`, points (only used by the dynamic mode).

        Returns:
            Tensor on the manifold, in `x`'s dtype.
        """
        if self.base_map is None:
            return self.base_point.to(x.dtype)  # type: ignore[no-any-return]
        g = self.base_map
        with torch.autocast(device_type=x.device.type, enabled=False):
            tangent = g(self.manifold.logmap0(x).to(g[0].weight.dtype)).to(x.dtype)
            point: torch.Tensor = self.manifold.projx(self.manifold.expmap0(tangent))
            return point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """$\\exp_p(\\mathrm{inner}(\\log_p x))$.

        Args:
            x: Tensor, shape `[..., D]`, points on the manifold.

        Returns:
            Tensor, shape `[..., D]`, points on the manifold, float32 at least.
        """
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected points of shape [..., {self.dim}], got {tuple(x.shape)}")
        params = [self.base_point] if self.base_point is not None else []
        dtype = compute_dtype(x, *params)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            p = self.base(x)
            v = self.manifold.logmap(p.expand_as(x), x)
        v = self.inner(v)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out: torch.Tensor = self.manifold.expmap(p.expand_as(v), v.to(dtype))
            return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base_point={self.base_point_mode!r}"
