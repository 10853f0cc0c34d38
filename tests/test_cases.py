from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from casematch.cases import (
    Case,
    Message,
    Visibility,
    case_from_dict,
    case_to_dict,
    first_sentence,
    parse_datetime,
)
from casematch.sources import ReadReport
from casematch.sources.jsonl import read_jsonl, write_jsonl


def full_case() -> Case:
    return Case(
        id="slack:C1:1700000000.000100",
        source="slack",
        title="VPN drops hourly",
        problem="VPN drops hourly. Started Monday.",
        resolution="Raise the IKE lifetime to 8h.",
        resolved=True,
        url="https://acme.slack.com/archives/C1/p1700000000000100",
        created_at=datetime(2026, 5, 1, 10, tzinfo=UTC),
        resolved_at=datetime(2026, 5, 2, 9, tzinfo=UTC),
        channel="it-swarm",
        visibility=Visibility(private=True, members=("U1", "U2")),
        tags=("vpn", "network"),
        messages=(
            Message("VPN drops hourly.", author="Ann", author_id="U1", ts="1700000000.000100"),
            Message("internal: check the gateway", public=False),
        ),
        hidden_text="internal: check the gateway",
        extra={"status": "solved"},
    )


def test_jsonl_round_trip_keeps_every_field(tmp_path: Path) -> None:
    case = full_case()
    write_jsonl([case], tmp_path / "cases.jsonl")
    [back] = list(read_jsonl(tmp_path / "cases.jsonl"))
    assert back == case


def test_public_only_drops_hidden_content() -> None:
    data = case_to_dict(full_case(), public_only=True)
    assert "hidden_text" not in data
    assert [m["text"] for m in data["messages"]] == ["VPN drops hourly."]


def test_minimal_case_needs_only_id_and_problem() -> None:
    case = case_from_dict({"id": "42", "problem": "Printer jams"})
    assert (case.id, case.source, case.resolved, case.resolution) == ("42", "jsonl", False, "")
    assert case_from_dict({"id": "43", "problem": "x", "resolution": "y"}).resolved is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"problem": "x"}, "missing required field 'id'"),
        ({"id": "1"}, "missing required field 'problem'"),
        ({"id": "1", "problem": ""}, "missing required field 'problem'"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_case_names_the_problem(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        case_from_dict(data)  # type: ignore[arg-type]


def test_bad_lines_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "a", "problem": "one"}\nnot json\n\n{"id": "b"}\n'
                    '{"id": "c", "problem": "three"}\n', encoding="utf-8")
    report = ReadReport()
    assert [c.id for c in read_jsonl(path, report=report)] == ["a", "c"]
    assert report.problems == [
        f"{path}:2: invalid JSON (Expecting value, column 1); fix or remove the line",
        f"{path}:4: missing required field 'problem'; fix or remove the line"]


def test_non_utf8_jsonl_names_the_file(tmp_path: Path) -> None:
    from casematch.errors import InputError

    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"id": "a", "problem": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.jsonl: not UTF-8"):
        list(read_jsonl(path))


def test_search_text_and_hash_follow_the_text() -> None:
    case = full_case()
    assert "internal: check the gateway" in case.search_text()
    relabelled = Case(**{**{f: getattr(case, f) for f in case.__slots__}, "url": "x"})
    assert relabelled.content_hash() == case.content_hash()
    edited = Case(**{**{f: getattr(case, f) for f in case.__slots__}, "resolution": "Reboot"})
    assert edited.content_hash() != case.content_hash()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Login fails. Tried twice.", "Login fails."),
        ("Why is sync slow? It used to be fast", "Why is sync slow?"),
        ("first line\nsecond line", "first line"),
        ("word " * 40, ("word " * 24).strip() + "…"),
    ],
)
def test_first_sentence(text: str, expected: str) -> None:
    assert first_sentence(text) == expected


def test_parse_datetime_accepts_iso_and_unix() -> None:
    assert parse_datetime("2026-05-01T10:00:00Z") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_datetime("1700000000.000100") == datetime.fromtimestamp(1700000000.0001, UTC)
    assert parse_datetime(None) is None
