"""Fixtures of the math tests."""

import pytest

from finslerlib.math import epilogue


@pytest.fixture(params=["torch", "compiled"])
def cdist_epilogue(request, monkeypatch):
    """Run a cdist test with the torch epilogue (small results use it) and with the compiled one."""
    if request.param == "compiled":
        if epilogue.load_epilogue() is None:
            pytest.skip("the compiled cdist epilogue cannot be built here")
        monkeypatch.setattr(epilogue, "MIN_ENTRIES", 0)
    return request.param
