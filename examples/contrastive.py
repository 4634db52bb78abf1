r"""Contrastive metric learning with `FAIMInfoNCELoss` (geodesic InfoNCE).

Digit images (`sklearn.datasets.load_digits`, bundled) are encoded by a small MLP onto a
finslerlib manifold. Each anchor's positive is another, randomly augmented, image of the same
digit; the other rows of the batch are the negatives. `finslerlib.nn.FAIMInfoNCELoss` is the
cross-entropy over logits $-d(\text{anchor}_i \to \text{positive}_j) / \tau$ with targets on the
diagonal. The script reports the 1-nearest-neighbour accuracy of test images among training
images under the learned distance $d(\text{test} \to \text{train})$, before and after training.
(With ten classes, a batch holds other images of the anchor's digit among the negatives, so the
loss plateaus well above zero; the neighbours still improve.)

Manifolds (`--manifold`):

* `randers` (default): `Randers.learnable(dim)`; the metric is a submodule of the loss, so its
  parameters train together with the encoder;
* `funk`: `FunkBall(dim)`; encoder outputs are mapped into the ball with `expmap0`.

Run:
    python examples/contrastive.py              # ~15 epochs on all digits
    python examples/contrastive.py --smoke      # seconds, used by the test suite
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
from finslerlib.nn import FAIMInfoNCELoss


def load(seed: int, limit: int | None):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = torch.from_numpy((images / 16.0).reshape(-1, 8, 8).astype(np.float32))
    labels = torch.from_numpy(labels)
    tr, te = train_test_split(np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=seed)
    tr, te = torch.from_numpy(tr[:limit]), torch.from_numpy(te[: None if limit is None else limit // 2])
    return (images[tr], labels[tr]), (images[te], labels[te])


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: a random shift of up to one pixel per axis, a random 3x3 cutout, pixel noise."""
    n = len(images)
    padded = nn.functional.pad(images, (1, 1, 1, 1))  # [N, 10, 10]
    dy, dx = torch.randint(0, 3, (2, n, 1, 1), generator=generator)
    rows = (torch.arange(8).view(1, 8, 1) + dy).expand(n, 8, 8)
    cols = (torch.arange(8).view(1, 1, 8) + dx).expand(n, 8, 8)
    out = padded[torch.arange(n).view(n, 1, 1), rows, cols]
    cy, cx = torch.randint(0, 6, (2, n, 1, 1), generator=generator)
    r, c = torch.arange(8).view(1, 8, 1), torch.arange(8).view(1, 1, 8)
    cutout = (r >= cy) & (r < cy + 3) & (c >= cx) & (c < cx + 3)
    out = out.masked_fill(cutout, 0.0)
    return (out + 0.05 * torch.randn(out.shape, generator=generator)).clamp(0, 1)


def same_class_partner(labels: torch.Tensor, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each index, a random index of the same label (possibly itself)."""
    partner = torch.empty_like(idx)
    for label in labels[idx].unique():
        pool = (labels == label).nonzero().squeeze(-1)
        rows = (labels[idx] == label).nonzero().squeeze(-1)
        partner[rows] = pool[torch.randint(len(pool), (len(rows),), generator=generator)]
    return partner


class Encoder(nn.Module):
    """MLP 64 -> 128 -> dim, then onto the manifold with `expmap0`."""

    def __init__(self, manifold, dim: int):
        super().__init__()
        self.manifold = manifold
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.manifold.expmap0(self.net(images))


@torch.no_grad()
def knn_accuracy(encoder, manifold, train, test) -> float:
    """1-NN accuracy: each test image takes the label of the training image nearest to it."""
    z_train, z_test = encoder(train[0]), encoder(test[0])
    nearest = manifold.cdist(z_test, z_train).argmin(-1)  # d(test -> train)
    return (train[1][nearest] == test[1]).float().mean().item()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifold", choices=("randers", "funk"), default="randers", help="default randers")
    parser.add_argument("--dim", type=int, default=16, help="embedding dimension (default 16)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs (default 15)")
    parser.add_argument("--temperature", type=float, default=0.1, help="InfoNCE temperature (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="unused: this example writes no files")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run (test suite)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny MLP: threads cost more than they save
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    if args.smoke:
        args.epochs = 3
    train, test = load(args.seed, 512 if args.smoke else None)

    manifold = (
        finslerlib.Randers.learnable(args.dim)
        if args.manifold == "randers"
        else finslerlib.FunkBall(args.dim)
    )
    encoder = Encoder(manifold, args.dim)
    loss_fn = FAIMInfoNCELoss(manifold, temperature=args.temperature)
    # parameters() of the encoder include the learnable metric's (the manifold is a submodule)
    optimizer = geoopt.optim.RiemannianAdam(encoder.parameters(), lr=3e-3)

    before = knn_accuracy(encoder, manifold, train, test)
    print(f"{args.manifold} manifold, dim {args.dim}: 1-NN test accuracy before training {before:.3f}")
    losses = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(train[0]), generator=generator)
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            # the positive of each anchor: another training image of the same digit
            partner = same_class_partner(train[1], idx, generator)
            anchors = encoder(augment(train[0][idx], generator))
            positives = encoder(augment(train[0][partner], generator))
            loss = loss_fn(anchors, positives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(perm))
        print(f"epoch {epoch:2d}: InfoNCE loss {losses[-1]:.4f}")
    after = knn_accuracy(encoder, manifold, train, test)
    print(
        f"1-NN test accuracy under the learned distance: {before:.3f} -> {after:.3f} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    if not losses[-1] < losses[0]:
        raise RuntimeError(f"contrastive loss did not decrease: {losses}")
    return {"losses": losses, "knn_before": before, "knn_after": after}


if __name__ == "__main__":
    main()
