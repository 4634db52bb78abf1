"""Neural-network layers on Finsler manifolds (the FAIM layers: head, losses, blocks).

* `FAIMHead`: prototype classifier with geodesic logits, a drop-in for the last `nn.Linear`.
* `ShardedFAIMHead`: `FAIMHead` + cross-entropy with prototypes sharded over `torch.distributed`.
* `FAIMInfoNCELoss`, `FAIMTripletLoss`, `FAIMMarginLoss` (and `functional`): metric-learning
  losses with geodesic distances.
* `FAIMBlock`: $x \\mapsto \\exp_p(f(\\log_p x))$, stackable tangent-space layers.
* `replace_classifier`: swap a timm/torchvision model's final `nn.Linear` for a head.

All of them use manifolds only through the manifold API (`cdist`, `dist`, `expmap`, `logmap`,
`expmap0`, `logmap0`, `projx`), so they work on every finslerlib manifold.
"""

from finslerlib.nn import functional
from finslerlib.nn.block import FAIMBlock
from finslerlib.nn.classifier import HeadSizeWarning, replace_classifier
from finslerlib.nn.head import FAIMHead
from finslerlib.nn.losses import FAIMInfoNCELoss, FAIMMarginLoss, FAIMTripletLoss
from finslerlib.nn.sharded import ShardedFAIMHead, shard_range

__all__ = [
    "FAIMBlock",
    "FAIMHead",
    "FAIMInfoNCELoss",
    "FAIMMarginLoss",
    "FAIMTripletLoss",
    "HeadSizeWarning",
    "ShardedFAIMHead",
    "functional",
    "replace_classifier",
    "shard_range",
]
