"""Settings, resolved once: keyword arguments > `CASEMATCH_*` variables > casematch.toml > defaults.

Library code takes a `Settings` (or plain arguments); this module is where casematch's own
settings and secrets are read from the environment (the CLI passes `os.environ` in). Two
process-wide variables are read where they take effect instead: the encoder's export cache
folder (`CASEMATCH_CACHE_DIR`, `XDG_CACHE_HOME`), and `HF_HUB_OFFLINE`, which the encoder
sets (never overrides) so that models load without the network.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from casematch.encoders import DEFAULT_BATCH_SIZE
from casematch.errors import ConfigError
from casematch.rules import DEFAULT_PHRASES, DEFAULT_REACTIONS, ResolutionRules
from casematch.sources import REQUIRED, SOURCE_TYPES, Credentials, ReadOptions, SourceConfig

DEFAULT_INDEX = "casematch-index"
CONFIG_FILE = "casematch.toml"
# Names of the variables holding secrets; a config file may rename them, never hold values.
DEFAULT_SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
DEFAULT_ZENDESK_EMAIL_ENV = "ZENDESK_EMAIL"
DEFAULT_ZENDESK_TOKEN_ENV = "ZENDESK_API_TOKEN"
# Per-source keys that a [slack] or [zendesk] table sets for every API source of its kind
# (a source's own table wins). Other keys there belong to the Slack responder.
_SHARED_SOURCE_KEYS = {
    "slack-api": ("lookback_days", "include_private", "recheck_unresolved"),
    "zendesk-api": ("start_time", "per_page"),
}
def _epochs(value: Any) -> int | None:
    """`epochs = "auto"` (None: chosen from the number of pairs) or a whole number."""
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f'[tune] epochs = {value!r}: use a whole number or "auto"')
    return value


# What a [tune] table may set, and how each is read.
TUNE_KEYS: dict[str, Callable[[Any], Any]] = {
    "epochs": _epochs, "batch_size": int, "learning_rate": float, "warmup": float,
    "max_tokens": int, "holdout": float, "seed": int, "min_gain": float,
    "loss": str, "mini_batch": int, "symmetric": bool, "precision": str,
    "checkpoint_every": int, "max_minutes": float, "label_repeats": int,
    # Not a training setting: `casematch reindex` re-tunes when the last run is this old.
    "every_days": float,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, resolved once: keyword arguments > `CASEMATCH_*` variables >
    casematch.toml > defaults. Build one with `Settings.load()`.

    Attributes:
        index_path: the index directory.
        model: embedding model name or folder (None: the index's own, or the default).
        device, batch_size, runtime: where and how the encoder runs.
        slack_domain: workspace domain for Slack permalinks.
        reactions, phrases, gratitude, bot_case_channels: the resolution rules.
        include_internal_notes, include_unresolved: what is kept from sources.
        sources: the `[[sources]]` a reindex pulls from.
        sections: other tables (`[slack]`, `[zendesk]`) for the parts that own them.
    """

    index_path: Path = Path(DEFAULT_INDEX)
    # None: the model an index was built with (queries), or the default (new builds).
    model: str | None = None
    device: str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    # Encoder runtime: "auto" (for building and for queries, each the fastest runtime that
    # passed the quality gate in a short timed trial on this machine), "fp32", "bf16", "onnx".
    runtime: str = "auto"
    # Embed on a Ray cluster instead of in this process: its address, "auto" for the cluster
    # this host belongs to, "local" for a Ray started here (`pip install "casematch[ray]"`).
    ray_address: str | None = None
    # Workspace domain for Slack permalinks ("acme" -> https://acme.slack.com/archives/...).
    slack_domain: str | None = None
    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    # Extra thanks/confirmation phrases, and channels whose bot posts are cases.
    gratitude: tuple[str, ...] = ()
    bot_case_channels: tuple[str, ...] = ()
    include_internal_notes: bool = False
    # Keep unresolved cases in the index too (reindex); searches still suggest resolved ones.
    include_unresolved: bool = False
    sources: tuple[SourceConfig, ...] = ()
    config_file: Path | None = None
    # [tune]: training settings for `casematch tune` (casematch.tune.TuneOptions fields).
    tune: Mapping[str, Any] = field(default_factory=dict)
    # Unknown tables (e.g. [slack], [zendesk]) are kept for the parts that own them.
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def resolution_rules(self) -> ResolutionRules:
        return ResolutionRules(reactions=self.reactions, phrases=self.phrases,
                               gratitude=self.gratitude,
                               bot_case_channels=self.bot_case_channels)

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
        """Resolve settings from every layer. `None` overrides are ignored.

        Args:
            config_file: casematch.toml to read; default `$CASEMATCH_CONFIG`, then
                ./casematch.toml when it exists.
            env: the environment to read (`os.environ` when None).
            **overrides: field values that win over everything else.

        Returns:
            The resolved settings, API sources with their URLs and secrets filled in.

        Raises:
            ConfigError: the file is missing or not valid TOML, a key is unknown, or a
                `[[sources]]` table is incomplete.
        """
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
        sections = settings.sections
        try:
            sources = tuple(_resolve_source(s, sections, env) for s in settings.sources)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path or 'settings'}: {exc}") from exc
        return replace(settings, index_path=Path(settings.index_path), sources=sources)


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
    for key in ("model", "device", "batch_size", "runtime", "ray_address"):
        if key in index:
            out[key] = index.pop(key)
    if "include_unresolved" in index:
        out["include_unresolved"] = bool(index.pop("include_unresolved"))
    resolution = data.pop("resolution", {})
    for key in ("reactions", "phrases", "gratitude"):
        if key in resolution:
            out[key] = tuple(str(x) for x in resolution[key])
    if "bot_case_channels" in resolution:
        out["bot_case_channels"] = tuple(str(c).lstrip("#") for c in
                                         resolution["bot_case_channels"])
    if "include_internal_notes" in resolution:
        out["include_internal_notes"] = bool(resolution["include_internal_notes"])
    tune = dict(data.pop("tune", {}))
    unknown = set(tune) - set(TUNE_KEYS)
    if unknown:
        raise ValueError(f"[tune]: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"use {', '.join(TUNE_KEYS)}")
    for key, value in tune.items():
        if TUNE_KEYS[key] is bool and not isinstance(value, bool):
            # bool("false") is True: a quoted boolean must not flip the setting silently.
            raise ValueError(f"[tune] {key} = {value!r}: use true or false (no quotes)")
    out["tune"] = {k: TUNE_KEYS[k](v) for k, v in tune.items()}
    slack = data.get("slack", {})
    if "domain" in slack:
        out["slack_domain"] = str(slack["domain"])
    sources = []
    for number, table in enumerate(data.pop("sources", []), start=1):
        table = dict(table)
        if "type" not in table:
            raise ValueError(f"[[sources]] #{number} has no 'type'")
        kind = str(table.pop("type"))
        path = str(table.pop("path", ""))
        source = SourceConfig(
            type=kind,
            path=str(base / path) if path else "",
            channels=tuple(str(c).lstrip("#") for c in table.pop("channels", ())),
            subdomain=str(table.pop("subdomain", "")),
            # The path as written, not resolved: moving the checkout keeps the cursors.
            name=str(table.pop("name", "")) or (f"{kind}:{path}" if path else ""),
            options=table,
        )
        _check_source(source, number)
        sources.append(source)
    out["sources"] = tuple(sources)
    out["sections"] = {k: v for k, v in data.items() if isinstance(v, dict)}
    return out


def _check_source(source: SourceConfig, number: int) -> None:
    where = f"[[sources]] #{number} ({source.type})"
    if source.type not in SOURCE_TYPES:
        raise ValueError(f"{where}: unknown type; use one of {', '.join(SOURCE_TYPES)}")
    field_name, meaning = REQUIRED[source.type]
    if not getattr(source, field_name):
        raise ValueError(f"{where}: needs {field_name!r}, {meaning}")


def slack_api(table: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Credentials, str]:
    """The Slack bot token and Web API base URL, for the API source and the responder alike.

    The token comes from the variable `[slack] token_env` names (SLACK_BOT_TOKEN by default);
    the URL from CASEMATCH_SLACK_API_URL, else `api_base_url`, else "" (Slack itself).
    """
    token_env = str(table.get("token_env", DEFAULT_SLACK_TOKEN_ENV))
    url = env.get("CASEMATCH_SLACK_API_URL") or str(table.get("api_base_url") or "")
    return Credentials(token=env.get(token_env, ""), token_env=token_env), url


def _resolve_source(
    source: SourceConfig, sections: Mapping[str, Mapping[str, Any]], env: Mapping[str, str]
) -> SourceConfig:
    """An API source's base URL and secrets: env > its table > [slack] or [zendesk]."""
    if source.type not in ("slack-api", "zendesk-api") or source.credentials.token:
        return source
    if source.type == "slack-api":
        table = {**sections.get("slack", {}), **source.options}
        credentials, url = slack_api(table, env)
        name = source.name or f"slack-api:{','.join(source.channels)}"
    else:
        table = {**sections.get("zendesk", {}), **source.options}
        user_env = str(table.get("email_env", DEFAULT_ZENDESK_EMAIL_ENV))
        token_env = str(table.get("token_env", DEFAULT_ZENDESK_TOKEN_ENV))
        url = (env.get("CASEMATCH_ZENDESK_API_URL") or str(table.get("api_base_url") or "")
               or f"https://{source.subdomain}.zendesk.com")
        credentials = Credentials(user=env.get(user_env, ""), token=env.get(token_env, ""),
                                  user_env=user_env, token_env=token_env)
        name = source.name or f"zendesk-api:{source.subdomain}"
    options = {k: table[k] for k in _SHARED_SOURCE_KEYS[source.type] if k in table}
    return replace(source, api_url=url, credentials=credentials, name=name,
                   options={**source.options, **options})
