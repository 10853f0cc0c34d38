"""The `casematch` command: each command parses its options, calls the library, renders.

Library errors (`CasematchError`) become one line on stderr and exit code 1 here, at the edge.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from casematch import render
from casematch.cases import Filters, clean_text, parse_datetime
from casematch.config import Settings
from casematch.errors import CasematchError
from casematch.index import CaseIndex, serve_queries_on_one_thread
from casematch.search import MODES, SearchOptions
from casematch.sources import FORMATS
from casematch.version import __version__

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Library errors become one clear line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CasematchError as exc:
            raise click.ClickException(str(exc)) from exc


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    return Settings.load(ctx.obj.get("config") if ctx.obj else None, **overrides)


def index_option(func: F) -> F:
    return click.option(
        "--index", "index_path", type=click.Path(path_type=Path),
        help="Index directory. Default: $CASEMATCH_INDEX, then ./casematch-index.",
    )(func)


def ray_option(func: F) -> F:
    return click.option(
        "--ray", "ray_address", metavar="ADDRESS",
        help="Embed on a Ray cluster: its address, 'auto' for the one this host is in, "
             "'local' for a Ray started here (pip install \"casematch[ray]\").")(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def _remember_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    # Stored where `_settings` looks, so a command's own --config wins over the group's
    # (`casematch --config a.toml query --config b.toml` reads b.toml).
    if value is not None:
        ctx.ensure_object(dict)["config"] = value


def config_option(func: F) -> F:
    """`--config` after the command name too, as cron lines and docs tend to write it."""
    return click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), expose_value=False,
        callback=_remember_config,
        help="casematch.toml to read (default: $CASEMATCH_CONFIG, then ./casematch.toml).",
    )(func)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="casematch")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="casematch.toml to read (default: $CASEMATCH_CONFIG, then ./casematch.toml).")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Find the past resolved support cases most like a new one.

    Build an index from Slack exports, Zendesk exports or JSONL cases with
    `casematch index`, then ask it with `casematch query`.
    """
    ctx.obj = {"config": config}


@cli.command("index")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_option
@config_option
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Source format; detected from each source when not given.")
@click.option("--include-unresolved", is_flag=True,
              help="Also index unresolved cases (searches still suggest resolved ones only).")
@click.option("--model", help="sentence-transformers model name or local folder.")
@click.option("--slack-domain",
              help="Workspace domain for permalinks, e.g. acme or acme.slack.com.")
@click.option("--full", is_flag=True, help="Re-embed everything instead of reusing vectors.")
@ray_option
@click.option("--prune", is_flag=True,
              help="Make the index exactly SOURCES: remove cases of sources not given.")
@click.option("--max-delete-ratio", type=click.FloatRange(0, 1), default=0.2,
              show_default=True,
              help="Refuse to delete more than this share of one source's cases (1: no limit).")
@click.option("--explain-skipped", is_flag=True,
              help="List the threads that were read but not taken as cases, and why.")
@json_option
@click.pass_context
def index_cmd(ctx: click.Context, sources: tuple[Path, ...], index_path: Path | None,
              fmt: str | None, include_unresolved: bool, model: str | None,
              slack_domain: str | None, full: bool, prune: bool, max_delete_ratio: float,
              ray_address: str | None, explain_skipped: bool, as_json: bool) -> None:
    """Add SOURCES to an index: export folders, .zip, .json, .ndjson, .jsonl.

    Each source's cases are tracked: a source that lost cases since the last run loses
    them in the index too (only when it was read completely), and cases of sources not
    given stay unless --prune. The new index replaces the old one atomically; unchanged
    cases are not re-embedded. Exit codes: 0 indexed, 1 failed, 3 partial (a source was
    not read completely; nothing of it was deleted), 75 locked.
    """
    from casematch.errors import IndexLockedError
    from casematch.sync.build import build_index
    from casematch.sync.reindex import EXIT_LOCKED, EXIT_PARTIAL

    settings = _settings(ctx, index_path=index_path, model=model, slack_domain=slack_domain,
                         ray_address=ray_address)
    try:
        built = build_index(sources, settings, format=fmt,
                            include_unresolved=include_unresolved, full=full, prune=prune,
                            max_delete_ratio=max_delete_ratio,
                            progress=sys.stderr.isatty() and not as_json)
    except IndexLockedError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_LOCKED)
    code = EXIT_PARTIAL if built.status == "partial" else 0
    if as_json:
        click.echo(json.dumps(built.to_dict(), indent=2))
        ctx.exit(code)
    click.echo("\n".join(render.read_summary(built.read)))
    if explain_skipped:
        click.echo("\n".join(render.passed_over(built.read.passed_over)))
    for line in render.problems(built.read.problems):
        click.echo(line, err=True)
    if built.read.cleaned:
        click.echo(f"Cleaned {built.read.cleaned} invalid characters (lone surrogates, "
                   "control characters) from the text.", err=True)
    click.echo(render.update_summary(built.update, built.path))
    if prune:
        click.echo(f"Pruned {built.pruned} cases of sources not given.")
    for source in built.partial_sources:
        click.echo(f"Partial: {source} was not read completely; none of its cases was "
                   "deleted.", err=True)
    ctx.exit(code)


def _stdin_text() -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    return bytes(buffer.read()).decode("utf-8", "surrogateescape")


def _read_query(text: str) -> str:
    # Undecodable bytes (from argv or stdin) arrive as lone surrogates: drop them.
    query = clean_text(_stdin_text() if text == "-" else text)[0]
    if not query.strip():
        raise click.UsageError("the case text is empty")
    return query


def _date(value: str | None) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from exc


def search_options(func: F) -> F:
    """Ranking options shared by `query` and `eval` (so baselines run the same code)."""
    func = click.option("--no-collapse", is_flag=True,
                        help="List recurring near-identical cases separately.")(func)
    func = click.option("--half-life", type=click.FloatRange(min=0, min_open=True),
                        help="Favour recent cases: a case this many days old counts half.")(func)
    return click.option("--mode", type=click.Choice(MODES), default="hybrid",
                        show_default=True,
                        help="Ranking: dense + lexical fused, or one retriever alone.")(func)


def _search_options(mode: str, half_life: float | None, no_collapse: bool) -> SearchOptions:
    options = SearchOptions(mode=mode, half_life_days=half_life)
    return replace(options, collapse_above=None) if no_collapse else options


@cli.command("query")
@click.argument("text")
@index_option
@config_option
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100),
              help="How many cases to return.")
@click.option("--source", "sources", multiple=True, help="Only this source (slack, zendesk, ...).")
@click.option("--channel", "channels", multiple=True, help="Only this channel or group.")
@click.option("--tag", "tags", multiple=True, help="Only cases with this tag.")
@click.option("--since", help="Only cases created on or after this date (YYYY-MM-DD).")
@click.option("--until", help="Only cases created on or before this date.")
@click.option("--model", help="Model to query with (must be the one the index was built with).")
@search_options
@json_option
@click.pass_context
def query_cmd(ctx: click.Context, text: str, index_path: Path | None, k: int,
              sources: tuple[str, ...], channels: tuple[str, ...], tags: tuple[str, ...],
              since: str | None, until: str | None, model: str | None, mode: str,
              half_life: float | None, no_collapse: bool, as_json: bool) -> None:
    """Print the past resolved cases closest to TEXT (`-` reads the case from stdin)."""
    settings = _settings(ctx, index_path=index_path, model=model)
    query = _read_query(text)
    filters = Filters(sources=sources, channels=channels, tags=tags,
                      since=_date(since), until=_date(until))
    with CaseIndex.open(settings.index_path, model=settings.model,
                        device=settings.device, runtime=settings.runtime) as index:
        serve_queries_on_one_thread()
        matches = index.search(query, k=k, filters=filters,
                               options=_search_options(mode, half_life, no_collapse))
    click.echo(render.to_json(matches, query=query) if as_json
               else render.to_text(matches, query=" ".join(query.split())), nl=not as_json)
    if as_json:
        click.echo()


@cli.command("eval")
@click.argument("queries", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@config_option
@click.option("--from-feedback", is_flag=True,
              help="Use the Slack responder's Helpful / Not relevant votes as QUERIES.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(10, 1000),
              help="How many cases to retrieve per query (metrics use the top 10).")
@click.option("--target-precision", default=0.8, show_default=True,
              type=click.FloatRange(0, 1), help="Precision@1 the reported threshold reaches.")
@search_options
@json_option
@click.pass_context
def eval_cmd(ctx: click.Context, queries: Path | None, index_path: Path | None,
             from_feedback: bool, k: int, target_precision: float, mode: str,
             half_life: float | None, no_collapse: bool, as_json: bool) -> None:
    """Score the index on labelled QUERIES (JSONL: {"query": ..., "relevant": [ids]}).

    With --from-feedback the queries are the cases agents voted on in Slack instead: a
    suggestion voted Helpful (by more people than voted Not relevant) is a relevant case.
    They are read from `[slack] state_url` when set, else from the index's slack.sqlite.
    """
    from casematch.evaluate import evaluate, load_queries
    from casematch.tune import describe_model

    if queries is None and not from_feedback:
        raise click.UsageError("give a QUERIES file, or --from-feedback to use Slack votes",
                               ctx=ctx)
    if queries is not None and from_feedback:
        raise click.UsageError("give a QUERIES file or --from-feedback, not both", ctx=ctx)
    settings = _settings(ctx, index_path=index_path)
    labelled = _votes(settings, required=True) if queries is None else load_queries(queries)
    with CaseIndex.open(settings.index_path, device=settings.device,
                        runtime=settings.runtime) as index:
        serve_queries_on_one_thread()
        report = evaluate(index, labelled, k, target_precision=target_precision,
                          options=_search_options(mode, half_life, no_collapse))
        model = describe_model(index)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "model": model}, indent=2))
    else:
        click.echo(render.model_line(model))
        click.echo(render.eval_text(report))


@cli.command("explain")
@click.argument("case_id")
@index_option
@config_option
@json_option
@click.pass_context
def explain_cmd(ctx: click.Context, case_id: str, index_path: Path | None, as_json: bool) -> None:
    """Show why CASE_ID is a case and which message was chosen as its fix.

    Each reply is listed with the evidence for it (a check mark, the asker's thanks right
    after it, code, a version, a link) or the reason it was passed over (thanks, a
    question, a meeting link). Rules come from [resolution] in casematch.toml.
    """
    from casematch.explain import explain

    settings = _settings(ctx, index_path=index_path)
    with CaseIndex.open(settings.index_path) as index:
        result = explain(index, case_id, settings.resolution_rules)
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if as_json
               else render.explanation_text(result))


@cli.command("stats")
@index_option
@config_option
@json_option
@click.pass_context
def stats_cmd(ctx: click.Context, index_path: Path | None, as_json: bool) -> None:
    """Describe an index: model, counts by source and channel, build time."""
    from casematch.encoders.trial import runtime_summary

    settings = _settings(ctx, index_path=index_path)
    with CaseIndex.open(settings.index_path) as index:
        stats = index.stats()
    stats["runtimes"] = runtime_summary(stats["model"], settings.runtime, settings.device)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    click.echo(render.stats_text(stats))
    runtimes = stats["runtimes"]
    speeds = runtimes.get("measurements") or {}
    shown = ", ".join(
        f"{job} {name}" + (f" ({speeds[name]['batch_texts_per_s']:.0f} texts/s)" if job == "batch"
                           and name in speeds else f" ({speeds[name]['query_ms']:.1f} ms)"
                           if name in speeds else "")
        for job, name in runtimes["choice"].items())
    click.echo(f"Runtimes: {shown}; {runtimes['source']}")


@cli.command("doctor")
@index_option
@config_option
@click.option("--measure", is_flag=True,
              help="Time the encoder runtimes again now (seconds) and record the choice.")
@json_option
@click.pass_context
def doctor_cmd(ctx: click.Context, index_path: Path | None, measure: bool,
               as_json: bool) -> None:
    """Check the installation, model, runtimes, index and Slack settings; name each fix.

    Exits 1 when something is broken (each problem is printed with its fix).
    """
    import os

    from casematch.doctor import diagnose, to_text

    report = diagnose(_settings(ctx, index_path=index_path), os.environ, measure=measure)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else to_text(report))
    ctx.exit(0 if report.ok else 1)


@cli.command("tune")
@index_option
@config_option
@click.option("--labels", "label_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Eval query JSONL to learn from too (repeatable); the run says it used labels.")
@click.option("--dry-run", is_flag=True,
              help="Train and compare base and tuned models on held-out pairs; switch nothing.")
@click.option("--revert", is_flag=True, help="Return to the base model (re-embeds everything).")
@click.option("--epochs", callback=lambda _ctx, _param, value: _epochs_option(value),
              metavar="N|auto",
              help="Passes over the pairs: a number (1-20), or auto (the default): as many "
                   "as keep the training within 4,000 pairs, 1 to 4.")
@click.option("--max-steps", type=click.IntRange(1), help="Stop training after this many steps.")
@click.option("--max-tokens", type=click.IntRange(16),
              help="Cut each training text to this many tokens (default 128; training only: "
                   "the index still embeds at the model's own length).")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True),
              help="Stop training after this many minutes; the model so far is still compared "
                   "with the base and used only if it wins.")
@ray_option
@json_option
@click.pass_context
def tune_cmd(ctx: click.Context, index_path: Path | None, label_files: tuple[Path, ...],
             dry_run: bool, revert: bool, epochs: int | str | None, max_steps: int | None,
             max_tokens: int | None, max_minutes: float | None,
             ray_address: str | None, as_json: bool) -> None:
    """Fine-tune the index's model on its own resolved cases; use it only if it wins.

    Pairs come from every case: (title, rest of the problem) and (problem, resolution).
    A tenth of the cases is held out; base and tuned models are compared on it and the
    tuned one is used only when its held-out MRR is higher. Slack votes stored with the
    index and --labels files are learnt from as well (and a tenth of them held out); with
    labels, the tuned model must lose on neither held-out figure and win on one.
    """
    from casematch.tune import revert_model, tune

    settings = _settings(ctx, index_path=index_path, ray_address=ray_address)
    if revert and (dry_run or label_files):
        raise click.UsageError("--revert takes no --dry-run or --labels", ctx=ctx)
    tty = sys.stderr.isatty() and not as_json
    device = None if settings.device == "cpu" else settings.device
    if revert:
        report = revert_model(settings.index_path, device=device, runtime=settings.runtime,
                              progress=tty, ray_address=settings.ray_address)
    else:
        labels = _tune_labels(settings, label_files)
        options = _tune_options(settings, epochs=epochs, max_steps=max_steps,
                                max_tokens=max_tokens, max_minutes=max_minutes)
        try:
            report = tune(settings.index_path, labels=labels, options=options, dry_run=dry_run,
                          device=device, runtime=settings.runtime, progress=tty,
                          say=lambda line: click.echo(line, err=True) if tty else None,
                          ray_address=settings.ray_address)
        except KeyboardInterrupt:
            click.echo("Interrupted: the index is unchanged.", err=True)
            ctx.exit(130)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render.tune_text(report.to_dict()))


def _votes(settings: Settings, *, required: bool = False) -> list[Any]:
    """The Slack responder's Helpful votes as labelled queries, from `[slack] state_url`
    when the responder's state is shared, else from the index's slack.sqlite."""
    import os

    from casematch.evaluate import labelled_query
    from casematch.slack.feedback import feedback_queries
    from casematch.slack.settings import SlackSettings

    state_url = SlackSettings.from_settings(settings, os.environ).state_url
    return [labelled_query(q) for q in feedback_queries(state_url or settings.index_path,
                                                         required=required)]


def _tune_labels(settings: Settings, files: tuple[Path, ...]) -> list[Any]:
    from casematch.evaluate import load_queries

    # Votes agents gave in Slack are this index's own labels: always learnt from.
    return [q for path in files for q in load_queries(path)] + _votes(settings)


def _epochs_option(value: str | None) -> int | str | None:
    # "auto" must reach TuneOptions as None, yet an absent option must not override
    # `[tune] epochs`: the string "auto" stands for it until _tune_options.
    if value is None or value == "auto":
        return value
    try:
        epochs = int(value)
    except ValueError:
        epochs = 0
    if not 1 <= epochs <= 20:
        raise click.BadParameter(f"{value!r} is not a whole number from 1 to 20, or auto")
    return epochs


def _tune_options(settings: Settings, **overrides: Any) -> Any:
    from casematch.tune import TuneOptions

    values = {**settings.tune, **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("epochs") == "auto":
        values["epochs"] = None
    values.pop("every_days", None)  # the schedule, not a training setting
    return TuneOptions(**values)


def _scheduled_tune(settings: Settings, tty: bool) -> dict[str, Any] | None:
    """After a reindex: re-tune when `[tune] every_days` says it is due. A failed tune is
    reported and leaves the index as the reindex left it; it never fails the reindex."""
    every = settings.tune.get("every_days")
    if not every:
        return None
    from casematch.tune import tune, tune_due

    if not tune_due(settings.index_path, float(every)):
        return None
    try:
        report = tune(settings.index_path, labels=_votes(settings),
                      options=_tune_options(settings), runtime=settings.runtime,
                      progress=tty)
    except CasematchError as exc:
        click.echo(f"Scheduled tune failed: {exc}", err=True)
        return {"decision": "failed", "error": str(exc)}
    click.echo(f"Scheduled tune: {report.decision} (model {report.model})", err=True)
    return report.to_dict()


@cli.command("reindex", epilog="""\b
Exit codes:
  0   indexed: a new generation is serving
  1   failed: nothing was written (bad config, every source failed,
      or a --full run where a source failed)
  2   usage error
  3   partial: a source failed (see its error) or was not read
      completely; the others were indexed, none of its cases was deleted,
      and a failed one is retried from its old cursor next time
  4   nothing to do (only with --detailed-exitcode; else 0): every
      source was read and nothing changed
  75  locked: another reindex is writing this index; try again later""")
@config_option
@click.option("--full", is_flag=True,
              help="Ignore cursors, read every source whole and re-embed everything.")
@click.option("--dry-run", is_flag=True, help="Read the sources and report; write nothing.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 4 instead of 0 when nothing changed.")
@click.option("--max-delete-ratio", type=click.FloatRange(0, 1), default=0.2,
              show_default=True,
              help="Keep a source's cases when it would lose more than this share (1: no limit).")
@ray_option
@json_option
@click.pass_context
def reindex_cmd(ctx: click.Context, full: bool, dry_run: bool, detailed_exitcode: bool,
                max_delete_ratio: float, ray_address: str | None, as_json: bool) -> None:
    """Pull what changed from the [[sources]] of the config and swap in a new index.

    Meant for cron: only changed cases are embedded, the switch is atomic, a crash leaves
    the previous index serving, and a second concurrent run exits at once (code 75).
    """
    from casematch.errors import IndexLockedError
    from casematch.sync.reindex import EXIT_FAILED, EXIT_LOCKED, failure_dict, reindex

    tty = sys.stderr.isatty() and not as_json

    def progress(label: str, count: int | None) -> None:
        if tty:
            line = f"{label}: {count} cases" if count is not None else f"{label}: done"
            click.echo(f"\r\033[K{line}", err=True, nl=count is None)

    try:
        settings = _settings(ctx, ray_address=ray_address)
        result = reindex(settings, full=full, dry_run=dry_run, progress=progress,
                         embed_progress=tty, max_delete_ratio=max_delete_ratio)
    except CasematchError as exc:
        locked = isinstance(exc, IndexLockedError)
        code = EXIT_LOCKED if locked else EXIT_FAILED
        if as_json:
            # Cron wrappers that parse --json get one object on every exit, not only on success.
            click.echo(json.dumps(failure_dict(exc)))
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(code)
    for source in result.sources:
        if source.error:
            click.echo(f"Source {source.name} failed: {source.error}", err=True)
        for problem in source.problems[:5]:
            click.echo(f"Problem: {problem}", err=True)
    update = result.update
    tuned = None
    if not dry_run and result.status in ("indexed", "nothing-to-do"):
        tuned = _scheduled_tune(settings, tty)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "path": str(settings.index_path),
                               **({"tune": tuned} if tuned is not None else {})}))
    else:
        verb = "Dry run, would change" if dry_run else f"Reindexed ({result.status})"
        click.echo(f"{verb} {settings.index_path} {update.generation}: added {update.added}, "
                   f"updated {update.updated}, deleted {update.deleted}, unchanged "
                   f"{update.unchanged}; embedded {update.embedded} in {result.seconds:.1f} s")
    ctx.exit(result.detailed_exit_code if detailed_exitcode else result.exit_code)


@cli.group("slack")
def slack_group() -> None:
    """The Slack responder: answers new cases in swarm channels."""


@slack_group.command("serve", epilog="""\b
Tokens come from the environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (HTTP mode),
SLACK_APP_TOKEN (Socket Mode). Swarm channels and the threshold come from [slack].""")
@config_option
@click.option("--socket-mode", "mode", flag_value="socket", default=True,
              help="Connect out to Slack over a WebSocket (default; no public URL needed).")
@click.option("--http", "mode", flag_value="http",
              help="Serve the Events API at POST /slack/events instead.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address for --http to listen on (0.0.0.0: every interface).")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535),
              help="Port for --http.")
@click.option("--log-json", is_flag=True, help="Log one JSON object a line (for collectors).")
@click.pass_context
def slack_serve_cmd(ctx: click.Context, mode: str, host: str, port: int,
                    log_json: bool) -> None:
    """Answer new cases in the configured swarm channels with similar resolved cases."""
    import logging
    import os

    from casematch.slack.settings import SlackSettings

    slack = SlackSettings.from_settings(_settings(ctx), os.environ)
    slack.require(socket_mode=mode == "socket")
    from casematch.slack import app, logs

    logs.setup(json_lines=log_json)
    built = app.build_app(slack)
    if mode == "socket":
        app.serve_socket_mode(built.app, slack.app_token)
    else:
        built.serve_http(host, port)
        # Drained: exit now. Interpreter teardown with the encoder's native thread pools
        # still alive can abort ("terminate called ...") and turn a clean stop into a crash.
        logging.shutdown()
        os._exit(0)


def main() -> None:
    cli(prog_name="casematch")
