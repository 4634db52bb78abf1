"""Shared test configuration: hypothesis profiles and device/dtype parametrization.

Profiles: `ci` (default; fast and deterministic, derandomized) and `dev` (thorough, random).
Select one with `HYPOTHESIS_PROFILE=dev make test`.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The tests use small tensors, where intra-op threading only adds synchronisation (and, on a
# shared 2-core machine, stalls of milliseconds per op). One thread is faster and deterministic;
# benchmarks/ set their own thread counts.
torch.set_num_threads(int(os.environ.get("FINSLERLIB_TEST_THREADS", "1")))

CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="no CUDA device")]),
]
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)

