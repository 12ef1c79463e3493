"""griffe extension: Sphinx roles in docstrings (``:func:`~pkg.mod.f```) rendered as code (`` `f` ``).

tomodiff's docstrings use Sphinx roles for cross-references; mkdocstrings renders docstrings as
Markdown, where a role would show as literal ``:func:``. This turns each into a code span with the
name as Sphinx would display it (the last component after ``~``).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def _display(match: re.Match) -> str:
    tilde, target = match.groups()
    name = target.rsplit(".", 1)[-1] if tilde else target
    return f"`{name}`"


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring's Sphinx roles as Markdown code spans when griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_display, obj.docstring.value)
