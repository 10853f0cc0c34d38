"""The Zendesk API source against a local fake of the incremental export (nothing remote)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fake_zendesk import FakeZendesk

from casematch.config import Settings
from casematch.index import CaseIndex
from casematch.sources import ReadOptions
from casematch.sources.zendesk_api import ZendeskClient, pull_zendesk
from casematch.sync.reindex import reindex


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.ticket(1, "SAML login loops", "solved", ((1, "Okta login loops back"),
                                                  (2, "Fix the Audience URI in Okta")))
    fake.ticket(2, "Push notifications stopped", "open",
                ((1, "Android push stopped after 5.12"), (2, "Which version exactly?"),
                 (1, "5.12.0 on a Pixel 7")))
    fake.ticket(3, "Wrong VAT on invoice", "closed", ((1, "VAT is wrong"),
                                                      (2, "Add the VAT id in billing")))
    yield fake
    fake.close()


def settings_for(tmp_path: Path, fake: FakeZendesk, token: str | None = None) -> Settings:
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\npath = "idx"\n[zendesk]\ntoken_env = "ZD_TOKEN"\n'
                      '[[sources]]\ntype = "zendesk-api"\nsubdomain = "acme"\n',
                      encoding="utf-8")
    env = {"ZENDESK_EMAIL": fake.email, "ZD_TOKEN": fake.token if token is None else token,
           "CASEMATCH_ZENDESK_API_URL": fake.url}
    return Settings.load(config, env=env)


def test_incremental_export_pages_comments_and_cursor(tmp_path: Path,
                                                      zendesk: FakeZendesk) -> None:
    settings = settings_for(tmp_path, zendesk)
    result = reindex(settings, encoder=FakeEncoder())
    assert result.status == "indexed", result.to_dict()
    assert (result.update.added, result.update.skipped_unresolved) == (2, 1)
    exports = zendesk.paths("/api/v2/incremental/")
    assert exports[0]["start_time"] == "0" and exports[1]["cursor"] == "2"  # paginated
    assert any(q.get("page") for q in zendesk.paths("/api/v2/tickets/2/"))  # comment pages
    with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as index:
        case = index.get("zendesk:acme:1")
        assert case is not None and case.resolution == "Fix the Audience URI in Okta"
        assert case.url == "https://acme.zendesk.com/agent/tickets/1"

    # Next run: the cursor asks only for changes. Ticket 2 becomes solved, 3 is deleted.
    zendesk.requests.clear()
    zendesk.ticket(2, "Push notifications stopped", "solved",
                   ((1, "Android push stopped after 5.12"), (2, "Which version exactly?"),
                    (1, "5.12.0 on a Pixel 7"), (2, "Update to 5.12.2")))
    zendesk.ticket(3, "Wrong VAT on invoice", "deleted")
    encoder = FakeEncoder()
    second = reindex(settings, encoder=encoder)
    assert zendesk.paths("/api/v2/incremental/")[0] == {"cursor": "3", "per_page": "1000"}
    assert (second.update.added, second.update.deleted, second.update.embedded) == (1, 1, 1)
    assert "Update to 5.12.2" in encoder.encoded[0]
    assert not zendesk.paths("/api/v2/tickets/1/")  # unchanged ticket: not even fetched

    third = reindex(settings, encoder=FakeEncoder())
    assert third.status == "nothing-to-do" and third.detailed_exit_code == 4


def test_429_waits_for_retry_after(tmp_path: Path, zendesk: FakeZendesk) -> None:
    zendesk.rate_limit["/api/v2/incremental/tickets/cursor.json"] = 7
    source = settings_for(tmp_path, zendesk).sources[0]
    waits: list[float] = []
    client = ZendeskClient(source, sleep=waits.append)
    batch = pull_zendesk(source, None, ReadOptions(), client=client)
    assert waits == [7.0]
    assert sorted(c.id for c in batch.cases) == ["zendesk:acme:1", "zendesk:acme:2",
                                                 "zendesk:acme:3"]


def test_auth_error_never_shows_the_token(tmp_path: Path, zendesk: FakeZendesk) -> None:
    wrong = "zd-wrong-token-77777"
    settings = settings_for(tmp_path, zendesk, token=wrong)
    result = reindex(settings, encoder=FakeEncoder())
    error = result.sources[0].error
    assert result.exit_code == 1 and "HTTP 401" in error and "ZD_TOKEN" in error
    assert wrong not in str(result.to_dict()) and wrong not in repr(settings)


def test_missing_credentials_name_the_variables(tmp_path: Path, zendesk: FakeZendesk) -> None:
    result = reindex(settings_for(tmp_path, zendesk, token=""), encoder=FakeEncoder())
    assert "ZENDESK_EMAIL" in result.sources[0].error and "ZD_TOKEN" in result.sources[0].error
