r"""Pointwise Randers formulas from the coefficients $(a, b)$ given at the points.

Every function here is a pure tensor function: no classes, no state. The coefficients are
the Randers data at the point where the vectors live, so the same code serves the constant
`Randers` space (a single `a` of shape `[D, D]` broadcast over the batch), the `FunkBall`
(closed-form `a(x), b(x)`) and user-defined `RandersField`s (`a(x), b(x)` from callables).

Shapes: `a` is `[..., D, D]` (symmetric positive definite), `b`, vectors `v` and covectors
`xi` are `[..., D]`; leading dimensions broadcast. `a=None` stands for the identity: with a
factor $a = L L^\top$ and $b = L w$, the norm in the coordinates $y = L^\top v$ is
$|y| + w \cdot y$, which is how `Randers` evaluates everything (no factorization of `a`).

The norm is $F(v) = \alpha(v) + \beta(v)$ with $\alpha = \sqrt{v^\top a v}$ and
$\beta = b^\top v$; it is a Finsler (strongly convex) norm iff
$\|b\|_{a^{-1}}^2 = b^\top a^{-1} b < 1$. See `docs/concepts` and the project reference for
the derivations; every formula is tested against an independent computation.
"""

from __future__ import annotations

import warnings

import torch

from finslerlib.math.linalg import matvec, solve_spd
from finslerlib.math.pairwise import pairwise_randers, safe_div, safe_sqrt
from finslerlib.math.validation import check_randers

__all__ = [
    "quadratic_form",
    "drift_norm",
    "norm",
    "factor_norm",
    "cdist",
    "dual_terms",
    "dual_norm",
    "legendre",
    "inverse_legendre",
    "fundamental_tensor",
    "inner",
    "navigation_to_randers",
    "randers_to_navigation",
]


def quadratic_form(a: torch.Tensor, v: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""The quadratic form $v^\top a v$.

    Args:
        a: Tensor, shape `[..., D, D]`.
        v: Tensor, shape `[..., D]`.
        keepdim: keep the last dimension (size 1).

    Returns:
        Tensor, shape `[...]` (or `[..., 1]`).

    Example:
        >>> quadratic_form(torch.eye(2), torch.tensor([3.0, 4.0]))
        tensor(25.)
    """
    return (matvec(a, v) * v).sum(-1, keepdim=keepdim)


def drift_norm(a: torch.Tensor, b: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""The drift size $\|b\|_{a^{-1}} = \sqrt{b^\top a^{-1} b}$; $F$ is a Finsler norm iff it is $< 1$.

    Args:
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> drift_norm(4 * torch.eye(2), torch.tensor([1.0, 0.0]))
        tensor(0.5000)
    """
    b_sharp = solve_spd(a, b)
    return safe_sqrt((b * b_sharp).sum(-1, keepdim=keepdim))


def norm(
    v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    r"""Randers norm $F(v) = \sqrt{v^\top a v} + b^\top v$.

    The square root has a finite (zero) gradient at $v = 0$.

    Args:
        v: Tensor, shape `[..., D]`, tangent vectors.
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`, with $\|b\|_{a^{-1}} < 1$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`: $F(v) \ge 0$.

    Example:
        >>> a, b = torch.eye(2), torch.tensor([0.5, 0.0])
        >>> norm(torch.tensor([1.0, 0.0]), a, b), norm(torch.tensor([-1.0, 0.0]), a, b)
        (tensor(1.5000), tensor(0.5000))
    """
    if a is None:  # the identity: one fused norm (zero gradient at v = 0 as well)
        alpha = torch.linalg.vector_norm(v, dim=-1, keepdim=keepdim)
    else:
        alpha = safe_sqrt(quadratic_form(a, v, keepdim=keepdim))
    beta = (b * v).sum(-1, keepdim=keepdim)
    return alpha + beta


def factor_norm(y: torch.Tensor, w: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
    r"""The Randers norm in factor coordinates, $F = |y| + w \cdot y$, without cancellation.

    With $a = L L^\top$, $b = L w$ and $y = L^\top v$ this is $F(v)$. Where $\beta = w \cdot y < 0$
    the sum $\alpha + \beta$ cancels (about $\log_{10} \frac{2}{1 - |w|}$ digits are lost); there
    it is evaluated as $(\alpha^2 - \beta^2) / (\alpha - \beta)$ with
    $\alpha^2 - \beta^2 = |y_\perp|^2 + (1 - |w|^2)\, (w \cdot y)^2 / |w|^2$
    ($y_\perp$ the part of $y$ orthogonal to $w$), and float32 / float16 inputs are combined in
    float64, so the result is correctly rounded up to a few units in the last place for every
    admissible drift $|w| < 1$. Zero gradient at $y = 0$.

    Args:
        y: Tensor, shape `[..., R]`, vectors in factor coordinates.
        w: Tensor, shape `[R]` (or broadcastable), the drift in factor coordinates, $|w| < 1$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`, in `y`'s dtype.

    Example:
        >>> w = torch.tensor([0.9995, 0.0])
        >>> factor_norm(torch.tensor([-1.0, 0.0]), w)  # 1 - 0.9995, no digits lost
        tensor(0.0005)
    """
    out_dtype = y.dtype
    work = y
    if y.dtype in (torch.float16, torch.bfloat16, torch.float32) and y.device.type != "mps":
        work, w = y.double(), w.double()
    else:
        w = w.to(y.dtype)
    sq = (work * work).sum(-1, keepdim=True)
    alpha = safe_sqrt(sq)
    beta = (work * w).sum(-1, keepdim=True)
    n2 = (w * w).sum(-1, keepdim=True)
    # alpha^2 - beta^2 = |y_perp|^2 + (1 - |w|^2) (w.y)^2 / |w|^2, each term without cancellation
    k = safe_div(beta, n2)
    perp = work - k * w
    gap = (perp * perp).sum(-1, keepdim=True) + (1.0 - n2) * k * beta
    out = torch.where(beta < 0, safe_div(gap, alpha - beta), alpha + beta).to(out_dtype)
    return out if keepdim else out.squeeze(-1)


def cdist(
    x: torch.Tensor,
    y: torch.Tensor,
    factor: torch.Tensor,
    w: torch.Tensor,
    *,
    precise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""All Minkowski–Randers distances $F(y_j - x_i)$ for $a = L L^\top$, $b = L w$, any batch shape.

    Runs the fused Gram kernel `finslerlib.math.pairwise.pairwise_randers` (batched inputs one
    batch entry at a time; no `[..., N, M, D]` tensor either way).

    Accuracy: every entry is within `finslerlib.math.pairwise.target_accuracy` (1e-6 relative in
    float32, 1e-12 in float64) of the distance of the same inputs evaluated in float64. The Gram
    form gives $\alpha = |L^\top(y_j - x_i)|$ to a relative error of about
    $\varepsilon\, (|s_i|^2 + |t_j|^2) / \alpha^2$ (as `torch.cdist`), and $F = \alpha + \beta$
    multiplies it by $\alpha / F \le 1 / (1 - |w|)$ where the drift term cancels: the entries a
    rounding-error model flags (close pairs, cancelling drift) are recomputed from float64
    differences with `factor_norm` (their number times `R` extra work). Coincident points give
    exactly 0.

    Args:
        x: Tensor, shape `[..., N, D]`, sources.
        y: Tensor, shape `[..., M, D]`, targets.
        factor: Tensor, shape `[D, R]`, $L$.
        w: Tensor, shape `[R]`.
        precise: optional `(factor, w)` in float64 for float32 inputs (factored from the float64
            data, see `Randers`): the points are mapped and the flagged entries evaluated with it.

    Returns:
        Tensor, shape `[..., N, M]`: `[..., i, j]` $= d(x_i \to y_j)$.

    Example:
        >>> x, y = torch.zeros(3, 1, 2), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> cdist(x, y, torch.eye(2), torch.tensor([0.5, 0.0]))[0]
        tensor([[1.5000, 0.5000]])
    """
    w_exact = (w if precise is None else precise[1]).detach()
    if x.device.type != "mps":
        w_exact = w_exact.double()

    def exact(z):
        return factor_norm(z, w_exact.to(z.dtype))

    if x.dim() == 2 and y.dim() == 2:
        return pairwise_randers(x, y, factor, w, exact=exact, precise=precise)
    shape = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    xs = x.expand(*shape, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
    ys = y.expand(*shape, *y.shape[-2:]).reshape(-1, *y.shape[-2:])
    parts = [
        pairwise_randers(xb, yb, factor, w, exact=exact, precise=precise)
        for xb, yb in zip(xs, ys, strict=True)
    ]
    if not parts:
        return x.new_zeros(*shape, x.shape[-2], y.shape[-2])
    return torch.stack(parts).reshape(*shape, x.shape[-2], y.shape[-2])


def dual_terms(q: torch.Tensor, t: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The dual norm from its scalar pieces: $s = \sqrt{\lambda q + t^2}$ and $F^* = (s - t)/\lambda$.

    The one place the dual-norm / inverse-Legendre arithmetic lives (used by `dual_norm`,
    `inverse_legendre` and the Hamiltonian vector field of `finslerlib.geodesics`). With
    $q = \xi^\top a^{-1} \xi$, $t = \xi \cdot b^\sharp$ ($b^\sharp = a^{-1} b$) and
    $\lambda = 1 - b^\top b^\sharp$, $F^*(\xi) = (s - t)/\lambda$, evaluated as $q / (s + t)$ where
    $t > 0$ (no cancellation as $\lambda \to 0$); the inverse Legendre map is then
    $\ell^{-1}(\xi) = \frac{F^*}{s}(a^{-1}\xi - F^* b^\sharp)$.

    Args:
        q: Tensor, shape `[...]`.
        t: Tensor, shape `[...]`.
        lam: Tensor, shape `[...]`, positive.

    Returns:
        `(s, dual)`, Tensors of shape `[...]`.

    Example:
        >>> s, f = dual_terms(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.75))
        >>> f  # xi = (1, 0), a = I, b = (0.5, 0): F* = 2/3
        tensor(0.6667)
    """
    s = safe_sqrt(lam * q + t * t)
    return s, torch.where(t > 0, safe_div(q, s + t), (s - t) / lam)


def _dual_parts(xi: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """Shared pieces of the dual norm: `a^{-1} xi`, `b# = a^{-1} b`, `s`, `t = xi . b#`, `F*`."""
    chol = None if a is None else torch.linalg.cholesky(a)
    a_inv_xi = solve_spd(a, xi, chol=chol)
    b_sharp = solve_spd(a, b, chol=chol)
    lam = 1.0 - (b * b_sharp).sum(-1, keepdim=True)
    q = (xi * a_inv_xi).sum(-1, keepdim=True)
    t = (xi * b_sharp).sum(-1, keepdim=True)
    s, dual = dual_terms(q, t, lam)
    return a_inv_xi, b_sharp, s, dual


def dual_norm(
    xi: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, keepdim: bool = False
) -> torch.Tensor:
    r"""Dual (co-)norm $F^*(\xi) = \sup_{F(v) = 1} \xi(v)$ of a Randers norm.

    In closed form, with $b^\sharp = a^{-1} b$, $\lambda = 1 - b^\top b^\sharp$:
    $F^*(\xi) = \big(\sqrt{\lambda\, \xi^\top a^{-1} \xi + (\xi \cdot b^\sharp)^2}
    - \xi \cdot b^\sharp\big) / \lambda$, i.e. the Randers co-metric
    $\sqrt{\xi^\top h^{-1} \xi} + \xi(W)$ of the navigation data $(h, W)$.

    Args:
        xi: Tensor, shape `[..., D]`, covectors.
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> a, b = torch.eye(2), torch.tensor([0.5, 0.0])
        >>> dual_norm(torch.tensor([1.0, 0.0]), a, b)  # sup of v_1 on F(v) = 1: v = (2/3, 0)
        tensor(0.6667)
    """
    out = _dual_parts(xi, a, b)[3]
    return out if keepdim else out.squeeze(-1)


def legendre(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Legendre map $\ell(v) = g_v(v, \cdot) = \tfrac12 \partial_v F^2 = F(v)\,(a v / \alpha + b)$.

    $\ell(0) = 0$.

    Args:
        v: Tensor, shape `[..., D]`.
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`.

    Returns:
        Tensor, shape `[..., D]`: a covector.

    Example:
        >>> legendre(torch.tensor([2.0, 0.0]), torch.eye(2), torch.tensor([0.5, 0.0]))
        tensor([4.5000, 0.0000])
    """
    av = matvec(a, v)
    alpha = safe_sqrt((av * v).sum(-1, keepdim=True))
    f = alpha + (b * v).sum(-1, keepdim=True)
    return f * (safe_div(av, alpha) + b)


def inverse_legendre(xi: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Inverse Legendre map $\ell^{-1}(\xi) = \tfrac12 \partial_\xi F^{*2}$.

    Closed form: $\ell^{-1}(\xi) = \frac{F^*(\xi)}{s}\,\big(a^{-1}\xi - F^*(\xi)\, b^\sharp\big)$
    with $s = \sqrt{\lambda\, \xi^\top a^{-1} \xi + (\xi \cdot b^\sharp)^2}$. Applied to a
    differential $df$ it gives the Finsler gradient. $\ell^{-1}(0) = 0$.

    Args:
        xi: Tensor, shape `[..., D]`, covectors.
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`.

    Returns:
        Tensor, shape `[..., D]`: a vector with $\ell(\ell^{-1}(\xi)) = \xi$.

    Example:
        >>> inverse_legendre(torch.tensor([4.5, 0.0]), torch.eye(2), torch.tensor([0.5, 0.0]))
        tensor([2., 0.])
    """
    a_inv_xi, b_sharp, s, dual = _dual_parts(xi, a, b)
    return safe_div(dual, s) * (a_inv_xi - dual * b_sharp)


def fundamental_tensor(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Fundamental tensor $g_{ij}(v) = \tfrac12 \partial^2 F^2 / \partial v^i \partial v^j$.

    Closed form with $\ell = a v / \alpha$:
    $g(v) = \frac{F}{\alpha}\,(a - \ell \ell^\top) + (\ell + b)(\ell + b)^\top$. It is positive
    definite for $v \neq 0$ and undefined at $v = 0$ (where this returns $b b^\top$).

    Args:
        v: Tensor, shape `[..., D]`, nonzero.
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`.

    Returns:
        Tensor, shape `[..., D, D]`.

    Example:
        >>> fundamental_tensor(torch.tensor([1.0, 0.0]), torch.eye(2), torch.zeros(2))
        tensor([[1., 0.],
                [0., 1.]])
    """
    av = matvec(a, v)
    alpha = safe_sqrt((av * v).sum(-1, keepdim=True))
    f = alpha + (b * v).sum(-1, keepdim=True)
    ell = safe_div(av, alpha)
    ratio = safe_div(f, alpha).unsqueeze(-1)
    lb = ell + b
    if a is None:
        a = torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
    return ratio * (a - ell.unsqueeze(-1) * ell.unsqueeze(-2)) + lb.unsqueeze(-1) * lb.unsqueeze(-2)


def inner(
    u: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    keepdim: bool = False,
) -> torch.Tensor:
    r"""The Finsler inner product $g_u(u, v) = \ell(u)(v)$ in the reference direction $u$.

    $g_u(u, u) = F(u)^2$.

    Args:
        u: Tensor, shape `[..., D]`, reference direction.
        v: Tensor, shape `[..., D]`.
        a: Tensor, shape `[..., D, D]`.
        b: Tensor, shape `[..., D]`.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> u = torch.tensor([1.0, 0.0])
        >>> inner(u, u, torch.eye(2), torch.tensor([0.5, 0.0]))  # F(u)^2
        tensor(2.2500)
    """
    return (legendre(u, a, b) * v).sum(-1, keepdim=keepdim)


def navigation_to_randers(h: torch.Tensor, wind: torch.Tensor):
    r"""Zermelo navigation data $(h, W)$ to Randers data $(a, b)$.

    With $\lambda = 1 - |W|_h^2$ and $W_\flat = h W$:
    $a = h/\lambda + W_\flat W_\flat^\top / \lambda^2$, $b = -W_\flat / \lambda$.
    The unit ball of $F$ is the $h$-unit ball translated by the wind: moving with it is cheap.

    Args:
        h: Tensor, shape `[..., D, D]`, SPD.
        wind: Tensor, shape `[..., D]`, with $|W|_h < 1$.

    Returns:
        `(a, b)`: Tensors of shapes `[..., D, D]` and `[..., D]`.

    Example:
        >>> a, b = navigation_to_randers(torch.eye(2), torch.tensor([0.5, 0.0]))
        >>> norm(torch.tensor([1.5, 0.0]), a, b)  # (1 + 0.5) along the wind costs 1
        tensor(1.)
    """
    w_flat = matvec(h, wind)
    lam = 1.0 - (w_flat * wind).sum(-1, keepdim=True)
    a = h / lam.unsqueeze(-1) + w_flat.unsqueeze(-1) * w_flat.unsqueeze(-2) / (lam * lam).unsqueeze(-1)
    b = -w_flat / lam
    return a, b


def randers_to_navigation(a: torch.Tensor, b: torch.Tensor):
    r"""Randers data $(a, b)$ to Zermelo navigation data $(h, W)$.

    $\lambda = 1 - b^\top a^{-1} b$, $h = \lambda (a - b b^\top)$, $W = -a^{-1} b / \lambda$;
    note $|W|_h = \|b\|_{a^{-1}}$.

    Args:
        a: Tensor, shape `[..., D, D]`, SPD.
        b: Tensor, shape `[..., D]`, $\|b\|_{a^{-1}} < 1$.

    Returns:
        `(h, wind)`: Tensors of shapes `[..., D, D]` and `[..., D]`.

    Example:
        >>> h, w = randers_to_navigation(*navigation_to_randers(torch.eye(2), torch.tensor([0.5, 0.0])))
        >>> torch.allclose(h, torch.eye(2)), torch.allclose(w, torch.tensor([0.5, 0.0]))
        (True, True)
    """
    b_sharp = solve_spd(a, b)
    lam = 1.0 - (b * b_sharp).sum(-1, keepdim=True)
    h = lam.unsqueeze(-1) * (a - b.unsqueeze(-1) * b.unsqueeze(-2))
    wind = -b_sharp / lam
    return h, wind


def validate_randers(a: torch.Tensor, b: torch.Tensor, *, where: str = "") -> None:
    r"""Deprecated alias of `finslerlib.math.validation.check_randers(a, b, label=where)`.

    Raises `ValueError` unless $(a, b)$ define a strongly convex Randers norm (shapes, dtype,
    finiteness, symmetry, positive definiteness, $\|b\|_{a^{-1}} < 1$). Removed in the next
    release; it warns with a `DeprecationWarning`.

    Args:
        a: Tensor, shape `[..., D, D]`.
        b: Tensor, shape `[..., D]`.
        where: text naming the point(s) the coefficients belong to, put in front of the message.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     validate_randers(torch.eye(2), torch.tensor([2.0, 0.0]))
        Traceback (most recent call last):
        ...
        ValueError: drift too large: ||b||_{a^-1} = 2 >= 1, so F is not positive (need < 1)
    """
    warnings.warn(
        "finslerlib.math.randers.validate_randers is deprecated: use "
        "finslerlib.math.validation.check_randers(a, b, label=where)",
        DeprecationWarning,
        stacklevel=2,
    )
    check_randers(a, b, label=where)
