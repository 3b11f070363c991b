"""Small modules with one job, short functions (issue 12; docs/development.md: "Shape of the
code"): no module of ``src/fgssl`` over :data:`MAX_MODULE_LINES` lines, no function or
method over :data:`MAX_FUNCTION_LINES`, both counted with :mod:`ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import fgssl

PACKAGE = Path(fgssl.__file__).parent
MAX_MODULE_LINES = 300
"""Every line of the file: code, docstrings, comments and blank lines."""
MAX_FUNCTION_LINES = 60
"""From the ``def`` line (decorators not counted) to the function's last line, its
signature and docstring included (``end_lineno - lineno + 1``)."""


def module_lines(source: str) -> int:
    return len(source.splitlines())


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function, method or nested function over ``limit``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}."
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                assert child.end_lineno is not None
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found.append((name[:-1], lines))
            visit(child, name)

    visit(ast.parse(source), "")
    return found


SOURCES = {path.relative_to(PACKAGE).as_posix(): path.read_text() for path in PACKAGE.rglob("*.py")}


def test_the_counts_are_the_issues_rule() -> None:
    """Hand-made sources: a 61-line function fails and a 60-line one passes, whether it is
    a function, a method, a nested or an async function; a module's every line counts."""

    def function(name: str, lines: int, indent: str = "", keyword: str = "def") -> str:
        body = "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))
        return f"{indent}{keyword} {name}():\n{body}"

    assert long_functions(function("f", 61)) == [("f", 61)]
    assert long_functions(function("f", 60)) == []
    assert long_functions("class C:\n" + function("m", 62, "    ")) == [("C.m", 62)]
    assert long_functions("def outer():\n" + function("inner", 61, "    ")) == [
        ("outer", 62),
        ("outer.inner", 61),
    ]
    assert long_functions(function("a", 61, keyword="async def")) == [("a", 61)]
    decorated = "@staticmethod\n" + function("f", 60)  # decorators are not counted
    assert long_functions(decorated) == []
    assert module_lines('"""doc"""\n\n' + "x = 1\n" * 298) == 300
    assert module_lines('"""doc"""\n\n' + "x = 1\n" * 299) == 301


def test_no_module_over_300_lines() -> None:
    long = {name: module_lines(text) for name, text in SOURCES.items()}
    long = {name: lines for name, lines in long.items() if lines > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): " + ", ".join(
        f"{name} ({lines})" for name, lines in sorted(long.items())
    )


def test_no_function_over_60_lines() -> None:
    long = [
        f"{name}:{function} ({lines})"
        for name, text in sorted(SOURCES.items())
        for function, lines in long_functions(text)
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them): " + ", ".join(long)
