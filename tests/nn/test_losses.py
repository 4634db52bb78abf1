"""FAIM losses (module and functional): brute-force oracles, gradients, training, precision."""

import geoopt
import pytest
import torch
from torch import nn

from finslerlib import Randers
from finslerlib.nn import FAIMHead, FAIMInfoNCELoss, FAIMMarginLoss, FAIMTripletLoss
from finslerlib.nn import functional as F
from tests.support.nn_toys import MANIFOLD_KINDS, make_manifold


def _points(kind, n, dim, seed, scale=0.6):
    torch.manual_seed(seed)
    m = make_manifold(kind, dim)
    return m, m.expmap0(scale * torch.randn(n, dim, dtype=torch.float64)), m.expmap0(
        scale * torch.randn(n, dim, dtype=torch.float64)
    )


def _info_nce_loops(m, a, p, temperature):
    """Per-row InfoNCE from scalar `dist` calls and an explicit log-sum-exp."""
    n = a.shape[0]
    rows, cols = [], []
    logits = [[-m.dist(a[i], p[j]) / temperature for j in range(n)] for i in range(n)]
    for i in range(n):
        rows.append(-logits[i][i] + torch.logsumexp(torch.stack(logits[i]), 0))
        col = torch.stack([logits[k][i] for k in range(n)])
        cols.append(-logits[i][i] + torch.logsumexp(col, 0))
    return torch.stack(rows), torch.stack(cols)


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
def test_info_nce_matches_pairwise_loops(kind):
    m, a, p = _points(kind, 5, 3, seed=0)
    rows, cols = _info_nce_loops(m, a, p, 0.3)
    loss = F.info_nce_loss(m, a, p, temperature=0.3, reduction="none")
    torch.testing.assert_close(loss, rows)
    torch.testing.assert_close(F.info_nce_loss(m, a, p, temperature=0.3), rows.mean())
    torch.testing.assert_close(F.info_nce_loss(m, a, p, temperature=0.3, reduction="sum"), rows.sum())
    sym = F.info_nce_loss(m, a, p, temperature=0.3, symmetric=True)
    torch.testing.assert_close(sym, 0.5 * (rows.mean() + cols.mean()))
    module = FAIMInfoNCELoss(m, temperature=0.3, symmetric=True)
    torch.testing.assert_close(module(a, p), sym)


def test_info_nce_uses_the_forward_direction():
    # an asymmetric metric: swapping anchors and positives changes the loss
    m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.8, 0.0], dtype=torch.float64))
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = a + torch.tensor([0.4, 0.0], dtype=torch.float64)
    assert not torch.allclose(F.info_nce_loss(m, a, p), F.info_nce_loss(m, p, a))


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
def test_triplet_matches_formula(kind):
    m, a, p = _points(kind, 6, 3, seed=1)
    n = m.expmap0(0.6 * torch.randn(6, 3, dtype=torch.float64))
    expected = torch.stack(
        [torch.clamp(m.dist(a[i], p[i]) - m.dist(a[i], n[i]) + 0.5, min=0) for i in range(6)]
    )
    torch.testing.assert_close(F.triplet_loss(m, a, p, n, margin=0.5, reduction="none"), expected)
    torch.testing.assert_close(FAIMTripletLoss(m, margin=0.5)(a, p, n), expected.mean())


def test_triplet_on_an_asymmetric_line():
    m = Randers(torch.eye(1), torch.tensor([0.5]))
    a, p, n = torch.zeros(1, 1), torch.ones(1, 1), -torch.ones(1, 1)
    # d(a->p) = 1.5, d(a->n) = 0.5: the "positive" is upwind
    assert F.triplet_loss(m, a, p, n, margin=0.0).item() == pytest.approx(1.0)
    assert F.triplet_loss(m, a, n, p, margin=0.0).item() == 0.0


def test_margin_loss_matches_one_hot_formula():
    torch.manual_seed(2)
    head = FAIMHead(4, 5, scale=3.0, dtype=torch.float64)
    x = torch.randn(7, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    d = head.distances(x)
    onehot = nn.functional.one_hot(y, 5).double()
    expected = nn.functional.cross_entropy(-head.scale * (d + 0.4 * onehot), y, reduction="none")
    torch.testing.assert_close(FAIMMarginLoss(head, margin=0.4, reduction="none")(x, y), expected)
    torch.testing.assert_close(F.margin_loss(d, y, scale=head.scale, margin=0.4), expected.mean())
    # margin 0 is the plain head + cross-entropy; a margin only adds loss
    plain = nn.functional.cross_entropy(head(x), y)
    torch.testing.assert_close(FAIMMarginLoss(head, margin=0.0)(x, y), plain)
    assert FAIMMarginLoss(head, margin=0.4)(x, y) > plain


def test_margin_loss_references_but_does_not_own_the_head():
    head = FAIMHead(4, 3)
    loss = FAIMMarginLoss(head)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    loss(x, y).backward()
    assert head.log_scale.grad is not None and head.prototypes.grad is not None


# --------------------------------------------------------------------------- gradients
def test_gradcheck_float64():
    torch.manual_seed(3)
    m = make_manifold("randers", 3)
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    n = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, p: F.info_nce_loss(m, a, p, temperature=0.5, symmetric=True), (a, p)
    )
    assert torch.autograd.gradcheck(lambda a, p, n: F.triplet_loss(m, a, p, n, margin=3.0), (a, p, n))
    d = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1])
    assert torch.autograd.gradcheck(lambda d, s: F.margin_loss(d, y, scale=s, margin=0.3), (d, s))


@pytest.mark.parametrize("kind", MANIFOLD_KINDS[1:])
def test_gradcheck_float64_curved(kind):
    m, a, p = _points(kind, 3, 2, seed=4)
    a, p = a.requires_grad_(), p.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, p: F.info_nce_loss(m, a, p, temperature=0.5), (a, p))


def test_metric_parameters_receive_gradients():
    m = make_manifold("randers", 3, dtype=torch.float32)
    loss = FAIMInfoNCELoss(m)
    assert {n for n, _ in loss.named_parameters()} == {"manifold.chol_raw", "manifold.drift_raw"}
    loss(torch.randn(5, 3), torch.randn(5, 3)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


# --------------------------------------------------------------------------- training
def test_contrastive_training_lowers_the_loss():
    torch.manual_seed(5)
    encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
    criterion = FAIMInfoNCELoss(Randers.learnable(4), temperature=0.2, symmetric=True)
    params = list(encoder.parameters()) + list(criterion.parameters())
    opt = geoopt.optim.RiemannianAdam(params, lr=0.02)
    data = torch.randn(32, 6)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        view1 = data + 0.05 * torch.randn_like(data)
        view2 = data + 0.05 * torch.randn_like(data)
        loss = criterion(encoder(view1), encoder(view2))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


# --------------------------------------------------------------------------- precision, errors
def test_losses_compute_in_float32_under_autocast(device):
    torch.manual_seed(6)
    m = make_manifold("randers", 4, dtype=torch.float32, device=device)
    proj = nn.Linear(4, 4).to(device)
    a, p, n = (torch.randn(5, 4, device=device) for _ in range(3))
    dtype = torch.bfloat16
    with torch.autocast(device_type=device.type, dtype=dtype):
        fa, fp, fn = proj(a), proj(p), proj(n)
        assert fa.dtype == dtype
        nce = F.info_nce_loss(m, fa, fp)
        tri = F.triplet_loss(m, fa, fp, fn)
    assert nce.dtype == torch.float32 and tri.dtype == torch.float32
    torch.testing.assert_close(nce, F.info_nce_loss(m, fa.float(), fp.float()))
    torch.testing.assert_close(tri, F.triplet_loss(m, fa.float(), fp.float(), fn.float()))


def test_float64_stays_float64(device):
    m = make_manifold("randers", 3, device=device)
    a = torch.randn(4, 3, dtype=torch.float64, device=device)
    assert F.info_nce_loss(m, a, a).dtype == torch.float64


def test_invalid_arguments_raise():
    m = Randers.learnable(3)
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        FAIMInfoNCELoss(m, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        F.info_nce_loss(m, a, a[:3])
    with pytest.raises(ValueError, match="margin"):
        FAIMTripletLoss(m, margin=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        F.triplet_loss(m, a, a, a, reduction="max")
    with pytest.raises(ValueError, match="labels"):
        F.margin_loss(torch.rand(4, 3), torch.zeros(5, dtype=torch.long), scale=1.0)
