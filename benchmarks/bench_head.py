"""FAIMHead vs nn.Linear (and the einsum head of docs/concepts/classification.md): time and activation memory.

Usage:
    PYTHONPATH=. python benchmarks/bench_head.py [--batch 256 --features 512 --classes 1000 100000]

All numbers are measured in the same run and printed as RATIOS against `nn.Linear`:

* time: forward + backward (`out.sum().backward()`, or with `--loss ce` a cross-entropy
  step on fixed random labels, whose gradient is a dense `[B, C]` tensor rather than the
  broadcast ones of a sum), all heads timed round-robin (so load
  from other processes hits them alike); the statistic is the minimum over repeats (robust
  on a shared machine), the median is printed too. `--clock cpu` times with the process's CPU
  time instead of the wall clock: with `--threads 1` that is the wall time of an idle machine,
  and it does not count time the process waits for a core that other processes hold.
* memory ("act MiB"): bytes of the tensors autograd saves for backward that are not
  parameters or the input (deduplicated by storage), plus the output: the activation memory a
  training step keeps alive per head, measured with `torch.autograd.graph.saved_tensors_hooks`.
  It is the peak-memory growth of a training step on top of the weights, not counting
  temporaries freed within the forward. With `--device cuda` the script also reports the
  `torch.cuda.max_memory_allocated` growth of one forward + backward ("peak MiB").

Bars (issue 23): full rank <= 1.6x Linear time and rank=64 <= 0.5x, at every class count;
>= 50x faster than the einsum formulation (timed only where its [B, C, D] tensor fits in
1 GiB). Each class count is a separate table, all from one run.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import torch
from torch import nn

from finslerlib.nn import FAIMHead

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _record import record  # noqa: E402

SCRIPT = "benchmarks/bench_head.py"

EINSUM = "einsum head"


class NotesHead(nn.Module):
    """The einsum reference head of docs/concepts/classification.md (a [B, C, D] difference tensor)."""

    def __init__(self, feat_dim, n_cls, lam=0.1):
        super().__init__()
        self.mu = nn.Parameter(torch.randn(n_cls, feat_dim))
        self.L = nn.Parameter(torch.eye(feat_dim))
        self.beta = nn.Parameter(torch.randn(feat_dim))
        self.lmbda = nn.Parameter(torch.tensor(lam))
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        eye = torch.eye(self.L.size(0), device=self.L.device)
        sigma = self.L @ self.L.T + 1e-6 * eye
        diff = x.unsqueeze(1) - self.mu
        quad = torch.einsum("bcd,df,bcf->bc", diff, sigma, diff)
        beta_dot = torch.einsum("d,bcd->bc", self.beta, diff)
        d_f = torch.sqrt(quad) + self.lmbda * beta_dot.abs()
        return -self.scale * d_f


class MatmulFloor(nn.Module):
    """Only the matrix products a full-rank Randers head must do (forward and backward).

    Forward: `s = x L` and the Gram product `s m^T` (prototypes `m` kept in factor
    coordinates); backward: the Gram's two products, then `g L^T` and `x^T g`. That is an
    `nn.Linear`'s three `B C D` products plus three `B D^2` ones (1.5x a Linear in flops at
    C = 1000, about 1.0x at C >> D); `head / floor` is the overhead of everything else. The
    factor here is dense; the head's is triangular and on CPU its products skip the zero blocks
    (about 0.6x of those `B D^2` flops), so the head can run below this floor.
    """

    def __init__(self, d, c, device):
        super().__init__()
        self.factor = torch.randn(d, d, device=device)
        self.m = torch.randn(c, d, device=device)
        self.m_grad = self.factor_grad = None

    def forward(self, x):
        floor = self

        class _Out(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                s = x @ floor.factor
                ctx.save_for_backward(x, s)
                return s @ floor.m.mT

            @staticmethod
            def backward(ctx, g):
                x, s = ctx.saved_tensors
                gs = g @ floor.m
                floor.m_grad = g.mT @ s
                floor.factor_grad = x.mT @ gs
                return gs @ floor.factor.mT

        return _Out.apply(x)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


CLOCK = time.perf_counter
LOSS = "sum"


def _loss(out):
    if LOSS == "sum":
        return out.sum()
    labels = torch.arange(out.shape[0], device=out.device) * 7919 % out.shape[-1]
    return nn.functional.cross_entropy(out, labels)


def fwd_bwd_seconds(module, x):
    module.zero_grad(set_to_none=True)
    x.grad = None
    _sync(x.device)
    start = CLOCK()
    _loss(module(x)).backward()
    _sync(x.device)
    return CLOCK() - start


def saved_activation_bytes(module, x):
    """Bytes saved for backward (excluding parameters and the input) plus the output's."""
    excluded = {p.untyped_storage().data_ptr() for p in module.parameters()}
    excluded.add(x.untyped_storage().data_ptr())
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    storages[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
    out.sum().backward()
    return sum(storages.values())


def cuda_peak_growth(module, x):
    module.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    module(x).sum().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def bench_size(args, device, b, d, c):
    """One table (all heads at one class count), timed round-robin; returns {name: row}."""
    torch.manual_seed(0)
    x = torch.randn(b, d, device=device, requires_grad=True)
    heads = {
        "nn.Linear": nn.Linear(d, c),
        "FAIMHead full rank": FAIMHead(d, c),
        f"FAIMHead rank={args.rank}": FAIMHead(d, c, rank=args.rank),
        "FAIMHead full, direction=max": FAIMHead(d, c, direction="max"),
    }
    heads = {name: h.to(device) for name, h in heads.items()}
    heads["matmul floor (full rank)"] = MatmulFloor(d, c, device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"\ndevice={device} threads={threads} B={b} D={d} C={c} float32, forward+backward "
          f"({LOSS} loss), {args.clock} clock")
    repeats = args.repeats if c <= 10_000 else args.large_repeats
    times = {name: [] for name in heads}
    for head in heads.values():  # warm-up
        for _ in range(2 if c > 10_000 else 3):
            fwd_bwd_seconds(head, x)
    for _ in range(repeats):
        for name, head in heads.items():
            times[name].append(fwd_bwd_seconds(head, x))
    if not args.skip_einsum and b * c * d * 4 <= 2**30:
        notes = NotesHead(d, c).to(device)
        fwd_bwd_seconds(notes, x)
        times[EINSUM] = [fwd_bwd_seconds(notes, x) for _ in range(args.einsum_repeats)]
        heads[EINSUM] = notes

    base_t = min(times["nn.Linear"])
    rows = {}
    for name, head in heads.items():
        mem = saved_activation_bytes(head, x)
        peak = cuda_peak_growth(head, x) if device.type == "cuda" else None
        rows[name] = (min(times[name]), statistics.median(times[name]), mem, peak)
    base_mem, base_peak = rows["nn.Linear"][2], rows["nn.Linear"][3]

    header = f"{'head':30s} {'min ms':>8s} {'med ms':>8s} {'x Linear':>9s} {'act MiB':>8s} {'x Linear':>9s}"
    if device.type == "cuda":
        header += f" {'peak MiB':>9s} {'x Linear':>9s}"
    print(header)
    base_med = rows["nn.Linear"][1]
    for name, (t, med, mem, peak) in rows.items():
        line = f"{name:30s} {1e3 * t:8.2f} {1e3 * med:8.2f} {t / base_t:9.2f}"
        line += f" {mem / 2**20:8.2f} {mem / base_mem:9.2f}"
        if peak is not None:
            line += f" {peak / 2**20:9.2f} {peak / base_peak:9.2f}"
        print(line)
    full_t, full_med = rows["FAIMHead full rank"][:2]
    low_t, low_med = rows[f"FAIMHead rank={args.rank}"][:2]
    floor_t = rows["matmul floor (full rank)"][0]
    print(f"full rank / Linear    = {full_t / base_t:.2f}x min, {full_med / base_med:.2f}x median "
          f"(bar <= 1.6x; its matmuls alone: {floor_t / base_t:.2f}x)")
    print(f"rank={args.rank} / Linear      = {low_t / base_t:.2f}x min, {low_med / base_med:.2f}x median "
          "(bar <= 0.5x)")
    if EINSUM in rows:
        print(f"einsum / full rank    = {rows[EINSUM][0] / full_t:.1f}x slower (bar >= 50x)")
    where = "" if device.type == "cpu" else f", {device.type}"
    shape = f"B = {b}, D = {d}, C = {c:,}, float32{where}"
    record(f"FAIMHead fwd+bwd, full rank (C = {c:,}{where})", full_t / base_t, script=SCRIPT,
           baseline=f"nn.Linear, {shape}", bar_op="<=", bar=1.6,
           note=f"its matmuls alone {floor_t / base_t:.2f}x")
    record(f"FAIMHead fwd+bwd, rank = {args.rank} (C = {c:,}{where})", low_t / base_t, script=SCRIPT,
           baseline=f"nn.Linear, {shape}", bar_op="<=", bar=0.5)
    if EINSUM in rows:
        record(f"FAIMHead speed-up over the einsum head (C = {c:,}{where})", rows[EINSUM][0] / full_t,
               script=SCRIPT, baseline="einsum head, same shapes", bar_op=">=", bar=50.0)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--classes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--large-repeats", type=int, default=5, help="repeats for C > 10,000")
    parser.add_argument("--einsum-repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--skip-einsum", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--loss", choices=("sum", "ce"), default="sum",
                        help="out.sum() or a cross-entropy step on fixed labels")
    args = parser.parse_args(argv)
    global CLOCK, LOSS
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    LOSS = args.loss
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    return {c: bench_size(args, device, args.batch, args.features, c) for c in args.classes}


if __name__ == "__main__":
    main()
