"""The CLI through click's CliRunner (and once as a real process), with the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from slack_fixtures import reaction, reply, root, write_export, zip_folder

from casematch.cli import cli

pytestmark = pytest.mark.model

CASES = [
    {"id": "sso-1", "problem": "Okta SAML login sends users back to the sign-in page",
     "resolution": "Fix the Audience URI in Okta to match the SP entity id.",
     "channel": "support", "created_at": "2026-05-01T09:00:00Z", "tags": ["sso"]},
    {"id": "push-1", "problem": "Android push notifications stopped after the 5.12 update",
     "resolution": "Update to 5.12.2, which re-registers the FCM token.",
     "channel": "mobile", "created_at": "2026-06-01T09:00:00Z"},
    {"id": "open-1", "problem": "iOS app crashes on launch", "channel": "mobile"},
]


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_index_query_stats(jsonl: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    code, out, _ = run("index", str(jsonl), "--index", index)
    assert code == 0
    assert "Read 3 cases: 2 resolved, 1 unresolved." in out
    assert "added 2, updated 0, deleted 0, unchanged 0; embedded 2 texts" in out

    code, out, _ = run("query", "users bounced back to login after enabling Okta", "--index", index)
    assert code == 0
    assert out.index("Okta SAML login") < out.index("Android push")
    assert "Resolution: Fix the Audience URI" in out

    code, out, _ = run("query", "notifications missing on android", "--index", index, "-k", "1",
                       "--json")
    payload = json.loads(out)
    assert [m["id"] for m in payload["matches"]] == ["push-1"]
    assert set(payload["matches"][0]) >= {"rank", "score", "title", "snippet", "url", "case"}

    code, out, _ = run("stats", "--index", index, "--json")
    stats = json.loads(out)
    assert (stats["cases"], stats["resolved"], stats["by_source"]) == (2, 2, {"jsonl": 2})


def test_query_filters_and_stdin(jsonl: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    run("index", str(jsonl), "--index", index)
    code, out, _ = run("query", "-", "--index", index, "--channel", "mobile", "--json",
                       input="Okta login loop\n")
    assert code == 0
    assert [m["id"] for m in json.loads(out)["matches"]] == ["push-1"]
    _, out, _ = run("query", "login", "--index", index, "--since", "2026-05-15", "--json")
    assert [m["id"] for m in json.loads(out)["matches"]] == ["push-1"]
    code, _, err = run("query", "login", "--index", index, "--since", "last tuesday")
    assert code == 2 and "is not a date" in err


def test_index_from_slack_export_zip_with_permalinks(tmp_path: Path) -> None:
    t0 = "1700000000.000100"
    export = write_export(tmp_path / "export", {"it-swarm": {"2023-11-14": [
        root(t0, "Outlook keeps prompting for my password every few minutes"),
        reply("1700000100.000200", t0, "Clear the cached credentials in Credential Manager "
              "and re-add the account.", reactions=reaction("white_check_mark")),
    ]}})
    archive = zip_folder(export, tmp_path / "export.zip")
    index = str(tmp_path / "idx")
    code, out, _ = run("index", str(archive), "--index", index, "--slack-domain", "acme")
    assert code == 0, out
    _, out, _ = run("query", "password prompt loops in Outlook", "--index", index, "--json")
    [match] = json.loads(out)["matches"]
    assert match["id"] == f"slack:CITSWARM:{t0}"
    assert match["url"] == "https://acme.slack.com/archives/CITSWARM/p1700000000000100"
    assert match["snippet"].startswith("Clear the cached credentials")


def test_errors_are_one_line_and_keep_the_existing_index(jsonl: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    run("index", str(jsonl), "--index", str(index))
    before = (index / "CURRENT").read_text()

    truncated = tmp_path / "export.zip"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run("index", str(truncated), "--index", str(index))
    assert code == 1
    assert err.startswith("Error: ") and "export.zip" in err and "Traceback" not in err

    unresolved = tmp_path / "open.jsonl"
    unresolved.write_text(json.dumps(CASES[2]) + "\n", encoding="utf-8")
    code, _, err = run("index", str(unresolved), "--index", str(index))
    assert code == 1 and "no resolved cases" in err and "existing index is unchanged" in err

    code, _, err = run("index", str(tmp_path / "missing"), "--index", str(index))
    assert code == 1 and "missing: no such file or directory" in err
    assert (index / "CURRENT").read_text() == before

    code, _, err = run("query", "x", "--index", str(tmp_path / "nowhere"))
    assert code == 1 and "no index here" in err


def test_index_path_from_environment(jsonl: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMATCH_INDEX", str(tmp_path / "from-env"))
    assert run("index", str(jsonl))[0] == 0
    assert (tmp_path / "from-env" / "CURRENT").exists()


def test_real_process(jsonl: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CASEMATCH_INDEX": str(tmp_path / "idx")}
    subprocess.run([sys.executable, "-m", "casematch", "index", str(jsonl)], env=env,
                   check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "casematch", "query", "okta sign-in loop",
                           "-k", "1"], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[2] == "1. Okta SAML login sends users back to the sign-in page"
    failed = subprocess.run([sys.executable, "-m", "casematch", "stats", "--index",
                             str(tmp_path / "none")], capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0 and "Traceback" not in failed.stderr


def test_every_command_accepts_config(jsonl: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASEMATCH_INDEX", raising=False)  # the environment beats the file
    config = tmp_path / "conf" / "casematch.toml"
    config.parent.mkdir()
    config.write_text('[index]\npath = "../idx"\n', encoding="utf-8")  # relative to the file
    assert run("index", str(jsonl), "--config", str(config))[0] == 0
    assert (tmp_path / "idx" / "CURRENT").exists()

    code, out, _ = run("query", "okta sign-in loop", "--config", str(config), "-k", "1", "--json")
    assert code == 0 and [m["id"] for m in json.loads(out)["matches"]] == ["sso-1"]
    code, out, _ = run("stats", "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["cases"] == 2
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"query": "okta sign-in loop", "relevant": ["sso-1"]}) + "\n",
                       encoding="utf-8")
    code, out, _ = run("eval", str(queries), "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["queries"] == 1

    # The command's own --config wins over the group's.
    other = tmp_path / "other.toml"
    other.write_text('[index]\npath = "nowhere"\n', encoding="utf-8")
    assert run("--config", str(other), "stats", "--config", str(config))[0] == 0
    code, _, err = run("--config", str(other), "stats")
    assert code == 1 and "no index here" in err

    for command in (["index"], ["query"], ["stats"], ["eval"], ["reindex"], ["slack", "serve"]):
        assert "--config" in run(*command, "--help")[1], command
