r"""A network whose hidden layers live on a Finsler manifold: a stack of `FAIMBlock`s.

Each `finslerlib.nn.FAIMBlock` maps points of a manifold to points of the same manifold,
$x \mapsto \exp_p(\mathrm{inner}(\log_p x))$: pull back to the tangent space at a base point
$p$, apply any module there (here a small MLP), push forward along geodesics. The model is

    flatten -> Linear(64, D) -> expmap0 (onto the FunkBall) -> FAIMBlock x depth
            -> logmap0 -> FAIMHead(D, 10, manifold=FunkBall)

on `sklearn.datasets.load_digits` (bundled), trained with `geoopt.optim.RiemannianAdam`
(block base points and head prototypes are `geoopt.ManifoldParameter`s). `FAIMHead` maps its
input features with `expmap0` itself, so the points leave the stack through `logmap0`. The head's
logit scale starts at 1 (not 10): Funk distances grow without bound near the sphere, where the
blocks tend to push the points.

The script checks what the blocks promise: a freshly built stack (default `inner`) is the
identity; every intermediate output of the trained stack stays inside the ball; gradients are
finite; and training lowers the loss. `--base-point dynamic` uses per-sample base points.

Run:
    python examples/faim_blocks.py             # ~10 epochs on all digits
    python examples/faim_blocks.py --smoke     # seconds, used by the test suite
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import geoopt
import numpy as np
import torch
from torch import nn

import finslerlib
from finslerlib.nn import FAIMBlock, FAIMHead


class ExpMap0(nn.Module):
    """Tangent vectors at the origin -> points on the manifold."""

    def __init__(self, manifold):
        super().__init__()
        self.manifold = manifold

    def forward(self, v):
        return self.manifold.expmap0(v)


class LogMap0(nn.Module):
    """Points on the manifold -> tangent vectors at the origin."""

    def __init__(self, manifold):
        super().__init__()
        self.manifold = manifold

    def forward(self, x):
        return self.manifold.logmap0(x)


def tangent_mlp(dim: int) -> nn.Module:
    """The `inner` module of a block: a residual-free MLP on tangent vectors."""
    return nn.Sequential(nn.Linear(dim, 2 * dim), nn.Tanh(), nn.Linear(2 * dim, dim))


def build(
    dim: int, depth: int, base_point: str, *, inner: bool = True, head_scale: float = 1.0
) -> nn.Sequential:
    ball = finslerlib.FunkBall(dim)
    blocks = [
        FAIMBlock(ball, tangent_mlp(dim) if inner else None, base_point=base_point) for _ in range(depth)
    ]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, dim),
        ExpMap0(ball),
        *blocks,
        LogMap0(ball),
        FAIMHead(dim, 10, manifold=ball, scale=head_scale),
    )


def load(seed: int, limit: int | None):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = torch.from_numpy((images / 16.0).astype(np.float32))
    labels = torch.from_numpy(labels)
    tr, te = train_test_split(np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=seed)
    tr, te = torch.from_numpy(tr[:limit]), torch.from_numpy(te[: None if limit is None else limit // 2])
    return (images[tr], labels[tr]), (images[te], labels[te])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dim", type=int, default=16, help="manifold dimension D (default 16)")
    parser.add_argument("--depth", type=int, default=3, help="number of FAIMBlocks (default 3)")
    parser.add_argument("--base-point", choices=("shared", "dynamic"), default="shared")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--lr", type=float, default=1e-2, help="RiemannianAdam learning rate (default 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="unused: this example writes no files")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run (test suite)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny model: threads cost more than they save
    torch.manual_seed(args.seed)
    if args.smoke:
        args.epochs = 3
    train, test = load(args.seed, 384 if args.smoke else None)

    # 1. with the default `inner` (identity-initialised Linear) a fresh stack is the identity
    identity_stack = build(args.dim, args.depth, args.base_point, inner=False)
    ball = identity_stack[2].manifold
    with torch.no_grad():
        points = ball.expmap0(torch.randn(32, args.dim))
        moved = identity_stack[3:-2](points)
    gap = (moved - points).abs().max().item()
    print(f"fresh stack of {args.depth} default FAIMBlocks: max |block(x) - x| = {gap:.1e}")
    if gap > 1e-5:
        raise RuntimeError(f"a fresh stack of FAIMBlocks is not the identity (gap {gap:.2e})")

    # 2. train the stack with MLP blocks
    model = build(args.dim, args.depth, args.base_point)
    ball = model[2].manifold
    optimizer = geoopt.optim.RiemannianAdam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    losses, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(train[0]), generator=generator)
        total = 0.0
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(model(train[0][idx]), train[1][idx])
            optimizer.zero_grad()
            loss.backward()
            bad = [
                n for n, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()
            ]
            if bad:
                raise RuntimeError(f"non-finite gradients in {bad}")
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(perm))
        with torch.no_grad():
            acc = (model(test[0]).argmax(-1) == test[1]).float().mean().item()
        print(f"epoch {epoch:2d}: train loss {losses[-1]:.4f}  test accuracy {acc:.3f}")
    print(f"trained in {time.perf_counter() - start:.1f} s")
    if not losses[-1] < losses[0]:
        raise RuntimeError(f"training did not lower the loss: {losses}")

    # 3. every intermediate output is a point of the ball
    with torch.no_grad():
        x = model[:3](test[0])
        radii = [x.norm(dim=-1).max().item()]
        for block in model[3:-2]:
            x = block(x)
            ok, reason = ball.check_point_on_manifold(x, explain=True)
            if not ok:
                raise RuntimeError(f"a FAIMBlock left the ball: {reason}")
            radii.append(x.norm(dim=-1).max().item())
    print(
        "largest Euclidean radius after the input map and after each block: "
        + ", ".join(f"{r:.4f}" for r in radii)
    )
    return {"losses": losses, "test_acc": acc, "identity_gap": gap, "radii": radii}


if __name__ == "__main__":
    main()
