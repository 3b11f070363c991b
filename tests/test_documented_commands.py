"""Every command and override that README.md, the documentation pages (``docs/**/*.md``)
and the shipped configs' comments show works as written.

Commands are taken from the code blocks (``bash``, ``sh``, ``shell``, ``console`` or no
language) and inline code of the README and of every page of the site, and from the comments
of ``src/fgssl/conf/**/*.yaml`` (continued lines joined, ``# ...`` comments dropped and
``$VARS`` expanded as a shell would). Then:

- ``fgssl-train`` and ``fgssl-prepare``: the arguments go through what ``fgssl-train``
  does to them (schedule quoting, Hydra's override grammar), and the config is composed
  and passes :func:`fgssl.run.config_checks.check_config`; a sweep (``a=1,2``) is composed once
  per value.
- ``fgssl-eval``, ``fgssl-predict``, ``fgssl-ssl-eval``, ``fgssl-report``, ``fgssl-export``,
  ``fgssl-compare``: their argument parser accepts the arguments (and fgssl-eval's
  ``KEY=VALUE`` changes parse).
- ``key=value`` snippets in prose and comments parse as Hydra overrides and name an
  existing key or config group.

Templates are not run: a command with a ``<placeholder>``, an ``[--optional]`` flag or a
bare ``...`` argument. Commands the documents show failing are checked to fail.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, OverrideParseException
from markdown_it import MarkdownIt
from omegaconf import DictConfig, OmegaConf, open_dict

import fgssl
from fgssl.cli import compare as compare_cli
from fgssl.cli import eval as eval_cli
from fgssl.cli import export as export_cli
from fgssl.cli import predict as predict_cli
from fgssl.cli import report as report_cli
from fgssl.cli import ssl_eval as ssl_eval_cli
from fgssl.cli.common import hydra_arguments
from fgssl.errors import ConfigError
from fgssl.run.config_checks import check_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [
    README,
    *sorted(
        page
        for page in (ROOT / "docs").rglob("*.md")
        if not (page.name == "report.md" or page.name.endswith("-report.md"))
    ),
]
"""The README and every Markdown page of the documentation site but the studies' result
tables (``report.md`` as ``fgssl-report`` wrote it: its cells name configurations, not
commands)."""
CONF = Path(fgssl.__file__).parent / "conf"
HYDRA_TOOLS = ("fgssl-train", "fgssl-prepare")
PARSER_TOOLS = {
    "fgssl-eval": eval_cli.build_parser,
    "fgssl-predict": predict_cli.build_parser,
    "fgssl-ssl-eval": ssl_eval_cli.build_parser,
    "fgssl-report": report_cli.build_parser,
    "fgssl-export": export_cli.build_parser,
    "fgssl-compare": compare_cli.build_parser,
}
TOOLS = (*HYDRA_TOOLS, *PARSER_TOOLS)

FAILS_AS_DOCUMENTED = {"fgssl-train optim.learning_rate=0.1": "Could not override"}
"""Commands the documents show failing, and the error they say they give."""

GROUPS = {str(p.relative_to(CONF)) for p in CONF.rglob("*") if p.is_dir()} - {"__pycache__"}
TOP_LEVEL = set(GROUPS) | {str(key) for key in OmegaConf.load(CONF / "train.yaml")}

# The options (not overrides) of the Hydra tools: flag -> whether it takes a value.
_FLAGS = {
    "fgssl-train": {"-m": False, "--multirun": False, "--cfg": True, "-c": True, "--info": False},
    "fgssl-prepare": {"--workers": True, "--no-progress": False},
}
SHELL_BLOCKS = ("", "bash", "sh", "shell", "console")
"""The languages of the code blocks whose lines are commands (``text``, ``python``: not)."""
_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w./@-]*=")


@dataclass(frozen=True)
class Shown:
    """A command or override as a document shows it, and where."""

    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


# ------------------------------------------------------------------------- extraction
def _shell_words(text: str) -> list[str]:
    """The arguments a POSIX shell would pass (quotes, comments, $VARS), minus leading
    ``VAR=value`` environment assignments."""
    words = [os.path.expandvars(word) for word in shlex.split(text, comments=True)]
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)
    return words


def _join_continued(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Lines ending in a backslash joined with the next: (first line number, text)."""
    start, parts = 0, []
    for number, line in lines:
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(part.strip() for part in parts)
        parts = []
    if parts:
        yield start, " ".join(part.strip() for part in parts)


def _markdown_tokens() -> Iterator[tuple[str, str, str]]:
    """("block" or "inline", file:line, text) of every shell code block line and inline
    code of the README and the documentation pages."""
    for document in DOCUMENTS:
        name = document.relative_to(ROOT).as_posix()
        for token in MarkdownIt().parse(document.read_text()):
            line = token.map[0] + 1 if token.map else 0
            if token.type == "fence" and token.info.strip() in SHELL_BLOCKS:
                lines = list(enumerate(token.content.splitlines(), start=line + 1))
                for number, text in _join_continued(lines):
                    yield "block", f"{name}:{number}", text
            elif token.type == "inline":
                for child in token.children or []:
                    if child.type == "code_inline":
                        yield "inline", f"{name}:{line}", child.content


def _config_comments() -> Iterator[tuple[str, str]]:
    """(file:line, text) of every comment in the shipped configs, continued lines joined."""
    for path in sorted(CONF.rglob("*.yaml")):
        comments = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "#" in line:
                comments.append((number, line.split("#", 1)[1]))
        for number, text in _join_continued(comments):
            yield f"{path.relative_to(CONF.parent)}:{number}", text


def documented_commands() -> list[Shown]:
    """Every fgssl command the README, the documentation pages and the config comments
    show."""
    shown = []
    for kind, where, text in _markdown_tokens():
        words = [w for w in text.split() if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
        if kind == "inline" and len(words) == 1:
            continue  # a tool named in prose
        if words and words[0] in TOOLS:
            shown.append(Shown(where, text.strip()))
    for where, text in _config_comments():
        match = re.match(r"^\s*(fgssl-[a-z-]+)(?=\s|$)", text)
        if match and match[1] in TOOLS:
            shown.append(Shown(where, text.strip()))
    return shown


def _is_override(word: str) -> bool:
    """``key=value`` with a dotted key, a group, a ``+``/``~`` prefix or a top-level key of
    fgssl-train (so that prose such as ``grayscale (p=0.2)`` is left alone)."""
    if not _OVERRIDE.match(word):
        return False
    key = word.split("=", 1)[0]
    return key.startswith(("+", "~")) or "." in key or "/" in key or key in TOP_LEVEL


def documented_overrides() -> list[Shown]:
    """Every ``key=value`` the inline code of the README and the documentation pages, and
    the config comments, show."""
    shown = []
    for kind, where, text in _markdown_tokens():
        if kind == "inline" and _is_override(text) and "(" not in text:  # "(": Python code
            shown += [Shown(where, word) for word in _shell_words(text)]
    for where, text in _config_comments():
        try:
            words = _shell_words(text)
        except ValueError:  # prose with an apostrophe: no quoted overrides on this line
            words = text.split()
        for word in words:
            word = word.lstrip("(`")
            if not word.endswith("..."):  # a placeholder value keeps its dots
                word = word.rstrip(".,;:)`")
            if _is_override(word):
                shown.append(Shown(where, word))
    return shown


def is_template(words: list[str]) -> bool:
    return any(w == "..." or w.startswith(("<", "[-")) or w.endswith(">") for w in words)


COMMANDS = documented_commands()
OVERRIDES = documented_overrides()


# --------------------------------------------------------------------------- checking
Compose = Callable[[list[str]], DictConfig]


@pytest.fixture(scope="module")
def compose_train() -> Iterator[Compose]:
    """overrides -> fgssl-train's composed config (without the hydra node)."""

    def _compose(overrides: list[str]) -> DictConfig:
        cfg = compose("train", overrides=hydra_arguments(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    with initialize_config_module("fgssl.conf", version_base="1.3"):
        yield _compose


def hydra_jobs(arguments: list[str], tool: str = "fgssl-train") -> list[list[str]]:
    """The override lists of the jobs ``tool`` would run for ``arguments``: its
    :func:`~fgssl.cli.common.hydra_arguments` and Hydra's grammar applied, its options
    dropped, each value of every sweep once (the others at their first value)."""
    words, skip = [], False
    for word in hydra_arguments(arguments):
        if skip:
            skip = False
        elif word in _FLAGS[tool]:
            skip = _FLAGS[tool][word]
        else:
            words.append(word)
    parsed: list[Override] = OverridesParser.create().parse_overrides(words)
    choices = [
        list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.input_line] for o in parsed
    ]
    keys = [o.get_key_element() if o.is_sweep_override() else None for o in parsed]

    def line(index: int, value: str) -> str:
        return value if keys[index] is None else f"{keys[index]}={value}"

    first = [line(i, values[0]) for i, values in enumerate(choices)]
    jobs = [first]
    for i, values in enumerate(choices):
        jobs += [[*first[:i], line(i, value), *first[i + 1 :]] for value in values[1:]]
    return jobs


def run_documented(compose_train: Compose, shown: Shown) -> None:
    """Compose and check every job of an fgssl-train or fgssl-prepare command; parse the
    arguments of another tool."""
    words = _shell_words(shown.text)
    tool = words[0]
    if tool in HYDRA_TOOLS:
        for overrides in hydra_jobs(words[1:], tool):
            cfg = compose_train(overrides)
            if tool == "fgssl-train" and not cfg.get("resume"):
                check_config(cfg)
        return
    args = PARSER_TOOLS[tool]().parse_intermixed_args(words[1:])  # as run_command does
    if tool == "fgssl-eval":
        _, overrides = eval_cli.split_models(args.models)
        OmegaConf.from_dotlist(overrides)


@pytest.mark.parametrize("shown", COMMANDS, ids=str)
def test_a_documented_command_runs_as_written(compose_train: Compose, shown: Shown) -> None:
    words = _shell_words(shown.text)
    if is_template(words):
        pytest.skip("a template (placeholder arguments)")
    expected_error = FAILS_AS_DOCUMENTED.get(shown.text)
    if expected_error is None:
        run_documented(compose_train, shown)
        return
    with pytest.raises(ConfigCompositionException, match=expected_error):
        run_documented(compose_train, shown)


@pytest.fixture(scope="module")
def known_keys(compose_train: Compose) -> set[str]:
    """Every config key (and node) of the shipped experiments and of every option of the
    config groups fgssl-train chooses from (``data``, ``logger``, ``model``, ... and
    ``experiment``, ``method``; a file starting with ``_`` is a piece the others include)."""
    keys: set[str] = set()
    chosen = [next(iter(d)) for d in OmegaConf.load(CONF / "train.yaml").defaults if d != "_self_"]
    bases = []
    for group in (g for g in chosen if not g.startswith("optional ")):
        options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        # quoted: Hydra reads the old schedule names (8_4_2) as integers
        bases += [[f"{group}='{name}'"] for name in options if not name.startswith("_")]
    bases += [["experiment=demo", "model=baseline"]]
    for overrides in bases:
        container = OmegaConf.to_container(compose_train([*overrides, "data.root=/x"]))
        keys |= set(_flatten(container))
    return keys


def _flatten(node: object, prefix: str = "") -> Iterator[str]:
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        yield f"{prefix}{key}"
        yield from _flatten(value, f"{prefix}{key}.")


@pytest.mark.parametrize("shown", OVERRIDES, ids=str)
def test_a_documented_override_parses_and_names_a_key(known_keys: set[str], shown: Shown) -> None:
    (override,) = OverridesParser.create().parse_overrides([shown.text])
    key = override.key_or_group
    assert key.startswith("hydra") or key in GROUPS or key in known_keys, (
        f"{shown}: no config key or group {key!r}"
    )


# ---------------------------------------------------------------- the checks themselves
def test_the_documents_are_searched() -> None:
    texts = {shown.text for shown in COMMANDS}
    assert "fgssl-train +experiment=demo" in texts  # inline code and a config comment
    assert any(t.startswith("fgssl-train -m hydra/launcher=slurm") for t in texts)  # joined
    assert {_shell_words(s.text)[0] for s in COMMANDS} == set(TOOLS)
    assert set(FAILS_AS_DOCUMENTED) <= texts, "a command listed as failing left the documents"
    pages = {s.where.split(":")[0] for s in COMMANDS}
    assert {"README.md", "docs/training.md", "docs/datasets/fundus.md"} <= pages
    assert "fgssl-train data=folder data.root=/data/my_images" in texts  # the README's own
    overrides = {s.text for s in OVERRIDES}
    assert {"data.cache_dir=...", "data.task=melanoma", "+experiment=NAME"} <= overrides
    assert "p=0.2" not in overrides  # prose: "grayscale (p=0.2)"


@pytest.mark.parametrize(
    ("command", "error"),
    [
        # Hydra reads a leading ~ as "delete the key"
        ("fgssl-train +experiment=demo data.cache_dir=~/.cache", OverrideParseException),
        ("fgssl-train +experiment=demo data.image_sise=96", ConfigCompositionException),
        ("fgssl-train -m +experiment=demo +method=baseline,nope", ConfigCompositionException),
        ("fgssl-train +experiment=demo data.batch_size=1", ConfigError),
        ("fgssl-train --nope +experiment=demo", OverrideParseException),
        ("fgssl-eval run --nope", SystemExit),
    ],
)
def test_a_broken_command_is_caught(
    compose_train: Compose, command: str, error: type[BaseException]
) -> None:
    with pytest.raises(error):
        run_documented(compose_train, Shown("test", command))


def test_a_broken_override_is_caught(known_keys: set[str]) -> None:
    with pytest.raises(OverrideParseException):
        test_a_documented_override_parses_and_names_a_key(
            known_keys, Shown("test", "data.cache_dir=~/.cache")
        )
    with pytest.raises(AssertionError, match=r"no config key or group 'data\.cache_sise'"):
        test_a_documented_override_parses_and_names_a_key(
            known_keys, Shown("test", "data.cache_sise=1")
        )


def test_sweeps_compose_every_value_once() -> None:
    jobs = hydra_jobs(["-m", "+experiment=demo", "schedule=8_4_2,16_8_4", "seed=0,1,2"])
    assert jobs == [  # as fgssl-train gives them to Hydra: no "+" before experiment
        ["experiment=demo", "schedule='8_4_2'", "seed=0"],
        ["experiment=demo", "schedule='16_8_4'", "seed=0"],
        ["experiment=demo", "schedule='8_4_2'", "seed=1"],
        ["experiment=demo", "schedule='8_4_2'", "seed=2"],
    ]


def test_the_keys_of_every_data_config_are_known(known_keys: set[str]) -> None:
    """Keys only one option of a group has (EyePACS's test_usage, ISIC 2020's
    remove_duplicates, the CSV reader's split_column, W&B's offline, VICReg's weights) can be
    shown in the README."""
    only_one = {"data.test_usage", "data.remove_duplicates", "data.split_column"}
    assert only_one | {"logger.wandb.offline", "objective.mu_param"} <= known_keys
