"""pytorch-metric-learning with `FinslerDistance`: losses, a miner and AccuracyCalculator.

Oracles: the Randers norm written out by hand ($\\sqrt{v^\\top a v} + b \\cdot v$), the losses'
formulas recomputed from those distances, and PML's own `LpDistance`: a Riemannian
`Randers(a)` is the Euclidean distance after $x \\mapsto L^\\top x$ ($a = L L^\\top$), so every
PML loss must agree between the two.
"""

from __future__ import annotations

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import losses, miners  # noqa: E402
from pytorch_metric_learning.distances import LpDistance  # noqa: E402
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator  # noqa: E402
from pytorch_metric_learning.utils.inference import CustomKNN  # noqa: E402

from finslerlib import FunkBall, Randers  # noqa: E402
from finslerlib.integrations.pml import FinslerDistance  # noqa: E402

D = 3


def _metric(drift=True):
    torch.manual_seed(0)
    q = torch.randn(D, D, dtype=torch.float64)
    a = q @ q.mT + 0.5 * torch.eye(D, dtype=torch.float64)
    b = torch.linalg.cholesky(a) @ torch.tensor([0.6, -0.2, 0.1], dtype=torch.float64) if drift else None
    return a, b, Randers(a, b)


def _by_hand(a, b, x, y):
    """d(x_i -> y_j) = sqrt(v^T a v) + b.v with v = y_j - x_i, one pair at a time."""
    out = torch.empty(len(x), len(y), dtype=torch.float64)
    for i in range(len(x)):
        for j in range(len(y)):
            v = y[j] - x[i]
            out[i, j] = torch.sqrt(v @ a @ v) + (0.0 if b is None else b @ v)
    return out


def _data(n=12, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=torch.float64), torch.arange(n) % classes


def test_matrix_is_the_forward_distance():
    a, b, m = _metric()
    dist = FinslerDistance(m)
    assert dist.normalize_embeddings is False and dist.is_inverted is False
    x, _ = _data()
    y = x[:5] + 0.3
    torch.testing.assert_close(dist(x, y), _by_hand(a, b, x, y))
    torch.testing.assert_close(dist(x), _by_hand(a, b, x, x), atol=1e-7, rtol=0)
    torch.testing.assert_close(dist.pairwise_distance(x[:5], y), _by_hand(a, b, x[:5], y).diagonal())
    assert not torch.allclose(dist(x, y), dist(y, x).mT)  # the direction is kept
    with pytest.raises(ValueError, match="is_inverted"):
        FinslerDistance(m, is_inverted=True)


def test_triplet_loss_with_a_miner_matches_the_formula():
    a, b, m = _metric()
    x, y = _data()
    x.requires_grad_(True)
    miner = miners.TripletMarginMiner(margin=0.5, type_of_triplets="all", distance=FinslerDistance(m))
    ia, ip, ineg = miner(x, y)
    assert len(ia) > 0
    d = _by_hand(a, b, x.detach(), x.detach())
    # the miner keeps exactly the triplets violating the margin, measured anchor -> other
    violating = d[ia, ip] - d[ia, ineg] + 0.5 > 0
    assert violating.all()
    loss_fn = losses.TripletMarginLoss(margin=0.5, distance=FinslerDistance(m))
    loss = loss_fn(x, y, (ia, ip, ineg))
    per = torch.relu(d[ia, ip] - d[ia, ineg] + 0.5)
    torch.testing.assert_close(loss.detach(), per[per > 0].mean())  # PML's AvgNonZeroReducer
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_contrastive_loss_matches_the_formula():
    a, b, m = _metric()
    x, y = _data()
    loss = losses.ContrastiveLoss(pos_margin=0.2, neg_margin=2.0, distance=FinslerDistance(m))(x, y)
    d = _by_hand(a, b, x, x)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    diff = y[:, None] != y[None, :]
    pos = torch.relu(d[same] - 0.2)
    neg = torch.relu(2.0 - d[diff])
    torch.testing.assert_close(loss, pos[pos > 0].mean() + neg[neg > 0].mean())


def test_ntxent_loss_matches_the_formula():
    a, b, m = _metric()
    x, y = _data(n=8, classes=4)
    tau = 0.5
    loss = losses.NTXentLoss(temperature=tau, distance=FinslerDistance(m))(x, y)
    d = _by_hand(a, b, x, x)
    terms = []
    for i in range(len(y)):
        for j in range(len(y)):
            if i != j and y[i] == y[j]:
                negatives = torch.exp(-d[i, y != y[i]] / tau).sum()
                pos = torch.exp(-d[i, j] / tau)
                terms.append(-torch.log(pos / (pos + negatives)))
    torch.testing.assert_close(loss, torch.stack(terms).mean())


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda dist: losses.MultiSimilarityLoss(alpha=2, beta=10, base=1.0, distance=dist),
        lambda dist: losses.NTXentLoss(temperature=0.3, distance=dist),
        lambda dist: losses.TripletMarginLoss(margin=0.4, distance=dist),
    ],
    ids=["multi_similarity", "ntxent", "triplet"],
)
def test_riemannian_randers_equals_lp_after_whitening(make_loss):
    a, _, m = _metric(drift=False)
    x, y = _data(n=16, classes=4)
    chol = torch.linalg.cholesky(a)
    ours = make_loss(FinslerDistance(m))(x, y)
    lp = make_loss(LpDistance(normalize_embeddings=False))(x @ chol, y)
    torch.testing.assert_close(ours, lp)


def test_proxy_anchor_loss_equals_lp_on_the_euclidean_metric_and_trains_the_proxies():
    x, y = _data(n=16, classes=4)
    torch.manual_seed(5)
    ours = losses.ProxyAnchorLoss(4, D, distance=FinslerDistance(Randers(torch.eye(D, dtype=torch.float64))))
    lp = losses.ProxyAnchorLoss(4, D, distance=LpDistance(normalize_embeddings=False))
    with torch.no_grad():
        ours.proxies.copy_(torch.randn(4, D))
        lp.proxies.copy_(ours.proxies)
    value = ours(x.float(), y)
    torch.testing.assert_close(value, lp(x.float(), y))
    value.backward()
    assert torch.isfinite(ours.proxies.grad).all() and ours.proxies.grad.abs().sum() > 0


def test_learnable_metric_is_trained_through_a_pml_loss():
    m = Randers.learnable(D)
    loss_fn = losses.TripletMarginLoss(margin=0.5, distance=FinslerDistance(m))
    names = {n for n, _ in loss_fn.named_parameters()}
    assert names == {"distance.manifold.chol_raw", "distance.manifold.drift_raw"}
    x, y = _data()
    loss_fn(x.float(), y).backward()
    assert m.chol_raw.grad is not None and torch.isfinite(m.chol_raw.grad).all()


def test_accuracy_calculator_uses_the_forward_direction():
    # 1-D wind metric with a strong drift: the forward-nearest reference differs from the
    # backward-nearest one, so the precision@1 below fixes the direction used.
    m = Randers(torch.eye(1, dtype=torch.float64), torch.tensor([0.8], dtype=torch.float64))
    refs = torch.tensor([[-1.0], [1.5]], dtype=torch.float64)  # labels 0, 1
    ref_labels = torch.tensor([0, 1])
    queries = torch.tensor([[0.0], [0.2], [-0.3]], dtype=torch.float64)
    d = _by_hand(m.a, m.b, queries, refs)
    nearest = d.argmin(1)  # forward: d(q -> r) = |r - q| + 0.8 (r - q) favours references behind q
    q_labels = torch.tensor([1, 1, 0])
    want = (ref_labels[nearest] == q_labels).double().mean().item()
    calc = AccuracyCalculator(include=("precision_at_1",), k=1, knn_func=CustomKNN(FinslerDistance(m)))
    got = calc.get_accuracy(queries, q_labels, refs, ref_labels, ref_includes_query=False)
    assert got["precision_at_1"] == pytest.approx(want)
    backward = _by_hand(m.a, m.b, refs, queries).mT.argmin(1)  # d(r -> q)
    assert not torch.equal(nearest, backward)


def test_funk_ball_points_and_default_no_normalization():
    m = FunkBall(D)
    x, y = _data()
    z = m.expmap0(x)
    dist = FinslerDistance(m)
    torch.testing.assert_close(dist(z), m.cdist(z, z))
    loss = losses.TripletMarginLoss(margin=0.1, distance=dist)(z, y)
    assert torch.isfinite(loss)


# ------------------------------------------------------- proxy losses on distances (issue 24 item 5)
def _clusters(seed, n, classes=8, dim=32):
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + 1.2 * torch.randn(n, dim, generator=g), y


def _train_and_map_at_r(loss_fn, distance, steps=150):
    import geoopt

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    opt = geoopt.optim.RiemannianAdam([*encoder.parameters(), *loss_fn.parameters()], lr=3e-3)
    x, y = _clusters(1, 512)
    for _ in range(steps):
        idx = torch.randint(0, 512, (64,))
        loss = loss_fn(encoder(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt, yt = _clusters(2, 300)
    calc = AccuracyCalculator(include=("mean_average_precision_at_r",), k="max_bin_count",
                              knn_func=CustomKNN(distance))
    with torch.no_grad():
        return calc.get_accuracy(encoder(xt), yt)["mean_average_precision_at_r"]


def test_the_documented_proxy_recipe_on_finsler_distances_matches_cosine_proxy_anchor():
    # ProxyAnchor's defaults (alpha 32, margin 0.1) are thresholds on a cosine; on a distance the
    # negative term has no threshold left to push against. The recipe of docs/integrations/pml.md:
    # ProxyNCA (a softmax over -d, the FAIMHead's loss) with a learnable Randers metric.
    from pytorch_metric_learning.distances import CosineSimilarity

    cos = CosineSimilarity()
    cosine = _train_and_map_at_r(losses.ProxyAnchorLoss(8, 8, distance=cos), cos)
    finsler = FinslerDistance(Randers.learnable(8))
    naive = _train_and_map_at_r(losses.ProxyAnchorLoss(8, 8, distance=finsler), finsler)
    finsler = FinslerDistance(Randers.learnable(8))
    recipe = _train_and_map_at_r(losses.ProxyNCALoss(8, 8, softmax_scale=1.0, distance=finsler), finsler)
    assert recipe >= cosine - 0.02, (recipe, cosine)
    assert recipe > naive + 0.05, (recipe, naive)
