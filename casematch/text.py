"""Pure text cleanup: Slack mrkdwn, Block Kit, attachments and HTML to plain text.

Everything here is a pure function of its arguments (no I/O), so sources can call it freely
and tests can pin each rule with a one-line example.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

# ---- HTML (helpdesk comments) ------------------------------------------------------------

# Paragraph-like blocks get a blank line around them; line-like ones a single break.
_PARAGRAPH_TAGS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "pre", "hr",
    "dl", "section", "article", "header", "footer",
})
_LINE_TAGS = frozenset({"div", "li", "tr", "dt", "dd"})
_DROP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})
_VERBATIM_TAGS = frozenset({"pre", "code"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        # Verbatim (<pre>/<code>) runs are parked here and restored after the whitespace
        # squeeze, so code keeps its indentation.
        self.verbatim: list[str] = []
        self._drop = 0
        self._code_depth = 0
        self._code: list[str] = []
        self._links: list[tuple[str, int]] = []  # (href, index in parts where label starts)

    def _breaks(self, count: int) -> None:
        # Ensure at least `count` newlines end the output, without stacking nested blocks.
        tail = "".join(self.parts[-3:])
        have = len(tail) - len(tail.rstrip("\n"))
        if self.parts and have < count:
            self.parts.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_TAGS:
            self._drop += 1
            return
        if self._code_depth:
            if tag in _VERBATIM_TAGS:
                self._code_depth += 1
            elif tag == "br":
                self._code.append("\n")
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag in _PARAGRAPH_TAGS:
            self._breaks(2)
        elif tag in _LINE_TAGS:
            self._breaks(1)
        if tag == "li":
            self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))
        if tag in _VERBATIM_TAGS:
            self._code_depth = 1
            self._code = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            (self._code if self._code_depth else self.parts).append("\n")
        elif tag == "hr" and not self._code_depth:
            self._breaks(2)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_TAGS:
            self._drop = max(0, self._drop - 1)
            return
        if self._code_depth:
            if tag in _VERBATIM_TAGS:
                self._code_depth -= 1
                if not self._code_depth:
                    self.verbatim.append("".join(self._code))
                    self.parts.append(f"\x00{len(self.verbatim) - 1}\x00")
                    if tag == "pre":
                        self._breaks(2)
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:]).strip()
            if href.startswith("mailto:"):
                href = href[len("mailto:"):]
            if href and not href.startswith(("#", "javascript:")):
                if not label or label == href:
                    del self.parts[start:]
                    self.parts.append(href)
                else:
                    self.parts.append(f" ({href})")
        if tag in _PARAGRAPH_TAGS:
            self._breaks(2)
        elif tag in _LINE_TAGS:
            self._breaks(1)

    def handle_data(self, data: str) -> None:
        if self._drop:
            return
        if self._code_depth:
            self._code.append(data)
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html_text: str) -> str:
    """Helpdesk comment HTML -> plain text with line breaks where the blocks were."""
    if "<" not in html_text:
        return _squeeze(html.unescape(html_text))
    parser = _TextExtractor()
    parser.feed(html_text)
    parser.close()
    text = _squeeze("".join(parser.parts))
    return re.sub(r"\x00(\d+)\x00", lambda m: parser.verbatim[int(m.group(1))], text)


def _squeeze(text: str) -> str:
    """Trim each line, collapse runs of spaces and of blank lines."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n")]
    out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


# ---- e-mail noise (quoted replies, signatures) --------------------------------------------

_QUOTE_HEADERS = [
    # "On Tue, Mar 5, 2024 at 10:00 AM Jane <j@x.com> wrote:" (may wrap onto two lines)
    re.compile(r"^\s*On\b.{0,200}?\bwrote:\s*$", re.IGNORECASE | re.MULTILINE | re.DOTALL),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"^\s*-{2,}\s*Forwarded message\s*-{2,}\s*$", re.IGNORECASE | re.MULTILINE),
    # Outlook: "From: X" followed within a few lines by "Sent: ..." (or "Date:")
    re.compile(r"^\s*\**From:\**\s.*\n(?:.*\n){0,3}?\s*\**(?:Sent|Date):\**\s",
               re.IGNORECASE | re.MULTILINE),
    re.compile(r"^\s*_{10,}\s*$", re.MULTILINE),  # Outlook's underscore rule
]
_SIG_DELIMITER = re.compile(r"^--\s?$", re.MULTILINE)
_MOBILE_SIG = re.compile(
    r"^\s*(Sent from my \w+.*|Sent from (Mail|Outlook|Yahoo Mail).*|Get Outlook for \w+.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_SIGN_OFFS = re.compile(
    r"^\s*(thanks|thank you|thanks again|many thanks|thx|cheers|best|best regards|regards|"
    r"kind regards|warm regards|sincerely|br|all the best)\s*[,.!]?\s*$",
    re.IGNORECASE,
)


def strip_email_noise(text: str) -> str:
    """Drop quoted earlier messages and signatures from an e-mail-ish comment."""
    cut = len(text)
    for pattern in [*_QUOTE_HEADERS, _SIG_DELIMITER, _MOBILE_SIG]:
        match = pattern.search(text)
        if match and match.start() < cut:
            cut = match.start()
    lines = [line for line in text[:cut].split("\n") if not line.lstrip().startswith(">")]
    lines = _drop_sign_off(lines)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _drop_sign_off(lines: list[str]) -> list[str]:
    # Conservative: a sign-off line only counts when at most 3 short lines (name, title,
    # company) follow it, and there is real content before it.
    while lines and not lines[-1].strip():
        lines.pop()
    for back in range(1, min(5, len(lines)) + 1):
        index = len(lines) - back
        if _SIGN_OFFS.match(lines[index]):
            tail = [line for line in lines[index + 1:] if line.strip()]
            if all(len(line.strip()) <= 40 for line in tail) and any(
                line.strip() for line in lines[:index]
            ):
                return lines[:index]
            break
    return lines


# ---- Slack mrkdwn -------------------------------------------------------------------------

_NO_NAMES: dict[str, str] = {}
# Code first: nothing inside ``` ``` or ` ` is rewritten.
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_TOKEN = re.compile(r"<([^<>\n]+)>")
# An emoji code, possibly chained (":+1::skin-tone-2:"), also glued to a word
# ("Released:rotating_light:"). A name needs a letter (or is +1/-1) so "10:30:00" stays;
# the look-ahead keeps "a:b:c" and the look-behind "std::vector::".
_EMOJI = re.compile(
    r"(?<![:/])(?::(?:[a-z0-9_+'\-]*[a-z][a-z0-9_+'\-]*|[+-]1):)+(?!\w)", re.IGNORECASE
)
_BROADCASTS = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def _unescape_slack(text: str) -> str:
    # Slack escapes exactly these three; html.unescape would also eat "&copy" and friends.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _token(inner: str, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    label = _unescape_slack(label)
    if target.startswith("@"):
        name = label or users.get(target[1:]) or target[1:]
        return "@" + name.lstrip("@")
    if target.startswith("#"):
        name = label or channels.get(target[1:]) or target[1:]
        return "#" + name.lstrip("#")
    if target.startswith("!"):
        command = target[1:]
        if command in _BROADCASTS:
            return _BROADCASTS[command]
        if command.startswith("subteam^"):
            return "@" + (label or command.split("^", 1)[1]).lstrip("@")
        # <!date^...|fallback> and anything newer: the fallback label is the readable part.
        return label or "@" + command.split("^", 1)[0]
    url = _unescape_slack(target)
    if url.startswith("mailto:"):
        address = url[len("mailto:"):]
        return address if not label or label == address else f"{label} ({address})"
    bare = url.split("://", 1)[-1]
    # Slack shows long links shortened ("github.com/org/repo/rel…"): the url says it all.
    if not label or label in (url, bare) or (label.endswith("…") and bare.startswith(label[:-1])):
        return url
    return f"{label} ({url})"


def _clean_prose(text: str, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    out: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        out.append(_unescape_slack(_EMOJI.sub("", text[last:match.start()])))
        out.append(_token(match.group(1), users, channels))
        last = match.end()
    out.append(_unescape_slack(_EMOJI.sub("", text[last:])))
    prose = re.sub(r"[ \t\u00a0]+", " ", "".join(out))
    return re.sub(r" ?\n ?", "\n", prose)


def slack_to_text(
    text: str,
    users: Mapping[str, str] = _NO_NAMES,
    channels: Mapping[str, str] = _NO_NAMES,
) -> str:
    """Slack mrkdwn -> plain text: names for mentions, readable links, no emoji codes.

    Code spans and blocks are kept as typed; only Slack's own &amp;/&lt;/&gt; escaping is
    undone inside them, since that is what the author actually wrote.
    """
    parts: list[str] = []
    last = 0
    for match in _CODE.finditer(text):
        parts.append(_clean_prose(text[last:match.start()], users, channels))
        parts.append(_unescape_slack(match.group(0)))
        last = match.end()
    parts.append(_clean_prose(text[last:], users, channels))
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


# ---- Block Kit and attachments --------------------------------------------------------------


def _escape_slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text_object(obj: Any) -> str:
    """A Block Kit text object as mrkdwn (plain_text is escaped so it round-trips)."""
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text") or "")
    return text if obj.get("type") == "mrkdwn" else _escape_slack(text)


def _rich_element(element: Mapping[str, Any]) -> str:
    kind = element.get("type")
    if kind == "text":
        text = _escape_slack(str(element.get("text", "")))
        if (element.get("style") or {}).get("code") and text.strip():
            return f"`{text}`"
        return text
    if kind == "link":
        url = str(element.get("url", ""))
        label = element.get("text")
        return f"<{url}|{_escape_slack(label)}>" if label else f"<{url}>"
    if kind == "user":
        return f"<@{element.get('user_id', '')}>"
    if kind == "channel":
        return f"<#{element.get('channel_id', '')}>"
    if kind == "usergroup":
        return f"<!subteam^{element.get('usergroup_id', '')}>"
    if kind == "broadcast":
        return f"<!{element.get('range', 'here')}>"
    if kind == "date":
        return _escape_slack(str(element.get("fallback", "")))
    # emoji (dropped like their :codes:), and element types newer than this code
    return ""


def _rich_section(section: Mapping[str, Any]) -> str:
    return "".join(_rich_element(e) for e in section.get("elements") or () if isinstance(e, dict))


def _rich_text(block: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for part in block.get("elements") or ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "rich_text_section":
            lines.append(_rich_section(part))
        elif kind == "rich_text_preformatted":
            lines.append("```" + _rich_section(part).replace("`", "") + "```")
        elif kind == "rich_text_quote":
            lines.append("\n".join("> " + line for line in _rich_section(part).split("\n")))
        elif kind == "rich_text_list":
            indent = "  " * int(part.get("indent") or 0)
            ordered = part.get("style") == "ordered"
            items = [e for e in part.get("elements") or () if isinstance(e, dict)]
            lines.append("\n".join(
                f"{indent}{f'{n}.' if ordered else '-'} {_rich_section(item)}"
                for n, item in enumerate(items, 1)
            ))
    return "\n".join(line.rstrip("\n") for line in lines)


def blocks_to_text(blocks: list[Any]) -> str:
    """Block Kit blocks -> Slack mrkdwn, ready for `slack_to_text`."""
    out: list[str] = []
    for block in blocks or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "rich_text":
            out.append(_rich_text(block))
        elif kind in ("section", "header"):
            out.append(_text_object(block.get("text")))
            out.extend(_text_object(f) for f in block.get("fields") or ())
        elif kind == "context":
            texts = [_text_object(e) for e in block.get("elements") or ()]
            out.append(" ".join(t for t in texts if t))
        elif kind == "markdown":
            out.append(str(block.get("text") or ""))
    return "\n".join(part for part in out if part.strip())


def attachments_to_text(attachments: list[Any]) -> str:
    """Legacy attachments (bots, Workflow Builder, unfurls) -> Slack mrkdwn."""
    out: list[str] = []
    for attachment in attachments or ():
        if not isinstance(attachment, dict):
            continue
        parts = [str(attachment.get(key) or "") for key in ("pretext", "title", "text")]
        for item in attachment.get("fields") or ():
            if isinstance(item, dict) and (item.get("title") or item.get("value")):
                title, value = str(item.get("title") or ""), str(item.get("value") or "")
                parts.append(f"{title}: {value}" if title and value else title or value)
        if not any(p.strip() for p in parts) and attachment.get("blocks"):
            parts.append(blocks_to_text(attachment["blocks"]))
        if not any(p.strip() for p in parts):
            parts.append(str(attachment.get("fallback") or ""))
        out.append("\n".join(p for p in parts if p.strip()))
    return "\n\n".join(part for part in out if part)
