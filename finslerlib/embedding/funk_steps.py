r"""`FusedFunkBall`: the maps `RiemannianAdam` calls on a Funk ball, fused for training.

A `RiemannianAdam` step on an `[N, D]` table of Funk-ball points calls `egrad2rgrad` (the
steepest descent), `component_inner` (the second moment: the squared length of the step) and
`retr_transp` (the exponential map and the parallel transport of the first moment along it) on
every row. `FunkBall` evaluates each from scratch, with its data checks: the step's length is
the norm of the result evaluated again (in float64), and the exponential map, the norm and the
Legendre map in the transport each recompute $Q = R^2 - |x|^2$, $\langle x, u\rangle$ and
$|u|^2$. Here the same formulas (`finslerlib.math.funk`) share those pieces and skip the checks
(the exponential map keeps every point within $R (1 - \sqrt\varepsilon)$):

* `egrad2rgrad(x, df)` $= -\ell_x^{-1}(-df) = (R|df| + df \cdot x)\,(R\,df/|df| + x)$;
* the step $-$`egrad2rgrad` $= \ell_x^{-1}(-df)$ has length $F(x, \ell_x^{-1}(-df)) = F^*(x, -df)
  = R|df| + df \cdot x$, kept for `component_inner` of that same tensor (the step and the point
  held by weak references, so the manifold keeps neither);
* `retr_transp(x, u, v)`: $\exp_x u = x + \frac{1 - e^{-F}}{F} u$ (clamped as `expmap`) and
  $U = e^{-F/2} v + \frac{g_u(u, v)}{F^2} (e^{-F} - e^{-F/2})\, u$, $F = F(x, u)$,
  $g_u(u, v) = \frac{F}{s}(u \cdot v + F\, x \cdot v)$, $s = \sqrt{Q|u|^2 + (x \cdot u)^2}$.

For training only (`DirectedGraphEmbedding(geometry="funk")`); tests compare each map with
`FunkBall`'s. Limitation: the kept length is reused when `component_inner` gets the same step
tensor at the same point, neither changed in place since by their version counters; a change
through `.data` (or numpy, or another tensor over the same memory) bumps no version counter and
goes unseen: `component_inner` then returns the length of the step as `egrad2rgrad` made it.
`RiemannianAdam` calls the two maps back to back on the same tensors.
"""

from __future__ import annotations

import weakref

import torch

from finslerlib.manifolds import FunkBall
from finslerlib.math.funk import boundary_margin, clamp_norm
from finslerlib.math.pairwise import safe_div, safe_sqrt

__all__ = ["FusedFunkBall"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


class FusedFunkBall(FunkBall):
    """`FunkBall` with `egrad2rgrad`, `component_inner` and `retr_transp` fused and check-free.

    Example:
        >>> import geoopt
        >>> m = FusedFunkBall(2)
        >>> x = geoopt.ManifoldParameter(torch.tensor([[0.5, 0.0]]), manifold=m)
        >>> x.sum().backward()
        >>> geoopt.optim.RiemannianAdam([x], lr=0.1).step()
        >>> bool((x.norm(dim=-1) < 1).all())
        True
    """

    _step: tuple | None = None

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_step", None)  # weak references: not picklable, and only the next call's
        return state

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if self.descent != "forward":
            return super().egrad2rgrad(x, u)
        r = self.radius
        size = safe_sqrt(_dot(u, u))
        dual = r * size + _dot(u, x)
        out = dual * (r * safe_div(u, size) + x)
        self._step = (weakref.ref(out), dual, weakref.ref(x), out._version, x._version)
        return out

    def component_inner(self, x: torch.Tensor, u: torch.Tensor, v=None) -> torch.Tensor:
        step = self._step
        self._step = None
        # the length kept by `egrad2rgrad` serves only that same step at that same point, neither
        # changed in place since (their version counters)
        if (
            v is None
            and self.descent == "forward"
            and step is not None
            and step[0]() is u
            and step[2]() is x
            and (u._version, x._version) == step[3:]
        ):
            return step[1] * step[1]
        return super().component_inner(x, u, v)

    def retr_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        r = self.radius
        # huge steps rescaled before squaring (F is 1-homogeneous), as `finslerlib.math.funk.expmap`
        c = u.detach().abs().amax(-1, keepdim=True).clamp_min(1.0)
        u1 = u / c
        q = r * r - _dot(x, x)
        p = _dot(x, u1)
        n2 = _dot(u1, u1)
        s = safe_sqrt(q * n2 + p * p)
        # s + p without cancellation where p < 0: (s + p)(s - p) = Q |u|^2
        qf = torch.where(p >= 0, s + p, safe_div(q * n2, s - p))
        f1 = qf / q
        f = c * f1  # F(x, u)
        pos = f1 > 0
        step = torch.where(
            pos, -torch.expm1(-f) / torch.where(pos, f1, torch.ones_like(f1)), c * (1.0 - 0.5 * f)
        )
        xn = safe_sqrt(_dot(x, x))
        y = clamp_norm(x + step * u1, torch.clamp_min(xn, r * (1.0 - boundary_margin(x.dtype))))
        # transport of v along t -> exp_x(t u): g_u(u, v) = F (u . v + F x . v) / s(u), s(u) = c s
        g = safe_div(f, c * s) * (_dot(u, v) + f * _dot(x, v))
        half = torch.exp(-0.5 * f)
        coeff = safe_div(g * half * torch.expm1(-0.5 * f), f * f)
        return y, half * v + coeff * u

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.retr_transp(x, u, v)[1]
