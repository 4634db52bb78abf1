"""Every docstring example in the package runs as a test (the docs show only working code)."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import finslerlib


def _modules():
    names = [finslerlib.__name__]
    for info in pkgutil.walk_packages(finslerlib.__path__, prefix="finslerlib."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    try:
        result = doctest.testmod(
            module,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            extraglobs={"torch": torch},
            verbose=False,
        )
    finally:
        torch.set_default_dtype(default)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
