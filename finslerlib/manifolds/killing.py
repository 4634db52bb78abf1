r"""`KillingWind`: linear Killing fields $x \mapsto A x\,(+\,c)$ and their exact flows $e^{tA}$.

A linear field in the base's ambient coordinates is a Killing field (its flow is by isometries)
when $A$ preserves the base's quadratic form: $A$ skew-symmetric on $\mathbb{R}^n$, on the sphere
$S^n \subset \mathbb{R}^{n+1}$ and (rotations about the origin) on the $\kappa$-stereographic
models; $A^\top J + J A = 0$, $J = \mathrm{diag}(-1, 1, \dots, 1)$, on the hyperboloid
(rotations and boosts). On $\mathbb{R}^n$ a constant translation $c$ may be added.

The flow is evaluated from one eigen-decomposition $A = V \Lambda V^{-1}$ (cached per dtype and
device): $e^{tA} y = \mathrm{Re}\,(V e^{t \Lambda} V^{-1} y)$ costs $O(N^2)$ per point and time, so
a root find over many pairs never forms matrix exponentials. Generators whose eigenvectors are
ill-conditioned (parabolic motions of the hyperboloid, $A$ nilpotent) use
`torch.linalg.matrix_exp`, batched over the times. A translation is split into its part along
$\ker A$ (a drift, commuting with $A$) and a shift of the rotation centre:
$A x + c = A (x + a_0) + c_\parallel$, $\varphi_t(x) = e^{tA}(x + a_0) - a_0 + t\, c_\parallel$.
"""

from __future__ import annotations

import torch
from torch import nn

from finslerlib.math.navigation import Spectrum, reduce_spectrum

__all__ = ["KillingWind"]


class KillingWind(nn.Module):
    r"""The linear wind $W(x) = A x\,(+\,c)$ with its exact flow $\varphi_t(x) = e^{tA} x\,(+\dots)$.

    Pass it to `finslerlib.Navigation`, which checks it against the base (skew $A$ on
    `Euclidean`, `Sphere`, `PoincareBall`/`Stereographic`; $A^\top J + J A = 0$ on `Lorentz`;
    a `shift` only on `Euclidean`) and then uses exact geodesics. `A` and `shift` are buffers
    (fixed, moved by `.to()`).

    Args:
        A: Tensor, shape `[N, N]`, `N` the ambient size of the base's points.
        shift: Tensor, shape `[N]`, or `None` (Euclidean bases only).

    Raises:
        ValueError: `A` is not a finite square floating matrix, or `shift` has the wrong shape.

    Example:
        >>> wind = KillingWind(torch.tensor([[0.0, -0.5], [0.5, 0.0]]))
        >>> wind(torch.tensor([1.0, 0.0]))
        tensor([0.0000, 0.5000])
        >>> z = wind.flow(torch.tensor(torch.pi), torch.tensor([1.0, 0.0]))  # a quarter turn at rate 0.5
        >>> torch.allclose(z, torch.tensor([0.0, 1.0]), atol=1e-6)
        True
    """

    def __init__(self, A, shift=None):
        super().__init__()
        A = torch.as_tensor(A)
        if not A.is_floating_point():
            A = A.to(torch.get_default_dtype())
        if A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise ValueError(f"KillingWind: A must be a square matrix [N, N], got shape {tuple(A.shape)}")
        if not bool(torch.isfinite(A).all()):
            raise ValueError("KillingWind: A must be finite")
        self.register_buffer("A", A.detach().clone())
        if shift is not None:
            shift = torch.as_tensor(shift, dtype=A.dtype, device=A.device)
            if shift.shape != (A.shape[0],) or not bool(torch.isfinite(shift).all()):
                raise ValueError(
                    f"KillingWind: shift must be a finite vector of shape [{A.shape[0]}], got "
                    f"{tuple(shift.shape)}"
                )
            shift = shift.detach().clone()
        self.register_buffer("shift", shift)
        self._cache: dict = {}

    @property
    def ambient_dim(self) -> int:
        """`N`, the size of the points the wind acts on."""
        return self.A.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """$W(x) = A x\\,(+\\,c)$.

        Args:
            x: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`, on `x`'s dtype and device.
        """
        out = x @ self.A.to(dtype=x.dtype, device=x.device).mT
        if self.shift is not None:
            out = out + self.shift.to(dtype=x.dtype, device=x.device)
        return out

    def check_base(self, domain) -> None:
        """Raise `ValueError` unless the field is a Killing field of the base.

        Args:
            domain: the base's `finslerlib.manifolds.domains.Domain` (its `killing_error` and
                `shift_allowed` say what a Killing field is there).
        """
        A = self.A.detach().to(torch.float64)
        n = A.shape[0]
        scale = max(1.0, A.abs().max().item())
        tol = 16.0 * n * torch.finfo(self.A.dtype).eps * scale
        if self.shift is not None and not domain.shift_allowed:
            raise ValueError(
                f"KillingWind on {domain.name}: a shift is a Killing field only on Euclidean bases "
                f"(pass shift=None)"
            )
        err, condition = domain.killing_error(A)
        if not err <= tol:
            raise ValueError(
                f"KillingWind on {domain.name}: {condition}: max error {err:.3g} (tolerance {tol:.3g})"
            )

    # ------------------------------------------------------------------ the flow
    def _decomposition(self, dtype, device):
        key = (dtype, device, self.A._version, None if self.shift is None else self.shift._version)
        hit = self._cache.get("key")
        if hit == key:
            return self._cache["value"]
        A = self.A.detach().to(torch.float64).cpu()
        c = None if self.shift is None else self.shift.detach().to(torch.float64).cpu()
        a0 = drift = None
        if c is not None:
            a0 = torch.linalg.pinv(A) @ c
            drift = c - A @ a0
        lam, vec = torch.linalg.eig(A)
        spectral = bool(torch.linalg.cond(vec).item() < 1e6)
        cplx = torch.complex64 if dtype == torch.float32 else torch.complex128

        def put(t, like=dtype):
            return None if t is None else t.to(dtype=like, device=device)

        value = {
            "spectral": spectral,
            "lam": put(lam, cplx),
            "vec": put(vec, cplx),
            "inv": put(torch.linalg.inv(vec), cplx) if spectral else None,
            "A": put(A),
            "a0": put(a0),
            "drift": put(drift),
        }
        if spectral:
            reduced = reduce_spectrum(lam, vec, torch.linalg.inv(vec))
            value["reduced"] = reduced._replace(
                lam_a=put(reduced.lam_a),
                lam_b=put(reduced.lam_b),
                left=put(reduced.left),
                right=put(reduced.right),
            )
        self._cache = {"key": key, "value": value}
        return value

    def spectral(self, dtype, device) -> Spectrum | None:
        """The reduced eigen-decomposition of `A` (`finslerlib.math.navigation.Spectrum`), or `None`
        when the eigenvectors are ill-conditioned or there is a shift."""
        dec = self._decomposition(dtype, device)
        if not dec["spectral"] or dec["a0"] is not None:
            return None
        return dec["reduced"]

    def flow(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        r"""The flow $\varphi_t(x)$, batched over `t` (differentiable in `t` and `x`).

        Args:
            t: Tensor, shape broadcastable with `x.shape[:-1]`, times.
            x: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]` (the broadcast batch).
        """
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        dec = self._decomposition(x.dtype, x.device)
        shape = torch.broadcast_shapes(t.shape, x.shape[:-1])
        t = t.expand(shape)
        x = x.expand(*shape, x.shape[-1])
        base = x
        if dec["a0"] is not None:
            x = x + dec["a0"]
        # x + (e^{tA} - I) x: exact at t = 0 and accurate for small t
        if dec["spectral"]:
            q = x.to(dec["inv"].dtype) @ dec["inv"].mT
            out = base + (((torch.exp(t.unsqueeze(-1) * dec["lam"]) - 1.0) * q) @ dec["vec"].mT).real
        else:
            eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
            step = torch.linalg.matrix_exp(t[..., None, None] * dec["A"]) - eye
            out = base + (step @ x.unsqueeze(-1)).squeeze(-1)
        if dec["a0"] is not None:
            out = out + t.unsqueeze(-1) * dec["drift"]
        return out

    def extra_repr(self) -> str:
        return f"ambient_dim={self.ambient_dim}, shift={self.shift is not None}"
