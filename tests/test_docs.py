"""The examples in the README and docs/ run, so the docs cannot drift from the code.

The convention (docs/contributing.md): every ```python block runs unless the line just
before it is `<!-- no-run: why -->`; a ```bash block runs only when the line just before
it is `<!-- run -->`, and must exit 0. Each block runs on its own, in a fresh folder
holding a copy of examples/ and the index `casematch index examples/slack-export
examples/zendesk/tickets.ndjson --slack-domain acme-support` writes, at casematch-index/.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

import casematch
from casematch.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUN = "<!-- run -->"
NO_RUN = re.compile(r"<!--\s*no-run:\s*\S.*-->")
# Anything that looks like a marker but is not one of the two (a typo would silently
# stop a block from running, or keep a shell block that should run from running).
MARKER_LIKE = re.compile(r"<!--\s*(no[-_ ]?)?run\b", re.IGNORECASE)
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
SHELL_LANGS = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str  # the line just before the fence, stripped
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        if self.lang == "python":
            return not NO_RUN.fullmatch(self.marker)
        return self.lang in SHELL_LANGS and self.marker == RUN


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("**/*.md"))]


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body = []
        end = number + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence))
            and not lines[end].strip().strip(fence[0])
        ):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        marker = lines[number - 1].strip() if number else ""
        found.append(Block(path, number + 1, opening["lang"].lower(), marker, "\n".join(body)))
        number = end + 1
    return found


ALL_BLOCKS = [block for path in doc_files() for block in blocks_of(path)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python" and b.runs]
SHELL = [b for b in ALL_BLOCKS if b.lang in SHELL_LANGS and b.runs]


# ---- the convention itself -------------------------------------------------------------------


def test_docs_have_runnable_examples() -> None:
    # The README's Python and CLI examples at least; a parser that finds nothing passes
    # every parametrized test vacuously.
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md"]
    assert any(b.lang == "python" and b.runs for b in readme)
    assert any(b.lang == "bash" and b.runs for b in readme)
    assert len(PYTHON) >= 5 and len(SHELL) >= 5


def test_markers_are_spelled_right_and_placed_before_a_block() -> None:
    fence_lines = {(b.path, b.line) for b in ALL_BLOCKS}
    wrong = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not MARKER_LIKE.match(text):
                continue
            known = text == RUN or NO_RUN.fullmatch(text)
            if not known or (path, number + 1) not in fence_lines:
                wrong.append(f"{path.relative_to(ROOT)}:{number}: {text}")
    assert not wrong, "markers must be exactly '<!-- run -->' or '<!-- no-run: why -->', " \
                      f"on the line just before a fence: {wrong}"
    misplaced = [b.id for b in ALL_BLOCKS
                 if (b.marker == RUN and b.lang not in SHELL_LANGS)
                 or (NO_RUN.fullmatch(b.marker) and b.lang != "python")]
    assert not misplaced, f"<!-- run --> is for shell blocks, no-run for Python: {misplaced}"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_blocks_are_valid_python(block: Block) -> None:
    ast.parse(block.code, filename=block.id)


def casematch_commands(code: str) -> list[list[str]]:
    """The argument lists of every `casematch ...` command in a shell snippet."""
    code = re.sub(r"\\\n", " ", code)  # continuation lines
    code = re.sub(r"<<'?(\w+)'?\n.*?\n\1\n", "\n", code, flags=re.DOTALL)  # heredoc bodies
    commands = []
    for line in code.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        segment: list[str] = []
        for word in [*words, ";"]:
            if word in {"|", "||", "&&", ";", "&"} or word.endswith(";"):
                if word.endswith(";") and word != ";":
                    segment.append(word[:-1])
                commands.append(segment)
                segment = []
            else:
                segment.append(word)
    found = []
    for segment in commands:
        if segment and (exec_line := re.fullmatch(r"Exec\w*=(.*)", segment[0])):
            segment = [exec_line[1], *segment[1:]]  # a systemd unit's ExecStart=...
        while segment and re.fullmatch(r"[A-Za-z_]\w*=.*", segment[0]):
            segment = segment[1:]  # VAR=value before the command
        if not segment or Path(segment[0]).name != "casematch":
            continue
        args = []
        skip = False
        for word in segment[1:]:
            if skip:
                skip = False
            elif re.fullmatch(r"\d?(<|>|>>)", word):
                skip = True  # a redirection and its target
            elif not re.match(r"\d?(<|>)", word):
                args.append(word)
        found.append(args)
    return found


# Command lines also appear in crontab lines and systemd units.
SHELL_COMMANDS = [(b, args) for b in ALL_BLOCKS if b.lang in {*SHELL_LANGS, "cron", "ini"}
                  for args in casematch_commands(b.code)]


def test_shell_examples_parse_as_commands() -> None:
    # Every `casematch` line of every shell, cron and systemd example, run or not (the
    # Slack app, a config under /etc), names commands and options the CLI has, with valid
    # values: parsed by the real click command tree, without running anything.
    assert len(SHELL_COMMANDS) >= 20
    wrong = []
    for block, args in SHELL_COMMANDS:
        try:
            ctx = cli.make_context("casematch", list(args))
            command: click.Command = cli
            while isinstance(command, click.Group):
                with warnings.catch_warnings():
                    # Click 8.2 deprecates protected_args; 8.1, also supported, has no other.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    rest = [*ctx.protected_args, *ctx.args]
                name, sub, rest = command.resolve_command(ctx, rest)
                assert sub is not None and name is not None
                ctx = sub.make_context(name, rest, parent=ctx)
                command = sub
        except click.ClickException as exc:
            wrong.append(f"{block.id}: casematch {shlex.join(args)}: {exc.format_message()}")
    assert not wrong, "\n".join(wrong)


# ---- the examples run ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> Path:
    """examples/ and the index built from it, as the docs' first steps leave a checkout."""
    from casematch import CaseIndex, ReadOptions, read_source

    folder = tmp_path_factory.mktemp("docs-template")
    shutil.copytree(ROOT / "examples", folder / "examples")
    options = ReadOptions(slack_domain="acme-support")
    cases = [*read_source(folder / "examples" / "slack-export", options=options),
             *read_source(folder / "examples" / "zendesk" / "tickets.ndjson")]
    index, _ = CaseIndex.build(cases, folder / "casematch-index", encoder=real_encoder)
    index.close()
    return folder


@pytest.fixture
def workdir(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(template, folder)
    monkeypatch.chdir(folder)
    for name in list(os.environ):
        # The user's own index, model or config must not leak into the examples; the
        # ONNX cache of this test run is kept (conftest points it at a temporary folder).
        if name.startswith("CASEMATCH_") and name != "CASEMATCH_CACHE_DIR":
            monkeypatch.delenv(name)
    return folder


@pytest.mark.model
@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block_runs(block: Block, workdir: Path) -> None:
    code = compile(block.code, block.id, "exec")
    exec(code, {"__name__": "__docs__"})


@pytest.mark.model
@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.id)
def test_shell_block_runs(block: Block, workdir: Path) -> None:
    env = dict(os.environ)
    # The `casematch` of the Python running the tests, wherever its venv is.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=workdir, env=env,
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )


# ---- the reference and the links -------------------------------------------------------------


def test_reference_documents_every_public_name() -> None:
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: casematch\.(\w+)\s*$", text, flags=re.MULTILINE))
    public = {name for name in casematch.__all__ if not name.startswith("__")}
    assert public - documented == set(), "add `::: casematch.NAME` to docs/reference.md"
    assert documented - public == set(), "docs/reference.md names what __all__ does not export"


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return {github_slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}


def test_readme_links_resolve() -> None:
    # The README is read on the repository page, outside the mkdocs build that checks the
    # guides' links: its relative links and anchors are checked here.
    readme = ROOT / "README.md"
    links = re.findall(r"\]\(([^)\s]+)\)", readme.read_text(encoding="utf-8"))
    relative = [link for link in links if not re.match(r"[a-z]+://|mailto:", link)]
    assert relative, "the README links to its guides"
    broken = []
    for link in relative:
        target, _, anchor = link.partition("#")
        path = (ROOT / target).resolve() if target else readme
        missing_anchor = bool(anchor) and path.suffix == ".md" and (
            not path.exists() or anchor not in anchors_of(path))
        if not path.exists() or missing_anchor:
            broken.append(link)
    assert not broken, f"broken links in README.md: {broken}"
