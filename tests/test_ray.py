"""Embedding on Ray (local mode): the same vectors and index as in-process, retries, increments.

Skipped where ray is not installed (`pip install "casematch[ray]"`). One local Ray with two
CPUs serves the whole module; each `encode()` starts a pool of two actors that each load the
real model, which is most of this file's run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from casematch.config import Settings
from casematch.index import CaseIndex
from casematch.storage.generations import Generation
from tests.conftest import make_case

ray = pytest.importorskip(
    "ray", reason="ray is not installed: pip install \"casematch[ray]\" to run the Ray tests")

from casematch.encoders.ray import RayEncoder, model_files, unpack_model  # noqa: E402

TOPICS = [
    ("VPN drops every few minutes on the office wifi", "Update the VPN client to 5.2"),
    ("Printer on floor 3 shows paper jam but there is no paper stuck", "Reset the fuser"),
    ("Cannot log in to the billing portal after the password reset", "Clear the SSO cookie"),
    ("Kubernetes pod stuck in CrashLoopBackOff after deploy", "Raise the memory limit"),
    ("Outlook keeps asking for credentials on macOS", "Remove the keychain entry"),
    ("Disk full on the build agent, builds fail with ENOSPC", "Prune docker images"),
    ("Slack notifications delayed by an hour on Android", "Disable battery optimisation"),
    ("Database migration times out on the orders table", "Run it in batches of 10k rows"),
]


def corpus(changed: frozenset[int] = frozenset()) -> list[Any]:
    cases = []
    for number in range(40):
        problem, fix = TOPICS[number % len(TOPICS)]
        text = f"{problem} (ticket {number}, team {number % 5})"
        if number in changed:
            text += " and it happens again after the weekly restart"
        cases.append(make_case(f"c{number}", text, fix))
    # Long enough to be chunked into several windows: chunk ids must line up too.
    cases.append(make_case("long", " ".join(f"step {i} of the runbook failed" for i in range(300)),
                           "Follow the new runbook"))
    return cases


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def built(local_ray: None, real_encoder: Any,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, RayEncoder]:
    root = tmp_path_factory.mktemp("ray-index")
    local_index, _ = CaseIndex.build(corpus(), root / "local", encoder=real_encoder)
    local_index.close()
    # Shipping the model through the object store, as for a cluster without the package.
    encoder = RayEncoder(real_encoder, None, batch_size=16, ship_model=True)
    ray_index, result = CaseIndex.build(corpus(), root / "ray", encoder=encoder)
    ray_index.close()
    assert result.embedded == encoder.sent > len(corpus())  # the long case is several chunks
    return root / "local", root / "ray", encoder


def _contents(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    generation = Generation.open(root)
    try:
        ids = generation.chunks.ids
        return ids, generation.chunks.cases, generation.vectors.reconstruct_batch(ids)
    finally:
        generation.close()


@pytest.mark.model
def test_ray_builds_the_same_index_as_local_embedding(built: tuple[Path, Path, RayEncoder],
                                                      real_encoder: Any) -> None:
    local_root, ray_root, _ = built
    local_ids, local_cases, local_vectors = _contents(local_root)
    ray_ids, ray_cases, ray_vectors = _contents(ray_root)
    assert np.array_equal(local_ids, ray_ids) and np.array_equal(local_cases, ray_cases)
    cosines = (local_vectors * ray_vectors).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines.min()
    local_index = CaseIndex.open(local_root, encoder=real_encoder)
    ray_index = CaseIndex.open(ray_root, encoder=real_encoder)
    try:
        for query in ("vpn keeps disconnecting", "pod crash loop", "runbook step failed"):
            assert ([m.case.id for m in local_index.search(query, k=5)]
                    == [m.case.id for m in ray_index.search(query, k=5)])
    finally:
        local_index.close()
        ray_index.close()


@pytest.mark.model
def test_an_incremental_update_sends_only_changed_texts(
        built: tuple[Path, Path, RayEncoder], real_encoder: Any, tmp_path: Path) -> None:
    import shutil

    _, ray_root, _ = built
    root = tmp_path / "copy"
    shutil.copytree(ray_root, root)
    encoder = RayEncoder(real_encoder, None, batch_size=16)
    cases = corpus(changed=frozenset({3, 17}))
    cases.append(make_case("new", "Badge reader at the back door rejects every card", "Reboot"))
    index, result = CaseIndex.build(cases, root, encoder=encoder)
    index.close()
    assert (result.added, result.updated) == (1, 2)
    assert encoder.sent == result.embedded == 3
    _, _, vectors = _contents(root)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


@pytest.mark.model
def test_a_worker_killed_mid_run_is_restarted_and_its_batch_retried(
        local_ray: None, real_encoder: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crash-once"
    marker.touch()
    texts = [case.search_text() for case in corpus()][:48]
    encoder = RayEncoder(real_encoder, None, batch_size=8, crash_marker=str(marker))
    vectors = encoder.encode(texts)
    assert not marker.exists()  # a worker did exit on it
    cosines = (vectors * real_encoder.encode(texts)).sum(axis=1)
    assert cosines.min() >= 0.9999


def test_shipped_model_files_unpack_to_the_same_folder(tmp_path: Path) -> None:
    source = tmp_path / "model"
    (source / "1_Pooling").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "1_Pooling" / "config.json").write_text('{"pooling": "mean"}')
    files = model_files(source)
    assert set(files) == {"config.json", "1_Pooling/config.json"}
    first = unpack_model(files, tmp_path)
    assert (first / "1_Pooling" / "config.json").read_text() == '{"pooling": "mean"}'
    assert unpack_model(files, tmp_path) == first  # reused, not unpacked again
    files["config.json"] = b'{"changed": 1}'
    assert unpack_model(files, tmp_path) != first


def test_a_model_that_is_not_a_local_folder_cannot_be_shipped() -> None:
    from casematch.errors import ConfigError

    class HubModel:  # the local side of a model known only by its hub name
        name = "acme/support-minilm"
        dimension = 384
        runtime = "fp32"
        batch_size = 16

    encoder = RayEncoder(HubModel(), "ray://head:10001")  # type: ignore[arg-type]
    assert encoder.ship_model  # joining a cluster ships by default
    with pytest.raises(ConfigError, match=r"acme/support-minilm.*not a local folder"):
        encoder.encode(["vpn drops"])


def test_ray_address_reaches_the_settings_from_cli_and_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.sync.build as build
    from casematch.cli import cli
    from casematch.sync.embedding import ray_encoder

    seen: list[Settings] = []

    def fake_build(sources: Any, settings: Settings, **kwargs: Any) -> Any:
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr(build, "build_index", fake_build)
    CliRunner().invoke(cli, ["index", str(tmp_path), "--ray", "auto"])
    assert seen and seen[0].ray_address == "auto"
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\nray_address = "ray://head:10001"\n')
    assert Settings.load(config).ray_address == "ray://head:10001"
    assert ray_encoder(Settings()) is None  # no address: embedding stays in this process


def test_a_model_tuned_into_the_index_goes_to_ray_from_its_own_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.sync.reindex as reindex_module
    from casematch.index import IndexModel
    from casematch.sources import SourceConfig
    from casematch.tune import _on_ray
    from tests.conftest import FakeEncoder

    # A model folder inside the index, as `casematch tune` leaves it.
    root = tmp_path / "idx"
    built, _ = CaseIndex.build([make_case("1", "printer jam", "fuser")], root,
                               encoder=FakeEncoder())
    built.close()
    (root / "models" / "tuned-x").mkdir(parents=True)
    (root / "models" / "tuned-x" / "config.json").write_text("{}")
    tuned = IndexModel("models/tuned-x", FakeEncoder())
    encoder = _on_ray(tuned, root, "models/tuned-x", "ray://head:10001")
    assert isinstance(encoder, RayEncoder)
    assert encoder.model_path == str(root / "models" / "tuned-x")
    assert encoder.name == "models/tuned-x"  # what the manifest keeps recording
    assert _on_ray(tuned, root, "models/tuned-x", None) is tuned  # no address: local

    # reindex wraps the index's own (tuned) model the same way.
    class Stop(Exception):
        pass

    seen: list[Any] = []

    def writer(root: Path, encoder: Any, **kwargs: Any) -> Any:
        seen.append(encoder)
        raise Stop

    monkeypatch.setattr(reindex_module, "_index_encoder", lambda root, settings: tuned)
    monkeypatch.setattr(reindex_module, "IndexWriter", writer)
    with pytest.raises(Stop):
        reindex_module.reindex(Settings(index_path=root, ray_address="auto",
                                        sources=(SourceConfig(type="jsonl", path="x"),)))
    [wrapped] = seen
    assert isinstance(wrapped, RayEncoder)
    assert wrapped.model_path == str(root / "models" / "tuned-x")
