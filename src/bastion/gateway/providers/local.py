"""The ``local`` provider: offline, deterministic answers and embeddings, no model.

Chat answers are extractive: the last user message is the question (or, when it holds
a ``Question:`` line or a ``Context:`` block, the part that is not context); every other
text in the conversation — system messages, earlier turns, tool results, the context
block — is split into sentences, the sentences are ranked by BM25 against the
question's content words, and the best one to three are returned verbatim, in their
original order. Without context (or without any sentence sharing a word with the
question) the answer restates the question, so that placeholders in a prompt can be
seen coming back in an answer.

Tools: a tool is called when ``tool_choice`` requires one, or under ``auto`` (the
default when tools are offered) when the question asks for one: it names a tool
(``search_docs``, "search docs"), names what a tool is about (the weather, for
``get_weather``), or asks for a tool ("use the tool", "call a function"). Its arguments
are filled deterministically from the question. Once the last message is a tool's
result, the answer is drawn from that result.

Embeddings, for a model whose ``upstream_model`` is ``all-MiniLM-L6-v2``: the real
sentence-embedding model, run offline (:mod:`bastion.gateway.providers.minilm`).
Otherwise embeddings hash words and character trigrams into a fixed number of dimensions (the
hashing trick, with signs), then L2-normalise; texts that share words are closer. The
hash is BLAKE2b, so vectors are the same in every process.

Same request, same answer: nothing here depends on time, randomness or the process,
except the ``id`` and ``created`` fields of the response.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import JSON, InProcessProvider, Target
from bastion.gateway.providers.minilm import MODEL_NAMES
from bastion.gateway.tokens import count_inputs, count_messages, count_text

#: ``upstream_model`` names the local provider answers with all-MiniLM-L6-v2 (int8 ONNX,
#: :mod:`bastion.gateway.providers.minilm`); any other name gets the hashed embedder.
MINILM_NAMES = MODEL_NAMES

EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 8192
MAX_SENTENCES = 3
#: A sentence joins the answer when it scores at least this share of the best one.
_RELATIVE_SCORE = 0.5
_WORDS_PER_CHUNK = 3

_STOPWORD_LIST = """a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you
    your yours yourself yourselves shall may must might please tell explain describe give
    answer question context"""
_STOPWORDS = frozenset(_STOPWORD_LIST.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[<]?[A-Z0-9])"  # end of a sentence
    r"|(?<=[;:])\s+(?=\([a-z0-9]{1,4}\)\s)"  # items of an enumeration: "; (b) ..."
)
_MARKER = re.compile(r"^\s*(?P<label>question|query|context|answer)\s*:\s*", re.I | re.M)


def _stem(word: str) -> str:
    for suffix, replacement in (
        ("ies", "y"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
        ("ly", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + replacement
    return word


def terms(text: str) -> list[str]:
    """Content words of a text: lowercased, stopwords out, lightly stemmed."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def split_sentences(text: str) -> list[str]:
    """Sentences of a text; lines are boundaries too, and fragments of under three
    words (list numbers, headings) are joined to the sentence that follows."""
    sentences: list[str] = []
    pending = ""
    for line in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)|\n", text):
        for piece in _SENTENCE_END.split(line):
            piece = " ".join(piece.split())
            if not piece:
                continue
            pending = f"{pending} {piece}".strip()
            if len(pending.split()) >= 3:
                sentences.append(pending)
                pending = ""
    if pending:
        sentences.append(pending)
    return sentences


# --- reading the prompt -----------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _asked(sentences: list[str]) -> str | None:
    questions = [s for s in sentences if s.rstrip("\"')").endswith("?")]
    return questions[-1] if questions else None


def _split_question(text: str) -> tuple[str, str]:
    """(question, context) of the last user message."""
    markers = list(_MARKER.finditer(text))
    if not markers:
        sentences = split_sentences(text)
        question = _asked(sentences)
        if question is not None and len(sentences) > 1:
            return question, "\n".join(s for s in sentences if s is not question)
        return " ".join(text.split()), ""
    sections: list[tuple[str, str]] = [("", text[: markers[0].start()])]
    for i, match in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        sections.append((match["label"].lower(), text[match.end() : end]))
    labelled = [body.strip() for label, body in sections if label in ("question", "query")]
    if labelled and labelled[-1]:
        context = [body for label, body in sections if label not in ("question", "query")]
        return " ".join(labelled[-1].split()), "\n".join(c.strip() for c in context)
    # No Question: label. The question is the last one asked, before or inside the
    # context block; failing that, whatever is not context (an instruction).
    rest = split_sentences("\n".join(b for label, b in sections if label != "context"))
    context = split_sentences("\n".join(b for label, b in sections if label == "context"))
    for pool in (rest, context):
        question = _asked(pool)
        if question is not None:
            return question, "\n".join(s for s in rest + context if s is not question)
    if rest:
        return " ".join(rest), "\n".join(context)
    return " ".join(context), ""


@dataclass(frozen=True)
class Prompt:
    question: str
    context: list[str]  # sentences, in the order they appear
    after_tool_result: bool


def read_prompt(messages: Any) -> Prompt:
    if not isinstance(messages, list) or not messages:
        raise UpstreamFailure("bad_request", "messages must be a non-empty list")
    last_user = max(
        (i for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "user"),
        default=None,
    )
    question = ""
    texts: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise UpstreamFailure("bad_request", "each message must be an object")
        text = _text(message.get("content"))
        if i == last_user:
            question, context = _split_question(text)
            texts.append(context)
        else:
            texts.append(text)
    seen: set[str] = set()
    sentences: list[str] = []
    for text in texts:
        for sentence in split_sentences(text):
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    last = messages[-1]
    return Prompt(question, sentences, isinstance(last, Mapping) and last.get("role") == "tool")


def extract_answer(question: str, sentences: list[str]) -> str:
    """The best one to three sentences for the question, by BM25, in original order."""
    if not sentences:
        return f"I have no context to answer: {question}" if question else "I have no question."
    query = set(terms(question))
    docs = [Counter(terms(s)) for s in sentences]
    avg_len = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    k1, b = 1.2, 0.75
    scores: list[float] = []
    for doc in docs:
        length = sum(doc.values())
        score = 0.0
        for term in query:
            tf = doc.get(term, 0)
            if not tf:
                continue
            df = sum(1 for d in docs if term in d)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))
        scores.append(score)
    best = max(scores)
    if best <= 0:
        return f"The context does not answer: {question}"
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen = [i for i in ranked[:MAX_SENTENCES] if scores[i] >= best * _RELATIVE_SCORE]
    return " ".join(sentences[i] for i in sorted(chosen))


_EMPTY_CONTEXT = re.compile(r"^\s*context\s*:\s*\Z", re.I | re.M)
_PASSAGE = re.compile(r"^\[(\d{1,3})\][ \t]*(?:\([^)\n]*\))?[ \t]*", re.M)


def numbered_passages(text: str) -> list[tuple[int, str]]:
    """Passages numbered ``[n]`` at the start of a line, each running to the next; a
    parenthesised label right after the number (its source) is not part of the text."""
    found = list(_PASSAGE.finditer(text))
    passages = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[match.end() : end].strip()
        if body:
            passages.append((int(match.group(1)), body))
    return passages


def _cite(sentence: str, n: int) -> str:
    """``sentence [n].``: the marker before the closing punctuation; a paragraph number
    that opens the sentence ("2. Where ...") is left out."""
    text = re.sub(r"^\(?\d{1,3}[.)]\s+", "", sentence.strip()).rstrip(";:, ")
    end = len(text)
    while end and text[end - 1] in ".!?\"')”’":
        end -= 1
    tail = text[end:]
    if not any(c in tail for c in ".!?"):
        tail += "."
    return f"{text[:end]} [{n}]{tail}"


def extract_cited_answer(question: str, passages: list[tuple[int, str]]) -> str:
    """The best one to three sentences of numbered passages, each followed by the number
    of the passage it comes from (``... [2].``), in the order the passages give them."""
    units: list[tuple[int, str]] = []
    seen: set[str] = set()
    for n, text in passages:
        for sentence in split_sentences(text):
            if sentence not in seen:  # overlapping chunks repeat sentences: cite the first
                seen.add(sentence)
                units.append((n, sentence))
    answer = extract_answer(question, [sentence for _, sentence in units])
    chosen = [i for i, (_, sentence) in enumerate(units) if sentence in answer]
    if not chosen:
        return f"The passages do not answer: {question}"
    picked: list[int] = []
    rest = answer
    for i in chosen:  # each chosen sentence once, in answer order
        sentence = units[i][1]
        if sentence in rest:
            picked.append(i)
            rest = rest.replace(sentence, "", 1)
    return " ".join(_cite(units[i][1], units[i][0]) for i in picked)


# --- limits -----------------------------------------------------------------------------


def _apply_stop(text: str, stop: Any) -> str:
    sequences = [stop] if isinstance(stop, str) else list(stop or ())
    cut = min((text.find(s) for s in sequences if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


def _truncate(text: str, max_tokens: int) -> str:
    """The longest word-boundary prefix of ``text`` within ``max_tokens`` tokens."""
    if count_text(text) <= max_tokens:
        return text
    pieces = re.findall(r"\S+\s*", text)
    lo, hi = 0, len(pieces)  # invariant: pieces[:lo] fits, pieces[:hi+1] does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_text("".join(pieces[:mid]).rstrip()) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return "".join(pieces[:lo]).rstrip()


# --- tools ------------------------------------------------------------------------------


def _functions(tools: Any) -> list[Mapping[str, Any]]:
    functions = []
    for tool in tools or ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and function.get("name"):
            functions.append(function)
    return functions


def _names_tool(question: str, name: str) -> bool:
    lowered = question.lower()
    spoken = name.lower().replace("_", " ").replace("-", " ")
    pattern = rf"(?<![\w]){re.escape(name.lower())}(?![\w])"
    return re.search(pattern, lowered) is not None or (spoken != name.lower() and spoken in lowered)


#: Words of a tool's name that say what it does, not what about: ``get_weather`` is
#: asked for by a question about the weather.
_GENERIC_NAME_LIST = """get fetch find search lookup look query list read load retrieve run call
    do make create set update compute calculate check send post put tool function api"""
_GENERIC_NAME_WORDS = frozenset(_stem(w) for w in _GENERIC_NAME_LIST.split())
#: "call the tool", "use a function", "invoke search": the prompt asks for a tool.
_ASKS_FOR_TOOL = re.compile(
    r"\b(?:call|invoke|use|run|execute)\b(?:\W+\w+){0,3}?\W+(?:tools?|functions?)\b"
    r"|\b(?:tool|function)\s+call\b",
    re.I,
)


def _about_tool(question: str, function: Mapping[str, Any]) -> bool:
    """The question names what the tool is about: every telling word of its name."""
    words = {_stem(w) for w in _WORD.findall(str(function["name"]).lower())}
    telling = words - _GENERIC_NAME_WORDS - _STOPWORDS
    return bool(telling) and telling <= set(terms(question))


def _best_match(functions: list[Mapping[str, Any]], question: str) -> Mapping[str, Any]:
    """The tool whose name and description share most words with the question (the
    first offered on a tie)."""
    query = set(terms(question))
    return max(
        functions,
        key=lambda f: len(query & set(terms(f"{f['name']} {f.get('description', '')}"))),
    )


def _choose_tool(body: Mapping[str, Any], prompt: Prompt) -> Mapping[str, Any] | None:
    functions = _functions(body.get("tools"))
    choice = body.get("tool_choice")
    if not functions or choice == "none":
        return None
    if isinstance(choice, Mapping):
        wanted = (choice.get("function") or {}).get("name")
        for function in functions:
            if function["name"] == wanted:
                return function
        raise UpstreamFailure("bad_request", f"tool_choice names {wanted!r}, which is not offered")
    named = [f for f in functions if _names_tool(prompt.question, str(f["name"]))]
    if choice == "required":
        return named[0] if named else _best_match(functions, prompt.question)
    if prompt.after_tool_result:  # the tool has answered; now answer the user
        return None
    if named:
        return named[0]
    about = [f for f in functions if _about_tool(prompt.question, f)]
    if about:
        return about[0]
    if _ASKS_FOR_TOOL.search(prompt.question):
        return _best_match(functions, prompt.question)
    return None


def _value(name: str, schema: Mapping[str, Any], question: str, free_text: str) -> Any:
    explicit = re.search(rf"\b{re.escape(name)}\s*[:=]\s*\"?([^\",;\n]+)", question, re.I)
    kind = schema.get("type")
    if schema.get("enum"):
        options = list(schema["enum"])
        for option in options:
            if str(option).lower() in question.lower():
                return option
        return options[0]
    if kind in ("integer", "number"):
        source = explicit[1] if explicit else question
        number = re.search(r"-?\d+(?:\.\d+)?", source)
        if number is None:
            return 0
        return int(float(number[0])) if kind == "integer" else float(number[0])
    if kind == "boolean":
        return bool(explicit and explicit[1].strip().lower() in ("true", "yes", "1"))
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return explicit[1].strip() if explicit else free_text


def tool_arguments(function: Mapping[str, Any], question: str) -> JSON:
    """Arguments for the required fields of a function's schema, taken from the question."""
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    name = str(function["name"])
    free_text = re.sub(re.escape(name), "", question, flags=re.I)
    free_text = " ".join(free_text.split()).strip(" ?.!:") or question
    quoted = re.findall(r"\"([^\"]+)\"", question)
    arguments: JSON = {}
    for field in schema.get("required") or ():
        field_schema = properties.get(field) or {"type": "string"}
        text = (
            quoted.pop(0)
            if quoted and field_schema.get("type", "string") == "string"
            else free_text
        )
        arguments[field] = _value(field, field_schema, question, text)
    return arguments


# --- the provider -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Completion:
    content: str | None
    tool_call: JSON | None
    finish_reason: str
    usage: JSON


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UpstreamFailure("bad_request", "max_tokens must be a positive integer")
    return value


def _respond(body: Mapping[str, Any]) -> _Completion:
    if (body.get("n") or 1) != 1:
        raise UpstreamFailure("bad_request", "the local provider returns one choice; n must be 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UpstreamFailure("bad_request", "messages must be a non-empty list")
    prompt = read_prompt(messages)
    prompt_tokens = count_messages(messages, body.get("tools"))

    function = _choose_tool(body, prompt)
    if function is not None:
        arguments = json.dumps(tool_arguments(function, prompt.question))
        digest = hashlib.blake2b(
            f"{function['name']}\0{arguments}".encode(), digest_size=12
        ).hexdigest()
        call = {
            "id": f"call_{digest}",
            "type": "function",
            "function": {"name": function["name"], "arguments": arguments},
        }
        completion = count_text(str(function["name"])) + count_text(arguments)
        return _Completion(None, call, "tool_calls", _usage(prompt_tokens, completion))

    last_user = _last_user_text(messages)
    passages = numbered_passages(last_user)
    if passages:
        answer = extract_cited_answer(prompt.question, passages)
    elif _EMPTY_CONTEXT.search(last_user):
        # A prompt that gives an empty context block (no passage was found) is not
        # answered from the instructions around it.
        answer = f"The passages do not answer: {prompt.question}"
    else:
        answer = extract_answer(prompt.question, prompt.context)
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        answer = json.dumps({"answer": answer})
    answer = _apply_stop(answer, body.get("stop"))
    finish_reason = "stop"
    limit = _max_tokens(body)
    if limit is not None and count_text(answer) > limit:
        answer = _truncate(answer, limit)
        finish_reason = "length"
    return _Completion(answer, None, finish_reason, _usage(prompt_tokens, count_text(answer)))


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class LocalProvider(InProcessProvider):
    kind = "local"

    async def complete(self, target: Target, body: Mapping[str, Any]) -> JSON:
        result = _respond(body)
        message: JSON = {"role": "assistant", "content": result.content, "refusal": None}
        if result.tool_call is not None:
            message["tool_calls"] = [result.tool_call]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": result.usage,
        }

    async def stream(self, target: Target, body: Mapping[str, Any]) -> AsyncIterator[JSON]:
        result = _respond(body)  # before the first chunk, so a bad request fails whole
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": target.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        yield chunk({"role": "assistant", "content": ""})
        if result.tool_call is not None:
            call = result.tool_call
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _pieces(call["function"]["arguments"]):
                await asyncio.sleep(0)
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            for piece in _pieces(result.content or ""):
                await asyncio.sleep(0)
                yield chunk({"content": piece})
        yield chunk({}, result.finish_reason)
        last = chunk({})
        last["choices"] = []
        last["usage"] = result.usage
        yield last

    async def embed(self, target: Target, body: Mapping[str, Any]) -> JSON:
        texts = embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions")
        if dimensions is None:
            dimensions = EMBEDDING_DIMENSIONS
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
        ):
            raise UpstreamFailure(
                "bad_request", f"dimensions must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}"
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise UpstreamFailure("bad_request", "encoding_format must be 'float' or 'base64'")
        if target.upstream_model in MINILM_NAMES:
            vectors = await _minilm_vectors(texts, body.get("dimensions"))
        else:
            vectors = [embed_text(text, dimensions) for text in texts]
        data = []
        for index, vector in enumerate(vectors):
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                if encoding == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = count_inputs(body.get("input"))
        return {
            "object": "list",
            "data": data,
            "model": target.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _pieces(text: str) -> list[str]:
    """A few words at a time; the pieces join back to exactly ``text``."""
    words = re.findall(r"\s*\S+", text)
    pieces = [
        "".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)
    ]
    consumed = sum(len(p) for p in pieces)
    if consumed < len(text):  # trailing whitespace
        pieces.append(text[consumed:])
    return pieces


# --- embeddings -------------------------------------------------------------------------


async def _minilm_vectors(texts: list[str], dimensions: Any) -> list[np.ndarray[Any, Any]]:
    """all-MiniLM-L6-v2 vectors, computed off the event loop (5-6 ms a sentence)."""
    from bastion.gateway.providers.minilm import DIMENSIONS, EmbedderUnavailable, embed_texts

    if dimensions is not None and dimensions != DIMENSIONS:
        raise UpstreamFailure("bad_request", f"this model's vectors have {DIMENSIONS} dimensions")
    try:
        matrix = await asyncio.to_thread(embed_texts, texts)
    except EmbedderUnavailable as exc:
        raise UpstreamFailure("bad_request", str(exc)) from exc
    return list(matrix)


def embedding_inputs(value: Any) -> list[str]:
    """OpenAI's ``input``: a string, strings, token ids, or lists of token ids."""

    def is_ids(item: Any) -> bool:
        return isinstance(item, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in item
        )

    if isinstance(value, str):
        return [value]
    if is_ids(value) and value:
        return [" ".join(map(str, value))]
    if isinstance(value, list) and value:
        texts = []
        for item in value:
            if isinstance(item, str):
                texts.append(item)
            elif is_ids(item):
                texts.append(" ".join(map(str, item)))
            else:
                raise UpstreamFailure(
                    "bad_request", "input must be a string, strings, or lists of token ids"
                )
        return texts
    raise UpstreamFailure("bad_request", "input must be a non-empty string or list")


@lru_cache(maxsize=65536)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)


def embed_text(
    text: str, dimensions: int = EMBEDDING_DIMENSIONS
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A unit vector from hashed words (weight 1) and character trigrams (weight 0.25)."""
    vector = np.zeros(dimensions, dtype=np.float64)
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        index, sign = _slot(f"w:{_stem(word)}", dimensions)
        vector[index] += sign
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            index, sign = _slot(f"c:{padded[i : i + 3]}", dimensions)
            vector[index] += 0.25 * sign
    norm = float(np.linalg.norm(vector))
    if norm > 0:
        vector /= norm
    return vector.astype(np.float32)
