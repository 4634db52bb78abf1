"""FAIMHead: numerics against independent formulas, the notes' einsum head, gradients,
training, precision handling, compile, serialization and memory behaviour."""

import copy
import math
import time

import geoopt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from finslerlib import Randers
from finslerlib.nn import FAIMHead
from tests.support import tol
from tests.support.nn_toys import MANIFOLD_KINDS, make_manifold, pairwise_by_dist, randers_brute_force

DIRECTIONS = ["to_prototype", "from_prototype", "max"]


def _perturbed(head, scale=0.3):
    """Move every parameter away from its (symmetric, Euclidean) initialization."""
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name != "prototypes" and name != "log_scale":
                p.add_(scale * torch.randn_like(p))
    return head


def _expected(direction, forward, backward):
    if direction == "to_prototype":
        return forward
    if direction == "from_prototype":
        return backward
    return torch.maximum(forward, backward)


# --------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_full_rank_distances_match_pairwise_brute_force(direction):
    torch.manual_seed(0)
    head = _perturbed(FAIMHead(6, 5, direction=direction, dtype=torch.float64))
    x = torch.randn(7, 6, dtype=torch.float64)
    a, b = head.manifold.a.detach(), head.manifold.b.detach()
    mu = head.prototypes.detach()
    expected = _expected(direction, randers_brute_force(a, b, x, mu), randers_brute_force(a, b, mu, x).T)
    torch.testing.assert_close(head.distances(x).detach(), expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(head(x).detach(), -head.scale.detach() * expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_rank_r_head_is_randers_on_a_learned_projection(direction):
    torch.manual_seed(1)
    head = _perturbed(FAIMHead(9, 4, direction=direction, rank=3, dtype=torch.float64))
    assert head.prototypes.shape == (4, 3) and head.manifold.dim == 3
    x = torch.randn(5, 9, dtype=torch.float64)
    z = torch.stack([head.projection.weight.detach() @ xi for xi in x])  # P x, one at a time
    a, b = head.manifold.a.detach(), head.manifold.b.detach()
    mu = head.prototypes.detach()
    expected = _expected(direction, randers_brute_force(a, b, z, mu), randers_brute_force(a, b, mu, z).T)
    torch.testing.assert_close(head.distances(x).detach(), expected, rtol=1e-9, atol=1e-10)


def test_rank_projection_preserves_norms_on_average():
    torch.manual_seed(2)
    head = FAIMHead(256, 3, rank=32, dtype=torch.float64)
    x = torch.randn(400, 256, dtype=torch.float64)
    ratio = (head.embed(x).norm(dim=-1) / x.norm(dim=-1)).mean()
    assert 0.9 < ratio.item() < 1.1


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_any_manifold_features_go_through_expmap0(kind, direction):
    torch.manual_seed(3)
    m = make_manifold(kind, 4)
    head = FAIMHead(4, 3, m, direction=direction, dtype=torch.float64)
    x = 0.5 * torch.randn(6, 4, dtype=torch.float64)
    z = m.expmap0(x)
    mu = head.prototypes.detach()
    expected = _expected(direction, pairwise_by_dist(m, z, mu), pairwise_by_dist(m, mu, z).T)
    torch.testing.assert_close(head.distances(x).detach(), expected, rtol=1e-8, atol=1e-9)


def test_manifold_with_rank_projects_into_it():
    torch.manual_seed(4)
    m = make_manifold("toyfunk", 3)
    head = FAIMHead(8, 2, m, rank=3, dtype=torch.float64)
    x = torch.randn(5, 8, dtype=torch.float64)
    z = m.expmap0(x @ head.projection.weight.detach().T)
    assert bool((z.norm(dim=-1) < 1).all())
    torch.testing.assert_close(head.distances(x).detach(), pairwise_by_dist(m, z, head.prototypes.detach()))


# The einsum head of docs/concepts/classification.md, written independently as the oracle.
class NotesFAIMHead(nn.Module):
    def __init__(self, feat_dim, n_cls, λ=0.1):
        super().__init__()
        self.mu     = nn.Parameter(torch.randn(n_cls, feat_dim))   # 類原型  # noqa: E221
        self.L      = nn.Parameter(torch.eye(feat_dim))            # Σ½ 確保正定  # noqa: E221
        self.beta   = nn.Parameter(torch.randn(feat_dim))          # 1-form β  # noqa: E221
        self.lmbda  = nn.Parameter(torch.tensor(λ))  # noqa: E221
        self.scale  = nn.Parameter(torch.tensor(10.0))             # γ  # noqa: E221

    def _sigma(self):
        # Σ = L Lᵀ + εI
        eye = torch.eye(self.L.size(0), device=self.L.device)
        return self.L @ self.L.T + 1e-6 * eye

    def forward(self, x):                     # x: [B, D]
        Σ   = self._sigma()                  # [D, D]  # noqa: E221
        diff = x.unsqueeze(1) - self.mu      # [B, C, D]
        quad = torch.einsum('bcd,df,bcf->bc', diff, Σ, diff)  # (q-p)ᵀ Σ (q-p)
        beta_dot = torch.einsum('d,bcd->bc', self.beta, diff) # β·(q-p)  # noqa: E261
        d_F = torch.sqrt(quad) + self.lmbda * beta_dot.abs()  # geodesic
        logits = -self.scale * d_F                            # 熱度 γ
        return logits


def _notes_and_randers(seed, dim=6, classes=5):
    torch.manual_seed(seed)
    notes = NotesFAIMHead(dim, classes).double()
    with torch.no_grad():
        notes.L.add_(0.2 * torch.randn(dim, dim, dtype=torch.float64))
        notes.beta.mul_(0.5)
    sigma, b = notes._sigma().detach(), (notes.lmbda * notes.beta).detach()
    return notes, Randers(sigma, b)


def test_max_direction_is_exactly_the_notes_einsum_head():
    notes, metric = _notes_and_randers(5)
    assert metric.drift_norm() < 1  # a genuine Randers metric
    head = FAIMHead(6, 5, metric, direction="max", scale=10.0, dtype=torch.float64)
    with torch.no_grad():
        head.prototypes.copy_(notes.mu)
    x = 2 * torch.randn(9, 6, dtype=torch.float64)
    torch.testing.assert_close(head(x).detach(), notes(x).detach(), rtol=1e-9, atol=1e-9)


def test_plain_directions_differ_from_the_notes_by_the_signed_drift():
    # d(x -> mu) = sqrt(quad) + b.(mu - x): the notes' |beta.diff| replaced by -lambda beta.diff
    notes, metric = _notes_and_randers(6)
    head = FAIMHead(6, 5, metric, scale=10.0, dtype=torch.float64)
    with torch.no_grad():
        head.prototypes.copy_(notes.mu)
    x = torch.randn(9, 6, dtype=torch.float64)
    diff = x.unsqueeze(1) - notes.mu.detach()
    quad = torch.einsum("bcd,df,bcf->bc", diff, notes._sigma().detach(), diff)
    signed = torch.einsum("d,bcd->bc", (notes.lmbda * notes.beta).detach(), diff)
    torch.testing.assert_close(head.distances(x).detach(), torch.sqrt(quad) - signed)
    head.direction = "from_prototype"
    torch.testing.assert_close(head.distances(x).detach(), torch.sqrt(quad) + signed)


@given(seed=st.integers(0, 2**16))
def test_head_distances_obey_metric_laws(seed):
    # flat Randers: d(x->mu) - d(mu->x) = 2 b.(mu - x); triangle inequality through any point;
    # d >= 0 with equality at mu itself
    torch.manual_seed(seed)
    head = _perturbed(FAIMHead(3, 4, dtype=torch.float64), scale=0.5)
    x = torch.randn(5, 3, dtype=torch.float64)
    mu = head.prototypes.detach()
    fwd = head.distances(x).detach()
    head.direction = "from_prototype"
    bwd = head.distances(x).detach()
    b = head.manifold.b.detach()
    torch.testing.assert_close(fwd - bwd, 2 * (mu @ b).unsqueeze(0) - 2 * (x @ b).unsqueeze(1))
    assert bool((fwd >= -1e-12).all())
    head.direction = "to_prototype"
    at_mu = head.distances(mu)
    assert at_mu.diagonal().abs().max() < 1e-6
    # d(x -> mu_k) <= d(x -> mu_0) + d(mu_0 -> mu_k)
    via = fwd[:, :1] + at_mu.detach()[:1, :]
    assert bool((fwd <= via + 1e-9).all())


def test_leading_batch_dimensions():
    torch.manual_seed(7)
    head = FAIMHead(5, 3)
    x = torch.randn(2, 4, 5)
    out = head(x)
    assert out.shape == (2, 4, 3)
    torch.testing.assert_close(out, head(x.reshape(8, 5)).reshape(2, 4, 3))
    assert head(x[0, 0]).shape == (3,)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gradcheck_float64(direction, rank):
    torch.manual_seed(8)
    head = _perturbed(FAIMHead(3, 2, direction=direction, rank=rank, dtype=torch.float64))
    names = [n for n, _ in head.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in head.named_parameters())
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)

    def logits(x, *ps):
        return torch.func.functional_call(head, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(logits, (x, *params))


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
def test_gradcheck_float64_curved(kind):
    torch.manual_seed(9)
    head = FAIMHead(3, 2, make_manifold(kind, 3), direction="max", dtype=torch.float64)
    x = 0.5 * torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    mu = head.prototypes.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, mu: torch.func.functional_call(head, {"prototypes": mu}, (x,)), (x, mu)
    )


def test_gradient_finite_when_a_feature_sits_on_a_prototype():
    head = FAIMHead(4, 3)
    x = head.prototypes.detach()[:2].clone().requires_grad_()
    head(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.prototypes.grad).all()


def test_scale_learnable_or_fixed():
    x = torch.randn(3, 4)
    learned = FAIMHead(4, 2, scale=5.0)
    fixed = FAIMHead(4, 2, scale=5.0, learn_scale=False)
    assert learned.scale.item() == pytest.approx(5.0) and fixed.scale.item() == pytest.approx(5.0)
    assert "log_scale" in dict(learned.named_parameters())
    assert "log_scale" not in dict(fixed.named_parameters()) and "log_scale" in fixed.state_dict()
    learned(x).sum().backward()
    assert learned.log_scale.grad is not None and learned.log_scale.grad != 0


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("rank", [None, 3])
def test_training_with_riemannian_adam_lowers_the_loss(rank):
    torch.manual_seed(10)
    classes, dim = 4, 8
    centres = 2 * torch.randn(classes, dim)
    labels = torch.arange(classes).repeat_interleave(32)
    x = centres[labels] + torch.randn(len(labels), dim)
    head = FAIMHead(dim, classes, rank=rank)
    opt = geoopt.optim.RiemannianAdam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert (head(x).argmax(-1) == labels).float().mean() > 0.9


@pytest.mark.parametrize("kind", MANIFOLD_KINDS[1:])
def test_training_on_a_curved_manifold_keeps_prototypes_inside(kind):
    torch.manual_seed(11)
    classes, dim = 3, 4
    centres = torch.randn(classes, dim)
    labels = torch.arange(classes).repeat_interleave(16)
    x = (centres[labels] + 0.3 * torch.randn(len(labels), dim)).double()
    head = FAIMHead(dim, classes, make_manifold(kind, dim), scale=3.0, dtype=torch.float64)
    opt = geoopt.optim.RiemannianAdam(head.parameters(), lr=0.02)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), labels)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first
    assert bool((head.prototypes.norm(dim=-1) < 1).all())


# --------------------------------------------------------------------------- precision, devices
def test_dtype_and_device_follow(dtype, device):
    torch.manual_seed(12)
    head = FAIMHead(5, 3, dtype=dtype, device=device)
    x = torch.randn(4, 5, dtype=dtype, device=device)
    out = head(x)
    assert out.dtype == dtype and out.device.type == device.type
    reference = FAIMHead(5, 3, dtype=torch.float64)
    reference.load_state_dict({k: v.double().cpu() for k, v in head.state_dict().items()})
    rtol, atol = tol(dtype)
    expected = reference(x.double().cpu())
    torch.testing.assert_close(out.double().cpu(), expected, rtol=10 * rtol, atol=10 * atol)


def test_module_to_converts_everything(device):
    head = FAIMHead(5, 3, rank=2).to(device=device, dtype=torch.float64)
    assert all(p.dtype == torch.float64 and p.device.type == device.type for p in head.parameters())
    assert isinstance(head.prototypes, geoopt.ManifoldParameter)
    assert head(torch.randn(2, 5, dtype=torch.float64, device=device)).dtype == torch.float64


@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_distance_math_in_float32(device, autocast_dtype):
    if device.type == "cpu" and autocast_dtype == torch.float16:
        pytest.skip("CPU autocast is bfloat16")
    torch.manual_seed(13)
    backbone = nn.Linear(6, 8).to(device)
    head = _perturbed(FAIMHead(8, 4, direction="max")).to(device)
    x = torch.randn(5, 6, device=device)
    with torch.autocast(device_type=device.type, dtype=autocast_dtype):
        features = backbone(x)
        logits = head(features)
    assert features.dtype == autocast_dtype  # the backbone did run in low precision
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, head(features.float()), rtol=1e-6, atol=1e-6)


def test_float16_input_without_autocast_is_upcast():
    head = FAIMHead(4, 2)
    x = torch.randn(3, 4)
    out = head(x.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head(x.to(torch.bfloat16).float()))


def test_torch_compile_fullgraph_with_value_checks_on_matches_eager():
    # value checks on (the default): they trace as assertion ops, so fullgraph=True compiles
    torch.manual_seed(14)
    head = _perturbed(FAIMHead(6, 5, direction="max", margin=0.2))
    x = torch.randn(4, 6, requires_grad=True)
    y = torch.tensor([0, 4, 2, 2])
    eager = head(x, y)
    (g_eager,) = torch.autograd.grad(eager.sum(), x)
    compiled = torch.compile(head, fullgraph=True)
    start = time.perf_counter()
    out = compiled(x, y)
    (g_comp,) = torch.autograd.grad(out.sum(), x)
    elapsed = time.perf_counter() - start
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_comp, g_eager, rtol=1e-5, atol=1e-5)
    assert elapsed < 120  # inductor compile on CPU; a regression guard, not a benchmark


# --------------------------------------------------------------------------- state, copies
@pytest.mark.parametrize("kwargs", [{}, {"rank": 2}, {"learn_scale": False, "direction": "max"}])
def test_state_dict_round_trip(kwargs):
    torch.manual_seed(15)
    head = _perturbed(FAIMHead(5, 3, scale=4.0, **kwargs))
    x = torch.randn(6, 5)
    torch.manual_seed(99)
    other = FAIMHead(5, 3, **kwargs)
    assert not torch.allclose(other(x), head(x))
    other.load_state_dict(head.state_dict())
    torch.testing.assert_close(other(x), head(x), rtol=0, atol=0)
    assert isinstance(other.prototypes, geoopt.ManifoldParameter)


def test_deepcopy_keeps_prototypes_on_the_copied_manifold():
    head = FAIMHead(4, 2)
    clone = copy.deepcopy(head)
    assert clone.prototypes.manifold is clone.manifold
    assert head.prototypes.manifold is head.manifold


# --------------------------------------------------------------------------- memory
class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("kwargs", [{}, {"direction": "max"}, {"rank": 8}])
def test_never_materializes_batch_by_class_by_dim(kwargs):
    batch, classes, dim = 16, 24, 32
    head = FAIMHead(dim, classes, **kwargs)
    x = torch.randn(batch, dim, requires_grad=True)
    with _LargestTensor() as mode:
        head(x).sum().backward()
    # the largest legitimate tensors are [D, D] (1024) and [C, D] (768); [B, C, D] is 12288
    assert mode.largest <= max(dim * dim, batch * classes, classes * dim)


# --------------------------------------------------------------------------- errors
def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="direction"):
        FAIMHead(4, 2, direction="sideways")
    with pytest.raises(ValueError, match="scale"):
        FAIMHead(4, 2, scale=0.0)
    with pytest.raises(ValueError, match="rank"):
        FAIMHead(4, 2, rank=5)
    with pytest.raises(ValueError, match="rank=manifold.dim"):
        FAIMHead(4, 2, Randers.learnable(3))
    with pytest.raises(ValueError, match="rank is 2"):
        FAIMHead(4, 2, Randers.learnable(3), rank=2)
    with pytest.raises(ValueError, match=r"\[..., 4\]"):
        FAIMHead(4, 2)(torch.randn(3, 5))
    assert math.isclose(FAIMHead(4, 2, Randers.learnable(3), rank=3).prototypes.shape[-1], 3)
