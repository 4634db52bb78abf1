"""Griffe extension for the docs build: read an `Example:` section as `Examples:`.

finslerlib's Google-style docstrings title their doctest section `Example:` (singular), which
Napoleon accepts but Griffe only knows in the plural; without this, the `>>>` lines would be
rendered as nested Markdown quotes instead of a code example. Docstrings are parsed lazily, so
rewriting the raw text when an object is loaded is enough. Loaded from mkdocs.yml.
"""

from __future__ import annotations

import re

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
