"""Classifier swap: `FAIMHead.from_linear`, `init_prototypes_`, `replace_classifier`, `out_features`.

Oracles: the replaced `nn.Linear` itself (its class ranking for every input), class means computed
by an explicit loop, and models built here in the shapes timm and torchvision use (timm and
torchvision are not dependencies; `get_classifier`/`fc`/`classifier`/`heads.head` are mimicked).
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from finslerlib import FunkBall, Randers
from finslerlib.nn import FAIMHead, HeadSizeWarning, replace_classifier


def _linear(d, c, seed=0, dtype=torch.float64, weight=None):
    torch.manual_seed(seed)
    lin = nn.Linear(d, c, dtype=dtype)
    with torch.no_grad():
        lin.bias.mul_(5.0)  # biases that matter for the ranking
        if weight is not None:
            lin.weight.copy_(weight)
    return lin


def _same_ranking(head, lin, d, n=400):
    x = torch.randn(n, d, dtype=torch.float64)
    return bool((head(x).argsort(-1) == lin(x).argsort(-1)).all())


@pytest.mark.parametrize("c", [2, 5, 9])
def test_from_linear_reproduces_the_ranking_exactly_on_the_euclidean_start(c):
    lin = _linear(8, c)
    head = FAIMHead.from_linear(lin)
    assert head.in_features == 8 and head.num_classes == c == head.out_features
    assert head.prototypes.dtype == torch.float64
    assert _same_ranking(head, lin, 8)


def test_from_linear_exact_for_a_fixed_riemannian_metric():
    torch.manual_seed(1)
    q = torch.randn(6, 6, dtype=torch.float64)
    a = q @ q.mT + 0.5 * torch.eye(6, dtype=torch.float64)
    lin = _linear(6, 4, seed=2)
    for direction in ("to_prototype", "from_prototype", "max"):
        assert _same_ranking(FAIMHead.from_linear(lin, Randers(a), direction=direction), lin, 6)


def test_from_linear_with_rank_exact_when_the_weight_has_that_rank():
    torch.manual_seed(4)
    weight = torch.randn(5, 4, dtype=torch.float64) @ torch.randn(4, 12, dtype=torch.float64)
    lin = _linear(12, 5, weight=weight)
    head = FAIMHead.from_linear(lin, rank=4)
    p = head.projection.weight
    torch.testing.assert_close(p @ p.mT, torch.eye(4, dtype=torch.float64) * 3.0)  # gain sqrt(12/4)
    assert _same_ranking(head, lin, 12)


def test_from_linear_approximate_cases_agree_mostly():
    # too many classes for the bias equations, a drift, a curved manifold: not exact, but close
    lin = _linear(8, 5)
    x = torch.randn(2000, 8, dtype=torch.float64)
    want = lin(x).argmax(-1)
    funk = FAIMHead.from_linear(lin, FunkBall(8))
    assert (funk(x).argmax(-1) == want).double().mean() > 0.5
    many = _linear(4, 12)
    x4 = x[:, :4]
    head = FAIMHead.from_linear(many)
    assert torch.isfinite(head.prototypes).all()
    assert (head(x4).argmax(-1) == many(x4).argmax(-1)).double().mean() > 1 / 12


def test_from_linear_rejects_other_modules():
    with pytest.raises(ValueError, match="nn.Linear"):
        FAIMHead.from_linear(nn.Conv1d(3, 3, 1))


def test_init_prototypes_are_class_means_on_a_flat_space():
    torch.manual_seed(0)
    head = FAIMHead(5, 4, rank=3)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))  # class 3 has no samples
    before = head.prototypes.detach().clone()
    assert head.init_prototypes_(x, y) is head
    z = x @ head.projection.weight.mT
    for k in range(3):
        torch.testing.assert_close(head.prototypes[k], z[y == k].mean(0))
    torch.testing.assert_close(head.prototypes[3], before[3], rtol=0, atol=0)


def test_init_prototypes_on_the_funk_ball_are_tangent_means_at_the_origin():
    torch.manual_seed(0)
    m = FunkBall(3)
    head = FAIMHead(3, 2, m, dtype=torch.float64)
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.arange(30) % 2
    head.init_prototypes_(x, y)
    assert (head.prototypes.norm(dim=-1) < 1).all()
    for k in range(2):  # log_0(exp_0(x)) = x, so log_0(mu_k) is the plain mean of class k
        torch.testing.assert_close(m.logmap0(head.prototypes[k]), x[y == k].mean(0))


def test_init_prototypes_validates_labels():
    head = FAIMHead(3, 2)
    with pytest.raises(ValueError, match=r"labels must be classes in \[0, 2\), got values in \[0, 2\]"):
        head.init_prototypes_(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        head.init_prototypes_(torch.randn(4, 3), torch.tensor([0.0, 1.0, 1.0, 0.0]))


# ----------------------------------------------------------------- replace_classifier
class _ResNetLike(nn.Module):  # torchvision ResNet: `fc`
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.body(x))


class _VGGLike(nn.Module):  # torchvision VGG/MobileNet/EfficientNet: `classifier` Sequential
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(6, 8)
        self.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 5))

    def forward(self, x):
        return self.classifier(self.features(x))


class _ViTLike(nn.Module):  # torchvision ViT: `heads.head`
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 8)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(8, 5)))

    def forward(self, x):
        return self.heads(self.encoder(x))


class _TimmLike(nn.Module):  # timm ConvNeXt-style: get_classifier() is `head.fc`
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.head = nn.Sequential(OrderedDict(norm=nn.LayerNorm(8), fc=nn.Linear(8, 5)))
        self.fc = nn.Linear(8, 8)  # a decoy: timm's own accessor wins over attribute names
        self.reset_classifier(num_classes)

    def get_classifier(self):
        return self.head.fc

    def reset_classifier(self, num_classes):
        self.head.fc = nn.Linear(8, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        return self.head(self.stem(x))


@pytest.mark.parametrize("cls", [_ResNetLike, _VGGLike, _ViTLike, _TimmLike])
def test_replace_classifier_swaps_the_final_linear(cls):
    torch.manual_seed(0)
    model = cls().double()
    old = copy.deepcopy(model)
    head = replace_classifier(model, FAIMHead.from_linear)
    assert isinstance(head, FAIMHead) and head.num_classes == 5
    assert sum(isinstance(m, FAIMHead) for m in model.modules()) == 1
    assert head in list(model.modules())
    x = torch.randn(64, 6, dtype=torch.float64)
    # the swapped model ranks classes exactly as before (from_linear's exact case: C <= D + 1)
    assert (model(x).argsort(-1) == old(x).argsort(-1)).all()


def test_replace_classifier_with_a_custom_factory_and_errors():
    model = _ResNetLike()
    head = replace_classifier(model, lambda lin: FAIMHead(lin.in_features, lin.out_features, FunkBall(8)))
    assert model.fc is head and isinstance(head.manifold, FunkBall)
    with pytest.raises(ValueError, match="reset_classifier"):
        replace_classifier(_TimmLike(num_classes=0), FAIMHead.from_linear)
    with pytest.raises(ValueError, match="no classifier found"):
        replace_classifier(nn.Sequential(nn.Linear(3, 3)), FAIMHead.from_linear)
    with pytest.raises(ValueError, match="nn.Module"):
        replace_classifier(_ResNetLike(), lambda lin: None)


def test_forward_with_labels_is_the_geodesic_margin_loss():
    torch.manual_seed(0)
    head = FAIMHead(6, 4, margin=0.3)
    x, y = torch.randn(10, 6), torch.randint(0, 4, (10,))
    d = head.distances(x).detach()
    onehot = nn.functional.one_hot(y, 4).to(d.dtype)
    want = -head.scale.detach() * (d + 0.3 * onehot)  # the margin formula, written out
    torch.testing.assert_close(head(x, y).detach(), want)
    torch.testing.assert_close(head(x, y, margin=0.0), head(x))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        head(x, y.float())
    with pytest.raises(ValueError, match="margin"):
        FAIMHead(6, 4, margin=-1.0)


# ----------------------------------------------------------------- small-class heads (issue 24 item 3)
def test_a_full_rank_head_for_few_classes_warns_and_names_the_rank_that_fixes_it():
    linear = nn.Linear(512, 10)
    with pytest.warns(HeadSizeWarning, match=r"267,777 parameters.*rank=10"):
        FAIMHead.from_linear(linear)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = FAIMHead.from_linear(linear, rank=10)  # the suggested head: no warning
    n_small = sum(p.numel() for p in small.parameters())
    n_linear = sum(p.numel() for p in linear.parameters())
    assert n_small <= 2 * n_linear
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FAIMHead.from_linear(nn.Linear(64, 1000))  # many classes: about the Linear's size


def test_replace_classifier_warns_once_for_any_factory():
    model = _ResNetLike()
    model.fc = nn.Linear(8, 1)
    with pytest.warns(HeadSizeWarning) as record:
        replace_classifier(model, lambda lin: FAIMHead(lin.in_features, lin.out_features))
    assert sum(issubclass(w.category, HeadSizeWarning) for w in record) == 1
    model = _ResNetLike()
    model.fc = nn.Linear(8, 1)
    with pytest.warns(HeadSizeWarning) as record:
        replace_classifier(model, FAIMHead.from_linear)
    assert sum(issubclass(w.category, HeadSizeWarning) for w in record) == 1


@pytest.mark.filterwarnings("ignore::finslerlib.nn.HeadSizeWarning")
def test_timm_reset_classifier_after_replacing_keeps_a_faim_head():
    model = _TimmLike()
    replace_classifier(model, FAIMHead.from_linear)
    model.reset_classifier(7)
    head = model.get_classifier()
    assert isinstance(head, FAIMHead) and head.num_classes == 7 and head.in_features == 8
    assert model(torch.randn(3, 6)).shape == (3, 7)
    model.reset_classifier(0)  # timm's "no classifier": an Identity, as timm does
    assert isinstance(model.get_classifier(), nn.Identity)
    model.reset_classifier(4)
    assert isinstance(model.get_classifier(), FAIMHead)
    copied = copy.deepcopy(model)  # the copy's reset acts on the copy
    copied.reset_classifier(2)
    assert copied.get_classifier().num_classes == 2 and model.get_classifier().num_classes == 4
