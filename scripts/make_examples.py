"""Generate the sample data under examples/ (fictional companies and people).

    python scripts/make_examples.py

Writes a Slack workspace export (examples/slack-export/), a Zendesk full export
(examples/zendesk/), demo queries (examples/queries.txt) and labelled evaluation
queries (examples/queries.jsonl). Deterministic: a fixed seed, fixed timestamps,
stdlib only, no network. Running it again reproduces examples/ byte for byte.

The case content (problems, follow-ups, fixes) is written by hand below as data;
the code only assembles it into the export formats. Recurring problems appear several
times in different words (families), so similarity search has something real to find.
"""

# ruff: noqa: E501  (the hand-written case content below is easier to edit as long lines)
from __future__ import annotations

import json
import random
import re
import shutil
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples"
SEED = 20260406
START = datetime(2026, 4, 6, 8, 0, tzinfo=UTC)  # a Monday
SPAN_DAYS = 52
BUSINESS_DAYS = [START.replace(hour=0) + timedelta(days=d) for d in range(SPAN_DAYS) if (START + timedelta(days=d)).weekday() < 5]

WORKSPACE_DOMAIN = "acme-support"
TEAM_ID = "T05ACME7K2Q"
ZENDESK_SUBDOMAIN = "acme"

# --------------------------------------------------------------------------- people

# alias: (id, name, real_name, title, kind)  kind: agent | engineer | requester | bot
SLACK_USERS: dict[str, tuple[str, str, str, str, str]] = {
    "maya": ("U05A2M4YACH", "maya.chen", "Maya Chen", "Support Agent", "agent"),
    "noor": ("U05B7N00RHD", "noor.haddad", "Noor Haddad", "Support Agent (Mobile)", "agent"),
    "jonas": ("U05C9J0NASB", "jonas.berg", "Jonas Berg", "Customer Success Manager", "requester"),
    "ana": ("U05D3AN4SZA", "ana.souza", "Ana Souza", "Account Executive", "requester"),
    "raj": ("U04R4JP7TEL", "raj.patel", "Raj Patel", "Support Engineer", "engineer"),
    "tom": ("U04T0M0KAFR", "tom.okafor", "Tom Okafor", "Backend Engineer, Platform", "engineer"),
    "lena": ("U04L3NAF1SC", "lena.fischer", "Lena Fischer", "Mobile Engineer", "engineer"),
    "sam": ("U04S4MR1VRA", "sam.rivera", "Sam Rivera", "Billing Operations", "engineer"),
    "priya": ("U04P1RYANAR", "priya.nair", "Priya Nair", "Security Engineer", "engineer"),
    "kevin": ("U03K3VDOYLE", "kevin.doyle", "Kevin Doyle", "Support Agent", "deleted"),
    "casebot": ("U07CASEBOT1", "case_intake", "Case intake", "", "bot"),
    "zdbot": ("U07ZDBOT001", "zendesk", "Zendesk", "", "bot"),
}
BOT_IDS = {"casebot": "B07CASEINTK", "zdbot": "B07ZENDESK1"}
APP_IDS = {"casebot": "A07WRKFLW01", "zdbot": "A07ZENDESK1"}


def uid(alias: str) -> str:
    return SLACK_USERS[alias][0]


CHANNELS: dict[str, dict[str, Any]] = {
    "support-swarm": {
        "id": "C06QF2SUPRT",
        "private": False,
        "topic": "Swarm on Acme Cloud cases: login/SSO, API, webhooks, billing. Post the case, we reply in thread.",
        "purpose": "Tier 2 swarm for Acme Cloud (web app, API, webhooks, billing). Mark the fix with :white_check_mark:",
        "creator": "raj",
        "members": ["maya", "noor", "jonas", "ana", "raj", "tom", "sam", "priya", "casebot", "zdbot"],
    },
    "mobile-swarm": {
        "id": "C06QF7MOBIL",
        "private": False,
        "topic": "iOS & Android app: crashes, push notifications, offline sync",
        "purpose": "Swarm channel for the Acme mobile apps. Include app version, OS version and device.",
        "creator": "lena",
        "members": ["maya", "noor", "jonas", "ana", "lena", "tom", "raj", "casebot"],
    },
    "security-escalations": {
        "id": "C07H3SECESC",
        "private": True,
        "topic": "Security & privacy escalations. Need-to-know only.",
        "purpose": "Suspicious logins, leaked credentials, GDPR requests, account recovery for owners.",
        "creator": "priya",
        "members": ["priya", "maya", "noor", "jonas", "ana", "raj", "tom"],
    },
}
CHANNEL_CREATED = {"support-swarm": 1709543100, "mobile-swarm": 1709544720, "security-escalations": 1719847500}

# Zendesk people. The agents are the same people as in Slack.
ZD_AGENTS = {
    "maya": (381000001101, "Maya Chen"),
    "raj": (381000001102, "Raj Patel"),
    "tom": (381000001103, "Tom Okafor"),
    "lena": (381000001104, "Lena Fischer"),
    "sam": (381000001105, "Sam Rivera"),
    "priya": (381000001106, "Priya Nair"),
    "noor": (381000001107, "Noor Haddad"),
}
# alias: (id, name, email, title, company, organization_id)
ZD_REQUESTERS = {
    "jane": (381000002201, "Jane Doe", "jane.doe@globex.example", "Head of IT", "Globex", 360010000101),
    "marcus": (381000002202, "Marcus Webb", "m.webb@initech.example", "IT Operations Lead", "Initech", 360010000102),
    "dinesh": (381000002203, "Dinesh Kapoor", "dinesh@piedpiper.example", "Backend Developer", "Pied Piper", 360010000103),
    "hannah": (381000002204, "Hannah Lindqvist", "hannah.lindqvist@hooli.example", "Workplace Systems", "Hooli", 360010000104),
    "oliver": (381000002205, "Oliver Grant", "oliver.grant@umbrella.example", "CTO", "Umbrella Corp", 360010000105),
    "sofia": (381000002206, "Sofia Marquez", "sofia.marquez@soylent.example", "Finance Manager", "Soylent", 360010000106),
    "tobias": (381000002207, "Tobias Kühn", "t.kuehn@vandelay.example", "Accounts Payable", "Vandelay Industries", 360010000107),
    "greta": (381000002208, "Greta Vogel", "g.vogel@vandelay.example", "IT Administrator", "Vandelay Industries", 360010000107),
    "aisha": (381000002209, "Aisha Bello", "aisha.bello@massivedynamic.example", "Field Operations Manager", "Massive Dynamic", 360010000108),
    "liam": (381000002210, "Liam O'Connor", "liam.oconnor@stark.example", "Security Analyst", "Stark Industries", 360010000109),
    "chloe": (381000002211, "Chloé Martin", "chloe.martin@vehement.example", "Data Analyst", "Vehement Capital", 360010000110),
    "ravi": (381000002212, "Ravi Menon", "ravi.menon@wayne.example", "Mobile Fleet Admin", "Wayne Enterprises", 360010000111),
}
ZD_GROUPS = {"support": 360000101, "billing": 360000102, "mobile": 360000103, "security": 360000104}

# --------------------------------------------------------------------------- Slack content
#
# A thread is T(key, channel, family, resolution, *messages, req=..., bot=..., file=...).
# resolution: a reaction name put on the message(s) flagged "F" (white_check_mark,
#   heavy_check_mark, resolved), "root:<reaction>" for a reaction on the root, "close" when
#   the poster's closing words are the only signal, None when unresolved.
# A message is (alias, text) or (alias, text, flags). Flags: F fix (gets the reaction),
#   1/2/3 posted that many days after the root (and the messages after it follow),
#   E edited, B thread_broadcast, A has the thread's file attached.
# Text markup: @alias mentions, #channel-name links, [label](url), bare https:// URLs,
#   ZD#1234 ticket links, ```code```, `code`, *bold*, :emoji:. Literal &, <, > are escaped.


def T(key: str, ch: str, fam: str | None, res: str | None, *msgs: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    return {"kind": "thread", "key": key, "ch": ch, "fam": fam, "res": res, "msgs": list(msgs), **kw}


def N(kind: str, ch: str, **kw: Any) -> dict[str, Any]:
    return {"kind": kind, "ch": ch, **kw}


SS, MS, XS = "support-swarm", "mobile-swarm", "security-escalations"

SLACK_ITEMS: list[dict[str, Any]] = [
    N("joins", SS, users=["raj", "tom", "maya", "sam", "jonas", "ana", "noor", "priya"]),
    N("joins", MS, users=["lena", "noor", "maya", "tom", "jonas", "raj", "ana"]),
    N("joins", XS, users=["priya", "maya", "jonas", "ana", "noor", "raj", "tom"]),
    T("S5", SS, "sso_idp_initiated", None,
      ("kevin", "Stark Industries asks if we support IdP-initiated SSO from the OneLogin portal. When they launch Acme from the OneLogin tile they end up on our login page instead of the dashboard."),
      ("raj", "We do support IdP-initiated, but the RelayState has to be empty or a relative Acme path. Can you get a SAML trace (SAML-tracer extension) from them?"),
      ("kevin", "Asked, waiting on them.")),
    T("S1", SS, "sso_audience", "white_check_mark",
      ("maya", "Globex (Enterprise, ~800 seats) says *SSO login loops back to the sign-in page*. Users click Sign in with SSO, authenticate in Okta, and land on the Acme login screen again. No error shown. ZD#1001"),
      ("maya", "More detail: started right after their IT set up a new Okta app yesterday. HAR file shows the POST to `/saml/acs` returning a 302 straight back to `/login`. Affects every user, not just admins.", "E"),
      ("raj", "@tom can you check the SAML logs for org `globex`? Nothing obvious in the admin console."),
      ("tom", "Found it. Every assertion is rejected with `SAML_AUDIENCE_MISMATCH`:\n```saml.validate: audience mismatch org=globex\n  expected=<saml:Audience>https://cloud.acme.io/saml/metadata/globex</saml:Audience>\n  got=<saml:Audience>https://cloud.acme.io/saml/metadata/globex/</saml:Audience>```\nThe Audience URI (SP Entity ID) in their Okta app has a trailing slash. It has to match exactly what's shown in Admin > Security > SSO. They can fix it in Okta > General > SAML Settings, no need to re-download metadata.", "F"),
      ("maya", "Confirmed with Globex: they removed the trailing slash and everyone can sign in now :tada: thanks @tom")),
    T("S6", SS, "2fa_lockout", "white_check_mark",
      ("maya", "Soylent's workspace admin lost her phone and is locked out by 2FA. No backup codes. What's our process here?"),
      ("raj", "If there's another owner or admin on the account, they can go to Admin > Members > ⋯ > *Reset 2FA* for her and she re-enrolls on next login. If she's the only owner it goes to #security-escalations for identity verification.", "F"),
      ("maya", "There's a second admin, passed it on."),
      ("maya", "Worked, she's back in. Thanks!")),
    T("S10", SS, "api429", "white_check_mark",
      ("maya", "Pied Piper's nightly sync is getting HTTP 429 Too Many Requests from `/v2/records`. They say it worked fine for months. ZD#1003"),
      ("maya", "Response they get:\n```HTTP/1.1 429 Too Many Requests\nRetry-After: 7\nX-RateLimit-Limit: 100\nX-RateLimit-Remaining: 0\n\n{\"error\": \"rate_limited\", \"message\": \"Too many requests for this API key\"}```"),
      ("tom", "Limit is 100 requests per 10 seconds per API key. Their job ramped up to ~40 rps after they added more tables. Two fixes: honour `Retry-After` with exponential backoff, and use `POST /v2/records:batch` (up to 500 records per call) instead of one call per record. Docs: [Rate limits](https://docs.acme.io/api/rate-limits)", "F"),
      ("maya", "They switched to the batch endpoint, sync finished in 6 minutes with zero 429s :rocket:")),
    T("S2", SS, "sso_audience", "close",
      ("jonas", "After enabling Okta for Initech, users get bounced to the login page again instead of getting into the app. Their admin says the Okta side shows a successful sign-in. Anyone seen this?"),
      ("raj", "Usually the SP Entity ID / Audience in the IdP doesn't match ours and we silently reject the assertion. Can you get a screenshot of their Okta SAML settings?"),
      ("jonas", "Here's what they have: Single sign-on URL = `https://cloud.acme.io/saml/acs/initech`, Audience URI = `https://cloud.acme.io/saml/acs/initech` too."),
      ("raj", "There it is: they pasted the ACS URL into the Audience field. Audience URI must be `https://cloud.acme.io/saml/metadata/initech`. Logs for the org show `SAML_AUDIENCE_MISMATCH` on each attempt."),
      ("jonas", "that fixed it, thanks! Initech is in.")),
    T("S14", SS, "webhook_sig", "white_check_mark",
      ("maya", "Initech says webhook signature verification fails on *every* event: their computed HMAC never matches `X-Acme-Signature`. ZD#1004"),
      ("maya", "Their handler (Node/Express):\n```app.use(express.json());\napp.post('/acme/hook', (req, res) => {\n  const sig = crypto.createHmac('sha256', SECRET).update(JSON.stringify(req.body)).digest('hex');\n  if (sig !== req.headers['x-acme-signature']) return res.sendStatus(401);\n  res.sendStatus(200);\n});```"),
      ("tom", "They're hashing re-serialized JSON, which never matches byte for byte. The signature is HMAC-SHA256 over the *raw* request body, prefixed with the timestamp: `{X-Acme-Timestamp}.{raw_body}`. With Express use `express.raw({type: 'application/json'})` on that route and hash the Buffer. Docs: [Verifying webhooks](https://docs.acme.io/webhooks/verify)", "F"),
      ("maya", "Confirmed fixed on their side, events verify now.")),
    N("bot_add", SS, user="raj"),
    T("S18", SS, "export_timeout", "white_check_mark",
      ("maya", "CSV export of all records times out for Massive Dynamic (about 400k rows): spinner for a minute, then `Export failed: 504 Gateway Timeout`."),
      ("raj", "Synchronous exports are cut off at 60 seconds, which is roughly 100k rows. For anything larger they need the async export: Reports > Export > *Email me when it's ready*. They get a download link valid for 7 days.", "F"),
      ("maya", "Async export worked, they got a 180 MB file. Thanks!")),
    T("S3", SS, "sso_audience", "white_check_mark",
      ("ana", "Umbrella Corp is rolling out Azure AD (Entra ID) SSO and their pilot users get `SAML_AUDIENCE_MISMATCH` on the Acme error page after signing in with Microsoft. Go-live is Friday :grimacing:"),
      ("tom", "In the Entra enterprise app, *Identifier (Entity ID)* must be exactly `https://cloud.acme.io/saml/metadata/umbrella` and *Reply URL* `https://cloud.acme.io/saml/acs/umbrella`. Entra pre-fills a different identifier when you create the app from the gallery template.", "F"),
      ("ana", "Sent that over. Their admin is out today, will confirm tomorrow."),
      ("ana", "Umbrella changed the Identifier and the pilot group logs in fine now. Thanks @tom!", "1")),
    T("S7", SS, "2fa_lockout", "close",
      ("noor", "User at Hooli got a new iPhone and the authenticator app didn't transfer over. Now the 6-digit code is always wrong and he can't log in."),
      ("raj", "Classic. His org admin can reset his 2FA from Admin > Members > Reset 2FA, then he sets up the authenticator again at next login. We can't bypass it from support."),
      ("noor", "resolved, closing this")),
    T("S22", SS, "vat", "white_check_mark",
      ("ana", "Globex GmbH needs their VAT number on invoices. The April invoice has none and their finance team rejects it."),
      ("sam", "They can add the VAT ID under Settings > Billing > Tax details. Once it validates in VIES I'll reissue April with the reverse-charge note (\"VAT reverse charge, Art. 196 Directive 2006/112/EC\").", "F"),
      ("ana", "Done on their side."),
      ("sam", "Reissued invoice INV-2026-04-0183 sent to their billing contact.")),
    T("S13", SS, "api429", None,
      ("kevin", "Is the API rate limit per org or per key? Customer wants it in writing for their architecture review."),
      ("raj", "Per key I believe, but let me double-check with @tom whether an org-wide cap applies too.")),
    T("S26", SS, "card", "white_check_mark",
      ("maya", "Card declined when Soylent tries to upgrade to the Business plan. Their bank says they didn't see a blocked attempt."),
      ("sam", "In Stripe the payment intent goes `requires_action` then `authentication_failed`: the 3-D Secure challenge never completed. Usually a popup blocker or privacy extension hides the bank's challenge window. Ask them to retry in a private window, or we switch them to invoice payment.", "F"),
      ("maya", "Incognito worked, they're on Business now.")),
    T("S30", SS, "scim_e1042", "white_check_mark",
      ("maya", "Okta SCIM push fails for some users at Initech: `E1042 userName already exists`. About 15 of 300 users. ZD#1014"),
      ("tom", "E1042 means there's a deactivated Acme user with the same email/userName. SCIM won't reuse it by default. Two options: hard-delete those users in Admin > Members > Deactivated, or turn on *Match existing users by email* in Admin > Security > SCIM and re-push.", "F"),
      ("maya", "They enabled matching and re-pushed, all 15 provisioned.")),
    T("S11", SS, "api429", "close",
      ("jonas", "Customer's integration started failing with 'rate limit exceeded' errors since Monday and they swear they didn't change anything."),
      ("raj", "Looking at their keys: since Monday a second service (a new reporting worker) uses the *same* API key. Limits are per key, so both together burst past 100 req / 10 s."),
      ("jonas", "So separate keys for each service?"),
      ("raj", "Yes, give each integration its own key, and back off on 429 using the `Retry-After` header."),
      ("jonas", "that fixed it, thanks!")),
    T("S4", SS, "sso_clock", "heavy_check_mark",
      ("maya", "Vandelay Industries uses on-prem ADFS. Since this morning every SSO attempt ends back on the Acme sign-in page, a redirect loop. Nothing changed on their side, they say."),
      ("tom", "Logs show `SAML_ASSERTION_EXPIRED`: the assertion's `NotBefore` is 7 minutes in the future relative to our clock. Their ADFS server clock is off; we allow 3 minutes of skew."),
      ("maya", "They found the ADFS host lost NTP sync after a VM migration. Will have them resync."),
      ("tom", "Once `w32tm /resync` is done it works immediately, no change needed on our side.", "F"),
      ("maya", "All good now :white_check_mark:")),
    T("S15", SS, "webhook_rotation", "white_check_mark",
      ("ana", "Webhooks from Acme are rejected by Umbrella's endpoint as 'invalid signature' since they rotated the signing secret this morning. Roughly 1/3 of deliveries fail, the rest pass. ZD#1025"),
      ("tom", "One third sounds like one of several instances still has the old secret. After rotation we sign with the new secret only. Can they check each pod's env?"),
      ("ana", "They found it: 3 pods behind the LB, one wasn't redeployed and still had the old secret.", "1"),
      ("tom", "Makes sense. Redeploying that pod fixes it; they can use *Resend failed deliveries* in Settings > Webhooks to replay yesterday's events.", "F"),
      ("ana", "All replayed, thanks @tom")),
    T("S19", SS, "export_timeout", "heavy_check_mark",
      ("jonas", "Report download never finishes for Globex, the browser shows 'network error' after about a minute. They're pulling a full year of audit log data."),
      ("raj", "Exports that size are too big for the direct download. Either narrow the date range or use the async export (*Email me when it's ready*). Also EXP-2211 (wide exports timing out early) is fixed in 2026.19, going out Thursday.", "F"),
      ("jonas", "Async worked for them :+1:")),
    T("S9", SS, "2fa_policy", None,
      ("ana", "Can we disable 2FA enforcement for one user temporarily? Customer's contractor can't use an authenticator app."),
      ("tom", "Not today, enforcement is org-wide. There's FR-2231 for per-group policies &amp; SMS fallback is on the roadmap for Q3.")),
    T("S23", SS, "vat", "close",
      ("jonas", "Customer in Ireland got charged 23% VAT on the renewal even though they're a business with a valid VAT ID."),
      ("sam", "Their VAT ID failed VIES validation at renewal time (VIES was down that day), so we charged VAT. I re-validated it, issued credit note CN-2026-0412 for the VAT amount and the refund goes back to the card in 5-10 days."),
      ("jonas", "that fixed it, thanks! Customer is happy.")),
    T("S16", SS, "webhook_sig", "close",
      ("jonas", "Vehement Capital's Flask receiver computes a different sha256 than the signature header. They use `request.get_json()` and then `json.dumps` to build the string they hash."),
      ("raj", "Same thing we see a lot: hash the raw bytes. In Flask that's `request.get_data()` (before any parsing), HMAC-SHA256 with the signing secret over `timestamp + '.' + body`, then compare with `hmac.compare_digest`."),
      ("jonas", "resolved, closing this. Their endpoint accepts events now.")),
    T("S12", SS, "api429", "white_check_mark", ("casebot", ""),
      ("tom", "Standard limit is 100 req/10s per key. For a one-off migration use `POST /v2/records:batch` (500 per call, so 2M records is ~4k calls) and back off on `Retry-After`."),
      ("sam", "Globex is on Enterprise, so we can also raise the limit to 300 req/10s for 14 days. I'll file the request."),
      ("sam", "Temporary limit of 300 req/10s is active on their migration key for the next 14 days.", "2F"),
      ("maya", "Migration done, thanks all"),
      req="maya",
      bot={"style": "section", "fields": [("Customer", "Globex"), ("Product", "Acme Cloud API"), ("Priority", "Normal"),
                                          ("Problem", "Bulk import script gets throttled after about 100 calls (HTTP 429). They want a higher rate limit for a one-off migration of 2M records.")]}),
    T("S21", SS, "export_encoding", "white_check_mark",
      ("kevin", "Customer opens our CSV export in Excel and accented names are garbled (`José` shows as `JosÃ©`)."),
      ("raj", "Excel on Windows doesn't detect UTF-8 without a BOM. In the export dialog tick *Excel-compatible (UTF-8 with BOM)*, or import via Data > From Text/CSV and choose UTF-8.", "F"),
      ("kevin", "Perfect, that was it.")),
    N("tombstone", SS, user="kevin", replies=[
        ("raj", "@kevin can you repost this with the customer name? Can't tell which account it is."),
        ("kevin", "Sorry, wrong channel. Moved it to #security-escalations.")]),
    T("S17", SS, "webhook_disabled", None,
      ("maya", "Hooli's webhook endpoints show *Disabled after 50 consecutive failures* after their maintenance window. Can we re-enable all 12 of them in bulk from our side?"),
      ("raj", ":eyes: don't think there's an admin action for that. @tom?")),
    T("S31", SS, "scim_e1042", "heavy_check_mark",
      ("jonas", "Azure AD provisioning for Stark shows failures creating users in Acme."),
      ("jonas", "From their provisioning logs:\n```StatusCode: Conflict (409)\nSCIM error: {\"detail\": \"E1042: userName already exists\", \"status\": \"409\"}\nTarget: Acme Cloud  Action: Create  User: j.rhodes@stark.example```"),
      ("tom", "Same E1042 as Initech last week: those people were offboarded earlier and the deactivated accounts still exist. Enable *Match existing users by email* under Admin > Security > SCIM, then *Restart provisioning* in Entra.", "1F"),
      ("jonas", "Worked after the restart, thanks")),
    T("S24", SS, "invoice_po", None,
      ("maya", "Can we add a PO number on invoices for Initech? Procurement needs it."),
      ("sam", "Billing > Invoice settings > *PO number*, but it only applies to future invoices.")),
    T("S20", SS, "export_timeout", "close",
      ("ana", "Vehement Capital can't export their contacts to CSV, it just hangs forever. Smaller exports (one list) are fine."),
      ("ana", "They have ~250k contacts, if that matters."),
      ("tom", "It does: the direct export times out at ~100k rows. Use Reports > Export > Email me when it's ready.", "1"),
      ("ana", "that fixed it, thanks!")),
    T("S27", SS, "card", "close",
      ("noor", "Renewal payment failed with `card_declined` for Hooli. They want to avoid any service interruption."),
      ("sam", "The issuer returned `do_not_honor`, so it's the bank. There's a 14-day grace period before anything gets restricted. They can update the card in Billing > Payment method or we switch them to bank transfer."),
      ("noor", "They updated the card and the payment went through. resolved, closing this")),
    T("S32", SS, "scim_deprov", "close",
      ("kevin", "SCIM-deprovisioned users in Okta still show as active in Acme for Stark."),
      ("tom", "We never receive the `PATCH active=false`. In Okta > Acme app > Provisioning > To App, *Deactivate Users* is unchecked. Once enabled, Okta sends the deactivation on unassign."),
      ("kevin", "that fixed it, thanks")),
    T("S34", SS, "oauth_refresh", "white_check_mark",
      ("maya", "Pied Piper's integration gets `401 invalid_token` about an hour after they connect. They have to reconnect every time."),
      ("tom", "Access tokens live 1 hour. They need the `refresh_token` with `grant_type=refresh_token` at `/oauth/token`. Looks like they're not storing the refresh token at all.", "F"),
      ("maya", "They implemented refresh, fixed.")),
    N("plain", SS, user="tom", text="Heads up: release 2026.19 goes out tonight 22:00 UTC. Includes the fix for EXP-2211 (wide CSV exports timing out) &amp; a new *Resend failed deliveries* button for webhooks. Watch the [status page](https://status.acme.io) :eyes:"),
    T("S25", SS, "invoice_name", "white_check_mark",
      ("ana", "Vandelay merged with another company and needs corrected invoices for Q1 with the new legal name and address."),
      ("sam", "Update Settings > Billing > Billing profile first, then I can regenerate Q1 invoices. Regenerated invoices keep the same numbers with an 'R' suffix."),
      ("sam", "Regenerated INV-2026-01-0044R, 02-0051R and 03-0049R with the new legal entity, sent to their AP contact.", "1F"),
      ("ana", ":pray:")),
    T("S28", SS, "card", "white_check_mark",
      ("jonas", "Customer's corporate Amex keeps getting rejected at checkout ('Your card was declined') but it works everywhere else."),
      ("sam", "Amex corporate cards almost always require 3-D Secure (SafeKey). The challenge popup was blocked by their browser, so it shows as declined. Allow popups for checkout.acme.io and retry.", "F"),
      ("jonas", "Went through after they allowed popups, thanks @sam")),
    T("S29", SS, "billing_currency", None,
      ("ana", "Can a Canadian customer be billed in CAD instead of USD?"),
      ("sam", "Not currently. USD, EUR and GBP only.")),
    T("S33", SS, "scim_groups", None,
      ("ana", "Does our SCIM support Group Push, so Umbrella can map Okta groups to Acme teams?"),
      ("tom", "Group Push is in beta. Need to check whether Umbrella can join.")),
    T("S35", SS, "status", None,
      ("jonas", "[Status page](https://status.acme.io) shows degraded API performance in EU. Are customers affected? Globex is asking."),
      ("tom", "Investigating with infra, elevated p95 latency in eu-central-1. Will update the status page.")),
    T("S36", SS, "seats", "resolved",
      ("maya", "Vandelay can't invite users: 'Seat limit reached', but the billing page says 3 seats are free."),
      ("sam", "Pending invitations count toward seats. They have 5 invites pending since February. Revoke stale invites in Admin > Members > Invitations and the seats free up.", "F"),
      ("maya", "Yep, that was it.")),
    T("S37", SS, "safari", None,
      ("noor", "Dashboard charts are blank for a Hooli user on Safari 17.4, fine in Chrome."),
      ("raj", "Can't repro on 17.4 here. Can we get the browser console output?"),
      ("noor", "Asked, no answer yet.")),
    N("plain", SS, user="maya", text="thanks all for the help today! :raised_hands:"),
    T("S38", SS, "residency", "root:white_check_mark",
      ("ana", "Umbrella Corp legal asks whether their Acme Cloud data can stay in the EU (data residency). Currently on the US region."),
      ("priya", "EU region (Frankfurt, eu-central-1) is available on Enterprise. Existing workspaces can be migrated: a scheduled job with ~1h read-only window, requested via a support ticket. DPA and subprocessor list are on [trust.acme.io](https://trust.acme.io)."),
      ("ana", "Great, they'll request the migration.")),
    T("S39", SS, "sso_audience", "white_check_mark",
      ("noor", "Hooli users are redirected to the Acme login page right after Okta authentication, no error. Started after their Okta admin 'cleaned up' the app config."),
      ("raj", "Org logs show `SAML_AUDIENCE_MISMATCH` again. Their Audience URI is now just `acme-cloud`. It must be the full Entity ID `https://cloud.acme.io/saml/metadata/hooli` from Admin > Security > SSO.", "F"),
      ("noor", "Fixed, they can log in.")),
    T("S40", SS, "api429", "white_check_mark",
      ("kevin", "Stark's month-end reporting job hits 429 errors from the Acme API and the report comes out incomplete."),
      ("tom", "They retry immediately in a tight loop, which keeps them pinned at the limit. Respect `Retry-After` (seconds) and use exponential backoff with jitter. The official SDKs do this already if they upgrade to `acme-sdk` 3.x.", "F"),
      ("kevin", "Upgraded the SDK, report is complete.")),
    T("S41", SS, "webhook_sig", "close",
      ("maya", "Webhook HMAC doesn't validate for Vandelay's PHP receiver. They `json_decode` the payload, then `json_encode` it again to compute the hash."),
      ("tom", "Needs the raw body: `$payload = file_get_contents('php://input');` then `hash_hmac('sha256', $timestamp . '.' . $payload, $secret)`. Re-encoding changes whitespace and escaping (`\\/`)."),
      ("maya", "that fixed it, thanks!")),
    T("S42", SS, "2fa_clock", "white_check_mark",
      ("jonas", "2FA codes are always rejected for one user at Massive Dynamic, even right after they're generated."),
      ("raj", "If it's one user and the codes are fresh, it's almost always the phone clock. TOTP allows ±30 s. Have them turn on automatic date & time (Android: Settings > System > Date & time).", "F"),
      ("jonas", "Clock was 4 minutes off. Sorted.")),
    T("S43", SS, "compliance", None,
      ("ana", "Initech procurement asks for our SOC 2 Type II report."),
      ("priya", "It's in the trust portal under NDA, they can request access at [trust.acme.io](https://trust.acme.io).")),
    T("S44", SS, "export_email", "white_check_mark",
      ("noor", "Scheduled CSV export emails never arrive for Initech. Manual exports work."),
      ("raj", "Delivery log shows our mail to their domain got `550 5.7.1 Message rejected by policy`. Their gateway quarantines `noreply@acme.io`, they need to allowlist it.", "F"),
      ("noor", "Their IT allowlisted noreply@acme.io and this morning's scheduled export arrived.", "2")),
    T("S45", SS, "api_v1", None,
      ("maya", "Customer asks whether API v1 will be sunset and when."),
      ("tom", "Deprecation notice goes out next quarter; no hard date yet.")),
    T("S46", SS, "sso_audience", "white_check_mark", ("casebot", ""),
      ("tom", "New Okta app = new settings. Their Audience URI is Okta's default `http://www.okta.com/exk1f2...`. Set it to `https://cloud.acme.io/saml/metadata/initech` and upload the new signing certificate in Admin > Security > SSO.", "F"),
      ("jonas", "Back in business, thanks"),
      req="jonas",
      bot={"style": "fields", "fields": [("Customer", "Initech"), ("Product", "Acme Cloud SSO"), ("Priority", "High"), ("Plan", "Enterprise"),
                                         ("Problem", "Users get SAML_AUDIENCE_MISMATCH after Initech rebuilt their Okta app during an IdP certificate rotation. Nobody can log in.")]}),
    T("S47", SS, "webhook_filter", None,
      ("jonas", "Vehement asks if webhooks can be filtered by event type so they only get `record.updated`."),
      ("tom", "You can pick events per endpoint in Settings > Webhooks > Edit > Events.")),
    T("S48", SS, "api429", "white_check_mark",
      ("noor", "Hooli's integrations keep hitting 'Too Many Requests' every morning at 8:00 when all their scheduled jobs kick off. Recovers after a few minutes."),
      ("tom", "Everything starts at the same second on one key, and the limit is 100 req/10s per key. Stagger the jobs or add jitter, give each integration its own key, and honour `Retry-After`.", "F"),
      ("noor", "They split keys and added jitter, no more 429s.")),
    T("S49", SS, "sso_audience", None,
      ("ana", "Massive Dynamic: after switching on SSO, some users keep landing back on the Acme sign-in screen. Others are fine. Seems to be people with uppercase letters in their email? ZD#1045"),
      ("raj", "Interesting, email matching should be case-insensitive. Can you get the NameID they send for one affected user?"),
      ("ana", "Waiting on their admin.")),
    T("S50", SS, "api429", None,
      ("maya", "Umbrella's BI tool fails with 429s when refreshing dashboards in the morning."),
      ("tom", "Need their key id to look. Which tool, and does it share a key with anything else?")),
    # ----------------------------------------------------------------- mobile
    T("M17", MS, "android_stuck_sync", "white_check_mark",
      ("kevin", "Android app stuck on 'Syncing…' forever after login, Acme 5.11.4 on a Galaxy Tab."),
      ("lena", "Known bug in 5.11.x with accounts that have archived projects. Update to 5.12 and clear the app cache once (Settings > Apps > Acme > Storage > Clear cache).", "F"),
      ("kevin", "Fixed after the update.")),
    T("M9", MS, "android_push", "white_check_mark",
      ("kevin", "Android users at Stark don't get notified about new assignments until they open the app."),
      ("lena", "Battery optimization again. Point them to [this article](https://help.acme.io/mobile/android-notifications): set Acme battery usage to Unrestricted.", "F"),
      ("kevin", "Works now.")),
    T("M1", MS, "ios_crash", "white_check_mark",
      ("noor", "iOS app crashes immediately on launch after updating to 5.12.1. Several customers, iPhone 13/14 on iOS 17.5. ZD#1008"),
      ("noor", "Crash log from one of them attached. Top frames:\n```Exception Type:  EXC_BAD_ACCESS (SIGSEGV)\nException Codes: KERN_INVALID_ADDRESS at 0x0000000000000010\n0  AcmeCore   LocalStore.migrate(from:) + 412\n1  AcmeCore   AppBootstrap.start() + 88\n2  Acme       AppDelegate.application(_:didFinishLaunchingWithOptions:) + 140```", "A"),
      ("lena", "Known issue: the 5.12.1 cache migration crashes when there are unsent offline drafts. Hotfix 5.12.2 is in App Store review. Workaround now: Settings > General > iPhone Storage > Acme > *Offload App*, then reinstall. Offload keeps the login and the drafts.", "F"),
      ("lena", ":rocket: iOS 5.12.2 is live on the App Store: fixes the crash on launch after the 5.12.1 update. Tell customers to update.", "1B"),
      ("noor", "Customers confirmed 5.12.2 fixes it."),
      file={"id": "F07CRASH512", "name": "crash-5.12.1-iphone14.ips", "title": "crash-5.12.1-iphone14.ips", "mimetype": "text/plain", "filetype": "text", "pretty_type": "Plain Text", "size": 48213}),
    T("M6", MS, "android_push", "white_check_mark",
      ("noor", "Android push notifications not arriving for Globex users on Samsung Galaxy phones. iOS users get them fine. ZD#1009"),
      ("lena", "Samsung's battery optimization puts Acme to sleep and FCM messages get delayed or dropped. On the phone: Settings > Apps > Acme > Battery > *Unrestricted*, and remove Acme from 'Sleeping apps'. Help article: [Android notifications](https://help.acme.io/mobile/android-notifications)", "F"),
      ("noor", "Confirmed on their test device, notifications arrive instantly now.")),
    T("M2", MS, "ios_crash", "close",
      ("maya", "Customer's iPad app closes as soon as they open it since this morning's update. Reinstalling from scratch would lose their offline drafts."),
      ("lena", "That's the 5.12.1 migration crash. Use *Offload App* instead of delete (Settings > General > iPad Storage > Acme), then reinstall: drafts are kept. Or wait for 5.12.2."),
      ("maya", "that fixed it, thanks!")),
    T("M11", MS, "sync_409", "white_check_mark",
      ("noor", "Field worker's edits made offline are lost after reconnecting. The app briefly shows `ERR_SYNC_409`. ZD#1010"),
      ("lena", "409 = the record changed on the server while the device was offline. In 5.12 the server version wins, but the local version isn't deleted: it's under Settings > Sync > *Conflicts*, where they can restore it. 5.13 adds field-level merge so this mostly goes away.", "F"),
      ("noor", "Found all the edits in Conflicts and restored them. Thanks!")),
    T("M3", MS, "ios_crash", "white_check_mark",
      ("jonas", "Wayne Enterprises field team: the Acme app on iPhones only shows the splash screen and then quits. Started after the update yesterday."),
      ("lena", "Which version? If 5.12.1, that's the launch crash, fix pending in review."),
      ("jonas", "5.12.1 on all of them."),
      ("lena", "5.12.2 was approved overnight. Have them update from the App Store, the crash is fixed there.", "1F"),
      ("jonas", "All good")),
    T("M5", MS, "ios_crash", "white_check_mark", ("casebot", ""),
      ("lena", "Same root cause as the 5.12.1 migration crash. Update to 5.12.2 from the App Store.", "F"),
      ("noor", "Confirmed, thanks"),
      req="noor",
      bot={"style": "rich", "fields": [("Customer", "Hooli"), ("Product", "Acme iOS app"), ("App version", "5.12.1"),
                                       ("Problem", "App crashes on startup after upgrading to 5.12.1 on iOS 16.7. Users can't get past the launch screen.")]}),
    T("M4", MS, "ios_photo", None,
      ("ana", "iOS app crashes when attaching a photo larger than ~20 MB (ProRAW from an iPhone 15 Pro)."),
      ("lena", "Reproduced. Tracking as MOB-881, no ETA yet.")),
    T("M7", MS, "push_permission", "close",
      ("maya", "Customer stopped getting notifications on their Pixel 8 after updating the Android app to 5.12."),
      ("lena", "5.12 targets Android 14 and asks for the `POST_NOTIFICATIONS` permission again on first launch. If they tapped *Don't allow*, nothing is shown. Settings > Apps > Acme > Notifications > Allow."),
      ("maya", "resolved, closing this")),
    T("M12", MS, "sync_409", "close",
      ("maya", "Sync conflict error on Android: 'ERR_SYNC_409: record changed on server' and the user's changes vanish."),
      ("maya", "Android app 5.12.0, Samsung tablet, the user was in a basement without signal for half a day."),
      ("lena", "Their edits are in Settings > Sync > Conflicts: tap the record and choose *Keep mine*. Field-level merge ships in 5.13.", "1"),
      ("maya", "that fixed it, thanks!")),
    T("M8", MS, "android_push", "heavy_check_mark",
      ("jonas", "No push alerts on Xiaomi devices at Initech, notifications only show up when they open the app. ZD#1022"),
      ("lena", "MIUI kills background apps aggressively. They need *Autostart* enabled for Acme and Battery saver set to *No restrictions*.", "F"),
      ("jonas", "They did both on 5 test phones, notifications arrive in real time now.", "1")),
    T("M10", MS, "push_sound", None,
      ("ana", "Can users customize the push notification sound on Android?"),
      ("lena", "Not in-app. Android lets them change it per notification channel in system settings, but we don't document it.")),
    T("M13", MS, "sync_409", "white_check_mark",
      ("jonas", "Two technicians edited the same work order on tablets without signal; when they came back online one person's changes were overwritten."),
      ("lena", "Expected with record-level conflict handling in 5.12: the second sync gets `ERR_SYNC_409` and the server copy wins. The overwritten version is kept under Sync > Conflicts. 5.13 (beta now) merges per field, so two people editing different fields won't clash.", "F"),
      ("jonas", "Restored from Conflicts, and they're joining the 5.13 beta.")),
    T("M14", MS, "sync_slow", None,
      ("ana", "First sync after login takes 10+ minutes for Umbrella's large account (~60k records)."),
      ("lena", "Initial sync downloads everything. We're looking at partial sync in MOB-902.")),
    T("M15", MS, "mobile_sso", "white_check_mark",
      ("noor", "Okta SSO works on web, but in the iOS app Globex users get bounced back to the login screen after authenticating."),
      ("tom", "Their Okta sign-on policy for the Acme app denies non-browser user agents, so the app's auth session gets `access_denied` and we fall back to the login screen. They need a rule allowing the Acme mobile client (or untick *Block non-browser user agents*).", "F"),
      ("noor", "They added the rule, works in the app now.")),
    T("M20", MS, "ios_crash", "white_check_mark",
      ("ana", "After updating to 5.12.1 the iPhone app crashes right away for Soylent's sales team. ZD#1021"),
      ("lena", "Launch crash from the 5.12.1 cache migration. Offload + reinstall works now, 5.12.2 is in review."),
      ("ana", "They'd rather wait, any news?", "1"),
      ("lena", "5.12.2 is live, updating from the App Store fixes it.", "F"),
      ("ana", ":tada:")),
    T("M16", MS, "faceid", None,
      ("maya", "Face ID login option disappeared for a user after updating to 5.12.1."),
      ("lena", "Is Face ID allowed for Acme in iOS Settings > Face ID & Passcode > Other Apps? Waiting for confirmation.")),
    T("M18", MS, "mobile_session", "close",
      ("jonas", "Acme mobile app shows 'Session expired' every few hours for Globex users and they have to log in again."),
      ("tom", "Globex has *Session lifetime: 4 hours* under Admin > Security > Session policy, and mobile follows it. They can set a separate mobile session lifetime (up to 30 days) on the same page."),
      ("jonas", "resolved, closing this")),
    T("M19", MS, "android_push", "white_check_mark",
      ("maya", "Push notifications delayed by hours on OnePlus phones for a Soylent user."),
      ("lena", "OxygenOS battery optimization, same fix as Samsung: Settings > Apps > Acme > Battery usage > *Allow background activity* / Unrestricted.", "F"),
      ("maya", "Arriving instantly now")),
    T("M21", MS, "dark_mode", None,
      ("noor", "Dark mode text is unreadable in the Android tablet layout (grey on dark grey)."),
      ("lena", "Screenshot? Which tablet?")),
    T("M22", MS, "sync_duplicates", "resolved",
      ("jonas", "After going back online, records edited offline appear twice in the list (duplicates)."),
      ("lena", "Bug in 5.12.2: after an `ERR_SYNC_409` the app retried the change as a create. Fixed in 5.12.3; after updating, duplicates are cleaned up on the next sync.", "F"),
      ("jonas", "Duplicates gone on 5.12.3")),
    T("M23", MS, "push_deeplink", "close",
      ("noor", "Android: tapping a notification opens the home screen instead of the record."),
      ("lena", "Deep-link regression in 5.12.1, fixed in 5.12.3."),
      ("noor", "resolved, closing this")),
    # ----------------------------------------------------------------- security (private)
    T("X9", XS, "phishing", None,
      ("kevin", "A customer forwarded a phishing email impersonating Acme billing ('update your card details')."),
      ("priya", "Thanks, forwarded to abuse@ and the takedown vendor.")),
    T("S8", XS, "2fa_owner", "white_check_mark",
      ("jonas", "Urgent-ish: the *only* owner of the Wayne Enterprises account is locked out. 2FA device was wiped, backup codes lost. Renewal call is next week and they are not happy."),
      ("priya", "Only-owner 2FA reset needs identity verification. Have them email security@acme.io from the owner's address with a signed request on company letterhead, a photo ID, and the last 4 digits of the card on file. We do a callback to the phone number on the contract."),
      ("jonas", "Sent. They'll get the letter signed today."),
      ("priya", "Verification completed this morning, callback done. I've reset 2FA on the owner account; she needs to enroll a new device on next login and save new backup codes.", "1F"),
      ("jonas", "She's in. Thanks @priya :pray:")),
    T("X1", XS, "suspicious_fp", "white_check_mark",
      ("maya", "Globex admin got 'New sign-in from unrecognized device' emails for logins they say they didn't do, from Frankfurt."),
      ("priya", "Audit log: those logins come from 165.225.x.x, which is Zscaler's Frankfurt egress, and Globex uses Zscaler. Same device IDs as usual, so a false positive. They can add their VPN egress ranges under Admin > Security > *Trusted networks* to stop the alerts.", "F"),
      ("maya", "Makes sense, they added the ranges.")),
    T("X3", XS, "key_leak", "heavy_check_mark",
      ("ana", "Umbrella's CTO found one of their Acme API keys in a public GitHub repo (committed 3 days ago). What should they do?"),
      ("priya", "1) Revoke the key now: Settings > API keys > Revoke. 2) Create a new key and deploy it. 3) Review usage: Audit log, filter `actor = api_key:ak_…` for the last 3 days. Deleting the commit doesn't help, assume it's been scraped.", "F"),
      ("ana", "Revoked. Here's the audit export they sent.", "A"),
      ("priya", "Checked: all calls from their own IP ranges, nothing from unknown sources."),
      file={"id": "F07AUDITUMB", "name": "audit-log-umbrella.csv", "title": "Audit log export (Umbrella)", "mimetype": "text/csv", "filetype": "csv", "pretty_type": "CSV", "size": 91544}),
    T("X2", XS, "suspicious_real", "white_check_mark",
      ("jonas", "Suspicious login alert for an Initech admin account from an IP in São Paulo. The user says it wasn't them."),
      ("priya", "Looking. Successful password login, no 2FA on that account :rotating_light:. I've revoked all sessions for the user (Admin > Members > *Sign out of all sessions*) and forced a password reset."),
      ("priya", "Audit log review done: the session only viewed two dashboards, no exports, no API key creation. The password was reused from another breach (credential stuffing). Recommended Initech enforce 2FA org-wide, which they just did.", "1F"),
      ("jonas", "Thanks @priya, sending them the summary.")),
    T("X4", XS, "key_leak", "white_check_mark",
      ("noor", "GitHub secret scanning notified us: an Acme API key (prefix `acme_live_`) was pushed to a public repo by a Pied Piper developer. ZD#1013"),
      ("priya", "Our secret-scanning partner hook auto-revoked it within a minute of the push. The customer has to issue a new key in Settings > API keys. I'll send the standard leaked-credential notice to their owners.", "F"),
      ("noor", "Thanks, they created a new key.")),
    T("X5", XS, "gdpr_erasure", "close",
      ("maya", "GDPR erasure request from a former employee of Globex: they want all their personal data in Acme deleted."),
      ("priya", "Globex is the controller, so the request goes to them; we act on their instruction as processor. Their admin can delete the user under Admin > Members, or file Privacy > Data requests > *Erasure* if it must include backups. Completed within 30 days."),
      ("maya", "Globex filed the erasure request. resolved, closing this", "1")),
    T("X7", XS, "compliance", None,
      ("ana", "Hooli's security team wants our latest pentest report."),
      ("priya", "The summary is on the trust portal, the full report only under NDA. Checking with legal whether their MSA covers it.")),
    T("X6", XS, "gdpr_erasure", "white_check_mark",
      ("jonas", "Customer wants all data for one user deleted under GDPR Art. 17 and a written confirmation."),
      ("priya", "Process: their admin files Privacy > Data requests > Erasure. We purge primary data within 30 days, backups roll off after 35 days, and we email a certificate of deletion to the requester.", "F"),
      ("jonas", "Filed, thanks")),
    T("X11", XS, "suspicious_fp", "white_check_mark",
      ("noor", "Customer gets an 'unusual sign-in activity' alert every time they log in from the office."),
      ("priya", "Their office egresses through a new ISP range we haven't seen for that org. Add it under Admin > Security > Trusted networks and the alerts stop.", "F"),
      ("noor", "Added, no more alerts")),
    T("X12", XS, "key_leak", "close",
      ("jonas", "Initech dev accidentally published a .env file with their Acme secret key in a public GitHub gist."),
      ("priya", "Revoke it under Settings > API keys right away, issue a new one, and review the audit log for that key. I'll check for calls from unknown IPs."),
      ("jonas", "Rotated the key, nothing suspicious in the log. resolved, closing this")),
]

# --------------------------------------------------------------------------- Zendesk content
#
# K(id, family, subject, requester, assignee, group, status, priority, type, tags, *comments)
# A comment is (who, body) or (who, body, flags): who is "req" or an agent alias.
# Flags: I internal note, Q email reply quoting the previous public comment, S requester
#   signature. {slack:KEY} becomes the permalink of that Slack thread.


def K(tid: int, fam: str | None, subject: str, req: str, assignee: str | None, group: str, status: str,
      priority: str | None, ttype: str | None, tags: list[str], *comments: tuple[str, ...], via: str = "email") -> dict[str, Any]:
    return {"id": tid, "fam": fam, "subject": subject, "req": req, "assignee": assignee, "group": group,
            "status": status, "priority": priority, "type": ttype, "tags": tags, "comments": list(comments), "via": via}


TICKETS: list[dict[str, Any]] = [
    K(1001, "sso_audience", "Okta SSO - users sent back to the login page", "jane", "maya", "support", "solved", "high", "incident", ["sso", "saml", "okta"],
      ("req", "Hi,\n\nSince yesterday none of our users can log in with SSO. They click \"Sign in with SSO\", Okta authenticates them, and then they end up on the Acme sign-in page again. It just loops. We set up a new Okta app for Acme yesterday because the old one was tied to a former admin.\n\nThis is blocking ~800 people, please treat as urgent.", "S"),
      ("maya", "Escalated to swarm: {slack:S1}\nHAR shows POST /saml/acs -> 302 /login for every user.", "I"),
      ("maya", "Hi Jane,\n\nThanks for the details. Our logs show every assertion from your new Okta app is rejected with SAML_AUDIENCE_MISMATCH. The Audience URI (SP Entity ID) in Okta has a trailing slash:\n\nhttps://cloud.acme.io/saml/metadata/globex/\n\nIt must match exactly what's shown in Admin > Security > SSO:\n\nhttps://cloud.acme.io/saml/metadata/globex\n\nYou can change it in Okta under Applications > Acme > General > SAML Settings. No need to re-upload metadata."),
      ("req", "That was it - removed the slash and everyone is in. Thanks for the quick help!", "QS")),
    K(1002, "2fa_lockout", "Locked out - lost phone with authenticator", "sofia", "raj", "support", "closed", "normal", "question", ["2fa", "account-access"],
      ("req", "I replaced my phone and forgot to move my authenticator app. Now I can't log in to Acme because it asks for the 6-digit code. I don't have the backup codes. Can you turn off 2FA for my account?", "S"),
      ("raj", "Hi Sofia,\n\nFor security reasons Acme Support can't disable two-factor authentication directly. Any admin in your workspace can reset it for you:\n\n- Admin > Members\n- find your name, click ⋯ > Reset 2FA\n\nAt your next login you'll be asked to set up the authenticator again. If there is no other admin on your account, reply here and we'll start the identity verification process."),
      ("req", "Our other admin reset it and I'm back in. Thanks.", "QS")),
    K(1003, "api429", "API throttling (429) during nightly sync", "dinesh", "tom", "support", "solved", "high", "problem", ["api", "rate-limit", "429"],
      ("req", "Our nightly sync job started failing with HTTP 429 Too Many Requests on /v2/records. Nothing changed in our code, though we did add about 30 new tables to the sync last week.\n\n```\nHTTP/1.1 429 Too Many Requests\nRetry-After: 7\nX-RateLimit-Limit: 100\n```\n\nIs there an outage on your side?"),
      ("maya", "Not an outage. Posted in #support-swarm: {slack:S10}", "I"),
      ("tom", "Hi Dinesh,\n\nNo outage: the API allows 100 requests per 10 seconds per API key, and since the new tables were added your job peaks at about 40 requests per second.\n\nTwo changes will fix it:\n- use POST /v2/records:batch, which accepts up to 500 records per call\n- when you get a 429, wait for the number of seconds in the Retry-After header before retrying (exponential backoff)\n\nDocs: https://docs.acme.io/api/rate-limits"),
      ("req", "Switched to the batch endpoint, last night's run finished in 6 minutes without a single 429. Thanks!", "Q"), via="web"),
    K(1004, "webhook_sig", "Webhook signatures never match", "marcus", "tom", "support", "solved", "normal", "problem", ["webhooks", "signature", "hmac"],
      ("req", "We can't verify your webhook signatures. Our HMAC never equals the X-Acme-Signature header. We're using the signing secret from Settings > Webhooks. Code:\n\n```\nconst sig = crypto.createHmac('sha256', SECRET).update(JSON.stringify(req.body)).digest('hex');\n```", "S"),
      ("maya", "Escalated: {slack:S14}", "I"),
      ("tom", "Hi Marcus,\n\nThe signature is computed over the raw request body exactly as we sent it, prefixed with the timestamp header: {X-Acme-Timestamp}.{raw body}. JSON.stringify(req.body) re-serializes the parsed object, which changes whitespace and key order, so the hash never matches.\n\nIn Express, use express.raw({ type: 'application/json' }) for the webhook route and pass the Buffer to createHmac. See https://docs.acme.io/webhooks/verify"),
      ("req", "Works now. Thank you & have a good weekend.", "QS")),
    K(1005, "export_timeout", "Export fails with 504 Gateway Timeout", "aisha", "raj", "support", "closed", "normal", "problem", ["export", "csv", "timeout"],
      ("req", "When I export all records to CSV the page spins for about a minute and then says \"Export failed: 504 Gateway Timeout\". We have around 400,000 records. Smaller exports work."),
      ("raj", "Hi Aisha,\n\nDirect downloads are limited to 60 seconds, which is roughly 100,000 rows. For larger exports please use the asynchronous export:\n\n- Reports > Export\n- choose CSV and tick \"Email me when it's ready\"\n\nYou'll receive an email with a download link that's valid for 7 days."),
      ("req", "Got the email and the file. Thanks, Raj.", "QS")),
    K(1006, "vat", "Invoice is missing our VAT ID", "tobias", "sam", "billing", "closed", "normal", "task", ["billing", "invoice", "vat"],
      ("req", "Hello,\n\nour invoice INV-2026-03-0112 does not show our VAT ID (DE123456789), so our accounting cannot book it. Please send a corrected invoice with reverse charge.", "S"),
      ("sam", "Hi Tobias,\n\nI've added DE123456789 to your billing profile (it validated in VIES) and reissued the invoice as INV-2026-03-0112R with the note \"VAT reverse charge, Art. 196 Directive 2006/112/EC\". Future invoices will include it automatically. You can also manage this yourself under Settings > Billing > Tax details."),
      ("req", "Received, thank you.", "QS")),
    K(1007, "card", "Payment declined when upgrading", "sofia", "sam", "billing", "solved", "high", "incident", ["billing", "payment", "card-declined"],
      ("req", "I'm trying to upgrade us to Business and my card keeps getting declined. The bank says they see no declined transactions. The card works everywhere else."),
      ("sam", "Hi Sofia,\n\nThe payment needs a 3-D Secure confirmation from your bank, and that confirmation window never opened, which usually means a popup blocker or privacy extension is hiding it. Could you try again in a private/incognito window? If you prefer, we can also switch you to annual invoicing with bank transfer."),
      ("req", "Incognito worked! We're on Business now.", "QS"), via="web"),
    K(1008, "ios_crash", "App crashes on launch after update to 5.12.1", "ravi", "lena", "mobile", "solved", "urgent", "incident", ["ios", "crash", "5.12.1"],
      ("req", "After updating the Acme iOS app to 5.12.1 it crashes immediately when opened. This affects about 40 of our field devices (iPhone 13, iOS 17.5). We need this working today.", "S"),
      ("noor", "Known issue, tracked in {slack:M1}. Hotfix 5.12.2 in review.", "I"),
      ("lena", "Hi Ravi,\n\nSorry about this. 5.12.1 has a bug in the local cache migration that crashes the app on launch when unsent offline drafts exist. Version 5.12.2 with the fix is in App Store review.\n\nWorkaround until then (keeps drafts and login):\n- Settings > General > iPhone Storage > Acme\n- tap Offload App, then Reinstall App"),
      ("lena", "Update: 5.12.2 is now available on the App Store and fixes the crash. Updating is enough, no reinstall needed."),
      ("req", "All devices updated and working. Thanks for the workaround in the meantime.", "QS")),
    K(1009, "android_push", "Not receiving push notifications on Samsung phones", "jane", "lena", "mobile", "solved", "normal", "problem", ["android", "push", "notifications"],
      ("req", "Our Android users (all Samsung Galaxy S23) don't get push notifications from Acme. iPhone users get them. Notifications are enabled in the app.", "S"),
      ("lena", "Hi Jane,\n\nSamsung's battery optimization puts apps to sleep and delays or drops their push messages. On each phone:\n- Settings > Apps > Acme > Battery > Unrestricted\n- Settings > Battery > Background usage limits: remove Acme from Sleeping apps\n\nMore: https://help.acme.io/mobile/android-notifications"),
      ("req", "That did it, notifications arrive instantly now. We'll push the setting via our MDM.", "QS")),
    K(1010, "sync_409", "ERR_SYNC_409 - offline changes lost", "aisha", "lena", "mobile", "solved", "high", "problem", ["mobile", "sync", "err_sync_409"],
      ("req", "One of our technicians worked offline all morning. When he got signal the app showed ERR_SYNC_409 and all his changes to the inspection reports are gone. Can they be recovered?"),
      ("lena", "Hi Aisha,\n\nERR_SYNC_409 means the same records were changed on the web while the device was offline. In 5.12 the server version wins, but the technician's version is kept on the device: Settings > Sync > Conflicts. He can open each record and choose \"Keep mine\" to restore his changes.\n\nVersion 5.13 will merge changes per field, so this will happen much less."),
      ("req", "Found everything under Conflicts and restored it. Phew. Thank you!", "QS")),
    K(1011, "gdpr_erasure", "Request for deletion of personal data (GDPR Art. 17)", "hannah", "priya", "security", "closed", "normal", "question", ["gdpr", "privacy", "deletion"],
      ("req", "We received a GDPR Article 17 request from a former employee. Please delete all personal data you hold about them (Erik Sandström, erik.sandstrom@hooli.example) and confirm in writing.", "S"),
      ("priya", "Hi Hannah,\n\nAs Hooli is the controller, please file the request from your admin account under Privacy > Data requests > Erasure (it takes a minute; you can reference this ticket). We then delete primary data within 30 days; backups roll off after 35 days. You'll receive a certificate of deletion by email once it's complete."),
      ("req", "Filed. Thanks.", "Q"),
      ("priya", "The erasure for erik.sandstrom@hooli.example is complete; the certificate of deletion has been sent to you.")),
    K(1012, "suspicious_fp", "Unrecognized sign-in alerts from Frankfurt", "liam", "priya", "security", "solved", "high", "incident", ["security", "suspicious-login"],
      ("req", "Several of our users received \"New sign-in from unrecognized device\" emails for sign-ins from Frankfurt that they don't recognise. Is our account compromised?", "S"),
      ("priya", "Hi Liam,\n\nI reviewed the audit log: these sign-ins come from 165.225.72.0/22, which belongs to Zscaler's Frankfurt data center, and your organization routes traffic through Zscaler. The device identifiers match the users' usual browsers, so these are legitimate logins.\n\nTo stop the alerts, add your VPN egress ranges under Admin > Security > Trusted networks."),
      ("req", "Makes sense, our Zscaler tenant moved to FRA last week. Added the ranges.", "QS")),
    K(1013, "key_leak", "We accidentally committed our API key to GitHub", "dinesh", "priya", "security", "solved", "urgent", "incident", ["security", "api-key", "leak"],
      ("req", "We accidentally committed our production Acme API key to a public GitHub repo about an hour ago. We've deleted the commit. What else do we need to do?"),
      ("priya", "Hi Dinesh,\n\nThanks for telling us right away. GitHub secret scanning had already notified us and the key was revoked automatically. Next steps:\n- create a new key under Settings > API keys and deploy it\n- review the Audit log with the filter actor = api_key:ak_7f3c for the past day\n\nDeleting the commit is not enough on its own (forks and caches), so please treat the old key as compromised. We saw no calls from IPs outside your usual ranges."),
      ("priya", "Swarm thread: {slack:X4}", "I"),
      ("req", "New key deployed. Thanks for the fast response.", "Q"), via="web"),
    K(1014, "scim_e1042", "SCIM provisioning error E1042", "marcus", "tom", "support", "solved", "normal", "problem", ["scim", "okta", "provisioning"],
      ("req", "Okta provisioning to Acme fails for ~15 users with the error: E1042 userName already exists. The others are fine."),
      ("maya", "Swarm: {slack:S30}", "I"),
      ("tom", "Hi Marcus,\n\nE1042 is returned when a deactivated Acme user with the same userName/email already exists, usually from an earlier offboarding. Either:\n- delete those users permanently under Admin > Members > Deactivated, or\n- enable \"Match existing users by email\" under Admin > Security > SCIM\n\nThen re-push the affected users from Okta."),
      ("req", "Enabled matching, re-pushed, all green. Thanks.", "QS")),
    K(1015, None, "Fwd: screenshot", "oliver", None, "support", "new", None, None, [],
      ("req", "")),
    K(1016, "sso_audience", "Azure AD SSO error SAML_AUDIENCE_MISMATCH", "oliver", "tom", "support", "solved", "high", "incident", ["sso", "saml", "azure-ad"],
      ("req", "Our pilot users get SAML_AUDIENCE_MISMATCH on an Acme error page after signing in with Microsoft. We followed your Azure AD guide.", "S"),
      ("tom", "Hi Oliver,\n\nIn your Entra ID enterprise app, under Basic SAML Configuration, the Identifier (Entity ID) must be exactly:\nhttps://cloud.acme.io/saml/metadata/umbrella\nand the Reply URL:\nhttps://cloud.acme.io/saml/acs/umbrella\n\nThe gallery template pre-fills a different identifier, which is what we're rejecting."),
      ("req", "Identifier corrected, the pilot group can log in. Thanks.", "QS")),
    K(1017, "api429", "Getting 'Too Many Requests' from your API every morning", "hannah", "tom", "support", "solved", "normal", "question", ["api", "rate-limit"],
      ("req", "Every morning around 8:00 our integrations get 'Too Many Requests' errors from the Acme API for a few minutes, then it recovers. What are the limits?"),
      ("tom", "Hi Hannah,\n\nThe limit is 100 requests per 10 seconds per API key. At 8:00 all your scheduled jobs start at the same second and share one key, so they burst over it. Options:\n- stagger the jobs or add random jitter to the start time\n- give each integration its own API key\n- on a 429, retry after the Retry-After header value"),
      ("req", "We split the keys and added jitter - no errors this morning.", "QS")),
    K(1018, "export_timeout", "Can't download a full year of audit logs", "jane", "raj", "support", "solved", "low", "problem", ["export", "audit-log"],
      ("req", "Downloading a year of audit logs as CSV fails with a network error after about a minute.", "S"),
      ("raj", "Hi Jane,\n\nExports that large can't be downloaded directly (60-second limit). Please use Reports > Export with \"Email me when it's ready\", or split the range by quarter. We also fixed a bug that made wide exports time out early (EXP-2211) in release 2026.19."),
      ("req", "The emailed export worked. Thanks.", "Q")),
    K(1019, "invoice_name", "Need corrected invoices with our new company name", "tobias", "sam", "billing", "solved", "normal", "task", ["billing", "invoice"],
      ("req", "Following our merger we are now Vandelay Industries Europe GmbH, Hauptstraße 12, 10115 Berlin. We need the Q1 invoices reissued with the new name and address.", "S"),
      ("sam", "Hi Tobias,\n\nI've updated your billing profile and regenerated the three Q1 invoices (INV-2026-01-0044R, INV-2026-02-0051R, INV-2026-03-0049R) with the new legal entity. They're also available under Settings > Billing > Invoices."),
      ("req", "Perfect, thank you.", "QS")),
    K(1020, "card", "Renewal failed - card declined", "hannah", "sam", "billing", "pending", "high", "incident", ["billing", "card-declined", "renewal"],
      ("req", "Our renewal payment failed (card declined). We can't have Acme go down for our 600 users. What are our options?"),
      ("sam", "Hi Hannah,\n\nNo interruption: there's a 14-day grace period after a failed renewal. The issuing bank returned \"do_not_honor\", so the bank declined it. You can update the card under Billing > Payment method, or I can switch you to bank transfer against an invoice. Which do you prefer?")),
    K(1021, "ios_crash", "iPhone app won't open anymore", "sofia", "lena", "mobile", "solved", "high", "incident", ["ios", "crash"],
      ("req", "The iPhone app won't open anymore. It shows the logo and closes. Started after the update this week. Our whole sales team is affected."),
      ("noor", "Same as the 5.12.1 launch crash: {slack:M20}", "I"),
      ("lena", "Hi Sofia,\n\nThis is a known crash in iOS app 5.12.1. Please update to 5.12.2 from the App Store, which fixes it. If the App Store doesn't show the update yet: Settings > General > iPhone Storage > Acme > Offload App, then reinstall; your data is kept."),
      ("req", "Updated to 5.12.2, works. Thanks.", "QS"), via="web"),
    K(1022, "android_push", "No notifications on Xiaomi phones", "marcus", "lena", "mobile", "solved", "normal", "problem", ["android", "push", "xiaomi"],
      ("req", "Notifications on our Xiaomi phones only appear when the app is opened. Any idea?"),
      ("lena", "Hi Marcus,\n\nMIUI stops background apps unless they're allowed to autostart. On each phone:\n- Settings > Apps > Manage apps > Acme > Autostart: on\n- Battery saver: No restrictions\n\nAfter that, notifications arrive in real time."),
      ("req", "Confirmed on our test phones. Thanks!", "QS")),
    K(1023, "residency", "Can our data be hosted in the EU?", "oliver", "priya", "security", "solved", "normal", "question", ["gdpr", "data-residency"],
      ("req", "Our legal team requires EU data residency. Can our existing Acme workspace be moved from the US region to the EU?", "S"),
      ("priya", "Hi Oliver,\n\nYes. The EU region (Frankfurt) is available on the Enterprise plan, which you're on. Migrating an existing workspace is a scheduled job with about one hour of read-only time; we'll agree on a window with you. Our DPA and the EU subprocessor list are at https://trust.acme.io."),
      ("req", "Please schedule it for Saturday 06:00 CET.", "Q"),
      ("priya", "Done: the migration completed on Saturday at 06:48 CET. Your workspace is now hosted in eu-central-1.")),
    K(1024, "2fa_clock", "Authenticator codes not accepted", "aisha", "raj", "support", "solved", "low", "problem", ["2fa"],
      ("req", "One of my colleagues always gets \"Invalid code\" when logging in, even though she types the code from the authenticator straight away."),
      ("raj", "Hi Aisha,\n\nWhen fresh codes are rejected for one person it's almost always the phone's clock: authenticator codes are time-based and we allow about 30 seconds of drift. Please have her enable automatic date & time on the phone and try again."),
      ("req", "Her phone was 4 minutes behind. Works now.", "Q")),
    K(1025, "webhook_rotation", "Webhook deliveries failing after secret rotation", "oliver", "tom", "support", "pending", "normal", "problem", ["webhooks", "signature"],
      ("req", "Since we rotated the webhook signing secret this morning, about a third of your webhook deliveries fail our signature check."),
      ("maya", "Swarm: {slack:S15}", "I"),
      ("tom", "Hi Oliver,\n\nA third of failures usually means one of several instances still runs with the old secret. After rotation we sign with the new secret only. Could you check each instance behind the load balancer? Once fixed you can replay failed deliveries via Settings > Webhooks > Resend failed deliveries.")),
    K(1026, "scim_deprov", "Users unassigned in Okta stay active in Acme", "liam", "tom", "support", "solved", "normal", "problem", ["scim", "okta", "deprovisioning"],
      ("req", "When we unassign users from the Acme app in Okta they stay active in Acme."),
      ("tom", "Hi Liam,\n\nOkta isn't sending the deactivation. In Okta > Applications > Acme > Provisioning > To App, enable \"Deactivate Users\". After that, unassigning a user deactivates them in Acme within a minute."),
      ("req", "Enabled, tested with a dummy user, works.", "QS")),
    K(1027, "dark_mode", "Dark mode for the web app?", "chloe", "maya", "support", "open", "low", "question", ["feature-request", "ui"],
      ("req", "Is there a dark mode for the web app? Several of our analysts asked."),
      ("maya", "Hi Chloé,\n\nNot yet, but it's on the roadmap. I've added your vote to the feature request and will update this ticket when there's news."), via="web"),
    K(1028, "sync_409", "Technician edits overwritten after offline work", "ravi", "lena", "mobile", "hold", "normal", "problem", ["mobile", "sync", "conflicts"],
      ("req", "Two of our technicians edited the same work order offline, and when they synced one person's changes were overwritten. This happens weekly."),
      ("lena", "Hi Ravi,\n\nWith 5.12 conflicts are resolved per record: the later sync gets ERR_SYNC_409 and the server copy wins. The overwritten version is kept under Settings > Sync > Conflicts. Version 5.13 merges changes per field; I'll put this ticket on hold and update you when it's released.")),
    K(1029, "compliance", "Security documentation for vendor review", "marcus", "priya", "security", "pending", "low", "question", ["security", "compliance"],
      ("req", "Could you send us your latest penetration test report and SOC 2 Type II report for our vendor review?"),
      ("priya", "Hi Marcus,\n\nBoth are available under NDA on our trust portal: https://trust.acme.io. Request access there with your company email and we'll approve it within a business day.")),
    K(1030, "2fa_owner", "Only account owner locked out by 2FA", "ravi", "priya", "security", "solved", "urgent", "incident", ["2fa", "account-access", "owner"],
      ("req", "Our only Acme account owner reset her phone and has no backup codes, so she's locked out by two-factor authentication. Nobody else has owner rights.", "S"),
      ("priya", "Hi Ravi,\n\nBecause she's the only owner, we need to verify identity before resetting 2FA. Please have her email security@acme.io from her account address with a signed request on company letterhead and a photo ID. We'll then call back the phone number on your contract."),
      ("req", "Letter sent this morning.", "QS"),
      ("priya", "Verification done, callback completed, 2FA reset on the owner account. See {slack:S8}", "I"),
      ("priya", "Identity verification is complete and two-factor authentication has been reset. She can log in and will be asked to enroll a new device. Please remind her to save the new backup codes.")),
    K(1031, "seats", "Can't invite new users - seat limit reached", "tobias", "sam", "billing", "solved", "low", "question", ["billing", "seats"],
      ("req", "We can't invite new users, it says the seat limit is reached, but we should have 3 free seats."),
      ("sam", "Hi Tobias,\n\nPending invitations count as seats. You have five invitations that were never accepted; revoke them under Admin > Members > Invitations and the seats become available again."),
      ("req", "Revoked them, invites work again. Thanks", "Q")),
    K(1032, "oauth_refresh", "OAuth token expires after an hour", "dinesh", "tom", "support", "solved", "normal", "problem", ["api", "oauth"],
      ("req", "Our OAuth integration returns 401 invalid_token about an hour after connecting and users must reconnect."),
      ("tom", "Hi Dinesh,\n\nAccess tokens expire after 1 hour. Store the refresh_token returned by the token endpoint and call POST https://cloud.acme.io/oauth/token with grant_type=refresh_token to get a new access token."),
      ("req", "Implemented refresh, works."), via="api"),
    K(1033, "safari", "Charts not loading in Safari", "hannah", "raj", "support", "open", "normal", "problem", ["web", "safari"],
      ("req", "Dashboard charts are empty for me in Safari 17.4. Chrome works."),
      ("raj", "Hi Hannah,\n\nI couldn't reproduce it yet. Could you open Develop > Show JavaScript Console and send a screenshot of any errors?")),
    K(1034, "export_encoding", "Weird characters in CSV export in Excel", "liam", "raj", "support", "solved", "low", "problem", ["export", "csv", "excel"],
      ("req", "In the CSV export, names with accents look broken in Excel (José becomes JosÃ©)."),
      ("raj", "Hi Liam,\n\nExcel needs a byte-order mark to detect UTF-8. In the export dialog tick \"Excel-compatible (UTF-8 with BOM)\", or import via Data > From Text/CSV and choose UTF-8."),
      ("req", "Works with the BOM option.", "Q")),
    K(1035, "vat", "VAT charged although we have a VAT number", "chloe", "sam", "billing", "solved", "normal", "problem", ["billing", "vat", "refund"],
      ("req", "We were charged 23% VAT on our renewal, but we are VAT registered (IE1234567FA). Please refund the VAT.", "S"),
      ("sam", "VIES was down on renewal day, validation failed. Re-validated now; credit note needed.", "I"),
      ("sam", "Hi Chloé,\n\nYour VAT number failed validation on renewal day because the EU VIES service was unavailable. I've re-validated it and issued credit note CN-2026-0412 for the VAT amount; the refund will reach your card within 5-10 business days."),
      ("req", "Thank you!", "QS")),
    K(1036, "push_permission", "Push notifications stopped after Android app update", "sofia", "lena", "mobile", "solved", "normal", "problem", ["android", "push", "permissions"],
      ("req", "Since updating the Android app last week I don't get any notifications on my Pixel 8."),
      ("lena", "Hi Sofia,\n\nVersion 5.12 asks for notification permission again (required on Android 13 and later). If \"Don't allow\" was tapped, go to Settings > Apps > Acme > Notifications and turn on Allow notifications."),
      ("req", "That was it, thanks.", "Q")),
    K(1037, "suspicious_real", "Possible account compromise - login from Brazil", "marcus", "priya", "security", "solved", "urgent", "incident", ["security", "suspicious-login", "account-takeover"],
      ("req", "We got a suspicious login alert for one of our admins from São Paulo. He's in Ohio. Please lock the account.", "S"),
      ("priya", "Hi Marcus,\n\nI've signed the user out of all sessions and forced a password reset. The login used a correct password without 2FA, which points to a password reused from another breach. The session viewed two dashboards; no exports or API keys were created. We strongly recommend enforcing 2FA for your organization under Admin > Security."),
      ("priya", "Swarm: {slack:X2}", "I"),
      ("req", "Thanks. We've enforced 2FA for everyone now.", "QS")),
    K(1038, "sso_clock", "ADFS SSO sends users back to the login page", "greta", "tom", "support", "solved", "high", "incident", ["sso", "saml", "adfs"],
      ("req", "Our ADFS SSO stopped working this morning; after logging in with ADFS, users are sent straight back to the Acme login page.", "S"),
      ("tom", "Hi Greta,\n\nWe reject the assertions with SAML_ASSERTION_EXPIRED: their NotBefore time is about 7 minutes in the future, so your ADFS server's clock is ahead. We accept up to 3 minutes of clock skew. Please resync the server time (w32tm /resync) and try again."),
      ("req", "The ADFS VM lost its NTP source after a migration. Resynced, SSO works again.", "QS")),
    K(1039, "mobile_session", "Mobile app asks to log in again every few hours", "jane", "tom", "support", "solved", "low", "question", ["mobile", "session"],
      ("req", "Our mobile users have to log in again every few hours (\"Session expired\"). Can this be extended?", "S"),
      ("tom", "Hi Jane,\n\nYour session policy (Admin > Security > Session policy) is set to 4 hours, and the apps follow it. On the same page you can set a separate mobile session lifetime of up to 30 days."),
      ("req", "Set mobile to 14 days. Thanks.", "Q")),
    K(1040, "invoice_po", "PO number on invoices", "marcus", None, "billing", "new", "low", "question", ["billing", "invoice"],
      ("req", "Can you add our PO number 4500012345 to future invoices?", "S")),
    K(1041, "key_leak", "URGENT: API key exposed in a public gist", "chloe", "priya", "security", "closed", "urgent", "incident", ["security", "api-key", "leak"],
      ("req", "One of our contractors posted a gist containing our .env file with the Acme secret key. It was public for about 2 hours. URGENT."),
      ("priya", "Hi Chloé,\n\nI've revoked the key. Please create a new one under Settings > API keys and deploy it. I checked the audit log for the key: all requests in the last 48 hours came from your own IP ranges."),
      ("req", "New key in place. Thanks for the quick action.", "QS")),
    K(1042, "webhook_disabled", "Re-enable disabled webhook endpoints in bulk", "hannah", "tom", "support", "hold", "normal", "problem", ["webhooks"],
      ("req", "12 of our webhook endpoints show \"Disabled after 50 consecutive failures\" after our maintenance window. Re-enabling each one manually is painful. Can you re-enable them all?"),
      ("tom", "No bulk admin action exists. Filed WH-417 for a bulk re-enable API.", "I"),
      ("tom", "Hi Hannah,\n\nThere's no bulk re-enable yet; each endpoint has to be re-enabled under Settings > Webhooks. I've filed a request for a bulk action and put this ticket on hold until I have news.")),
    K(1043, "sync_slow", "First sync on new phones takes over 10 minutes", "oliver", "lena", "mobile", "pending", "normal", "problem", ["mobile", "sync", "performance"],
      ("req", "The first sync on a new phone takes more than 10 minutes for our users."),
      ("lena", "Hi Oliver,\n\nThe initial sync downloads all ~60k records. Partial sync is being worked on. Could you tell us which app version you're on and how many users are affected?")),
    K(1044, "push_sound", "Custom notification sound on Android", "ravi", "lena", "mobile", "open", "low", "question", ["android", "push", "feature-request"],
      ("req", "Can we set a custom notification sound for Acme on Android?"),
      ("lena", "Hi Ravi,\n\nNot in the app today. Android lets each user change the sound per notification channel in system settings. I've logged a feature request for an in-app option."), via="web"),
    K(1045, "sso_audience", "Some users loop back to sign-in after enabling SSO", "aisha", "raj", "support", "open", "high", "incident", ["sso", "saml"],
      ("req", "After turning on SSO some of our users keep landing back on the Acme sign-in screen. Others are fine. It seems to be people whose email address has capital letters."),
      ("raj", "Hi Aisha,\n\nThanks, we're looking into it. Could you send us the NameID value your identity provider sends for one affected user (a SAML trace from the SAML-tracer browser extension is ideal)?")),
    K(1046, "api429", "429 on the batch endpoint at low request rates", "dinesh", "tom", "support", "open", "normal", "problem", ["api", "rate-limit", "429"],
      ("req", "We're getting 429 on /v2/records:batch even though we only send 5 requests per second."),
      ("tom", "Checking with the API team whether batch calls count as more than one unit toward the limit.", "I"), via="api"),
]

# Demo queries: fresh paraphrases of recurring problems (not copied from the data).
QUERIES: list[tuple[str, list[str]]] = [
    ("Customer says Okta SSO keeps redirecting them back to the login screen after they authenticate", ["sso_audience", "sso_clock"]),
    ("Since the 5.12.1 update our app quits right after the launch screen on iPhones", ["ios_crash"]),
    ("Partner integration is being throttled with HTTP 429 responses during its bulk data load", ["api429"]),
    ("The HMAC we compute for incoming webhook payloads never equals the signature header", ["webhook_sig"]),
    ("Staff with Galaxy phones aren't receiving any push alerts from the Android app", ["android_push"]),
    ("Admin can't get in because her authenticator phone was wiped and she has no recovery codes", ["2fa_lockout", "2fa_owner"]),
    ("A technician's offline changes disappeared after the tablet synced, app showed a 409 conflict", ["sync_409"]),
    ("Developer pushed our Acme secret key to a public GitHub repository, what should we do?", ["key_leak"]),
]

# --------------------------------------------------------------------------- mrkdwn

TOKEN = re.compile(
    r"```(?P<pre>.*?)```"
    r"|`(?P<code>[^`\n]+)`"
    r"|\[(?P<ltext>[^\]]+)\]\((?P<lurl>https?://[^)\s]+)\)"
    r"|(?P<url>https?://[^\s)>]+)"
    r"|(?<![\w.])@(?P<user>[a-z]+)\b"
    r"|(?<![\w&])#(?P<chan>[a-z][a-z-]+[a-z])"
    r"|(?<![\w*])\*(?P<bold>[^*\n]+)\*(?![\w*])"
    r"|(?<![\w:])(?P<emoji>:[a-z][a-z0-9_+-]*:)",
    re.S,
)


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_mrkdwn(src: str, channel_ids: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """Light markup -> (Slack mrkdwn text, rich_text block elements)."""
    src = re.sub(r"ZD#(\d+)", r"[#\1](https://acme.zendesk.com/agent/tickets/\1)", src)
    src = src.replace("&amp;", "&")  # authors may write either
    out: list[str] = []
    sections: list[dict[str, Any]] = []
    cur: list[dict[str, Any]] = []

    def add_text(t: str, style: dict[str, bool] | None = None) -> None:
        if not t:
            return
        if style is None and cur and cur[-1]["type"] == "text" and "style" not in cur[-1]:
            cur[-1]["text"] += t
            return
        el: dict[str, Any] = {"type": "text", "text": t}
        if style:
            el["style"] = style
        cur.append(el)

    def flush() -> None:
        if cur:
            sections.append({"type": "rich_text_section", "elements": list(cur)})
            cur.clear()

    pos = 0
    for m in TOKEN.finditer(src):
        plain = src[pos:m.start()]
        out.append(esc(plain))
        add_text(plain)
        pos = m.end()
        g = m.lastgroup
        if g == "pre":
            flush()
            out.append("```" + esc(m["pre"]) + "```")
            sections.append({"type": "rich_text_preformatted", "elements": [{"type": "text", "text": m["pre"]}], "border": 0})
        elif g == "code":
            out.append("`" + esc(m["code"]) + "`")
            add_text(m["code"], {"code": True})
        elif g == "lurl":
            out.append(f"<{m['lurl']}|{esc(m['ltext'])}>")
            cur.append({"type": "link", "url": m["lurl"], "text": m["ltext"]})
        elif g == "url":
            url = m["url"]
            trail = ""
            while url[-1] in ".,;:":
                trail = url[-1] + trail
                url = url[:-1]
            out.append(f"<{url}>" + esc(trail))
            cur.append({"type": "link", "url": url})
            add_text(trail)
        elif g == "user":
            if m["user"] in SLACK_USERS:
                out.append(f"<@{uid(m['user'])}>")
                cur.append({"type": "user", "user_id": uid(m["user"])})
            else:
                out.append(esc(m.group(0)))
                add_text(m.group(0))
        elif g == "chan":
            if m["chan"] in channel_ids:
                out.append(f"<#{channel_ids[m['chan']]}|{m['chan']}>")
                cur.append({"type": "channel", "channel_id": channel_ids[m["chan"]]})
            else:
                out.append(esc(m.group(0)))
                add_text(m.group(0))
        elif g == "bold":
            out.append("*" + esc(m["bold"]) + "*")
            add_text(m["bold"], {"bold": True})
        elif g == "emoji":
            out.append(m["emoji"])
            cur.append({"type": "emoji", "name": m["emoji"].strip(":")})
    tail = src[pos:]
    out.append(esc(tail))
    add_text(tail)
    flush()
    return "".join(out), sections


# --------------------------------------------------------------------------- Slack build


class Clock:
    """Deterministic random helpers (one RNG for the whole run)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def block_id(self) -> str:
        return "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=/") for _ in range(5))

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        u = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[self.rng.randrange(4)]}{h[17:20]}-{h[20:]}"
        return u.upper() if self.rng.random() < 0.3 else u  # iOS clients send upper case


def ts_str(t: datetime, micro: int) -> str:
    return f"{int(t.timestamp())}.{micro:06d}"


def ts_float(ts: str) -> float:
    return float(ts)


def weekday_morning(t: datetime, rng: random.Random) -> datetime:
    while t.weekday() >= 5:
        t = (t + timedelta(days=1)).replace(hour=8, minute=0)
    if t.hour < 7:
        t = t.replace(hour=7, minute=rng.randrange(60))
    if t.hour >= 17:
        t = (t + timedelta(days=1)).replace(hour=8, minute=rng.randrange(60))
        return weekday_morning(t, rng)
    return t


def user_profile(alias: str) -> dict[str, Any]:
    i, name, real, _title, _kind = SLACK_USERS[alias]
    return {
        "avatar_hash": "g" + format(abs(hash_str(i)) % (16 ** 11), "011x"),
        "image_72": avatar_url(name),
        "first_name": real.split()[0],
        "real_name": real,
        "display_name": real,
        "team": TEAM_ID,
        "name": name,
        "is_restricted": False,
        "is_ultra_restricted": False,
    }


def avatar_url(name: str) -> str:
    return f"https://secure.gravatar.com/avatar/{hash_str(name):016x}{hash_str(name[::-1]):016x}.jpg?s=72&d=mm"


def hash_str(s: str) -> int:
    h = 1469598103934665603
    for ch in s.encode():
        h = ((h ^ ch) * 1099511628211) % (1 << 64)
    return h


def permalink(channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    url = f"https://{WORKSPACE_DOMAIN}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        url += f"?thread_ts={thread_ts}&cid={channel_id}"
    return url


def bot_blocks(bot: dict[str, Any], req: str, c: Clock) -> list[dict[str, Any]]:
    fields = bot["fields"]
    if bot["style"] == "section":
        text = "\n".join(f"*{k}:* {v}" for k, v in fields)
        return [
            {"type": "section", "block_id": c.block_id(), "text": {"type": "mrkdwn", "text": esc(text), "verbatim": False}},
            {"type": "context", "block_id": c.block_id(), "elements": [
                {"type": "mrkdwn", "text": f"Submitted by <@{uid(req)}> via *Case intake*", "verbatim": False}]},
        ]
    if bot["style"] == "fields":
        short = [(k, v) for k, v in fields if k != "Problem"]
        problem = dict(fields)["Problem"]
        customer = dict(fields)["Customer"]
        return [
            {"type": "header", "block_id": c.block_id(), "text": {"type": "plain_text", "text": f":rotating_light: New case: {customer}", "emoji": True}},
            {"type": "section", "block_id": c.block_id(), "fields": [
                {"type": "mrkdwn", "text": f"*{k}:*\n{esc(v)}", "verbatim": False} for k, v in short]},
            {"type": "section", "block_id": c.block_id(), "text": {"type": "mrkdwn", "text": f"*Problem:*\n{esc(problem)}", "verbatim": False}},
            {"type": "context", "block_id": c.block_id(), "elements": [
                {"type": "mrkdwn", "text": f"Submitted by <@{uid(req)}>", "verbatim": False}]},
        ]
    # rich_text
    els: list[dict[str, Any]] = []
    for k, v in fields:
        els.append({"type": "text", "text": f"{k}: ", "style": {"bold": True}})
        els.append({"type": "text", "text": v + "\n"})
    els.append({"type": "text", "text": "Submitted by "})
    els.append({"type": "user", "user_id": uid(req)})
    return [{"type": "rich_text", "block_id": c.block_id(), "elements": [{"type": "rich_text_section", "elements": els}]}]


def build_slack(c: Clock) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    rng = c.rng
    channel_ids = {name: ch["id"] for name, ch in CHANNELS.items()}
    msgs_by_ch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    info: dict[str, dict[str, Any]] = {}  # thread key -> facts for reports and ticket links
    used_ts: dict[str, set[str]] = defaultdict(set)
    counts = {name: sum(1 for it in SLACK_ITEMS if it["ch"] == name and it["kind"] != "joins") for name in CHANNELS}
    seen = {name: 0 for name in CHANNELS}

    def new_ts(ch: str, t: datetime) -> str:
        while True:
            ts = ts_str(t, rng.randrange(1_000_000))
            if ts not in used_ts[ch]:
                used_ts[ch].add(ts)
                return ts

    def base_msg(alias: str, src: str, ts: str, ch: str) -> dict[str, Any]:
        text, sections = render_mrkdwn(src, channel_ids)
        m: dict[str, Any] = {"client_msg_id": c.uuid(), "type": "message", "text": text, "user": uid(alias), "ts": ts}
        if rng.random() < 0.6:
            m["blocks"] = [{"type": "rich_text", "block_id": c.block_id(), "elements": sections}]
        m["team"] = TEAM_ID
        if rng.random() < 0.35:
            m["user_team"] = TEAM_ID
            m["source_team"] = TEAM_ID
            m["user_profile"] = user_profile(alias)
        return m

    for item in SLACK_ITEMS:
        ch = item["ch"]
        if item["kind"] == "joins":
            t = START - timedelta(hours=1)
            for a in item["users"]:
                t += timedelta(minutes=rng.randrange(1, 9), seconds=rng.randrange(60))
                ts = new_ts(ch, t)
                msgs_by_ch[ch].append({"type": "message", "subtype": "channel_join", "user": uid(a),
                                       "text": f"<@{uid(a)}> has joined the channel", "ts": ts})
            continue
        # Spread the channel's items evenly over the business days, in list order.
        pos = (seen[ch] + rng.uniform(0.1, 0.9)) / counts[ch] * len(BUSINESS_DAYS)
        seen[ch] += 1
        t0 = BUSINESS_DAYS[int(pos)] + timedelta(hours=8 + 9 * (pos - int(pos)))
        if item["kind"] == "bot_add":
            ts = new_ts(ch, t0)
            msgs_by_ch[ch].append({"type": "message", "subtype": "bot_add", "user": uid(item["user"]), "bot_id": BOT_IDS["zdbot"],
                                   "text": f"added an integration to this channel: <https://{WORKSPACE_DOMAIN}.slack.com/services/{BOT_IDS['zdbot']}|Zendesk>",
                                   "ts": ts})
            continue
        if item["kind"] == "plain":
            m = base_msg(item["user"], item["text"], new_ts(ch, t0), ch)
            if item["user"] == "tom":
                m["reactions"] = [{"name": "eyes", "users": [uid("raj"), uid("maya")], "count": 2}]
            msgs_by_ch[ch].append(m)
            continue
        if item["kind"] == "tombstone":
            root_ts = new_ts(ch, t0)
            t = t0
            replies = []
            for a, txt in item["replies"]:
                t += timedelta(minutes=rng.randrange(3, 30), seconds=rng.randrange(60))
                r = base_msg(a, txt, new_ts(ch, t), ch)
                r["thread_ts"] = root_ts
                r["parent_user_id"] = uid(item["user"])
                replies.append(r)
            root = {"type": "message", "subtype": "tombstone", "hidden": True, "user": uid(item["user"]),
                    "text": "This message was deleted.", "ts": root_ts, "thread_ts": root_ts,
                    "reply_count": len(replies), "reply_users_count": len({r["user"] for r in replies}),
                    "latest_reply": replies[-1]["ts"], "reply_users": list(dict.fromkeys(r["user"] for r in replies)),
                    "replies": [{"user": r["user"], "ts": r["ts"]} for r in replies], "is_locked": False, "subscribed": False}
            msgs_by_ch[ch].extend([root, *replies])
            info["TOMBSTONE"] = {"ch": ch, "ts": root_ts, "fam": None, "resolved": False, "cross_day": False}
            continue

        # ---- a thread
        t = t0
        msgs_spec = item["msgs"]
        root_alias = msgs_spec[0][0]
        req = item.get("req") or root_alias
        built: list[dict[str, Any]] = []
        fixes: list[int] = []
        cross = False
        for i, spec in enumerate(msgs_spec):
            alias, src = spec[0], spec[1]
            flags = spec[2] if len(spec) > 2 else ""
            days = next((int(f) for f in flags if f.isdigit()), 0)
            if i > 0:
                if days:
                    cross = True
                    t = (t0 + timedelta(days=days)).replace(hour=8, minute=30) + timedelta(minutes=rng.randrange(0, 150), seconds=rng.randrange(60))
                else:
                    t += timedelta(minutes=rng.randrange(2, 40), seconds=rng.randrange(60))
            ts = new_ts(ch, t)
            if alias == "casebot":
                m = {"type": "message", "subtype": "bot_message", "text": "", "ts": ts, "bot_id": BOT_IDS["casebot"],
                     "username": "Case intake",
                     "bot_profile": {"id": BOT_IDS["casebot"], "deleted": False, "name": "Case intake", "updated": 1712131200,
                                     "app_id": APP_IDS["casebot"],
                                     "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/workflow_builder/service_36.png",
                                               "image_48": "https://a.slack-edge.com/80588/img/plugins/workflow_builder/service_48.png",
                                               "image_72": "https://a.slack-edge.com/80588/img/plugins/workflow_builder/service_72.png"},
                                     "team_id": TEAM_ID},
                     "blocks": bot_blocks(item["bot"], req, c), "team": TEAM_ID}
            else:
                m = base_msg(alias, src, ts, ch)
            if "E" in flags:
                m["edited"] = {"user": m["user"], "ts": ts_str(t + timedelta(seconds=rng.randrange(40, 600)), 0)}
            if "A" in flags:
                f = dict(item["file"])
                fid = f.pop("id")
                m["files"] = [{"id": fid, "created": int(t.timestamp()), "timestamp": int(t.timestamp()), **f,
                               "user": uid(alias), "user_team": TEAM_ID, "editable": False, "mode": "hosted", "is_external": False,
                               "external_type": "", "is_public": not CHANNELS[ch]["private"], "public_url_shared": False,
                               "url_private": f"https://files.slack.com/files-pri/{TEAM_ID}-{fid}/{f['name']}",
                               "url_private_download": f"https://files.slack.com/files-pri/{TEAM_ID}-{fid}/download/{f['name']}",
                               "permalink": f"https://{WORKSPACE_DOMAIN}.slack.com/files/{uid(alias)}/{fid}/{f['name']}"}]
                m["upload"] = False
                m["display_as_bot"] = False
            if "B" in flags:
                m["subtype"] = "thread_broadcast"
            if "F" in flags:
                fixes.append(i)
            built.append(m)

        root, replies = built[0], built[1:]
        root_user = root.get("user", uid("casebot"))
        root["thread_ts"] = root["ts"]
        for r in replies:
            r["thread_ts"] = root["ts"]
            r["parent_user_id"] = root_user
        # replies field order as in real exports
        meta = {"reply_count": len(replies), "reply_users_count": len({r["user"] for r in replies}),
                "latest_reply": replies[-1]["ts"], "reply_users": list(dict.fromkeys(r["user"] for r in replies)),
                "replies": [{"user": r["user"], "ts": r["ts"]} for r in replies], "is_locked": False, "subscribed": False}
        root.update(meta)

        res = item["res"]
        if res and res != "close":
            if res.startswith("root:"):
                name = res.split(":", 1)[1]
                root["reactions"] = [{"name": name, "users": [uid(req)], "count": 1}]
            else:
                for i in fixes:
                    users = [uid(req)]
                    if rng.random() < 0.4:
                        other = next((b["user"] for b in built if b.get("user") not in (uid(req), built[i].get("user"), None)), None)
                        if other:
                            users.append(other)
                    built[i]["reactions"] = [{"name": res, "users": users, "count": len(users)}]
                    if rng.random() < 0.3:
                        built[i]["reactions"].append({"name": "pray", "users": [uid(req)], "count": 1})
        elif res is None and rng.random() < 0.5:
            watcher = "raj" if ch != MS else "lena"
            root["reactions"] = [{"name": "eyes", "users": [uid(watcher)], "count": 1}]
        msgs_by_ch[ch].extend(built)
        info[item["key"]] = {"ch": ch, "ts": root["ts"], "fam": item["fam"], "resolved": res is not None, "cross_day": cross,
                             "bot": "bot" in item, "reply_ts": [r["ts"] for r in replies]}

    for ch in msgs_by_ch:
        msgs_by_ch[ch].sort(key=lambda m: ts_float(m["ts"]))
    return msgs_by_ch, info


def slack_users_json() -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for alias, (i, name, real, title, kind) in SLACK_USERS.items():
        first, _, last = real.partition(" ")
        u: dict[str, Any] = {"id": i, "team_id": TEAM_ID, "name": name, "deleted": kind == "deleted", "color": format(hash_str(name) % 0xFFFFFF, "06x"),
                             "real_name": real, "tz": "Europe/Berlin" if alias in ("lena", "jonas", "priya") else "America/New_York",
                             "tz_label": "Central European Summer Time" if alias in ("lena", "jonas", "priya") else "Eastern Daylight Time",
                             "tz_offset": 7200 if alias in ("lena", "jonas", "priya") else -14400}
        profile: dict[str, Any] = {"title": title, "phone": "", "skype": "", "real_name": real, "real_name_normalized": real,
                                   "display_name": real if kind != "bot" else "", "display_name_normalized": real if kind != "bot" else "",
                                   "fields": None, "status_text": "", "status_emoji": "",
                                   "avatar_hash": "g" + format(hash_str(i) % (16 ** 11), "011x"),
                                   "image_72": avatar_url(name),
                                   "first_name": first, "last_name": last, "team": TEAM_ID}
        if kind == "bot":
            profile["bot_id"] = BOT_IDS[alias]
            profile["api_app_id"] = APP_IDS[alias]
            profile["always_active"] = True
            profile["first_name"] = real
            profile["last_name"] = ""
        elif kind != "deleted":
            profile["email"] = f"{name}@acme.io"
        u["profile"] = profile
        u.update({"is_admin": alias in ("raj", "priya"), "is_owner": alias == "raj", "is_primary_owner": False,
                  "is_restricted": False, "is_ultra_restricted": False, "is_bot": kind == "bot", "is_app_user": False,
                  "is_workflow_bot": alias == "casebot", "updated": 1712131200 + len(users) * 86400,
                  "is_email_confirmed": kind not in ("bot",), "who_can_share_contact_card": "EVERYONE"})
        if kind == "deleted":
            u["is_bot"] = False
            u["deleted"] = True
        users.append(u)
    return users


def channel_json(name: str) -> dict[str, Any]:
    ch = CHANNELS[name]
    creator = uid(ch["creator"])
    created = CHANNEL_CREATED[name]
    return {
        "id": ch["id"], "name": name, "created": created, "creator": creator, "is_archived": False,
        "is_general": False, "members": sorted(uid(a) for a in ch["members"]),
        "topic": {"value": ch["topic"], "creator": creator, "last_set": created + 3600},
        "purpose": {"value": ch["purpose"], "creator": creator, "last_set": created},
        **({"is_private": True} if ch["private"] else {}),
    }


# --------------------------------------------------------------------------- Zendesk build

DOW = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def quote_header(t: datetime, name: str) -> str:
    h = t.hour % 12 or 12
    ampm = "AM" if t.hour < 12 else "PM"
    return f"On {DOW[t.weekday()]}, {MON[t.month - 1]} {t.day}, {t.year} at {h}:{t.minute:02d} {ampm} {name} <support@acme.zendesk.com> wrote:"


URL_RE = re.compile(r"https?://[^\s<]+[^\s<.,;:)]")


def html_inline(s: str) -> str:
    s = esc(s)
    return URL_RE.sub(lambda m: f'<a href="{m.group(0)}" rel="noopener noreferrer">{m.group(0)}</a>', s)


def to_html(body: str) -> str:
    if not body:
        return '<div class="zd-comment" dir="auto"></div>'
    parts: list[str] = []
    lines = body.split("\n")
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            parts.append("<p>" + "<br>".join(html_inline(x) for x in para) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            j = i + 1
            code = []
            while j < len(lines) and not lines[j].startswith("```"):
                code.append(lines[j])
                j += 1
            parts.append("<pre><code>" + esc("\n".join(code)) + "</code></pre>")
            i = j + 1
            continue
        if line.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append("<li>" + html_inline(lines[i][2:]) + "</li>")
                i += 1
            parts.append("<ul>" + "".join(items) + "</ul>")
            continue
        if line.startswith(">"):
            flush()
            q = []
            while i < len(lines) and lines[i].startswith(">"):
                q.append(lines[i][1:].lstrip(" "))
                i += 1
            parts.append('<blockquote class="gmail_quote">' + to_html("\n".join(q)).removeprefix('<div class="zd-comment" dir="auto">').removesuffix("</div>") + "</blockquote>")
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return '<div class="zd-comment" dir="auto">' + "".join(parts) + "</div>"


def to_plain(body: str) -> str:
    return "\n".join(x for x in body.split("\n") if not x.startswith("```")).strip()


def build_zendesk(c: Clock, slack_links: dict[str, str], slack_times: dict[str, datetime]) -> list[dict[str, Any]]:
    rng = c.rng
    # Tickets escalated to Slack: named in a thread (ZD#1234) or linking one ({slack:KEY}).
    slack_anchor: dict[int, datetime] = {}
    for item in SLACK_ITEMS:
        if item["kind"] == "thread":
            for tid in re.findall(r"ZD#(\d+)", item["msgs"][0][1]):
                slack_anchor[int(tid)] = slack_times[item["key"]]
    for tk in TICKETS:
        for spec in tk["comments"]:
            for key in re.findall(r"\{slack:(\w+)\}", spec[1]):
                slack_anchor.setdefault(tk["id"], slack_times[key])
    out = []
    step = SPAN_DAYS / len(TICKETS)
    comment_id = 38110000000001
    for n, tk in enumerate(TICKETS):
        created = weekday_morning(START + timedelta(hours=24 * step * n + rng.uniform(0, 20)), rng)
        anchor = slack_anchor.get(tk["id"])
        if anchor:  # escalated to a swarm thread: the ticket came first
            created = anchor - timedelta(minutes=rng.randrange(40, 300))
        created = created.replace(second=rng.randrange(60))
        rid, rname, remail, rtitle, rcompany, org = ZD_REQUESTERS[tk["req"]]
        t = created
        comments = []
        last_public: tuple[str, str, datetime] | None = None
        for k, spec in enumerate(tk["comments"]):
            who, body = spec[0], spec[1]
            flags = spec[2] if len(spec) > 2 else ""
            if k:
                t += timedelta(minutes=rng.randrange(20, 60 * 7), seconds=rng.randrange(60))
            for key in re.findall(r"\{slack:(\w+)\}", body):
                t = max(t, slack_times[key] + timedelta(minutes=rng.randrange(3, 30)))
            body = re.sub(r"\{slack:(\w+)\}", lambda m: slack_links[m.group(1)], body)
            public = "I" not in flags
            if who == "req":
                author = rid
                if "S" in flags:
                    body += f"\n\n--\n{rname}\n{rtitle}, {rcompany}"
                if "Q" in flags and last_public:
                    qname, qbody, qt = last_public
                    body += "\n\n" + quote_header(qt, qname) + "\n" + "\n".join(("> " + x).rstrip() for x in qbody.split("\n"))
                name = rname
            else:
                author, name = ZD_AGENTS[who]
                if public:
                    body += f"\n\nBest regards,\n{name.split()[0]}\nAcme Support"
            cm: dict[str, Any] = {"id": comment_id, "type": "Comment", "author_id": author, "body": body,
                                  "html_body": to_html(body), "plain_body": to_plain(body), "public": public,
                                  "audit_id": comment_id + 500000, "via": {"channel": tk["via"] if who == "req" else "web"},
                                  "created_at": iso(t), "attachments": []}
            if tk["id"] == 1015:
                cm["attachments"] = [{"id": 38120000000015, "file_name": "IMG_4412.png",
                                      "content_url": "https://acme.zendesk.com/attachments/token/Xq7pL2mN9vR4sT1w/?name=IMG_4412.png",
                                      "content_type": "image/png", "size": 284113, "inline": False}]
            comment_id += rng.randrange(1, 40)
            comments.append(cm)
            if public:
                last_public = (name, body, t)
        updated = t + timedelta(minutes=rng.randrange(2, 90)) if tk["status"] in ("solved", "closed", "hold", "pending") else t
        if tk["status"] == "closed":
            updated += timedelta(days=4)
        assignee = ZD_AGENTS[tk["assignee"]][0] if tk["assignee"] else None
        description = comments[0]["body"]
        ticket = {
            "url": f"https://{ZENDESK_SUBDOMAIN}.zendesk.com/api/v2/tickets/{tk['id']}.json",
            "id": tk["id"], "external_id": None,
            "via": {"channel": tk["via"], "source": {"from": {"address": remail, "name": rname} if tk["via"] == "email" else {}, "to": {}, "rel": None}},
            "created_at": iso(created), "updated_at": iso(updated), "type": tk["type"],
            "subject": tk["subject"], "raw_subject": tk["subject"], "description": description,
            "priority": tk["priority"], "status": tk["status"], "recipient": "support@acme.io" if tk["via"] == "email" else None,
            "requester_id": rid, "submitter_id": rid, "assignee_id": assignee, "organization_id": org,
            "group_id": ZD_GROUPS[tk["group"]], "collaborator_ids": [], "follower_ids": [], "has_incidents": False,
            "is_public": True, "tags": tk["tags"], "custom_fields": [],
            "satisfaction_rating": {"score": "good"} if tk["status"] in ("solved", "closed") and rng.random() < 0.4 else None,
            "comments": comments,
        }
        out.append(ticket)
    return out


def zendesk_users_json() -> dict[str, Any]:
    users = [{"id": i, "name": n, "email": f"{n.split()[0].lower()}@acme.io", "role": "agent"} for i, n in ZD_AGENTS.values()]
    users += [{"id": i, "name": n, "email": e, "role": "end-user", "organization_id": o} for i, n, e, _t, _c, o in ZD_REQUESTERS.values()]
    return {"users": users, "next_page": None, "previous_page": None, "count": len(users)}


# --------------------------------------------------------------------------- write


def dump_pretty(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def case_id(info: dict[str, Any]) -> str:
    return f"slack:{CHANNELS[info['ch']]['id']}:{info['ts']}"


README = """# casematch examples

Sample data written for the casematch project. Every company, person, ticket and message
here is fictional (Acme Cloud, Globex, Initech, Pied Piper, ...). Generated by
`python scripts/make_examples.py`, which reproduces this folder byte for byte: edit the
script, not the files.

## slack-export/

A Slack workspace export folder (today's schema) for the workspace `{domain}`
(permalinks `https://{domain}.slack.com/archives/<channel id>/p<ts without the dot>`).

- `users.json`: {n_users} users, including the *Case intake* Workflow Builder bot, a Zendesk
  bot and one deleted user.
- `channels.json` (public): {public}.
- `groups.json` (private): {private}.
- `dms.json`, `mpims.json`: empty.
- `<channel>/YYYY-MM-DD.json`: the messages of one channel and day.

{threads} threads (a root with replies): {resolved} resolved (a `white_check_mark`,
`heavy_check_mark` or `resolved` reaction on the fix or on the root, or the poster's closing
words such as "that fixed it, thanks!"), {unresolved} unresolved. {cross} threads have replies
in later days' files. {bot_threads} cases are posted by Workflow Builder with empty `text` and
the content only in `blocks`. Noise: channel joins, a `bot_add`, a deleted (`tombstone`)
parent, top-level messages without replies.

## zendesk/

- `tickets.ndjson`: a Zendesk full export, one ticket per line with its `comments` (internal
  notes, email replies with quoted text and signatures, HTML bodies, one empty ticket).
  {tickets} tickets: {statuses}.
- `users.json`: agents and end-users (`role`), to tell agent comments from requester ones.

## queries

- `queries.txt`: {nq} new cases for a demo, one per line, each a fresh paraphrase of a
  recurring problem.
- `queries.jsonl`: the same queries labelled with the resolved cases that answer them
  (`{{"query": ..., "relevant": [case ids]}}`), for evaluation.

Recurring problems (SSO audience mismatch, HTTP 429, webhook signatures, the iOS 5.12.1
crash on launch, Android push on Samsung/Xiaomi, ERR_SYNC_409, 2FA lockouts, leaked API
keys, ...) appear several times across Slack and Zendesk in different words, with the same
fix. Some tickets were escalated to a swarm thread and link to it.
"""


def main() -> int:
    c = Clock(SEED)
    for sub in ("slack-export", "zendesk"):
        if (OUT / sub).exists():
            shutil.rmtree(OUT / sub)
    OUT.mkdir(exist_ok=True)

    # Slack
    msgs_by_ch, info = build_slack(c)
    exp = OUT / "slack-export"
    dump_pretty(exp / "users.json", slack_users_json())
    dump_pretty(exp / "channels.json", [channel_json(n) for n in CHANNELS if not CHANNELS[n]["private"]])
    dump_pretty(exp / "groups.json", [channel_json(n) for n in CHANNELS if CHANNELS[n]["private"]])
    dump_pretty(exp / "dms.json", [])
    dump_pretty(exp / "mpims.json", [])
    for ch, msgs in msgs_by_ch.items():
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in msgs:
            day = datetime.fromtimestamp(ts_float(m["ts"]), UTC).strftime("%Y-%m-%d")
            by_day[day].append(m)
        for day, day_msgs in sorted(by_day.items()):
            dump_pretty(exp / ch / f"{day}.json", day_msgs)

    links = {k: permalink(CHANNELS[v["ch"]]["id"], v["ts"]) for k, v in info.items()}

    # Zendesk
    times = {k: datetime.fromtimestamp(ts_float(v["ts"]), UTC) for k, v in info.items()}
    tickets = build_zendesk(c, links, times)
    zd = OUT / "zendesk"
    zd.mkdir(parents=True, exist_ok=True)
    with (zd / "tickets.ndjson").open("w", encoding="utf-8") as f:
        for tk in tickets:
            f.write(json.dumps(tk, ensure_ascii=False, separators=(",", ":")) + "\n")
    dump_pretty(zd / "users.json", zendesk_users_json())

    # Queries
    fam_cases: dict[str, list[str]] = defaultdict(list)
    for v in info.values():
        if v["fam"] and v["resolved"]:
            fam_cases[v["fam"]].append(case_id(v))
    for tk in TICKETS:
        if tk["fam"] and tk["status"] in ("solved", "closed"):
            fam_cases[tk["fam"]].append(f"zendesk:{ZENDESK_SUBDOMAIN}:{tk['id']}")
    (OUT / "queries.txt").write_text("".join(q + "\n" for q, _ in QUERIES), encoding="utf-8")
    with (OUT / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q, fams in QUERIES:
            rel = [cid for fam in fams for cid in fam_cases[fam]]
            f.write(json.dumps({"query": q, "relevant": rel}, ensure_ascii=False) + "\n")

    # README with counts
    threads = list(info.values())
    statuses: dict[str, int] = defaultdict(int)
    for tk in TICKETS:
        statuses[tk["status"]] += 1
    order = ["new", "open", "pending", "hold", "solved", "closed"]
    (OUT / "README.md").write_text(README.format(
        domain=WORKSPACE_DOMAIN, n_users=len(SLACK_USERS),
        public=", ".join(f"`{n}` {CHANNELS[n]['id']}" for n in CHANNELS if not CHANNELS[n]["private"]),
        private=", ".join(f"`{n}` {CHANNELS[n]['id']}" for n in CHANNELS if CHANNELS[n]["private"]),
        threads=len(threads), resolved=sum(v["resolved"] for v in threads),
        unresolved=sum(not v["resolved"] for v in threads), cross=sum(v["cross_day"] for v in threads),
        bot_threads=sum(v.get("bot", False) for v in threads),
        tickets=len(TICKETS), statuses=", ".join(f"{statuses[s]} {s}" for s in order if statuses[s]),
        nq=len(QUERIES)), encoding="utf-8")
    print(f"wrote {OUT}: {len(threads)} Slack threads, {len(TICKETS)} tickets, {len(QUERIES)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
