r"""Benchmark: which direction should `egrad2rgrad` return to geoopt's optimizers?

geoopt's optimizers step along `-egrad2rgrad(x, df)` (SGD; momentum and Adam average it). Two
choices for a Finsler manifold:

* `descent = "reverse"`: `egrad2rgrad = ell^{-1}(df)` (the Finsler gradient); the step
  $-\ell^{-1}(df)$ is the steepest descent of the *reverse* metric $\tilde F(v) = F(-v)$;
* `descent = "forward"` (default): `egrad2rgrad = -ell^{-1}(-df)`; the step $\ell^{-1}(-df)$ is the steepest
  descent of $F$ itself (the unit-$F$ direction that decreases $f$ fastest, scaled by $F^*(-df)$).

Every problem is minimized with `RiemannianSGD` (plain and momentum 0.9) and `RiemannianAdam`,
with each choice, from the same start and learning rate; the table prints the final gap
$f - f^*$ to the optimum $f^*$ found by `scipy.optimize.minimize` on the same objective written
in numpy (an independent oracle), and the ratio of the gaps (reverse / forward, > 1: `forward`
better). Problems:

* `funk-radial`:   FunkBall(1), $f(p) = d(p \to 0)^2$ from $|p| = 0.999$ (the optimum is 0);
* `funk-frechet`:  FunkBall(1), backward Fréchet mean $\arg\min \sum_i d(y_i \to x)^2$ of 40
  points with radii in [0.9, 0.999], from the outermost one (the forward mean of such points
  lies on the sphere);
* `randers-frechet`: Randers with drift $|w| = 0.95$, forward Fréchet mean of 40 points;
* `field-quadratic`: RandersField with a strong rotating drift $|b(x)| = 0.9$, $f(x) = |x - c|^2$
  (SGD only: momentum and Adam transport their state along integrated geodesics, too slow here).

Run: `python benchmarks/bench_finsler_descent.py [--steps 2000]`.
"""

from __future__ import annotations

import argparse

import geoopt
import numpy as np
import scipy.optimize
import torch

from finslerlib import FunkBall, Randers, RandersField

CHOICES = ("reverse", "forward")


def _funk_points(n, gen):
    theta = -0.5 + 1.0 * torch.rand(n, generator=gen, dtype=torch.float64)  # a cluster near the sphere
    r = 0.9 + 0.099 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return torch.stack([theta.cos(), theta.sin()], -1) * r


def _numpy_funk_dist(x, y):
    """Funk distance $\\log \\frac{|x - a|}{|y - a|}$ from the exit point $a$ on the unit sphere."""
    v = y - x
    vv, xv, xx = v @ v, x @ v, x @ x
    t = (-xv + np.sqrt(xv**2 + vv * (1 - xx))) / vv  # x + t v on the sphere, t >= 1
    return np.log(t / (t - 1.0)) if vv > 0 else 0.0


def problems(seed: int = 0):
    """Name -> (manifold, f(torch x) -> scalar, numpy objective, start, scipy start)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}

    funk = FunkBall(2)
    start = torch.tensor([0.999, 0.0], dtype=torch.float64)
    out["funk-radial"] = (
        funk, lambda x: funk.dist(x, torch.zeros_like(x)) ** 2,
        lambda x: _numpy_funk_dist(x, np.zeros(2)) ** 2 if x @ x < 1 else np.inf, start, np.zeros(2),
    )

    pts = _funk_points(40, gen)
    far = pts[pts.norm(dim=-1).argmax()].clone()  # start at the point nearest the sphere
    p_np = pts.numpy()
    out["funk-frechet"] = (
        funk, lambda x: (funk.dist(pts, x.expand_as(pts)) ** 2).mean(),
        lambda x: np.mean([_numpy_funk_dist(y, x) ** 2 for y in p_np]) if x @ x < 1 else np.inf,
        far, far.numpy(),
    )

    a = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    w = torch.tensor([0.95, 0.0], dtype=torch.float64)
    chol = torch.linalg.cholesky(a)
    b = chol @ w  # |L^{-1} b| = 0.95
    randers = Randers(a, b)
    ys = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    a_np, b_np, y_np = a.numpy(), b.numpy(), ys.numpy()

    def randers_np(x):
        v = y_np - x
        return float(np.mean((np.sqrt(np.einsum("ni,ij,nj->n", v, a_np, v)) + v @ b_np) ** 2))

    out["randers-frechet"] = (
        randers, lambda x: (randers.dist(x.expand_as(ys), ys) ** 2).mean(), randers_np, ys.mean(0) + 1.0,
        y_np.mean(0) + 1.0,
    )

    def drift(x):
        r = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        rot = torch.stack([-x[..., 1], x[..., 0]], -1) / r
        return 0.9 * rot * torch.tanh(4 * r)

    field = RandersField(b=drift, dim=2)
    c = torch.tensor([1.5, -0.5], dtype=torch.float64)
    out["field-quadratic"] = (
        field, lambda x: ((x - c) ** 2).sum(), lambda x: float(((x - c.numpy()) ** 2).sum()),
        torch.tensor([-1.0, 1.0], dtype=torch.float64), np.array([-1.0, 1.0]),
    )
    return out


def optimum(objective, start) -> float:
    res = scipy.optimize.minimize(objective, start, method="Nelder-Mead",
                                  options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000})
    return float(res.fun)


def minimize(manifold, f, start, *, choice, optimizer, lr, steps):
    """Final f after `steps` steps of a geoopt optimizer with the chosen `egrad2rgrad`."""
    before = manifold.descent
    manifold.descent = choice  # what `egrad2rgrad` (and Adam's `component_inner`) follow
    try:
        x = geoopt.ManifoldParameter(start.clone(), manifold=manifold)
        if optimizer == "adam":
            opt = geoopt.optim.RiemannianAdam([x], lr=lr)
        else:
            opt = geoopt.optim.RiemannianSGD([x], lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0)
        for _ in range(steps):
            opt.zero_grad()
            f(x).backward()
            opt.step()
        with torch.no_grad():
            return float(f(x)), x.detach().clone()
    except ValueError:  # the iterate left the domain or overflowed: diverged
        return float("inf"), start
    finally:
        manifold.descent = before


LR = {"sgd": 0.1, "momentum": 0.01, "adam": 0.01}


def run(steps: int = 2000, seed: int = 0, names=None) -> list[dict]:
    rows = []
    for name, (manifold, f, f_np, start, start_np) in problems(seed).items():
        if names and name not in names:
            continue
        best = optimum(f_np, start_np)
        for optimizer, lr in LR.items():
            if name.startswith("field") and optimizer != "sgd":
                continue  # momentum / Adam transport along integrated geodesics: minutes per run
            if name.startswith("field"):
                lr = 0.02  # |b| = 0.9 stretches steps up to (1 + 0.9) / (1 - 0.9): lr 0.1 diverges
            row = {"problem": name, "optimizer": optimizer, "lr": lr, "optimum": best}
            for choice in CHOICES:
                value, x = minimize(manifold, f, start, choice=choice, optimizer=optimizer, lr=lr,
                                    steps=steps)
                row[choice] = value
                row[choice + "_x"] = x.tolist()
            rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", nargs="*", default=None)
    args = parser.parse_args(argv)
    rows = run(args.steps, args.seed, args.problems)
    print(f"{'problem':<17}{'optimizer':<10}{'lr':>6}{'f*':>11}{'gap reverse':>14}{'gap forward':>14}"
          f"{'ratio':>9}")
    for r in rows:
        g_rev, g_fwd = r["reverse"] - r["optimum"], r["forward"] - r["optimum"]
        ratio = g_rev / g_fwd if g_fwd > 0 else float("inf")
        print(f"{r['problem']:<17}{r['optimizer']:<10}{r['lr']:>6}{r['optimum']:>11.5f}{g_rev:>14.3e}"
              f"{g_fwd:>14.3e}{ratio:>9.2f}")
    return rows


if __name__ == "__main__":
    main()
