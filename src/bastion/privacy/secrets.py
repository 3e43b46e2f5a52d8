"""Credentials in text: cloud keys, SaaS tokens, JWTs, private keys, passwords.

One :class:`SecretRecognizer` finds them all in a few passes over the text:

1. **Tokens.** One regex finds every run of 16 or more token characters (letters,
   digits, ``+/=_.~-``), which ordinary prose rarely has. Each run is then matched,
   anchored, against the provider formats (:data:`FORMATS`, one combined regex with a
   named group per format), checked as a JWT (its header must decode to a JSON object),
   or, failing both, kept as ``SECRET_GENERIC`` when it is random-looking (Shannon
   entropy, letters and digits mixed) *and* a keyword (``key``, ``token``, ``secret``,
   ``password``, ``auth``, ``bearer`` …) stands just before it.
2. **Private keys.** ``-----BEGIN … PRIVATE KEY-----`` blocks, whole (the body too, in
   real or JSON-escaped newlines, as in a GCP service-account file).
3. **Passwords.** The password of a URL with credentials (``scheme://user:pass@``),
   and the value after ``password``, ``pwd``, ``passphrase`` … (connection strings,
   configuration, prose), found only when the lowercased text holds such a word.
   Only the password part is a finding: the user and host stay readable.

The provider formats are Yelp's ``detect-secrets`` plugins' (AWS, GitHub, GitLab,
Slack, Stripe, OpenAI, npm, Twilio, SendGrid, JWT, private keys, basic auth, Azure
storage keys), widened where providers have since added formats (GitHub fine-grained
tokens, OpenAI project keys, Stripe test and restricted keys, npm's ``npm_`` tokens) and
joined by the ones it lacks (Anthropic, Hugging Face, GCP, Azure AD, and other LLM
providers). Its scanner is not called: it works line by line, returns values without
offsets and runs every plugin's regexes over every line, several times slower than the
whole masking pass it would be added to (see docs/privacy.md). The patterns are
compiled here into one regex run once per candidate token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterator

from bastion.privacy import entities as E
from bastion.privacy.entities import Span

#: Provider formats, each a named group: the entity type is the name up to ``__``.
#: Anchored at a candidate token's start; each must end where the token ends (or at a
#: character that cannot continue it), so a format is never found inside a longer word.
FORMATS: tuple[tuple[str, str], ...] = (
    # detect-secrets AWSKeyDetector
    ("SECRET_AWS__id", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    # not in detect-secrets
    ("SECRET_GCP__api", r"AIza[0-9A-Za-z_-]{35}"),
    ("SECRET_GCP__oauth", r"GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{20,}"),
    # detect-secrets AzureStorageKeyDetector (the key itself; AccountKey= is context)
    ("SECRET_AZURE__ad", r"[A-Za-z0-9_~.-]{3}8Q~[A-Za-z0-9_~.-]{31,34}"),
    # detect-secrets GitHubTokenDetector, plus fine-grained tokens
    ("SECRET_GITHUB__classic", r"gh[pousr]_[A-Za-z0-9_]{36,255}"),
    ("SECRET_GITHUB__fine", r"github_pat_[A-Za-z0-9_]{60,255}"),
    # detect-secrets GitLabTokenDetector
    (
        "SECRET_GITLAB__token",
        r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_-]{20,1024}"
        r"|GR1348941[A-Za-z0-9_-]{20,50}",
    ),
    # detect-secrets SlackDetector (tokens; webhooks are found as URLs below)
    ("SECRET_SLACK__token", r"xox[abposre]-[A-Za-z0-9-]{10,250}|xapp-\d-[A-Za-z0-9-]{20,250}"),
    # detect-secrets StripeDetector, with test and restricted keys and webhook secrets
    ("SECRET_STRIPE__key", r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,255}|whsec_[A-Za-z0-9]{24,}"),
    # Anthropic before OpenAI: both begin sk-
    ("SECRET_ANTHROPIC__key", r"sk-ant-[A-Za-z0-9_-]{20,255}"),
    # detect-secrets OpenAIDetector (T3BlbkFJ is "OpenAI" in base64), plus project,
    # service-account and admin keys
    (
        "SECRET_OPENAI__key",
        r"sk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_-]{20,255}"
        r"|sk-[A-Za-z0-9_-]{10,}T3BlbkFJ[A-Za-z0-9_-]{10,}"
        r"|sk-[A-Za-z0-9]{48}",
    ),
    ("SECRET_HUGGINGFACE__token", r"hf_[A-Za-z0-9]{30,40}|api_org_[A-Za-z0-9]{30,40}"),
    # detect-secrets NpmDetector matches .npmrc lines; this is the token itself
    ("SECRET_NPM__token", r"npm_[A-Za-z0-9]{36}"),
    # detect-secrets TwilioKeyDetector (account and API key SIDs)
    ("SECRET_TWILIO__sid", r"(?:AC|SK)[0-9a-f]{32}"),
    # detect-secrets SendGridDetector
    ("SECRET_SENDGRID__key", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    # others: detect-secrets PypiTokenDetector and MailchimpDetector, and providers'
    # documented prefixes (Groq, xAI, Perplexity, Replicate, DigitalOcean, Databricks,
    # Shopify, Mailgun, Linear)
    (
        "SECRET_API_KEY__other",
        r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"
        r"|[0-9a-f]{32}-us[0-9]{1,2}"
        r"|gsk_[A-Za-z0-9]{48,}|xai-[A-Za-z0-9]{40,}|pplx-[A-Za-z0-9]{40,}"
        r"|r8_[A-Za-z0-9]{37}|dop_v1_[a-f0-9]{64}|dapi[a-f0-9]{32}(?:-\d)?"
        r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|key-[0-9a-f]{32}|lin_api_[A-Za-z0-9]{40}",
    ),
)
#: Characters that may continue a token; a format must not stop before one.
_TOKEN_CHARS = r"A-Za-z0-9+/=_.~-"
_TOKEN_BYTES = frozenset((string.ascii_letters + string.digits + "+/=_.~-").encode())
#: Token characters to ``a``, the rest to a space: a run of 16 ``a`` is a candidate.
#: (A regex finding the runs costs six times as much: it tries every word's start.)
_RUNS = bytes(0x61 if byte in _TOKEN_BYTES else 0x20 for byte in range(256))
_RUN = b"a" * 16
#: A format ends where its token does, or at a full stop or padding that ends it.
_FORMAT = re.compile(
    "(?:"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern in FORMATS)
    + r")(?![A-Za-z0-9+/_~-]|[.=][A-Za-z0-9])"
)
#: ``name=`` at a token's start: the value after it is the candidate.
_ASSIGNED = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}=(?!=)")
_FORMAT_TYPE = {name: name.partition("__")[0] for name, _ in FORMATS}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")

#: A keyword, its name's other characters (``aws_secret_access_key``, ``"apiKey"``) and a
#: separator, ending where a candidate starts.
_KEYWORD_BEFORE = re.compile(
    r"(?:key|token|secret|passw(?:or)?d|pwd|passphrase|credentials?|auth|bearer|signature"
    r"|sig|accountkey|apikey)[\w.-]{0,24}[\"']?\s*(?:[:=]|:=|=>|\bis\b|\s)?\s*[\"']?$",
)
#: How far before a candidate its keyword may begin.
_KEYWORD_REACH = 48
#: Minimum Shannon entropy (bits per character) of a generic secret: random base64 or
#: alphanumerics of 16+ characters score 3.5-5, hex 3-4; words and identifiers lower.
MIN_ENTROPY = 3.0

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?:.*?-----END \1-----|(?:\s|\\n|\\r|[A-Za-z0-9+/=:,-])*)",
    re.DOTALL,
)
#: ``scheme://user:password@``; the password may not hold ``@``, ``/`` or spaces.
_URL_PASSWORD = re.compile(r"://[^\s:/@]*:([^\s/@]+)@")
_SLACK_WEBHOOK = re.compile(
    r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
)
#: A password keyword (``Password``, ``DB_PASSWORD``, ``pwd``), a separator and a value:
#: quoted, or up to a space or a connection string's ``;``. Run over the text's
#: lowercased Latin-1 bytes (same offsets), where every branch begins with a literal "p"
#: that ``re`` finds in C; the value is then read from the text itself.
_PASSWORD = re.compile(
    rb"(?:passw(?:or)?d|pwd|passphrase|pass(?==))\w*[\"']?\s*"
    rb"(?P<sep>=>|:=|[:=]|\bis\b)\s*"
    rb"(?:\"(?P<dq>[^\"\n]{1,200})\"|'(?P<sq>[^'\n]{1,200})'|(?P<bare>[^\s;,&\"'<>]{3,200}))",
)
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_CODE = re.compile(r"[()\[\]{}]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
#: Values that stand for a password rather than being one.
_NOT_PASSWORDS = frozenset(
    [
        "none",
        "null",
        "nil",
        "true",
        "false",
        "empty",
        "required",
        "optional",
        "yes",
        "no",
        "password",
        "passwd",
        "pass",
        "secret",
        "changeme",
        "xxx",
        "xxxx",
        "xxxxx",
        "*****",
        "********",
        "your_password",
        "yourpassword",
        "example",
        "redacted",
        "hidden",
        "masked",
    ]
)

SCORE_FORMAT = 0.95
SCORE_PEM = 1.0
SCORE_JWT = 0.9
SCORE_URL_PASSWORD = 0.85
SCORE_PASSWORD = 0.8
SCORE_GENERIC = 0.7


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _is_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict)


def _mixed(token: str) -> bool:
    """Letters and digits mixed, and not a path or a URL."""
    if "/" in token and "." in token:
        return False
    return _DIGIT.search(token) is not None and _LETTER.search(token) is not None


def _placeholder(value: str) -> bool:
    v = value.strip()
    return v.casefold() in _NOT_PASSWORDS or v[:1] in "<{$%[" or len(set(v)) == 1


class SecretRecognizer:
    """Credentials of every kind in :data:`bastion.privacy.entities.SECRET_ENTITIES`."""

    name = "secrets"
    entities = frozenset(E.SECRET_ENTITIES)

    def find(self, text: str) -> Iterator[Span]:
        # One byte per character (any beyond Latin-1 becomes "?"), so offsets hold.
        raw = text.encode("latin-1", "replace")
        yield from self._tokens(text, raw.translate(_RUNS))
        if "-----BEGIN" in text:
            for m in _PEM.finditer(text):
                end = m.end()
                while end > m.start() and text[end - 1] in " \t\r\n":
                    end -= 1
                yield Span(
                    E.SECRET_PRIVATE_KEY,
                    m.start(),
                    end,
                    SCORE_PEM,
                    text[m.start() : end],
                    self.name,
                )
        if "://" in text:
            yield from self._urls(text)
        lowered = raw.lower()
        if b"pass" in lowered or b"pwd" in lowered:
            yield from self._passwords(text, lowered)

    def _tokens(self, text: str, runs: bytes) -> Iterator[Span]:
        at = runs.find(_RUN)
        while at != -1:
            start = runs.rfind(b" ", 0, at) + 1
            end = runs.find(b" ", at)
            if end == -1:
                end = len(runs)
            at = runs.find(_RUN, end)
            token = text[start:end]
            assigned = _ASSIGNED.match(token)
            if assigned is not None:  # key=AKIA…, api_key=…: the name is context
                token, start = token[assigned.end() :], start + assigned.end()
            fmt = _FORMAT.match(token)
            if fmt is not None and fmt.lastgroup is not None:
                yield Span(
                    _FORMAT_TYPE[fmt.lastgroup],
                    start,
                    start + fmt.end(),
                    SCORE_FORMAT,
                    fmt.group(),
                    self.name,
                )
                continue
            jwt = _JWT.match(token) if token.startswith("eyJ") else None
            if jwt is not None and _is_jwt(jwt.group()):
                yield Span(
                    E.SECRET_JWT, start, start + jwt.end(), SCORE_JWT, jwt.group(), self.name
                )
                continue
            value = token.rstrip(".")
            # Cheapest first: most long runs in prose are numbers, words or URLs.
            if len(value) < 16 or not _mixed(value):
                continue
            before = text[max(0, start - _KEYWORD_REACH) : start].lower()
            if _KEYWORD_BEFORE.search(before) is None or entropy(value) < MIN_ENTROPY:
                continue
            kind = E.SECRET_GENERIC
            if "aws" in before and len(value) == 40:
                kind = E.SECRET_AWS
            elif "accountkey" in before or "sharedaccesskey" in before or "azure" in before:
                kind = E.SECRET_AZURE
            yield Span(kind, start, start + len(value), SCORE_GENERIC, value, self.name)

    def _urls(self, text: str) -> Iterator[Span]:
        for m in _URL_PASSWORD.finditer(text):
            password = m.group(1)
            if not _placeholder(password):
                yield Span(
                    E.SECRET_PASSWORD, m.start(1), m.end(1), SCORE_URL_PASSWORD, password, self.name
                )
        if "hooks.slack.com" in text:
            for m in _SLACK_WEBHOOK.finditer(text):
                yield Span(E.SECRET_SLACK, m.start(), m.end(), SCORE_FORMAT, m.group(), self.name)

    def _passwords(self, text: str, lowered: bytes) -> Iterator[Span]:
        for m in _PASSWORD.finditer(lowered):
            group = (
                "dq" if m.group("dq") is not None else "sq" if m.group("sq") is not None else "bare"
            )
            value = text[m.start(group) : m.end(group)]
            if _placeholder(value):
                continue
            if group == "bare" and _CODE.search(value):
                continue  # password=self.password, password=config["PW"]: code, not a value
            if group == "bare" and m.group("sep") != b"=" and value.isalpha():
                continue  # "password: required", "the password is stored …": words, not one
            yield Span(
                E.SECRET_PASSWORD, m.start(group), m.end(group), SCORE_PASSWORD, value, self.name
            )
