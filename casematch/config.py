"""Settings, resolved once: keyword arguments > `CASEMATCH_*` variables > casematch.toml > defaults.

Library code takes a `Settings` (or plain arguments) and never reads `os.environ` itself;
this module is the one place that does.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from casematch.errors import ConfigError
from casematch.resolution import DEFAULT_PHRASES, DEFAULT_REACTIONS, ResolutionRules
from casematch.sources import ReadOptions

DEFAULT_INDEX = "casematch-index"
CONFIG_FILE = "casematch.toml"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One `[[sources]]` table: where cases come from on a reindex."""

    type: str
    path: str = ""
    channels: tuple[str, ...] = ()
    subdomain: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    index_path: Path = Path(DEFAULT_INDEX)
    # None: the model an index was built with (queries), or the default (new builds).
    model: str | None = None
    device: str = "cpu"
    batch_size: int = 32
    # Encoder runtime: "auto" (bf16 on CPUs with native bf16, else fp32), "fp32" or "bf16".
    runtime: str = "auto"
    # Workspace domain for Slack permalinks ("acme" -> https://acme.slack.com/archives/...).
    slack_domain: str | None = None
    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    include_internal_notes: bool = False
    # Keep unresolved cases in the index too (reindex); searches still suggest resolved ones.
    include_unresolved: bool = False
    sources: tuple[SourceConfig, ...] = ()
    config_file: Path | None = None
    # Unknown tables (e.g. [slack], [zendesk]) are kept for the parts that own them.
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def resolution_rules(self) -> ResolutionRules:
        return ResolutionRules(reactions=self.reactions, phrases=self.phrases)

    @property
    def read_options(self) -> ReadOptions:
        return ReadOptions(
            rules=self.resolution_rules,
            slack_domain=self.slack_domain,
            include_internal_notes=self.include_internal_notes,
        )

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Resolve settings from every layer. `None` overrides are ignored."""
        env = os.environ if env is None else env
        path = Path(config_file) if config_file else _default_config_file(env)
        values: dict[str, Any] = _read_toml(path) if path else {}
        values.update(_from_env(env))
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(config_file=path, **{k: v for k, v in values.items() if k != "config_file"})
        return replace(settings, index_path=Path(settings.index_path))


def _default_config_file(env: Mapping[str, str]) -> Path | None:
    if env.get("CASEMATCH_CONFIG"):
        return Path(env["CASEMATCH_CONFIG"])
    local = Path(CONFIG_FILE)
    return local if local.is_file() else None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("CASEMATCH_INDEX"):
        out["index_path"] = Path(env["CASEMATCH_INDEX"])
    if env.get("CASEMATCH_MODEL"):
        out["model"] = env["CASEMATCH_MODEL"]
    if env.get("CASEMATCH_DEVICE"):
        out["device"] = env["CASEMATCH_DEVICE"]
    if env.get("CASEMATCH_RUNTIME"):
        out["runtime"] = env["CASEMATCH_RUNTIME"]
    if env.get("CASEMATCH_SLACK_DOMAIN"):
        out["slack_domain"] = env["CASEMATCH_SLACK_DOMAIN"]
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return _flatten(data, path.parent)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _flatten(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    index = data.pop("index", {})
    if "path" in index:
        out["index_path"] = base / str(index.pop("path"))
    for key in ("model", "device", "batch_size", "runtime"):
        if key in index:
            out[key] = index.pop(key)
    if "include_unresolved" in index:
        out["include_unresolved"] = bool(index.pop("include_unresolved"))
    resolution = data.pop("resolution", {})
    for key in ("reactions", "phrases"):
        if key in resolution:
            out[key] = tuple(str(x) for x in resolution[key])
    if "include_internal_notes" in resolution:
        out["include_internal_notes"] = bool(resolution["include_internal_notes"])
    slack = data.get("slack", {})
    if "domain" in slack:
        out["slack_domain"] = str(slack["domain"])
    sources = []
    for number, table in enumerate(data.pop("sources", []), start=1):
        table = dict(table)
        if "type" not in table:
            raise ValueError(f"[[sources]] #{number} has no 'type'")
        path = str(table.pop("path", ""))
        sources.append(
            SourceConfig(
                type=str(table.pop("type")),
                path=str(base / path) if path else "",
                channels=tuple(str(c) for c in table.pop("channels", ())),
                subdomain=str(table.pop("subdomain", "")),
                options=table,
            )
        )
    out["sources"] = tuple(sources)
    out["sections"] = {k: v for k, v in data.items() if isinstance(v, dict)}
    return out
