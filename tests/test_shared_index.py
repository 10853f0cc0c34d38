"""One index folder on shared storage: reader processes serve it while one writer updates it.

The readers are separate processes (as replicas on other hosts would be) that follow new
generations through `LiveIndex`. Each generation the writer publishes is self-consistent
(version r holds 30 + r cases, all saying "version r"), so a reader that ever saw a
half-written or mixed generation would notice. As root the readers run as `nobody`, so
they cannot write to the folder at all: they really serve it read-only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casematch.index import CaseIndex
from tests.conftest import FakeEncoder, make_case

REPO = Path(__file__).resolve().parents[1]
BASE = 30
ROUNDS = 8

READER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from casematch.slack.suggest import LiveIndex
    from tests.conftest import FakeEncoder

    root, ready, stop, out = (Path(a) for a in sys.argv[1:5])
    live = LiveIndex(root, encoder=FakeEncoder())

    def check(index):
        version = int(index.get("c0").problem.rsplit(" ", 1)[1])
        problems = []
        if len(index) != BASE + version:
            problems.append(f"{index.generation}: {len(index)} cases for version {version}")
        if index.get(f"c{BASE + version - 1}") is None or index.get(f"c{BASE + version}"):
            problems.append(f"{index.generation}: store and manifest disagree")
        for match in index.search("printer jam on floor", k=10):
            if not match.case.problem.endswith(f" {version}"):
                problems.append(f"{index.generation}: mixed versions ({match.case.problem})")
        return version, problems

    seen, problems, searches = [], [], 0
    ready.touch()
    while True:
        stopping = stop.exists()
        version, found = check(live.refresh())
        searches += 1
        problems += found
        if not seen or seen[-1] != version:
            seen.append(version)
        if stopping:
            break
    out.write_text(json.dumps({"seen": seen, "problems": problems, "searches": searches}))
""").replace("BASE", str(BASE))


def cases(version: int) -> list:  # type: ignore[type-arg]
    return [make_case(f"c{n}", f"printer jam on floor {n % 4} version {version}", "reset it")
            for n in range(BASE + version)]


@pytest.fixture
def shared_root() -> Iterator[Path]:
    # Not under pytest's tmp folder: that one is private to this user, and the readers run
    # as another user when we are root.
    base = Path(tempfile.mkdtemp(prefix="casematch-shared-"))
    base.chmod(0o755)
    yield base / "index"
    shutil.rmtree(base, ignore_errors=True)


def _become_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


def _reader_user(env: dict[str, str]) -> dict[str, object]:
    """Run readers as `nobody` where we are root and `nobody` can run this Python."""
    if os.geteuid() != 0:
        return {}
    try:
        probe = subprocess.run([sys.executable, "-c", "import casematch.slack.suggest"],
                               env=env, capture_output=True, preexec_fn=_become_nobody,
                               timeout=120)
    except OSError:  # the interpreter itself is private to root (e.g. under /root)
        return {}
    return {"preexec_fn": _become_nobody} if probe.returncode == 0 else {}


def test_readers_follow_new_generations_of_a_shared_folder_read_only(
        shared_root: Path) -> None:
    encoder = FakeEncoder()
    index, _ = CaseIndex.build(cases(0), shared_root, encoder=encoder)
    index.close()
    control = Path(tempfile.mkdtemp(prefix="casematch-readers-"))
    control.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    as_user = _reader_user(env)
    outs = [control / f"reader-{n}.json" for n in range(2)]
    stop = control / "stop"
    readers = [subprocess.Popen(
        [sys.executable, "-c", READER, str(shared_root), str(out.with_suffix(".ready")),
         str(stop), str(out)], env=env, stderr=subprocess.PIPE, text=True, **as_user)
        for out in outs]
    try:
        deadline = time.monotonic() + 120
        while not all(out.with_suffix(".ready").exists() for out in outs):
            assert all(r.poll() is None for r in readers), readers[0].communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for version in range(1, ROUNDS + 1):
            index, result = CaseIndex.build(cases(version), shared_root, encoder=encoder)
            index.close()
            assert result.generation
            time.sleep(0.3)  # readers search meanwhile
        stop.touch()
        errors = [r.communicate(timeout=60)[1] for r in readers]
        assert [r.returncode for r in readers] == [0, 0], [e[-2000:] for e in errors]
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
    reports = [json.loads(out.read_text()) for out in outs]
    shutil.rmtree(control, ignore_errors=True)
    for report in reports:
        assert report["problems"] == []
        assert report["seen"] == sorted(report["seen"])  # never back to an older generation
        assert report["seen"][-1] == ROUNDS  # followed to the last one
        assert len(report["seen"]) >= 2 and report["searches"] > ROUNDS
