"""Zendesk reader: API pages, incremental export pages, NDJSON exports, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from casematch.cases import Case, case_to_dict
from casematch.errors import InputError
from casematch.sources import ReadOptions, ReadReport, read_source
from casematch.sources.zendesk import read_zendesk

REQUESTER, AGENT = 101, 201
USERS = [
    {"id": REQUESTER, "name": "Rita Requester", "role": "end-user"},
    {"id": AGENT, "name": "Alex Agent", "role": "agent"},
]
FIX = "Upgrade the client to 5.3; the idle timeout fix is in that release."
NOTE = "Internal: customer is on the legacy gateway"


# ---- fixtures: API-shaped tickets, comments and files -----------------------------------


def ticket(ticket_id: int | None, subject: str = "VPN drops every hour", *,
           status: str = "solved", subdomain: str | None = "acme", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ticket_id, "subject": subject, "description": f"{subject}. Please help.",
        "status": status, "priority": "high", "type": None, "requester_id": REQUESTER,
        "group_id": 7, "tags": ["vpn", "network"], "created_at": "2024-03-01T09:00:00Z",
        "updated_at": "2024-03-02T10:00:00Z",
    }
    if subdomain:
        out["url"] = f"https://{subdomain}.zendesk.com/api/v2/tickets/{ticket_id}.json"
    return {**out, **fields}


def comment(comment_id: int, author_id: int, body: str, *, public: bool = True,
            minute: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "id": comment_id, "type": "Comment", "author_id": author_id, "body": body,
        "public": public, "created_at": f"2024-03-01T09:{minute:02d}:00Z",
        "attachments": [], "via": {"channel": "web"}, **fields,
    }


def conversation(tid: int) -> list[dict[str, Any]]:
    """A requester e-mail with a quote, an internal note, a question, then the fix."""
    return [
        comment(tid * 10 + 1, REQUESTER,
                "My VPN disconnects every hour.\n\nOn Mon, Mar 4, 2024 at 9:00 AM IT "
                "<it@acme.com> wrote:\n> earlier mail", via={"channel": "email"}),
        comment(tid * 10 + 2, AGENT, NOTE, public=False, minute=5),
        comment(tid * 10 + 3, AGENT, "Which client version do you run?", minute=10),
        comment(tid * 10 + 4, REQUESTER, "Version 5.1", minute=15),
        comment(tid * 10 + 5, AGENT, FIX, minute=20),
    ]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def write_ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read(path: Path, *, notes: bool = False) -> tuple[dict[str, Case], ReadReport]:
    report = ReadReport()
    options = ReadOptions(include_internal_notes=notes)
    cases = {c.id: c for c in read_zendesk(path, options=options, report=report)}
    return cases, report


# ---- accepted formats ---------------------------------------------------------------------


def test_api_page_with_side_loaded_users_groups_and_comments_file(tmp_path: Path) -> None:
    page = write_json(tmp_path / "tickets.json", {
        "tickets": [ticket(1)], "users": USERS, "groups": [{"id": 7, "name": "Network"}],
        "next_page": None, "count": 1,
    })
    write_json(tmp_path / "tickets.comments.json",
               {"comments": [{**c, "ticket_id": 1} for c in conversation(1)]})
    cases, report = read(page)

    case = cases["zendesk:acme:1"]
    assert case.source == "zendesk"
    assert case.title == "VPN drops every hour"
    assert case.problem == "My VPN disconnects every hour."  # quoted reply stripped
    assert case.resolution == FIX
    assert case.resolved is True
    assert case.url == "https://acme.zendesk.com/agent/tickets/1"
    assert case.channel == "Network"
    assert case.tags == ("vpn", "network")
    assert case.created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert case.resolved_at == datetime(2024, 3, 2, 10, 0, tzinfo=UTC)  # updated_at fallback
    assert dict(case.extra) == {"status": "solved", "priority": "high"}  # null type dropped
    assert [m.ts for m in case.messages] == ["11", "12", "13", "14", "15"]
    assert [m.author for m in case.messages][:3] == ["Rita Requester", "Alex Agent",
                                                     "Alex Agent"]
    assert case.messages[0].author_id == "101"
    assert case.hidden_text == ""
    assert report.problems == [] and not report.skipped


def test_comments_folder_and_users_json_beside_a_page(tmp_path: Path) -> None:
    page = write_json(tmp_path / "page1.json", {"tickets": [ticket(2, solved_at=None)]})
    write_json(tmp_path / "users.json", {"users": USERS})
    # The real GET /api/v2/tickets/{id}/comments.json response: no ticket_id on comments.
    write_json(tmp_path / "comments" / "2.json", {"comments": conversation(2)})
    case = read(page)[0]["zendesk:acme:2"]
    assert case.resolution == FIX
    assert case.channel == "group 7"
    assert case.messages[-1].author == "Alex Agent"


def test_incremental_pages_keep_newest_version_and_drop_deleted(tmp_path: Path) -> None:
    newer = ticket(3, "Printer jams (updated)", updated_at="2024-03-05T00:00:00Z",
                   comments=conversation(3))
    older = ticket(3, "Printer jams", status="open", updated_at="2024-03-04T00:00:00Z",
                   comments=conversation(3))
    write_json(tmp_path / "page-1.json", {
        "tickets": [newer, ticket(4, "Gone soon", comments=conversation(4))],
        "after_cursor": "abc", "end_of_stream": False,
    })
    # The older copy of ticket 3 comes later in file order: updated_at decides, not order.
    write_json(tmp_path / "page-2.json", {
        "tickets": [older, ticket(4, status="deleted", updated_at="2024-03-06T00:00:00Z"),
                    ticket(5, "New one", comments=conversation(5))],
        "after_cursor": None, "end_of_stream": True,
    })
    write_json(tmp_path / "users.json", {"users": USERS})
    cases, report = read(tmp_path)
    assert sorted(cases) == ["zendesk:acme:3", "zendesk:acme:5"]
    assert cases["zendesk:acme:3"].title == "Printer jams (updated)"
    assert cases["zendesk:acme:3"].resolved is True
    assert report.skipped == {"deleted": 1}


def test_ndjson_export_with_html_bodies(tmp_path: Path) -> None:
    comments = [
        comment(61, REQUESTER, "raw", html_body="<p>Login fails with <b>SSO</b></p>"
                "<p>Thanks,<br>Rita<br>Acme Corp</p>"),
        comment(62, AGENT, "raw", html_body="<p>Reset the IdP certificate:</p>"
                "<ul><li>open <a href='https://x.test/idp'>IdP settings</a></li></ul>"),
    ]
    path = write_ndjson(tmp_path / "export.ndjson", [
        ticket(6, "SSO broken", comments=comments, users=USERS),
        ticket(7, "Still open", status="pending", comments=conversation(7)),
    ])
    report = ReadReport()
    cases = {c.id: c for c in read_source(path, report=report)}  # format detected by content
    sso = cases["zendesk:acme:6"]
    assert sso.problem == "Login fails with SSO"  # HTML to text, sign-off dropped
    assert sso.resolution == "Reset the IdP certificate:\n\n- open IdP settings (https://x.test/idp)"
    pending = cases["zendesk:acme:7"]
    assert (pending.resolved, pending.resolution, pending.resolved_at) == (False, "", None)
    assert dict(pending.extra)["status"] == "pending"
    assert (report.read, report.resolved) == (2, 1)


# ---- mapping rules ----------------------------------------------------------------------


@pytest.mark.parametrize("notes", [False, True])
def test_internal_notes_never_in_problem_or_resolution(tmp_path: Path, notes: bool) -> None:
    convo = [comment(80, AGENT, "Internal: first touch, VIP customer", public=False),
             *conversation(8)[:-1],
             comment(90, AGENT, "Internal: root cause was the gateway", public=False, minute=30)]
    path = write_ndjson(tmp_path / "t.ndjson", [ticket(8, comments=convo)])
    case = read(path, notes=notes)[0]["zendesk:acme:8"]
    assert case.problem == "My VPN disconnects every hour."
    # The last public agent reply, not the later internal note.
    assert case.resolution == "Which client version do you run?"
    assert [m.public for m in case.messages] == [False, True, False, True, True, False]
    expected = ("Internal: first touch, VIP customer\n\n" + NOTE +
                "\n\nInternal: root cause was the gateway") if notes else ""
    assert case.hidden_text == expected
    # What is ever displayed leaves the notes out, whatever the setting.
    assert "Internal" not in json.dumps(case_to_dict(case, public_only=True))


def test_roles_unknown_any_non_requester_answers(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "t.ndjson", [ticket(9, comments=conversation(9))])
    assert read(path)[0]["zendesk:acme:9"].resolution == FIX


def test_description_without_comments_and_solved_at(tmp_path: Path) -> None:
    path = write_json(tmp_path / "t.json", {"tickets": [
        ticket(10, solved_at="2024-03-03T08:00:00Z",
               description="Disk full on build agent\n\n--\nRita, Acme IT"),
    ]})
    case = read(path)[0]["zendesk:acme:10"]
    assert case.problem == "Disk full on build agent"  # signature stripped
    assert case.resolved is True and case.resolution == ""  # solved, but no agent reply
    assert case.resolved_at == datetime(2024, 3, 3, 8, 0, tzinfo=UTC)
    assert [(m.text, m.author_id) for m in case.messages] == [("Disk full on build agent",
                                                               "101")]


def test_subdomain_from_url_and_fallback(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "t.ndjson", [
        ticket(11, subdomain="globex"), ticket(12, subdomain=None),
        ticket(13, url="https://support.example.com/api/v2/tickets/13.json"),
    ])
    cases = read(path)[0]
    assert cases["zendesk:globex:11"].url == "https://globex.zendesk.com/agent/tickets/11"
    assert cases["zendesk:zendesk:12"].url == ""
    assert cases["zendesk:zendesk:13"].url == ""


# ---- bad input --------------------------------------------------------------------------


def test_bad_ndjson_line_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_text(json.dumps(ticket(14)) + "\n{not json\n" + json.dumps(ticket(15)) + "\n"
                    + json.dumps({"subject": "no id"}) + "\n", encoding="utf-8")
    cases, report = read(path)
    assert sorted(cases) == ["zendesk:acme:14", "zendesk:acme:15"]
    assert report.problems[0].startswith(f"{path}:2: invalid JSON (")
    assert report.problems[1] == f"{path}:4: ticket has no id; skipped"
    assert report.skipped == {"invalid line": 1, "no ticket id": 1}


def test_broken_json_file_in_a_folder_is_reported(tmp_path: Path) -> None:
    write_json(tmp_path / "good.json", {"tickets": [ticket(16)]})
    (tmp_path / "broken.json").write_text('{\n  "tickets": [\n    {"id": 1,,}\n', "utf-8")
    (tmp_path / "latin1.json").write_bytes(b'{"tickets": [{"subject": "caf\xe9"}]}')
    cases, report = read(tmp_path)
    assert list(cases) == ["zendesk:acme:16"]
    assert report.problems[0].startswith(f"{tmp_path / 'broken.json'}:3: invalid JSON (")
    assert report.problems[1].startswith(f"{tmp_path / 'latin1.json'}: not UTF-8 text")


def test_ticket_without_body_is_skipped(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "t.ndjson", [ticket(17, description=""), ticket(18)])
    cases, report = read(path)
    assert list(cases) == ["zendesk:acme:18"]
    assert report.skipped == {"no description": 1}


@pytest.mark.parametrize("content", [
    {"cases": [{"id": "x", "problem": "y"}]},
    {"users": USERS},
    [1, 2, 3],
])
def test_non_ticket_json_raises_input_error_naming_the_file(
    tmp_path: Path, content: Any
) -> None:
    path = write_json(tmp_path / "other.json", content)
    with pytest.raises(InputError) as raised:
        read(path)
    assert raised.value.path == str(path)
    assert 'expected {"tickets": [...]} or one ticket per line' in str(raised.value)


def test_neutral_jsonl_passed_as_zendesk_raises(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "cases.jsonl", [{"id": "a", "problem": "b"}])
    with pytest.raises(InputError, match="one ticket per line"):
        read(path)


def test_lone_non_utf8_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b'{"tickets": [{"id": 1, "subject": "caf\xe9"}]}')
    with pytest.raises(InputError, match="not UTF-8"):
        read(path)


def test_closing_macros_surveys_and_thanks_are_never_the_resolution(tmp_path: Path) -> None:
    rows = [
        {**ticket(1), "comments": [*conversation(1),
                                   comment(16, AGENT, "Glad it works now!", minute=25),
                                   comment(17, AGENT, "This ticket has been closed. How would "
                                                      "you rate our support?", minute=30)]},
        {**ticket(2), "comments": [
            comment(21, REQUESTER, "Printer on floor 2 is offline"),
            comment(22, AGENT, "Closing: resolution Fixed.", minute=5)]},
    ]
    cases, _ = read(write_ndjson(tmp_path / "t.ndjson", rows))
    assert cases["zendesk:acme:1"].resolution == FIX
    macro_only = cases["zendesk:acme:2"]
    # Still found by its problem, but with no macro text shown as the fix.
    assert macro_only.resolved and macro_only.resolution == ""
    assert macro_only.problem == "Printer on floor 2 is offline"


@pytest.mark.parametrize("lines", [0, 2, 100])
def test_ndjson_tickets_past_the_parsed_budget_are_read_again_alike(
        tmp_path: Path, lines: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tickets kept parsed from the first reading and tickets read again give the same cases,
    # the newest copy of a repeated ticket wins either way, and bad lines count once.
    import casematch.sources.zendesk as zendesk

    rows: list[Any] = [{**ticket(n, f"Printer {n} jams"), "comments": conversation(n)}
                       for n in range(1, 6)]
    rows.insert(2, {**ticket(2, "Printer 2 jams again", updated_at="2024-03-05T00:00:00Z"),
                    "comments": conversation(2)})
    rows.insert(4, {**ticket(3, "Printer 3 older copy", updated_at="2024-01-01T00:00:00Z"),
                    "comments": conversation(3)})
    path = write_ndjson(tmp_path / "export.ndjson", rows)
    path.write_text(path.read_text() + "{broken\n", encoding="utf-8")
    # A budget of `lines` lines: none, the first two (one later replaced), or all of them.
    size = len(path.read_bytes().splitlines(keepends=True)[0])
    monkeypatch.setattr(zendesk, "PARSED_BUDGET", size * lines + 20)
    cases, report = read(path)
    assert sorted(cases) == [f"zendesk:acme:{n}" for n in range(1, 6)]
    assert cases["zendesk:acme:2"].title == "Printer 2 jams again"
    assert cases["zendesk:acme:3"].title == "Printer 3 jams"
    assert all(c.resolution == FIX for c in cases.values())
    assert report.skipped == {"invalid line": 1}
    monkeypatch.setattr(zendesk, "PARSED_BUDGET", 16 * 1024 * 1024)
    assert read(path)[0] == cases
