"""Reading documents: Markdown, plain text, HTML, PDF and JSONL into text with landmarks.

Each format becomes one or more :class:`Parsed` documents: the text that is indexed
(and that chunk offsets point into) and its *landmarks* — the offsets where a heading,
an article or a page begins, with how a citation names that place ("## Scope",
"Art. 17", "p. 4"). The chunker (:mod:`bastion.documents.chunking`) cuts at those
places and gives each chunk the location in force where it starts.

Libraries: pypdf for PDF (one landmark per page); the standard library's
``html.parser`` for HTML (headings become landmarks; scripts and styles are dropped);
Markdown is read line by line for ATX headings (``#`` … ``######``) — no renderer is
needed to find them, and the text stays as the author wrote it.

Every parse error is a :class:`MalformedDocument` that says where (a JSONL line, a PDF
that pypdf cannot open); an unknown extension is :class:`UnsupportedFormat`.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from bastion.documents.errors import EmptyDocument, MalformedDocument, UnsupportedFormat

FORMATS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
MAX_JSONL_FIELD = 200  # characters of a metadata value kept in a location

#: "Article 17", "Art. 17", "ARTICLE 5a" at the start of a line: a landmark in any text.
_ARTICLE = re.compile(r"^[ \t]*(?:Article|ARTICLE|Art\.)[ \t]+(\d+[a-z]?)\b", re.M)
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


@dataclass(frozen=True)
class Landmark:
    offset: int
    location: str
    #: Higher levels end lower ones ("Art. 5" ends "## b"); pages are their own track.
    kind: str = "heading"


@dataclass
class Parsed:
    name: str
    format: str
    text: str
    digest: str
    landmarks: list[Landmark] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def format_of(filename: str, declared: str | None = None) -> str:
    if declared:
        if declared not in set(FORMATS.values()):
            raise UnsupportedFormat(
                f"format {declared!r} is not supported; use one of "
                f"{', '.join(sorted(set(FORMATS.values())))}"
            )
        return declared
    suffix = PurePath(filename).suffix.lower()
    found = FORMATS.get(suffix)
    if found is None:
        raise UnsupportedFormat(
            f"{filename!r}: Bastion reads {', '.join(sorted(FORMATS))} files; "
            "convert it or name its format"
        )
    return found


def parse(filename: str, data: bytes, declared: str | None = None) -> list[Parsed]:
    """The documents in one upload (a JSONL file holds many)."""
    kind = format_of(filename, declared)
    name = PurePath(filename).name or filename
    if kind == "pdf":
        return [_pdf(name, data)]
    text = _decode(name, data)
    if kind == "jsonl":
        return _jsonl(name, text)
    if kind == "markdown":
        doc = _markdown(name, text)
    elif kind == "html":
        doc = _html(name, text)
    else:
        doc = Parsed(name, "text", text, sha256(data), _articles(text))
    doc.digest = sha256(data)
    _require_text(doc)
    return [doc]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedDocument(
            f"{name!r} is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8",
            document=name,
        ) from exc
    if "\x00" in text:
        raise MalformedDocument(f"{name!r} holds NUL bytes: it is not a text file", document=name)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(doc: Parsed) -> None:
    if not doc.text.strip():
        raise EmptyDocument(f"{doc.name!r} has no text to index", document=doc.name)


def _articles(text: str, base: int = 0) -> list[Landmark]:
    return [
        Landmark(base + m.start(), f"Art. {m.group(1)}", "article") for m in _ARTICLE.finditer(text)
    ]


# --- Markdown ---------------------------------------------------------------------------


def _markdown(name: str, text: str) -> Parsed:
    marks = []
    in_fence = False
    offset = 0
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence:
            m = _MD_HEADING.match(line)
            if m:
                marks.append(Landmark(offset, f"{m.group(1)} {m.group(2).strip()}"))
        offset += len(line) + 1
    marks.extend(_articles(text))
    marks.sort(key=lambda m: m.offset)
    return Parsed(name, "markdown", text, "", marks)


# --- HTML -------------------------------------------------------------------------------

_BLOCKS = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "li",
        "ul",
        "ol",
        "table",
        "tr",
        "br",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "blockquote",
        "dt",
        "dd",
        "title",
    ]
)
_SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.marks: list[Landmark] = []
        self._skip = 0
        self._heading: tuple[int, int] | None = None  # (level, offset)
        self.title = ""
        self._in_title = False

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _break(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self._emit("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED:
            self._skip += 1
            return
        if tag in _BLOCKS:
            self._break()
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._heading = (int(tag[1]), self.length)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
            return
        if self._heading is not None and len(tag) == 2 and tag[0] == "h":
            level, start = self._heading
            heading = " ".join("".join(self.parts)[start:].split())
            if heading:
                self.marks.append(Landmark(start, f"{'#' * level} {heading}"))
            self._heading = None
        if tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._skip:
            return
        collapsed = re.sub(r"[ \t\r\n\f]+", " ", data)
        if collapsed.strip() or (self.parts and not self.parts[-1].endswith((" ", "\n"))):
            self._emit(collapsed)


def _html(name: str, text: str) -> Parsed:
    parser = _HTMLText()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError) as exc:  # html.parser's own complaints
        raise MalformedDocument(f"{name!r} is not readable HTML: {exc}", document=name) from exc
    body = "".join(parser.parts)
    # Lines trimmed and blank runs dropped; landmarks move with the lines they mark.
    out: list[str] = []
    starts: list[int] = []  # each original line's offset
    moved_to: list[int] = []  # and where that line begins in the clean text
    old_pos = new_len = 0
    for line in body.split("\n"):
        starts.append(old_pos)
        moved_to.append(new_len)
        clean = line.strip()
        if clean:
            out.append(clean)
            new_len += len(clean) + 1
        old_pos += len(line) + 1

    def moved(old: int) -> int:
        return moved_to[max(0, bisect.bisect_right(starts, old) - 1)]

    clean_text = "\n".join(out).strip("\n")
    marks = [Landmark(moved(m.offset), m.location, m.kind) for m in parser.marks]
    marks.extend(_articles(clean_text))
    marks.sort(key=lambda m: m.offset)
    meta = {"title": " ".join(parser.title.split())} if parser.title.strip() else {}
    return Parsed(name, "html", clean_text, "", marks, meta)


# --- PDF --------------------------------------------------------------------------------


def _pdf(name: str, data: bytes) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PdfStreamError

    if not data.startswith(b"%PDF"):
        raise MalformedDocument(f"{name!r} is not a PDF (it does not start with %PDF)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise MalformedDocument(f"{name!r} is encrypted: give Bastion an unlocked copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except MalformedDocument:
        raise
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, OSError) as exc:
        raise MalformedDocument(f"{name!r} is not a readable PDF: {exc}", document=name) from exc
    parts: list[str] = []
    marks: list[Landmark] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        page_text = page.replace("\r\n", "\n").strip()
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        marks.append(Landmark(offset, f"p. {number}", "page"))
        marks.extend(_articles(page_text, offset))
        parts.append(page_text)
        offset += len(page_text)
    doc = Parsed(name, "pdf", "".join(parts), sha256(data), marks, {"pages": len(pages)})
    _require_text(doc)
    return doc


# --- JSONL ------------------------------------------------------------------------------

_NAME_FIELDS = ("id", "name", "title")


def _jsonl(name: str, text: str) -> list[Parsed]:
    """One document per line: ``text`` (required); ``id``/``name``/``title`` name it;
    every other scalar field is metadata. ``article`` and ``page`` set the location,
    prefixed by ``regulation_name`` or ``source`` when present (``GDPR Art. 17``)."""
    docs: list[Parsed] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedDocument(
                f"{name!r} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})",
                document=name,
                line=lineno,
            ) from exc
        if not isinstance(row, dict):
            raise MalformedDocument(
                f"{name!r} line {lineno}: each line must be a JSON object", line=lineno
            )
        body = row.get("text")
        if not isinstance(body, str) or not body.strip():
            raise MalformedDocument(
                f"{name!r} line {lineno}: a non-empty string field 'text' is required",
                line=lineno,
            )
        meta = {
            k: v
            for k, v in row.items()
            if k != "text" and (v is None or isinstance(v, str | int | float | bool))
        }
        doc_name = next(
            (str(row[f]) for f in _NAME_FIELDS if isinstance(row.get(f), str | int) and row[f]),
            f"{name}#{lineno}",
        )[:500]
        if doc_name in seen:
            raise MalformedDocument(
                f"{name!r} line {lineno}: document {doc_name!r} already given on line "
                f"{seen[doc_name]}; each line needs its own id",
                line=lineno,
            )
        seen[doc_name] = lineno
        body = body.replace("\r\n", "\n")
        prefix = str(row.get("regulation_name") or row.get("source") or "")[:MAX_JSONL_FIELD]
        place = ""
        if row.get("article") not in (None, ""):
            place = f"Art. {row['article']}"
        elif row.get("page") not in (None, ""):
            place = f"p. {row['page']}"
        location = " ".join(p for p in (prefix, place) if p) or doc_name
        marks = [Landmark(0, location, "document")]
        canonical = json.dumps({"text": body, "meta": meta}, sort_keys=True, ensure_ascii=False)
        docs.append(
            Parsed(
                doc_name, "jsonl", body, sha256(canonical.encode()), marks, meta | {"line": lineno}
            )
        )
    if not docs:
        raise EmptyDocument(f"{name!r} has no JSON lines", document=name)
    return docs
