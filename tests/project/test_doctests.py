"""Every docstring example in the package runs as a test (the docs show only working code)."""

import doctest
import importlib
import importlib.util
import pkgutil

import pytest
import torch

import finslerlib


def _modules():
    names = [finslerlib.__name__]
    for info in pkgutil.walk_packages(finslerlib.__path__, prefix="finslerlib."):
        names.append(info.name)
    return sorted(names)


# modules whose examples need an optional dependency (an extra): skipped without it
OPTIONAL = {"finslerlib.integrations.pml": "pytorch_metric_learning"}


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    needs = OPTIONAL.get(name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{name}'s examples need {needs} (an optional extra)")
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
