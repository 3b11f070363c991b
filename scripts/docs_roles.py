"""Griffe extension of the documentation site (mkdocs.yml, ``extensions``): fgssl's
docstrings written for reStructuredText, rendered by mkdocstrings as Markdown.

- A Sphinx role (``:func:`~fgssl.data.io.read_rgb```, ``:class:`Stage```) becomes a
  cross-reference when it names an object of fgssl that the API reference shows: resolved
  in the scope of the docstring's object, as Python resolves names (its members, its
  module's imports, then the enclosing scopes), then followed through re-exports to where
  it is defined. A role naming another library (``:mod:`ast```, ``:class:`torch.Tensor```)
  or an object the reference leaves out (private names, names outside a module's
  ``__all__``) becomes code. A role naming an ``fgssl.`` path that does not exist is kept as
  a cross-reference, so that ``mkdocs build --strict`` fails on it, naming it.
- A paragraph ending in ``::`` (reST's literal block) ends in ``:``; the indented block
  after it is Markdown's code block already.
- A package's docstring gets the list of the names it exports (its ``__all__``), each linked
  to its definition: the package pages render the docstring only, the modules render the
  objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from typing import Any, cast

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|mod|data|attr|meth|exc|obj|const):`(?P<target>[^`]+)`"
)
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
PACKAGE = "fgssl"


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined in it (aliases left out: they are imports)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(cast(griffe.Object, member))


def _lookup(collection: griffe.ModulesCollection, path: str) -> griffe.Object | None:
    """The object at ``path`` followed through aliases to its definition, or None where the
    path does not exist or leaves fgssl."""
    for _ in range(20):  # an alias of an alias ...
        try:
            found = collection.get_member(path)
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        if not found.is_alias:
            return found
        path = found.target_path
        if not path.startswith(PACKAGE + "."):
            return None
    return None


def is_shown(obj: griffe.Object) -> bool:
    """Whether the API reference renders ``obj``: every module but ``_version``; a module's
    names in its ``__all__`` (or not starting with ``_`` where it has none); a class's names
    not starting with ``_`` (``__init__`` merged into the class)."""
    if obj.is_module:
        return not obj.name.startswith("_")
    parent = obj.parent
    if parent is None or not is_shown(parent):
        return False
    if parent.is_module and parent.exports is not None:
        return obj.name in {str(name) for name in parent.exports}
    return not obj.name.startswith("_")


def _absolute(obj: griffe.Object, name: str) -> str | None:
    """``name`` as written in ``obj``'s docstring, resolved to a full dotted path."""
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        return name
    first, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(first)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _replacement(obj: griffe.Object, match: re.Match[str]) -> str:
    target = match["target"].strip()
    text, name = target, target
    if "<" in target and target.endswith(">"):  # :func:`text <target>`
        text, name = target[: target.index("<")].strip(), target[target.index("<") + 1 : -1]
    short = name.startswith("~")
    name = name.lstrip("~!").removesuffix("()")
    if short and text.startswith("~"):
        text = name.rsplit(".", 1)[-1]
    elif text == target:
        text = name
    if match["role"] in ("func", "meth") and not text.endswith(")"):
        text += "()"
    path = _absolute(obj, name)
    if path is None or not (path == PACKAGE or path.startswith(PACKAGE + ".")):
        return f"`{text}`"  # another library, or a local name (a parameter, ...)
    found = _lookup(obj.modules_collection, path)
    if found is None:
        return f"[`{text}`][{path}]"  # no such object: strict mode names the broken reference
    if not is_shown(found):
        return f"`{text}`"
    return f"[`{text}`][{found.path}]"


def _exports(module: griffe.Module) -> str:
    """A package's ``__all__`` as a Markdown list linked to each name's definition."""
    lines = ["", "", "**Exports** (each linked to where it is defined):", ""]
    for name in sorted(str(n) for n in module.exports or ()):
        found = _lookup(module.modules_collection, f"{module.path}.{name}")
        if found is None or not is_shown(found):
            lines.append(f"- `{name}`")
        else:
            lines.append(f"- [`{name}`][{found.path}] (`{found.path}`)")
    return "\n".join(lines)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the package once it is loaded (see the module)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != PACKAGE:
            return
        for obj in _objects(pkg):
            if obj.docstring is None:
                continue
            value = ROLE.sub(partial(_replacement, obj), obj.docstring.value)
            value = LITERAL_BLOCK.sub(":", value)
            if obj.is_module and obj.is_init_module and obj.exports:
                value += _exports(cast(griffe.Module, obj))
            obj.docstring.value = value
