"""Ranking quality with the real default model (all-MiniLM-L6-v2, loaded offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_case

from casematch.index import CaseIndex

pytestmark = pytest.mark.model

PAST = [
    make_case("sso", "After we turned on Okta SAML, every user lands back on the sign-in page "
              "instead of the dashboard.", "The Audience URI in Okta did not match the SP "
              "entity id; setting it to https://app.acme.io/saml fixed the loop."),
    make_case("push", "Android users stopped getting push notifications after updating to 5.12.",
              "A token refresh bug in 5.12.0; 5.12.2 re-registers the FCM token."),
    make_case("csv", "Exporting the ticket report to CSV times out for our biggest workspace.",
              "Use the asynchronous export; it emails a download link when ready."),
    make_case("vat", "Our invoice shows the wrong VAT number for the German entity.",
              "Billing updated the tax id and re-issued invoice INV-2291."),
    make_case("ratelimit",
              "API calls fail with HTTP 429 Too Many Requests during the nightly sync.",
              "Honour the Retry-After header and batch the writes; the limit is 700 req/min."),
    make_case("crash", "The iOS app crashes on launch since this morning's update.",
              resolved=False),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> CaseIndex:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("idx")
    built, _ = CaseIndex.build(PAST, path, encoder=real_encoder)
    return built


@pytest.mark.parametrize(
    ("new_case", "expected"),
    [
        ("Customer says Okta single sign-on keeps redirecting them to the login screen", "sso"),
        ("no notifications on my Android phone since the latest version", "push"),
        ("report download to spreadsheet never finishes for a large account", "csv"),
        ("we are being rate limited by the API at night, too many requests", "ratelimit"),
        ("tax identifier printed on the bill is incorrect", "vat"),
    ],
)
def test_paraphrased_case_finds_its_own_case_first(index: CaseIndex, new_case: str,
                                                   expected: str) -> None:
    matches = index.search(new_case, k=3)
    assert matches[0].case.id == expected
    assert matches[0].score > matches[1].score


def test_unresolved_case_is_never_suggested(index: CaseIndex) -> None:
    matches = index.search("iOS app crashes immediately on launch after update", k=10)
    assert "crash" not in {m.case.id for m in matches}
    assert len(matches) == 5


def test_real_model_chunks_long_cases_instead_of_truncating(real_encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    filler = "We checked the usual things and nothing obvious came up in the logs. " * 40
    long_case = make_case("long", filler + "Finally: the LDAP bind password had expired.",
                          "Rotate the LDAP service account password.")
    assert len(real_encoder.chunk(long_case.search_text())) > 1
    index, _ = CaseIndex.build([long_case, *PAST[:3]], tmp_path / "idx", encoder=real_encoder)
    assert index.search("LDAP bind password expired", k=1)[0].case.id == "long"
