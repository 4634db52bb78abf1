"""Test-only manifolds and factories shared by the `test_nn_*` files.

`ToyFunk` is a deliberately plain implementation of the Funk metric on the unit ball (formulas
from the project reference) with the *generic* broadcasting `cdist`: it exercises the curved
code paths of the nn layers (non-identity `expmap0`, per-point `logmap`/`expmap`, `projx`)
independently of `finslerlib.FunkBall`, on which the same tests also run.
"""

from __future__ import annotations

import geoopt
import torch

import finslerlib
from finslerlib import FinslerManifold, Randers


class ToyFunk(FinslerManifold):
    """Funk metric on the open unit ball, straight from the reference's closed forms."""

    name = "ToyFunk"

    def coefficients(self, x):
        s = 1 - (x * x).sum(-1, keepdim=True)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        a = (s.unsqueeze(-1) * eye + x.unsqueeze(-1) * x.unsqueeze(-2)) / (s * s).unsqueeze(-1)
        return a, x / s

    def funk_norm(self, x, v):
        s = 1 - (x * x).sum(-1)
        xv = (x * v).sum(-1)
        root = torch.sqrt((s * (v * v).sum(-1) + xv * xv).clamp_min(1e-30))
        return (root + xv) / s

    def dist(self, x, y, *, keepdim=False):
        d = -torch.log1p(-self.funk_norm(x, y - x))
        return d.unsqueeze(-1) if keepdim else d

    def expmap(self, x, u):
        f = self.funk_norm(x, u).unsqueeze(-1)
        # inside the ball in exact arithmetic; for huge steps x + u/F rounds onto the sphere
        return self.projx(x + (-torch.expm1(-f)) * u / f.clamp_min(1e-30))

    def logmap(self, x, y):
        v = y - x
        f = self.funk_norm(x, v).unsqueeze(-1)
        return -torch.log1p(-f) * v / f.clamp_min(1e-30)

    def projx(self, x):
        r = x.norm(dim=-1, keepdim=True)
        return x * ((1 - 1e-4) / r).clamp_max(1.0)

    def random(self, *size, dtype=None, device=None):
        return geoopt.ManifoldTensor(
            self.expmap0(0.3 * torch.randn(*size, dtype=dtype, device=device)), manifold=self
        )


def make_manifold(kind: str, dim: int, dtype=torch.float64, device="cpu"):
    """A manifold of the given kind with generic (non-Euclidean) parameters."""
    if kind == "randers":
        m = Randers.learnable(dim, dtype=dtype, device=device)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
        return m
    if kind == "toyfunk":
        return ToyFunk(dim)
    if kind == "funkball":
        return finslerlib.FunkBall(dim).to(dtype=dtype, device=device)
    raise ValueError(kind)


MANIFOLD_KINDS = ["randers", "toyfunk", "funkball"]


def randers_brute_force(a, b, sources, targets):
    """`[i, j] = F(targets[j] - sources[i])`, one pair at a time: sqrt(v^T a v) + b.v."""
    out = torch.empty(sources.shape[0], targets.shape[0], dtype=sources.dtype)
    for i in range(sources.shape[0]):
        for j in range(targets.shape[0]):
            v = targets[j] - sources[i]
            out[i, j] = torch.sqrt(v @ a @ v) + b @ v
    return out


def pairwise_by_dist(manifold, sources, targets):
    """`[i, j] = manifold.dist(sources[i], targets[j])`, one pair at a time."""
    out = torch.empty(sources.shape[0], targets.shape[0], dtype=sources.dtype)
    for i in range(sources.shape[0]):
        for j in range(targets.shape[0]):
            out[i, j] = manifold.dist(sources[i], targets[j])
    return out
