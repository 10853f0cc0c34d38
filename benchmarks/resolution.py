"""Which threads are cases, and which message is the fix: old rule vs new, on hand labels.

    python benchmarks/resolution.py [--data ../shared/data] [--write] [--show-misses]

Reads the hand-labelled threads in benchmarks/labels/resolution.jsonl (format in
benchmarks/labels/README.md), rebuilds each thread from the real data (the OLake Slack export
through casematch's own reader; DISCO conversations through `disco_threads` below), and runs
the pre-change rule (benchmarks/resolution_baseline.py) and today's `resolve_thread` on it.

Reported per source and overall:
  case precision  = labelled cases among the threads the rule calls cases
  case recall     = threads the rule calls cases among the labelled cases
  fix accuracy    = among threads that are both labelled and predicted cases, the share whose
                    chosen messages are non-empty and ALL in the labelled fix set (chosen ⊆ fix)
  fix overlap     = same denominator, at least one chosen message is in the labelled fix set
  shown right     = labelled cases that are predicted cases with a fix-accurate choice, over
                    all labelled cases (what a user sees end to end)
`--write` puts the table into the "## Which message is the fix (issue 14)" section of
benchmarks/RESULTS.md. Skips (exit 0, with a message) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from resolution_baseline import old_resolve  # noqa: E402

from casematch.cases import Message  # noqa: E402
from casematch.resolution import resolve_thread  # noqa: E402
from casematch.text import slack_to_text  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
LABELS = ROOT / "benchmarks" / "labels" / "resolution.jsonl"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Which message is the fix (issue 14)"
COMMAND = "python benchmarks/resolution.py --write"
OLAKE = Path("slack-export") / "olake"
DISCO = Path("swarms") / "disco"
IRC = Path("irc") / "ubuntu-dev"
LEGACY = Path("slack-export") / "legacy-2016" / "extracted"


# ---- real threads -------------------------------------------------------------------------


@dataclass(frozen=True)
class Thread:
    id: str
    source: str
    messages: tuple[Message, ...]
    channel: str = ""


def slack_export_threads(path: Path, source: str) -> dict[str, Thread]:
    """Every thread with replies in a Slack export, as casematch's reader gathers it.

    Built from the reader's own pieces rather than `read_source`, because the reader now
    passes over threads it judges not to be cases, and those are exactly the threads whose
    labels the case-precision figure needs.
    """
    from casematch.sources import ReadReport
    from casematch.sources.slack_export import _collect, _Export, _load_workspace
    from casematch.sources.slack_threads import to_message, ts_key

    threads: dict[str, Thread] = {}
    export = _Export(path)
    try:
        report = ReadReport()
        workspace = _load_workspace(export, report)
        for channel_id, channel_name, _ in workspace.listing:
            folder = channel_name if export.day_files(channel_name) else channel_id
            for thread_ts, raw in _collect(export, folder, report).items():
                if raw.root is None or not raw.replies:
                    continue
                messages = (to_message(raw.root, workspace),
                            *(to_message(raw.replies[ts], workspace)
                              for ts in sorted(raw.replies, key=ts_key)))
                key = f"slack:{channel_id}:{thread_ts}"
                threads[key] = Thread(key, source, messages, channel_name)
    finally:
        export.close()
    return threads


def olake_threads(data: Path) -> dict[str, Thread]:
    """Every OLake thread with replies."""
    return slack_export_threads(data / OLAKE, "olake")


_MENTION = re.compile(r"<@([^>|]+)(?:\|[^>]*)?>")


def disco_threads(data: Path) -> dict[str, Thread]:
    """DISCO conversations as threads: the first message is the root, the rest replies.

    Ids are `disco:<community>-<year>:<conversation_id>`; a message's ts is its ISO time
    from the XML. DISCO carries no reactions, bots or user ids: the pseudonym is the author.
    """
    threads: dict[str, Thread] = {}
    for path in sorted((data / DISCO).rglob("*.xml")):
        stem = f"{path.parent.parent.name}-{path.parent.name}"
        grouped: dict[str, list[Message]] = {}
        for node in ET.parse(path).getroot().iter("message"):
            ts = (node.findtext("ts") or "").strip()
            user = (node.findtext("user") or "").strip()
            text = slack_to_text((node.findtext("text") or "").strip())
            created = datetime.fromisoformat(ts).replace(tzinfo=UTC) if ts else None
            grouped.setdefault(node.get("conversation_id", ""), []).append(
                Message(text=text, author=user, author_id=user, created_at=created, ts=ts))
        for conversation, messages in grouped.items():
            key = f"disco:{stem}:{conversation}"
            threads[key] = Thread(key, "disco", tuple(messages), stem)
    return threads


_IRC_LINE = re.compile(r"^\[(\d\d):(\d\d)\] <([^>]+)> (.*)$")


def irc_threads(data: Path) -> dict[str, Thread]:
    """Ubuntu IRC support conversations, as people disentangled them (gold clusters).

    Ids are `irc:<file>:<first line>`; a message's ts is `<file>:<line>` (0-based line of
    the raw log). Joins, parts and other server lines are not messages. A conversation is
    taken as it was annotated, so the threads are real ones, not a splitter's guess.
    """
    folder = data / IRC
    threads: dict[str, Thread] = {}
    lines: dict[str, list[str]] = {}
    for row in (folder / "gold.dev.clusters.txt").read_text(encoding="utf-8").splitlines():
        stem, _, numbers = row.partition(":")
        if stem not in lines:
            lines[stem] = (folder / f"{stem}.raw.txt").read_text(
                encoding="utf-8", errors="replace").splitlines()
        day = datetime.strptime(stem.split("_")[0], "%Y-%m-%d").replace(tzinfo=UTC)
        messages = []
        for number in sorted(int(n) for n in numbers.split()):
            match = _IRC_LINE.match(lines[stem][number])
            if match is None:
                continue
            hour, minute, nick, text = match.groups()
            created = day.replace(hour=int(hour), minute=int(minute))
            messages.append(Message(text=text, author=nick, author_id=nick, created_at=created,
                                    ts=f"{stem}:{number}"))
        if messages:
            key = f"irc:{stem}:{messages[0].ts.split(':')[1]}"
            threads[key] = Thread(key, "irc", tuple(messages), "ubuntu")
    return threads


def legacy_threads(data: Path) -> dict[str, Thread]:
    """The conversations the Slack reader recovers from the unthreaded 2016 export."""
    from casematch.sources import ReadOptions, ReadReport
    from casematch.sources.slack_export import _collect, _conversations, _Export, _load_workspace
    from casematch.sources.slack_threads import to_message, ts_key

    threads: dict[str, Thread] = {}
    export = _Export(data / LEGACY)
    try:
        report = ReadReport()
        workspace = _load_workspace(export, report)
        for channel_id, channel_name, _ in workspace.listing:
            folder = channel_name if export.day_files(channel_name) else channel_id
            raw = _collect(export, folder, report)
            standalone = [ts for ts, t in raw.items() if not t.replies and t.root is not None]
            for thread_ts, thread in _conversations(standalone, raw, workspace, ReadOptions(),
                                                    report, "unthreaded message"):
                if thread.root is None:
                    continue
                messages = (to_message(thread.root, workspace),
                            *(to_message(thread.replies[ts], workspace)
                              for ts in sorted(thread.replies, key=ts_key)))
                key = f"slack:{channel_id}:{thread_ts}"
                threads[key] = Thread(key, "legacy", messages, channel_name)
    finally:
        export.close()
    return threads


# ---- labels and scoring -------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    id: str
    source: str
    case: bool
    fix: frozenset[str]
    note: str = ""


def read_labels(path: Path = LABELS) -> list[Label]:
    labels = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["case"] and not row["fix"]:
            raise SystemExit(f"{path}:{number}: {row['id']} is a case without a fix")
        labels.append(Label(row["id"], row["source"], bool(row["case"]),
                            frozenset(row["fix"]), row.get("note", "")))
    return labels


Rule = Callable[[Thread], tuple[bool, tuple[int, ...]]]


def new_rule(thread: Thread) -> tuple[bool, tuple[int, ...]]:
    verdict = resolve_thread(thread.messages, channel=thread.channel)
    return verdict.resolved, verdict.fix


def old_rule(thread: Thread) -> tuple[bool, tuple[int, ...]]:
    return old_resolve(thread.messages)


@dataclass
class Score:
    labelled: int = 0
    gold: int = 0
    predicted: int = 0
    true_cases: int = 0
    exact: int = 0
    overlap: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, label: Label, thread: Thread, predicted: bool, chosen: Sequence[int]) -> None:
        self.labelled += 1
        self.gold += label.case
        self.predicted += predicted
        ts = {thread.messages[i].ts for i in chosen}
        if predicted and label.case:
            self.true_cases += 1
            self.exact += bool(ts) and ts <= label.fix
            self.overlap += bool(ts & label.fix)
            if not (ts and ts <= label.fix):
                self.misses.append(f"{label.id}: wrong fix {sorted(chosen)}")
        elif predicted:
            self.misses.append(f"{label.id}: not a case, called one")
        elif label.case:
            self.misses.append(f"{label.id}: a case, missed")

    def row(self, name: str) -> str:
        def ratio(a: int, b: int) -> str:
            return f"{a / b:.2f} ({a}/{b})" if b else "n/a"

        return (f"| {name} | {self.labelled} | {self.gold} | "
                f"{ratio(self.true_cases, self.predicted)} | {ratio(self.true_cases, self.gold)} | "
                f"{ratio(self.exact, self.true_cases)} | {ratio(self.overlap, self.true_cases)} | "
                f"{ratio(self.exact, self.gold)} |")


def evaluate(labels: list[Label], threads: dict[str, Thread], rule: Rule) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for label in labels:
        thread = threads.get(label.id)
        if thread is None:
            raise SystemExit(f"{LABELS}: {label.id} is not in the data; relabel or fix the id")
        unknown = label.fix - {m.ts for m in thread.messages}
        if unknown:
            raise SystemExit(f"{LABELS}: {label.id}: fix {sorted(unknown)} is no message "
                             "of the thread; fix the label")
        predicted, chosen = rule(thread)
        for key in (label.source, "overall"):
            scores.setdefault(key, Score()).add(label, thread, predicted, chosen)
    return scores


HEADER = ("| rule · source | threads | labelled cases | case precision | case recall | "
          "fix accuracy (⊆) | fix overlap | shown right |\n|---|---|---|---|---|---|---|---|")


def table(results: dict[str, dict[str, Score]]) -> str:
    lines = [HEADER]
    for rule_name, scores in results.items():
        for source in ("olake", "disco", "disco-heldout", "heldout-2", "heldout-3", "overall"):
            if source in scores:
                lines.append(scores[source].row(f"{rule_name} · {source}"))
    return "\n".join(lines)


def write_section(body: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + ("\n" + text[end:] if end != -1 else "\n")
    RESULTS.write_text(text, encoding="utf-8")


def eligible(thread: Thread) -> bool:
    people = {m.author_id or m.author for m in thread.messages}
    return 3 <= len(thread.messages) <= 12 and len(people) >= 2


def draw_heldout_2(data: Path, labelled: set[str]) -> list[Thread]:
    """The second held-out set: drawn from sources and conversations not labelled before.

    4 DISCO conversations per file (seed "issue14-heldout-2:<community>-<year>"), 10 Ubuntu
    IRC conversations (seed "issue14-heldout-2:irc"), both over eligible ids in sorted order
    not already labelled, and every conversation the reader recovers from legacy-2016.
    """
    # No IRC conversation was labelled when this set was drawn: the draw reads every one,
    # so that it stays the same now that some are.
    drawn = _draw(data, labelled, "issue14-heldout-2", 4, 10, irc_labelled=set())
    return drawn + sorted(legacy_threads(data).values(), key=lambda t: t.id)


def draw_heldout_3(data: Path, labelled: set[str]) -> list[Thread]:
    """The third held-out set, drawn once every earlier set had been looked at.

    6 DISCO conversations per file (seed "issue14-heldout-3:<community>-<year>") and 15
    Ubuntu IRC conversations (seed "issue14-heldout-3:irc"), eligible as before and not
    labelled before, over ids in the same sorted order as `draw_heldout_2`.
    """
    return _draw(data, labelled, "issue14-heldout-3", 6, 15, irc_labelled=labelled)


def _draw(data: Path, labelled: set[str], seed: str, per_file: int, irc_count: int, *,
          irc_labelled: set[str]) -> list[Thread]:
    import random

    drawn: list[Thread] = []
    by_file: dict[str, list[Thread]] = {}
    for thread in disco_threads(data).values():
        if thread.id not in labelled and eligible(thread):
            by_file.setdefault(thread.channel, []).append(thread)
    for stem in sorted(by_file):
        pool = sorted(by_file[stem], key=lambda t: int(t.id.rsplit(":", 1)[1]))
        drawn += random.Random(f"{seed}:{stem}").sample(pool, per_file)
    irc = sorted((t for t in irc_threads(data).values()
                  if t.id not in irc_labelled and eligible(t)), key=lambda t: t.id)
    drawn += random.Random(f"{seed}:irc").sample(irc, irc_count)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--draw-heldout-2", action="store_true",
                        help="print the second held-out set for labelling (no verdicts)")
    parser.add_argument("--draw-heldout-3", action="store_true",
                        help="print the third held-out set for labelling (no verdicts)")
    args = parser.parse_args(argv)
    if not (args.data / OLAKE).is_dir() or not (args.data / DISCO).is_dir():
        print(f"skipped: {args.data / OLAKE} or {args.data / DISCO} is absent; "
              "see ../shared/data/README.md", file=sys.stderr)
        return 0
    labels = read_labels()
    if args.draw_heldout_2 or args.draw_heldout_3:
        draw = draw_heldout_2 if args.draw_heldout_2 else draw_heldout_3
        for thread in draw(args.data, {label.id for label in labels}):
            print(f"=== {thread.id}")
            for message in thread.messages:
                print(f"  [{message.ts}] {message.author}: {message.text}")
        return 0
    threads = {**olake_threads(args.data), **disco_threads(args.data),
               **irc_threads(args.data), **legacy_threads(args.data)}
    results = {"old": evaluate(labels, threads, old_rule),
               "new": evaluate(labels, threads, new_rule)}
    print(table(results))
    if args.show_misses:
        for rule_name, scores in results.items():
            print(f"\n{rule_name} rule misses:")
            for miss in scores["overall"].misses:
                print("  " + miss)
    if args.write:
        write_section(results_section(results))
    return 0


NOTES = """\
Hand labels (benchmarks/labels/README.md has the definition): every OLake thread with
replies (37; `help` is the support channel), 70 DISCO conversations drawn at random, 25 more
DISCO conversations held out (`disco-heldout`), a second held-out set (`heldout-2`, 36
threads: 20 DISCO conversations, 10 Ubuntu IRC support conversations as people disentangled
them, and the 6 conversations the reader recovers from the unthreaded legacy-2016 export)
and a third (`heldout-3`, 45 threads: 30 DISCO conversations and 15 Ubuntu IRC
conversations, 22 of them cases). "old" is the pre-change rule
(benchmarks/resolution_baseline.py), "new" is `casematch.resolution.resolve_thread`.

- case precision: labelled cases among the threads the rule calls resolved cases;
  case recall: the reverse.
- fix accuracy (⊆): among threads that are both labelled and predicted cases, the share
  whose chosen fix messages are non-empty and all in the labelled fix set; fix overlap: at
  least one chosen message is in it. shown right: labelled cases shown as cases with a
  fix-accurate choice, over all labelled cases (what a user sees end to end).

**Every row above is tuned on.** The rule was changed after reading the misses of `olake`,
`disco`, `disco-heldout`, `heldout-2` and, last, `heldout-3`. The honest out-of-sample
figures are the first looks, each taken once, with the labels committed before the rule was
run on the set. `heldout-2` was run with the rule as it stood after the `disco-heldout`
changes, `heldout-3` with the rule of main a0e8e29 (its labels are commit f6c5a9d):

| first look | threads | cases | case precision | case recall | fix accuracy | shown right |
|---|---|---|---|---|---|---|
| `heldout-2` | 36 | 7 | **0.50 (3/6)** | 0.43 (3/7) | 1.00 (3/3) | 0.43 (3/7) |
| `heldout-3` | 45 | 22 | **0.89 (16/18)** | 0.73 (16/22) | 0.94 (15/16) | 0.68 (15/22) |

Pooled, the two first looks give case precision 0.79 (19/24) and recall 0.66 (19/29) on 81
threads the rule had not seen; `heldout-3` is the larger and the later (its rule had already
been changed for `heldout-2`), so it is the better estimate of how the rule does on threads
it has not seen; with 18 predicted cases it is still rough (one false case moves precision
by 0.05), and the changes made since have no out-of-sample figure of their own yet.

`heldout-2`'s first look (overall then: precision 0.90 (46/51), fix accuracy 0.98 (45/46))
had three false cases: an IRC asker's "woo fluxbox is working perfect" after other people's
side chat, an IRC asker who got it working after being told to check the logs (never says
how), and a spam report to admins (labelled not a case; borderline). The rule was then
changed for the first two (a leading "name:" addresses a person, a reply in a side exchange
is not an answer, "check the logs"/"pastebin" asks for information, a suggestion the asker
says they had already tried is not the fix) and for two missed cases ("found a solution"
followed by the code; a maintainer's "I've pushed a repair"), each with a test thread.

**Targets (case precision >= 0.95, fix accuracy >= 0.9).** On the labelled set as tuned:
precision 0.97 (67/69), recall 0.85 (67/79), fix accuracy 1.00 (67/67): met. Out of sample
(first look at `heldout-3`): fix accuracy 0.94 met, precision 0.89 **not** met.

What the `heldout-3` misses showed, and what changed (each with a test thread of its own in
tests/test_resolution_heldout.py; after the changes `heldout-3` reads 1.00 (20/20)
precision and 0.91 (20/22) recall, tuned on, no other row lost a case):

- false cases: an IRC asker's "thanks for your help, but I still can't find it" ("still
  can't/doesn't/won't <work, find, get...>" is a failure; "still haven't touched it" is
  not), and an asker who thanked a bot's factoid, then posted the whole question again and
  "anyone?" (a repost of the problem or a bare "anyone?" takes the thanks back);
- a wrong fix: the asker's "I see" to a "don't know much more" reply decided over their
  later "yeah, looks like VPN is an option to go": a short yes followed by what the asker
  will do ("ok straight away", "ok i'll try", "yeah, ... the option to go") now accepts the
  answer before it, and an "ok" steps over a helper's "cheers" to another helper;
- missed cases: "gotcha" is a confirmation; "I've discovered that the trick is ..." is the
  asker's own fix.

Two of these first took chat for cases when run over all 6,269 threads of ../shared/data
(every DISCO conversation, every annotated IRC conversation, OLake, legacy-2016): a bare
yes followed by anything ("yeah. I'm using the osx client", "Right, if you wrote the loop by
hand...") accepted an answer, and "I just discovered there's a game jam" counted as solving
it; both were narrowed before they were committed. Net over those 6,269 threads against
main: 1,267 -> 1,276 threads called cases; 5 lost (3 labelled non-cases, and, read by hand,
a chat and a root that is itself someone's answer) and 14 gained (4 labelled cases; of the
10 unlabelled, read by hand, about half are cases and half chat acknowledged with "gotcha"
or "cool, I'll ...").

The false cases left and what was tried:

- `disco:elmlang-2019:1202` is fixed: a person whose first message in a thread opens with a
  bare "Thanks." is thanking for help of their own (DISCO's machine disentanglement merged two
  conversations), so none of their replies answers the asker. Over all 6,269 threads this
  removed 3 cases, all chat or non-cases; "Thanks for the report!" from a helper is not
  caught.
- `disco:racket-2017:400` (a chatty root; the asker's later "You're totally right!
  Thanks." follows their own remark about another topic) is left. Two rules were tried and
  rejected on the whole data: "a long opening post with no question and no problem words is
  chat" removed 28 cases, about a third of them real questions phrased without a question
  mark ("is there a way to...", "I need a way to..."); "an unaddressed thanks right after the
  asker's own remark acknowledges nothing" removed 66 (5% of all cases), mostly real ones
  ("Oh yeah, I remember we talked about that" / "Thanks").
- `disco:racket-2017:10` (a spam report to the admins, labelled not a case, borderline) is
  left: its thanks follows a helpful reply; no rule here tells a moderation exchange from a
  support question.
- A similarity check between problem and answer was tried earlier and rejected (11 true
  cases share no content word with their fix); recall misses left are mostly IRC and DISCO
  askers whose acceptance is implicit.
- Pure text rules, no model: the whole run takes a few seconds (2-core shared EPYC with
  AVX512-BF16).
- DISCO text now goes through `slack_to_text` as the Slack readers' text does (quotes arrive
  as ">", emoji codes dropped); no figure changed.
"""


def results_section(results: dict[str, dict[str, Score]]) -> str:
    return "\n".join([
        SECTION, "",
        f"Command: `{COMMAND}` (reads ../shared/data; labels in benchmarks/labels/).", "",
        table(results), "", NOTES,
    ])


if __name__ == "__main__":
    raise SystemExit(main())
