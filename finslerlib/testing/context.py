r"""`Context`: what a conformance property sees: seeded samples of the manifold and assertions.

One `Context` is built per property run, with a random stream seeded from the property's name.
Sampling goes through the manifold's own domain (`random`, `projx`, `proju`; see
`finslerlib.testing.sampling`), and vector lengths are *Finsler* lengths relative to
`length`, the typical Finsler length of the sampled region (so "short" means short in the
metric, also next to a boundary or for a rescaled metric). Assertions raise `PropertyViolation`
naming the law, the tolerance and the worst counterexample.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from finslerlib.testing import sampling
from finslerlib.testing.registry import PROPERTIES
from finslerlib.testing.report import PropertyViolation
from finslerlib.testing.taylor import default_slack, taylor_check

__all__ = ["Context", "fmt"]


def fmt(t) -> str:
    """Short text of a tensor or number for failure messages."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.numel() == 1:
            return f"{t.item():.10g}"
        if t.numel() > 64:
            return f"tensor of shape {tuple(t.shape)}, |.| = {t.double().norm().item():.6g}"
        return "[" + ", ".join(fmt(s) for s in t.unbind(0)) + "]"
    if isinstance(t, float):
        return f"{t:.10g}"
    return str(t)


def _at(t, i: int) -> float:
    """Sample `i` of a per-sample tolerance (a float or a tensor)."""
    if isinstance(t, torch.Tensor):
        return float(t.reshape(-1)[i] if t.numel() > 1 else t)
    return float(t)


class Context:
    """Samples and assertions for one property (see the module docstring).

    Attributes:
        m: the manifold. prop: the property's name. n: samples per property.
        N: ambient tensor size. dim: intrinsic dimension. flat: an open subset of R^N.
        length: typical Finsler length of sampled vectors. spread: typical Euclidean distance
            between sampled points. dtype, device, atol, rtol, eps, thorough, large_steps.
        accuracy: relative accuracy of one evaluated value (the rounding floor of the Taylor
            checks). coordinate_accuracy: the same for computed points' coordinates.
    """

    def __init__(self, manifold, prop: str, *, n, seed, user_seed, atol, rtol, dtype, device, length,
                 spread, large_steps, thorough, points, fallback_std, accuracy=None,
                 coordinate_accuracy=None):
        self.m = manifold
        self.prop = prop
        self.N = sampling.ambient_dim(manifold)
        self.dim = sampling.intrinsic_dim(manifold)
        self.flat = self.N == self.dim
        self.n, self.user_seed = n, user_seed
        self.dtype, self.device = dtype, device
        self.atol, self.rtol = atol, rtol
        self.length, self.spread = length, spread
        self.large_steps = tuple(float(s) for s in large_steps)
        self.thorough = thorough
        self.eps = torch.finfo(dtype).eps
        # relative accuracy of one evaluated value: the rounding floor of the Taylor checks
        self.accuracy = 8 * self.eps if accuracy is None else float(accuracy)
        # relative rounding of computed points' coordinates
        self.coordinate_accuracy = 8 * self.eps if coordinate_accuracy is None else float(coordinate_accuracy)
        self.gen = torch.Generator().manual_seed(seed)
        self.random_rejected: str | None = None
        self.random_used = False
        self._pool = points
        self._fallback_std = fallback_std
        self.name = repr(manifold).replace("\n", " ")

    @property
    def statement(self) -> str:
        return PROPERTIES[self.prop]

    # ----------------------------------------------------------------- sampling
    def randn(self, *shape) -> torch.Tensor:
        t = torch.randn(*shape, generator=self.gen, dtype=torch.float64)
        return t.to(dtype=self.dtype, device=self.device)

    def rand(self, *shape) -> torch.Tensor:
        t = torch.rand(*shape, generator=self.gen, dtype=torch.float64)
        return t.to(dtype=self.dtype, device=self.device)

    def on_manifold(self, x: torch.Tensor) -> torch.Tensor:
        return sampling.on_manifold(self.m, x)

    def points(self, k: int) -> torch.Tensor:
        """`k` points: from the `points=` pool, else `manifold.random`, else Gaussian candidates
        moved onto the manifold (`projx`, or shrinking toward `origin()` on flat domains).

        Only `NotImplementedError` from `random` selects the fallback: any other exception of the
        manifold propagates with its traceback.
        """
        if self._pool is not None:
            idx = torch.randint(self._pool.shape[0], (k,), generator=self.gen)
            return self._pool[idx.to(self._pool.device)]
        seed = int(torch.randint(2**31 - 1, (1,), generator=self.gen))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = self.m.random(k, self.N, dtype=self.dtype, device=self.device)
        except NotImplementedError:
            x = self.randn(k, self.N) * self._fallback_std
        else:
            x = torch.as_tensor(x).as_subclass(torch.Tensor).detach().to(self.dtype)
            self.random_used = True
            ok = self.on_manifold(x)
            if not ok.all() and self.random_rejected is None:
                bad = x[~ok][0]
                _, reason = self.m.check_point_on_manifold(bad, explain=True)
                self.random_rejected = (f"manifold.random() returned a point its own check rejects: "
                                        f"x = {fmt(bad)} (reason: {reason})")
        try:
            return sampling.pull_inside(self.m, x)
        except sampling.SamplingError as exc:
            raise PropertyViolation(self.prop, f"check_manifold({self.name}): {exc}") from exc

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """Orthonormal tangent bases at `x`, `[K, N, dim]`."""
        return sampling.tangent_basis(self.m, x)

    def directions(self, x: torch.Tensor) -> torch.Tensor:
        """Random Euclidean-unit tangent vectors at `x` (isotropic in the tangent space)."""
        u = (self.basis(x) @ self.randn(x.shape[0], self.dim, 1)).squeeze(-1)
        return u / u.norm(dim=-1, keepdim=True)

    def f_normalize(self, x, u, length):
        """Rescale tangent vectors `u` to Finsler length `length` at `x`."""
        return sampling.rescale(x, u, length, self.m.norm)

    def vectors(self, x, lo=0.2, hi=2.0):
        """Random tangent vectors at `x` with Finsler lengths log-uniform in `[lo, hi] * length`."""
        lengths = self.length * lo * (hi / lo) ** self.rand(x.shape[0])
        return self.f_normalize(x, self.directions(x), lengths)

    def geodesic_vectors(self, x, lo, hi):
        """`s * logmap(x, y)` toward sampled points `y`, `s` log-uniform in `[lo, hi]` (`hi <= 1`):
        initial velocities of geodesics that stay in the sampled region, whatever the metric's
        reach (a forward-incomplete metric reaches its boundary at a finite, direction-dependent
        distance). Random vectors of Finsler lengths `[lo, hi] * length` where `logmap` is missing."""
        try:
            log = self.m.logmap(x, self.points(x.shape[0]))
        except NotImplementedError:
            return self.vectors(x, lo, hi)
        s = lo * (hi / lo) ** self.rand(x.shape[0], 1)
        return s * torch.as_tensor(log).as_subclass(torch.Tensor).detach()

    def covectors(self, k):
        """Ambient covectors (Euclidean gradients), of size `1 / length`."""
        return self.randn(k, self.N) / self.length

    def metric_size(self, x) -> torch.Tensor:
        """Largest $F(x, \\pm e)$ over an orthonormal tangent basis `e`: converts Euclidean sizes
        (coordinate rounding, finite-difference steps) into Finsler lengths, `[K]`."""
        e = self.basis(x).mT  # [K, dim, N]
        xs = x.unsqueeze(-2).expand_as(e)
        return torch.stack([self.m.norm(xs, e), self.m.norm(xs, -e)], -1).detach().flatten(1).amax(-1)

    # ----------------------------------------------------------------- assertions
    def tol_text(self, atol=None, rtol=None, extra=""):
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        return f"atol={atol:.3g}, rtol={rtol:.3g}{extra}"

    def fail(self, law, tol, context: dict, i: int, lines: list[str]):
        body = [f"check_manifold({self.name}): property '{self.prop}' violated: {law}",
                f"  tolerance: {tol} ({self.dtype}, n={self.n}, seed={self.user_seed})",
                "  counterexample:"]
        for key, val in context.items():
            if isinstance(val, torch.Tensor) and val.dim() >= 1 and val.shape[0] > i:
                val = val[i]
            body.append(f"    {key} = {fmt(val)}")
        body += [f"    {line}" for line in lines]
        raise PropertyViolation(self.prop, "\n".join(body))

    def fail_shape(self, law, lines: list[str]):
        """A violation without a numerical tolerance (shapes, dtypes, membership)."""
        body = [f"check_manifold({self.name}): property '{self.prop}' violated: {law}",
                f"  tolerance: exact ({self.dtype}, n={self.n}, seed={self.user_seed})",
                "  counterexample:"] + [f"    {line}" for line in lines]
        raise PropertyViolation(self.prop, "\n".join(body))

    def close(self, law, actual, expected, context, *, names=("actual", "expected"), ref=None,
              atol=None, rtol=None, tol_extra="", where=None):
        """Sample-wise |actual - expected| <= atol + rtol * ref (Euclidean norm for vectors).

        `atol` and `rtol` may be per-sample tensors; `where` (bool `[K]`) restricts the samples compared.
        """
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        actual, expected = actual.detach(), expected.detach()
        if actual.shape != expected.shape:
            self.fail_shape(law, [f"{names[0]} has shape {tuple(actual.shape)}",
                                  f"{names[1]} has shape {tuple(expected.shape)}"])
        # dimension 0 indexes the samples; anything after it is one vector / matrix per sample
        diff = actual - expected
        vector = actual.dim() >= 2
        err = diff.flatten(1).norm(dim=-1) if vector else diff.abs()
        if ref is None:
            ref = expected.flatten(1).norm(dim=-1) if vector else expected.abs()
        allowed = atol + rtol * ref.detach()
        bad = ~(err <= allowed)
        if where is not None:
            bad = bad & where
        if bad.any():
            excess = torch.where(torch.isfinite(err), err - allowed, torch.full_like(err, math.inf))
            excess = torch.where(bad, excess, torch.full_like(err, -math.inf))
            i = int(excess.argmax())
            tol = self.tol_text(_at(atol, i), _at(rtol, i), tol_extra)
            self.fail(law, tol, context, i, [
                f"{names[0]} = {fmt(actual[i])}",
                f"{names[1]} = {fmt(expected[i])}",
                f"|difference| = {fmt(err[i])} > allowed {fmt(allowed[i])}",
                f"({int(bad.sum())} of {bad.numel()} samples violate it)",
            ])

    def holds(self, law, ok, context, lines_at: Callable[[int], list[str]], tol=None):
        ok = ok.detach().reshape(-1)
        if not ok.all():
            i = int((~ok).nonzero()[0])
            self.fail(law, tol or self.tol_text(), context, i,
                      lines_at(i) + [f"({int((~ok).sum())} of {ok.numel()} samples violate it)"])

    def leq(self, law, lhs, rhs, context, *, names=("lhs", "rhs"), slack=None):
        """Sample-wise lhs <= rhs + atol + rtol * |rhs| (or `+ slack`)."""
        lhs, rhs = lhs.detach().reshape(-1), rhs.detach().reshape(-1)
        allowed = self.atol + self.rtol * rhs.abs() if slack is None else slack.reshape(-1)
        ok = lhs <= rhs + allowed
        self.holds(law, ok, context, lambda i: [
            f"{names[0]} = {fmt(lhs[i])}", f"{names[1]} = {fmt(rhs[i])}",
            f"excess {names[0]} - {names[1]} = {fmt(lhs[i] - rhs[i])} > allowed {fmt(allowed[i])}"])

    def taylor(self, law, f, x, u, derivatives, context, *, curve=None, t_max=1.0, atol=0.0, atol_t=0.0,
               rtol=None, where=None):
        """Taylor-remainder check (`finslerlib.testing.taylor`): `derivatives` of `f` at `x` along
        `u` must leave a remainder of order `len(derivatives) + 1`, the rounding floor being
        `accuracy` relative (or `rtol`; plus `atol`). `where` (bool `[K]`) restricts the samples judged."""
        rtol = self.accuracy if rtol is None else rtol
        result = taylor_check(f, x, u, derivatives, curve=curve, t_max=t_max, rtol=rtol, atol=atol,
                              atol_t=atol_t)
        ok = result.passed if where is None else result.passed | ~where
        order = result.order
        self.holds(law, ok, context, result.describe,
                   tol=f"log-log slope of the Taylor remainder >= {order} - {default_slack(self.dtype)} "
                       f"(rounding floor {rtol:.3g} relative)")
        return result

    def check_finite(self, what, t, context):
        t = t.detach()
        ok = torch.isfinite(t).reshape(t.shape[0], -1).all(-1) if t.dim() else torch.isfinite(t)
        self.holds(f"{what} is finite", ok, context, lambda i: [f"{what} = {fmt(t[i])}"])
