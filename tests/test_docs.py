"""The README and the documentation site (issue 25): a short README whose first screen has
the install, the demo and training on your own images; a site whose navigation names only
pages that exist, and whose API reference renders every module of the package.

The site itself is built by ``make test`` (``mkdocs build --strict``), which fails on broken
links, anchors and references; these checks are the fast ones, and they name what is wrong.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import fgssl

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PACKAGE = Path(fgssl.__file__).parent
MAX_README_LINES = 250
FIRST_SCREEN = 40


def nav_pages(node: object) -> list[str]:
    """Every page path of mkdocs.yml's ``nav`` (a list of pages, titled pages and sections)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    return []


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/"
    )


def test_the_readmes_first_screen_installs_runs_the_demo_and_trains_on_your_images() -> None:
    first = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    assert "make demo" in first
    assert "pip install -e ." in first
    assert re.search(r"^fgssl-train .*data=folder data\.root=\S+", first, re.MULTILINE), (
        "the first screen shows no fgssl-train command on your own folder"
    )
    assert re.search(r"^fgssl-train experiment=\w+ data\.root=\S+", first, re.MULTILINE)


def test_the_readmes_links_reach_files() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    assert targets, "no link found: the pattern no longer reads the README"
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_page_of_the_navigation_exists_and_every_page_is_in_it() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages)), "a page is twice in the navigation"
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk - set(pages) == set(), "pages under docs/ that the navigation leaves out"


def test_the_studies_page_has_the_real_images_placeholder() -> None:
    text = (DOCS / "studies" / "real-images.md").read_text()
    assert text.startswith("# Real images (HAM10000)\n")


def test_every_module_is_on_a_page_of_the_api_reference() -> None:
    shown = {
        match
        for page in (DOCS / "api").glob("*.md")
        for match in re.findall(r"^::: (fgssl[\w.]*)$", page.read_text(), re.MULTILINE)
    }
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    modules -= {"fgssl._version"}
    assert modules - shown == set(), "modules on no page of docs/api/"
    assert shown - modules == set(), "docs/api/ renders modules that do not exist"


# ------------------------------------------------------------ the docstrings' Sphinx roles
@pytest.fixture
def roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """scripts/docs_roles.py, and a two-module package ``fgssl`` of its own in tmp_path."""
    griffe = pytest.importorskip("griffe")
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("docs_roles", None)
    import docs_roles

    package = tmp_path / "fgssl"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""The package."""\nfrom fgssl.core import Thing\n__all__ = ["Thing"]\n'
    )
    (package / "core.py").write_text(
        textwrap.dedent('''\
            """Core: :class:`Thing`, :func:`~fgssl.core.make`, :func:`_hidden`,
            :mod:`ast`, :class:`fgssl.core.Nope`, :meth:`Thing.run`. Example::

                make()
            """
            import ast
            __all__ = ["Thing", "make"]
            class Thing:
                def run(self): ...
            def make(): ...
            def _hidden(): ...
            ''')
    )
    loaded = griffe.load(
        "fgssl",
        search_paths=[str(tmp_path)],
        extensions=griffe.load_extensions(docs_roles.SphinxRoles),
    )
    return loaded


def test_a_role_becomes_a_link_code_or_a_reference_strict_mode_catches(roles: object) -> None:
    doc = roles["core"].docstring.value  # type: ignore[index]
    assert "[`Thing`][fgssl.core.Thing]" in doc  # resolved in the module's scope
    assert "[`make()`][fgssl.core.make]" in doc  # ~: the last name shown
    assert "`_hidden()`" in doc and "][fgssl.core._hidden]" not in doc  # not rendered
    assert "`ast`" in doc and "][ast]" not in doc  # another library: code
    assert "[`fgssl.core.Nope`][fgssl.core.Nope]" in doc  # no such object: strict fails
    assert "[`Thing.run()`][fgssl.core.Thing.run]" in doc
    assert "Example:\n" in doc and "::" not in doc


def test_a_package_lists_its_exports_linked_to_their_definitions(roles: object) -> None:
    doc = roles.docstring.value  # type: ignore[attr-defined]
    assert "- [`Thing`][fgssl.core.Thing] (`fgssl.core.Thing`)" in doc


def test_every_option_of_every_config_group_is_in_the_configuration_table() -> None:
    """docs/configuration.md's table of config groups names every shipped option (a nested
    group, such as ``data/transforms``, in its parent's row)."""
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in (DOCS / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    }
    conf = PACKAGE / "conf"
    missing = []
    for group in sorted(p for p in conf.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        name = group.relative_to(conf).as_posix()
        options = [p.stem for p in group.glob("*.yaml") if not p.stem.startswith("_")]
        if not options:
            continue  # a folder of groups (hydra/)
        row = rows.get(name) or rows.get(name.split("/")[0], "")
        assert row, f"config group {name!r} has no row in docs/configuration.md"
        missing += [f"{name}={o}" for o in options if f"`{o}`" not in row]
    assert not missing, f"options not in docs/configuration.md's table: {missing}"
