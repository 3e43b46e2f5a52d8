"""Chunking, for any text: offsets point into the document, nothing is lost, chunks keep
to their size, and no chunk crosses a landmark."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.documents.chunking import chunk
from bastion.documents.parsing import Landmark, Parsed, parse

words = st.text(alphabet="abcdefgh XYZ.\n;1234", min_size=0, max_size=60)


@st.composite
def documents(draw: st.DrawFn) -> Parsed:
    parts = draw(st.lists(words, min_size=1, max_size=30))
    text = "".join(parts)
    offsets = draw(st.lists(st.integers(0, max(0, len(text) - 1)), max_size=6))
    marks = [Landmark(o, f"## h{i}") for i, o in enumerate(sorted(set(offsets)))]
    return Parsed("doc", "text", text, "d", marks)


@settings(max_examples=300, deadline=None)
@given(documents(), st.integers(200, 600), st.integers(0, 150))
def test_chunks_cover_the_text_within_their_sections(doc: Parsed, size: int, overlap: int) -> None:
    chunks = chunk(doc, size, overlap)
    covered = [False] * len(doc.text)
    cuts = sorted({m.offset for m in doc.landmarks})
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text and c.text.strip()
        assert len(c.text) <= size
        assert not any(c.start < cut < c.end for cut in cuts)  # never across a landmark
        for i in range(c.start, c.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(doc.text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("C", "Z"), blacklist_characters="#"),
            min_size=1,
            max_size=40,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_markdown_headings_become_locations(titles: list[str]) -> None:
    text = "".join(f"## {t}\n\nbody {i}\n\n" for i, t in enumerate(titles))
    (doc,) = parse("a.md", text.encode())
    for i, c in enumerate(c for c in chunk(doc) if "body" in c.text):
        assert c.location == f"## {titles[i].strip()}"
