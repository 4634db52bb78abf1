"""Hypothesis strategies and independent (numpy, float64) oracles for the Randers tests.

The oracles here never call finslerlib: they are the formulas written out directly, so a test
comparing finslerlib against them compares two independent computations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st


@dataclass
class Case:
    """Randers data `(a, b)` in float64 numpy plus a seeded generator for vectors."""

    a: np.ndarray
    b: np.ndarray
    rng: np.random.Generator

    @property
    def dim(self) -> int:
        return self.a.shape[0]

    @property
    def drift(self) -> float:
        """$\\|b\\|_{a^{-1}}$ by a dense solve (numpy)."""
        return float(np.sqrt(self.b @ np.linalg.solve(self.a, self.b)))

    def t(self, arr, dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(arr), dtype=dtype)

    def vectors(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return self.rng.normal(size=(*shape, self.dim)) * scale


def make_case(seed: int, dim: int, drift: float, cond: float = 10.0) -> Case:
    """SPD `a` with eigenvalues spread over `[1/sqrt(cond), sqrt(cond)]`, `b` of size `drift`."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eig = np.exp(rng.uniform(-0.5, 0.5, size=dim) * np.log(cond))
    a = (q * eig) @ q.T
    a = 0.5 * (a + a.T)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    # b = L w with a = L L^T and |w| = drift, so ||b||_{a^-1} = drift exactly
    b = np.linalg.cholesky(a) @ (drift * direction)
    return Case(a, b, rng)


@st.composite
def cases(draw, min_dim: int = 1, max_dim: int = 5, max_drift: float = 0.9) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    dim = draw(st.integers(min_dim, max_dim))
    drift = draw(st.one_of(st.just(0.0), st.floats(0.0, max_drift), st.just(max_drift)))
    return make_case(seed, dim, drift)


# ---------------------------------------------------------------------------- numpy oracles
def np_norm(v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """$F(v) = \\sqrt{v^T a v} + b^T v$, row-wise."""
    v = np.atleast_2d(v)
    return np.sqrt(np.einsum("ni,ij,nj->n", v, a, v)) + v @ b


def np_navigation(a: np.ndarray, b: np.ndarray):
    """(a, b) -> (h, W) as in the reference: lam = 1 - |b|^2, h = lam (a - b b^T), W = -a^-1 b / lam."""
    b_sharp = np.linalg.solve(a, b)
    lam = 1.0 - b @ b_sharp
    return lam * (a - np.outer(b, b)), -b_sharp / lam


def np_dual_nav(xi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """$F^*(\\xi) = \\sqrt{\\xi^T h^{-1} \\xi} + \\xi(W)$ through the navigation data (second formula)."""
    h, w = np_navigation(a, b)
    xi = np.atleast_2d(xi)
    return np.sqrt(np.einsum("ni,ij,nj->n", xi, np.linalg.inv(h), xi)) + xi @ w


