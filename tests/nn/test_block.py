"""FAIMBlock: identity start, explicit formulas, gradients, stacking, training, precision."""

import geoopt
import pytest
import torch
from torch import nn

from finslerlib import Randers
from finslerlib.nn import FAIMBlock, FAIMHead
from tests.support.nn_toys import MANIFOLD_KINDS, make_manifold

BASES = ["shared", "dynamic"]


def _perturb(block, scale=0.3):
    with torch.no_grad():
        for p in block.parameters():
            p.add_(scale * torch.randn_like(p))
        if block.base_point is not None:
            block.base_point.copy_(block.manifold.projx(block.manifold.expmap0(block.base_point)))
    return block


def _inside(kind, x):
    return True if kind == "randers" else bool((x.norm(dim=-1) < 1).all())


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
@pytest.mark.parametrize("base", BASES)
def test_a_fresh_block_is_the_identity(kind, base):
    torch.manual_seed(0)
    m = make_manifold(kind, 4)
    block = FAIMBlock(m, base_point=base, dtype=torch.float64)
    x = m.expmap0(0.7 * torch.randn(6, 4, dtype=torch.float64))
    torch.testing.assert_close(block(x), x, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("base", BASES)
def test_randers_block_is_affine_about_the_base_point(base):
    # flat Randers: exp_p v = p + v and log_p x = x - p, so the block is p + W (x - p) + c
    torch.manual_seed(1)
    block = _perturb(FAIMBlock(Randers.learnable(3, dtype=torch.float64), base_point=base,
                               dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64)
    W, c = block.inner.weight.detach(), block.inner.bias.detach()
    expected = []
    for xi in x:
        if base == "shared":
            p = block.base_point.detach()
        else:  # p = g(x): tanh MLP, exp0/log0 are the identity on Randers
            g = block.base_map
            p = g[2].weight @ torch.tanh(g[0].weight @ xi + g[0].bias) + g[2].bias
            p = p.detach()
        expected.append(p + W @ (xi - p) + c)
    torch.testing.assert_close(block(x).detach(), torch.stack(expected))


@pytest.mark.parametrize("kind", MANIFOLD_KINDS[1:])
@pytest.mark.parametrize("base", BASES)
def test_curved_block_composes_log_inner_exp(kind, base):
    torch.manual_seed(2)
    m = make_manifold(kind, 3)
    block = _perturb(FAIMBlock(m, base_point=base, dtype=torch.float64), scale=0.2)
    x = m.expmap0(0.8 * torch.randn(4, 3, dtype=torch.float64))
    out = block(x).detach()
    for i in range(4):
        p = block.base(x[i : i + 1])[0] if base == "dynamic" else block.base_point
        v = block.inner(m.logmap(p, x[i]))
        torch.testing.assert_close(out[i], m.expmap(p, v).detach())
    assert _inside(kind, out)
    if base == "dynamic":  # per-sample base points, on the manifold
        p = block.base(x)
        assert p.shape == x.shape and not torch.allclose(p[0], p[1]) and _inside(kind, p)


@pytest.mark.parametrize("kind", MANIFOLD_KINDS)
@pytest.mark.parametrize("base", BASES)
def test_gradcheck_float64(kind, base):
    torch.manual_seed(3)
    m = make_manifold(kind, 3)
    block = _perturb(FAIMBlock(m, base_point=base, dtype=torch.float64), scale=0.1)
    names = [n for n, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in block.named_parameters())
    x = m.expmap0(0.5 * torch.randn(3, 3, dtype=torch.float64)).detach().requires_grad_()

    def run(x, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params))


def test_stack_with_a_head_trains():
    torch.manual_seed(4)
    dim, classes = 6, 3
    m = Randers.learnable(dim)
    model = nn.Sequential(
        FAIMBlock(m, nn.Sequential(nn.Linear(dim, dim), nn.Tanh())),
        FAIMBlock(m, base_point="dynamic"),
        FAIMHead(dim, classes, m, scale=2.0),
    )
    centres = torch.randn(classes, dim)
    labels = torch.arange(classes).repeat_interleave(20)
    x = centres[labels] + 0.5 * torch.randn(len(labels), dim)
    opt = geoopt.optim.RiemannianAdam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kind", MANIFOLD_KINDS[1:])
def test_stack_on_a_curved_manifold_gives_finite_gradients(kind):
    torch.manual_seed(5)
    m = make_manifold(kind, 4)
    model = nn.Sequential(*[_perturb(FAIMBlock(m, base_point=b, dtype=torch.float64), 0.1)
                            for b in ("shared", "dynamic", "shared")])
    x = m.expmap0(torch.randn(8, 4, dtype=torch.float64)).detach().requires_grad_()
    out = model(x)
    assert _inside(kind, out)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_leading_dimensions_and_custom_inner():
    torch.manual_seed(6)
    attention = nn.MultiheadAttention(4, 2, batch_first=True)

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = attention

        def forward(self, v):
            return v + self.attn(v, v, v, need_weights=False)[0]

    block = FAIMBlock(Randers.learnable(4), SelfAttention())
    x = torch.randn(2, 5, 4)
    assert block(x).shape == (2, 5, 4)
    dyn = FAIMBlock(Randers.learnable(4), base_point="dynamic")
    torch.testing.assert_close(dyn(x), x)


def test_dtype_device_and_autocast(device):
    torch.manual_seed(7)
    block = _perturb(FAIMBlock(Randers.learnable(4), base_point="dynamic")).to(device)
    x = torch.randn(3, 4, device=device)
    assert block(x).dtype == torch.float32 and block(x).device.type == device.type
    block64 = FAIMBlock(Randers.learnable(4, dtype=torch.float64), dtype=torch.float64).to(device)
    assert block64(x.double()).dtype == torch.float64
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        out = block(x)
    assert out.dtype == torch.float32  # log/exp in float32; inner ran in bfloat16
    assert (out - block(x)).abs().max() < 0.1


def test_state_dict_round_trip():
    torch.manual_seed(8)
    block = _perturb(FAIMBlock(Randers.learnable(3), base_point="shared"))
    other = FAIMBlock(Randers.learnable(3), base_point="shared")
    x = torch.randn(4, 3)
    other.load_state_dict(block.state_dict())
    torch.testing.assert_close(other(x), block(x), rtol=0, atol=0)
    assert isinstance(other.base_point, geoopt.ManifoldParameter)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="base_point"):
        FAIMBlock(Randers.learnable(3), base_point="moving")
    with pytest.raises(ValueError, match=r"\[..., 3\]"):
        FAIMBlock(Randers.learnable(3))(torch.randn(2, 4))
    with pytest.raises(ValueError, match="dim"):
        FAIMBlock(object())
