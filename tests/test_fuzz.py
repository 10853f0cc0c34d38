"""Property-based fuzzing of the readers and `casematch index` (Hypothesis).

Random Slack exports, Zendesk files and JSONL (random structure, wrong types, lone
surrogates and control characters, truncated files) must give cases or a `CasematchError`,
nothing else; a failed run leaves an existing index byte for byte as it was; and a source
read only partly never loses a case from the index.

Profiles (tests/conftest.py): "ci" by default (fixed seed, small budget);
`pytest --hypothesis-profile=long tests/test_fuzz.py` tries many more examples.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

from conftest import FakeEncoder  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from casematch.cases import Case  # noqa: E402
from casematch.config import Settings  # noqa: E402
from casematch.errors import CasematchError  # noqa: E402
from casematch.sources import ReadReport, read_source  # noqa: E402
from casematch.storage.generations import current_case_ids  # noqa: E402
from casematch.sync.build import build_index  # noqa: E402

# ---- strategies ---------------------------------------------------------------------------

# Text as the outside world sends it: any code point, lone surrogates and controls included.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.sampled_from(["\ud83d", "cut \udc00 emoji", "\x00\x07bell", "Printer jams \x1b[31m",
                     "", " ", "\u202e", "x" * 300]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), nasty_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
good_ts = st.integers(1_000_000_000, 1_900_000_000).map(lambda n: f"{n}.000100")
any_ts = st.one_of(good_ts, good_ts, st.sampled_from(["NaN", "abc", "1e309", "-5", "", "inf"]),
                   json_values)


@st.composite
def slack_messages(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    ts = draw(any_ts)
    message: dict[str, Any] = {"type": "message", "ts": ts,
                               "user": draw(st.sampled_from(["U1", "U2", "U9", 5, None]))}
    message["text"] = draw(st.one_of(nasty_text, nasty_text, json_values))
    if draw(st.booleans()):
        message["thread_ts"] = draw(st.one_of(st.just(ts), any_ts))
    if draw(st.booleans()):
        message["reactions"] = draw(st.one_of(
            st.just([{"name": "white_check_mark"}]), json_values))
    for key in ("subtype", "user_profile", "bot_profile", "files", "blocks", "attachments"):
        if draw(st.integers(0, 7)) == 0:
            message[key] = draw(json_values)
    return message


@st.composite
def slack_exports(draw: st.DrawFn) -> dict[str, bytes]:
    """Relative path -> file bytes of a Slack export folder."""
    names = draw(st.lists(st.sampled_from(["swarm", "help", "../up", "a/b", "", "C1"]),
                          min_size=0, max_size=3, unique=True))
    channels: Any = [{"id": f"C{n}", "name": name} for n, name in enumerate(names)]
    if draw(st.integers(0, 5)) == 0:
        channels = draw(json_values)
    files = {"channels.json": json.dumps(channels).encode()}
    if draw(st.booleans()):
        users = draw(st.one_of(json_values, st.just([{"id": "U1", "name": "ann",
                                                      "profile": draw(json_values)}])))
        files["users.json"] = json.dumps(users).encode()
    for name in names:
        if "/" in name or not name:
            continue
        for day in range(draw(st.integers(0, 2))):
            content = draw(st.one_of(st.lists(slack_messages(), max_size=5), json_values))
            files[f"{name}/2024-01-0{day + 1}.json"] = json.dumps(content).encode()
    return _maybe_truncate(draw, files)


def _maybe_truncate(draw: st.DrawFn, files: dict[str, bytes]) -> dict[str, bytes]:
    if files and draw(st.integers(0, 3)) == 0:
        victim = draw(st.sampled_from(sorted(files)))
        files[victim] = files[victim][: draw(st.integers(0, max(len(files[victim]) - 1, 0)))]
    if files and draw(st.integers(0, 7)) == 0:
        victim = draw(st.sampled_from(sorted(files)))
        files[victim] = draw(st.binary(max_size=30))
    return files


@st.composite
def tickets(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 7)) == 0:
        return draw(json_values)
    ticket: dict[str, Any] = {
        "id": draw(st.one_of(st.integers(1, 50), st.integers(1, 50), json_values)),
        "status": draw(st.one_of(st.sampled_from(["solved", "closed", "open", "deleted"]),
                                 json_values)),
        "description": draw(nasty_text),
    }
    for key in ("subject", "comments", "updated_at", "tags", "requester_id", "via", "url"):
        if draw(st.booleans()):
            ticket[key] = draw(st.one_of(nasty_text, json_values))
    if draw(st.booleans()):
        ticket["comments"] = [{"id": n, "author_id": draw(st.sampled_from([1, 2, "x"])),
                               "body": draw(nasty_text), "public": draw(json_values)}
                              for n in range(draw(st.integers(0, 3)))]
    return ticket


@st.composite
def zendesk_files(draw: st.DrawFn) -> dict[str, bytes]:
    items = draw(st.lists(tickets(), max_size=5))
    if draw(st.booleans()):
        files = {"tickets.json": json.dumps(draw(st.sampled_from(
            [{"tickets": items}, items, {"ticket": items[0] if items else {}}]))).encode()}
    else:
        files = {"tickets.ndjson": "\n".join(json.dumps(t) for t in items).encode()}
    if draw(st.booleans()):
        files["users.json"] = json.dumps(draw(json_values)).encode()
    return _maybe_truncate(draw, files)


@st.composite
def jsonl_files(draw: st.DrawFn) -> dict[str, bytes]:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 4)) == 0:
            lines.append(json.dumps(draw(json_values)))
            continue
        line: dict[str, Any] = {"id": draw(st.one_of(st.sampled_from(["a", "b", 1, 2]),
                                                     json_values)),
                                "problem": draw(st.one_of(nasty_text, json_values))}
        for key in ("resolution", "resolved", "created_at", "messages", "tags", "visibility"):
            if draw(st.booleans()):
                line[key] = draw(st.one_of(nasty_text, json_values))
        lines.append(json.dumps(line))
    return _maybe_truncate(draw, {"cases.jsonl": "\n".join(lines).encode()})


# ---- helpers --------------------------------------------------------------------------------


def write(folder: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def snapshot(index: Path) -> dict[str, str]:
    """Every file of an index and a hash of its bytes (the lock file aside)."""
    return {str(p.relative_to(index)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index.rglob("*")) if p.is_file() and p.name != ".lock"}


def assert_clean(case: Case) -> None:
    case.content_hash()
    json.dumps(case.to_dict(), ensure_ascii=False).encode("utf-8")  # no lone surrogate left
    assert isinstance(case.id, str) and isinstance(case.problem, str)


def read_all(source: Path, fmt: str) -> tuple[list[Case], ReadReport]:
    report = ReadReport()
    try:
        cases = list(read_source(source, format=fmt, report=report))
    except CasematchError:
        return [], report
    for case in cases:
        assert_clean(case)
    return cases, report


BASE = "".join(json.dumps({"id": f"base{n}", "problem": f"Widget {n} crashes on save",
                           "resolution": f"Hotfix {n}"}) + "\n" for n in range(5))


def check_run_on_an_existing_index(source: Path, fmt: str) -> None:
    """A run over `source` raises only CasematchError; a failed run changes nothing, and
    a partial one loses no case of the index."""
    with tempfile.TemporaryDirectory() as scratch:
        base_file = Path(scratch) / "base.jsonl"
        base_file.write_text(BASE, encoding="utf-8")
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        build_index([base_file], settings, encoder=FakeEncoder())
        before = snapshot(settings.index_path)
        kept = current_case_ids(settings.index_path)
        try:
            built = build_index([source], settings, format=fmt, include_unresolved=True,
                                encoder=FakeEncoder())
        except CasematchError:
            assert snapshot(settings.index_path) == before
            return
        after = current_case_ids(settings.index_path)
        assert kept <= after  # another source's cases stay
        if built.status == "partial":
            assert built.update.deleted == 0


# ---- properties -----------------------------------------------------------------------------


@given(files=slack_exports())
def test_slack_exports(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "export"
        export.mkdir()
        write(export, files)
        read_all(export, "slack-export")
        check_run_on_an_existing_index(export, "slack-export")


@given(files=zendesk_files())
def test_zendesk_files(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "zd"
        folder.mkdir()
        write(folder, files)
        read_all(folder, "zendesk")
        check_run_on_an_existing_index(folder, "zendesk")


@given(files=jsonl_files())
def test_jsonl_files(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write(folder, files)
        read_all(folder / "cases.jsonl", "jsonl")
        check_run_on_an_existing_index(folder / "cases.jsonl", "jsonl")


@given(damage=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400)), min_size=1,
                       max_size=3))
def test_a_damaged_export_never_loses_a_case(damage: list[tuple[int, int]]) -> None:
    """Index a good export, damage some of its files, index it again: every case that
    the damaged read did not see is still in the index (or the run changed nothing)."""
    from slack_fixtures import reaction, reply, root, write_export

    days = {f"2024-01-{n + 1:02d}": [
        root(f"{1704067200 + n * 86400}.000100", f"Printer {n} jams on tray two"),
        reply(f"{1704067260 + n * 86400}.000200", f"{1704067200 + n * 86400}.000100",
              f"Replace roller kit {n}", reactions=reaction("white_check_mark"))]
        for n in range(5)}
    with tempfile.TemporaryDirectory() as scratch:
        export = write_export(Path(scratch) / "export", {"swarm": days})
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        build_index([export], settings, encoder=FakeEncoder())
        everything = current_case_ids(settings.index_path)
        files = sorted(p for p in export.rglob("*.json"))
        for which, cut in damage:
            target = files[which % len(files)]
            target.write_bytes(target.read_bytes()[:cut])
        before = snapshot(settings.index_path)
        try:
            built = build_index([export], settings, encoder=FakeEncoder())
        except CasematchError:
            assert snapshot(settings.index_path) == before
            return
        after = current_case_ids(settings.index_path)
        if built.status == "partial":
            assert after == everything
        else:
            assert len(everything - after) <= 0.2 * len(everything)
