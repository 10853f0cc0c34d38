"""`casematch reindex` over export sources: incremental, atomic, locked, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FakeEncoder
from filelock import FileLock

from casematch.cli import cli
from casematch.config import Settings
from casematch.sync.reindex import EXIT_LOCKED, reindex

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def write_cases(path: Path, count: int, changed: tuple[int, ...] = (), skip: int = -1) -> None:
    lines = []
    for n in range(count):
        if n == skip:
            continue
        fix = "Reboot the router twice" if n in changed else f"Apply hotfix number {n}"
        lines.append(json.dumps({"id": f"c{n}", "problem": f"Widget {n} crashes on save",
                                 "resolution": fix}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_config(tmp_path: Path, *extra: str) -> Path:
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\npath = "idx"\n[[sources]]\ntype = "jsonl"\npath = "cases.jsonl"\n'
                      + "".join(extra), encoding="utf-8")
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    write_cases(tmp_path / "cases.jsonl", 6)
    return write_config(tmp_path)


def test_export_reindex_is_incremental_and_sees_deletions(tmp_path: Path, config: Path) -> None:
    settings = Settings.load(config, env={})
    first = reindex(settings, encoder=FakeEncoder())
    assert (first.update.added, first.status, first.exit_code) == (6, "indexed", 0)
    assert (tmp_path / "idx" / "sync.sqlite").is_file()

    write_cases(tmp_path / "cases.jsonl", 6, changed=(2,), skip=4)
    encoder = FakeEncoder()
    second = reindex(settings, encoder=encoder)
    assert (second.update.updated, second.update.deleted, second.update.unchanged) == (1, 1, 4)
    assert second.update.embedded == 1 and "Reboot the router" in encoder.encoded[0]

    third = reindex(settings, encoder=FakeEncoder())
    assert (third.status, third.exit_code, third.update.embedded) == ("nothing-to-do", 0, 0)
    assert third.detailed_exit_code == 4
    assert third.update.generation == second.update.generation  # no new generation


def test_dry_run_and_full(tmp_path: Path, config: Path) -> None:
    settings = Settings.load(config, env={})
    dry = reindex(settings, encoder=FakeEncoder(), dry_run=True)
    assert (dry.update.added, dry.update.embedded, dry.dry_run) == (6, 6, True)
    assert not (tmp_path / "idx" / "CURRENT").exists()
    first = reindex(settings, encoder=FakeEncoder())
    dry_full = reindex(settings, encoder=FakeEncoder(), full=True, dry_run=True)
    assert (dry_full.update.embedded, dry_full.update.unchanged) == (6, 6)  # all re-embedded
    assert (tmp_path / "idx" / "CURRENT").read_text().strip() == first.update.generation
    full = reindex(settings, encoder=FakeEncoder(), full=True)
    assert (full.update.added, full.update.embedded, full.status) == (6, 6, "indexed")


def test_partial_failure_indexes_the_other_sources(tmp_path: Path, config: Path) -> None:
    config = write_config(tmp_path, '[[sources]]\ntype = "zendesk-export"\npath = "nope"\n')
    result = reindex(Settings.load(config, env={}), encoder=FakeEncoder())
    assert (result.status, result.exit_code, result.update.added) == ("partial", 3, 6)
    assert "no such file" in result.sources[1].error


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr("casematch.sync.reindex.load_encoder", lambda *a, **k: FakeEncoder())
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_summary_and_exit_codes(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli(["reindex", "--config", str(config), "--json"], monkeypatch)
    payload = json.loads(out)
    assert code == 0 and payload["added"] == 6 and payload["status"] == "indexed"
    assert {"added", "updated", "deleted", "unchanged", "embedded", "seconds"} <= set(payload)
    code, out, err = run_cli(["reindex", "--config", str(config)], monkeypatch)
    assert code == 0 and "added 0, updated 0, deleted 0, unchanged 6; embedded 0" in out
    code, _, _ = run_cli(["reindex", "--config", str(config), "--detailed-exitcode"], monkeypatch)
    assert code == 4
    assert "\033[K" not in err  # progress only on a terminal, never in cron mail
    code, out, _ = run_cli(["reindex", "--help"], monkeypatch)
    assert "75  locked" in out and "4   nothing to do" in out


def test_concurrent_reindex_is_refused(config: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(["reindex", "--config", str(config)], monkeypatch)
    with FileLock(tmp_path / "idx" / ".lock"):
        code, _, err = run_cli(["reindex", "--config", str(config)], monkeypatch)
        assert code == EXIT_LOCKED and "is writing this index" in err
        code, out, _ = run_cli(["reindex", "--config", str(config), "--json"], monkeypatch)
    assert code == EXIT_LOCKED and json.loads(out)["status"] == "locked"


def test_json_on_a_config_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\npath = "idx"\n', encoding="utf-8")
    code, out, err = run_cli(["reindex", "--config", str(config), "--json"], monkeypatch)
    payload = json.loads(out)
    assert code == 1 and (payload["status"], payload["exit_code"], payload["added"]) == (
        "failed", 1, 0)
    assert "no [[sources]]" in payload["error"] and err.startswith("Error: ")


def test_secrets_never_reach_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_zendesk import FakeZendesk

    fake = FakeZendesk()
    try:
        config = tmp_path / "casematch.toml"
        config.write_text('[index]\npath = "idx"\n[[sources]]\ntype = "zendesk-api"\n'
                          'subdomain = "acme"\n', encoding="utf-8")
        secret = "zd-top-secret-token-424242"
        for name, value in {"ZENDESK_EMAIL": fake.email, "ZENDESK_API_TOKEN": secret,
                            "CASEMATCH_ZENDESK_API_URL": fake.url}.items():
            monkeypatch.setenv(name, value)
        code, out, err = run_cli(["reindex", "--config", str(config), "--json"], monkeypatch)
        assert code == 1 and "HTTP 401" in out + err
        assert secret not in out + err
    finally:
        fake.close()


# ---- real processes: kill -9 mid-way, searches while a reindex runs -----------------------

# The test's own entry point: a slow encoder chosen through an environment variable that
# only this script reads (library code never looks at it).
ENTRY = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import FakeEncoder

    class SlowEncoder(FakeEncoder):
        def encode(self, texts, *, progress=False):
            marker = os.environ.get("CASEMATCH_TEST_EMBEDDING_MARKER")
            if marker:
                open(marker, "w").close()
            time.sleep(float(os.environ.get("CASEMATCH_TEST_SLOW_SECONDS", "0")))
            return super().encode(texts, progress=progress)

    import casematch.sync.reindex
    casematch.sync.reindex.load_encoder = lambda *a, **k: SlowEncoder()
    from casematch.cli import main
    sys.argv = ["casematch", *sys.argv[1:]]
    main()
""").format(tests=str(TESTS))

SEARCH = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import FakeEncoder
    from casematch.index import CaseIndex
    with CaseIndex.open(sys.argv[1], encoder=FakeEncoder()) as index:
        print(index.generation, [m.case.id for m in index.search("Widget 3 crashes", k=1)][0])
""").format(tests=str(TESTS))


def start_reindex(config: Path, marker: Path, slow: float) -> subprocess.Popen[str]:
    env = {**os.environ, "CASEMATCH_TEST_EMBEDDING_MARKER": str(marker),
           "CASEMATCH_TEST_SLOW_SECONDS": str(slow)}
    return subprocess.Popen([sys.executable, "-c", ENTRY, "reindex", "--config", str(config),
                             "--json"], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)


def wait_for(marker: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the reindex never started embedding"
        time.sleep(0.05)


def search(index: Path) -> str:
    done = subprocess.run([sys.executable, "-c", SEARCH, str(index)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_kill_9_mid_reindex_leaves_the_old_generation_serving(tmp_path: Path,
                                                              config: Path) -> None:
    reindex(Settings.load(config, env={}), encoder=FakeEncoder())
    before = search(tmp_path / "idx")
    write_cases(tmp_path / "cases.jsonl", 6, changed=(3,))

    marker = tmp_path / "embedding"
    process = start_reindex(config, marker, slow=60)
    wait_for(marker, process)
    # Searches in other processes keep succeeding while the reindex runs...
    assert search(tmp_path / "idx") == before
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    # ...and after it died mid-way: the last good generation still answers.
    assert search(tmp_path / "idx") == before

    marker.unlink()
    done = start_reindex(config, marker, slow=0)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert json.loads(out)["updated"] == 1
    assert search(tmp_path / "idx") != before  # a new generation serves now
    assert not list((tmp_path / "idx").glob(".tmp-*"))


def test_a_second_process_is_refused_while_one_runs(tmp_path: Path, config: Path) -> None:
    marker = tmp_path / "embedding"
    first = start_reindex(config, marker, slow=60)
    try:
        wait_for(marker, first)
        second = start_reindex(config, tmp_path / "unused", slow=0)
        _, err = second.communicate(timeout=60)
        assert second.returncode == EXIT_LOCKED and "is writing this index" in err
    finally:
        first.kill()
        first.wait(timeout=10)
