"""The gateway's JSON: orjson's speed, nothing that Python's ``json`` read or wrote lost."""

from __future__ import annotations

import json
import math

import pytest

from bastion import jsonio


@pytest.mark.parametrize(
    "text",
    [
        '{"model":"m","messages":[{"role":"user","content":"Grüße, 東京 🚀"}]}',
        '{"seed": 123456789012345678901234567890}',  # beyond 64 bits: orjson loses digits
        '{"temperature": NaN, "top_p": Infinity}',  # not JSON, but Python reads it
        "[1.5e300, -0.0, 1e-320]",
    ],
)
def test_reads_what_the_standard_library_reads(text: str) -> None:
    got, want = jsonio.loads(text.encode()), json.loads(text)
    assert json.dumps(got) == json.dumps(want)


@pytest.mark.parametrize("bad", [b"{not json", b"", b'{"a": 1', b"\xff\xfe", b'{"a": 1} x'])
def test_refuses_what_is_not_json(bad: bytes) -> None:
    with pytest.raises(jsonio.JSONDecodeError):
        jsonio.loads(bad)
    with pytest.raises(jsonio.JSONDecodeError):
        jsonio.loads(bad, constants=False)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_clients_constants_are_refused(constant: str) -> None:
    text = f'{{"temperature": {constant}, "seed": 123456789012345678901234567890}}'
    with pytest.raises(ValueError, match=f"{constant} is not JSON"):
        jsonio.loads(text.encode(), constants=False)
    read = jsonio.loads(text)  # an upstream's answer: read as Python reads it
    if constant == "NaN":
        assert math.isnan(read["temperature"])
    else:
        assert read["temperature"] == float(constant)
    assert read["seed"] == 123456789012345678901234567890


@pytest.mark.parametrize(
    "value",
    [
        {"content": 'Grüße \u2028 "quoted" \\ back', "n": [1, 2.5, None, True]},
        {"big": 2**80},  # orjson refuses: written by json
        {1: "non-string key"},  # orjson refuses: written by json (the key as "1")
    ],
)
def test_writes_compact_utf8_that_reads_back(value: object) -> None:
    out = jsonio.dumps(value)
    assert b": " not in out and b", " not in out
    assert json.loads(out) == json.loads(json.dumps(value))
    assert "Grüße".encode() in out or "Grüße" not in str(value)


@pytest.mark.parametrize(
    "value",
    [
        {"z": 1, "a": {"y": [{"b": 2, "a": "Grüße"}], "x": None}},
        {"z": 2**80, "a": "orjson refuses the integer: json writes it, sorted too"},
    ],
)
def test_sorted_keys_are_the_standard_librarys_order(value: object) -> None:
    want = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert jsonio.dumps(value, sort_keys=True).decode() == want


def test_nan_is_written_as_null() -> None:
    assert json.loads(jsonio.dumps({"x": math.nan})) == {"x": None}


def test_copy_is_deep_and_equal() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "n": 1}
    copied = jsonio.copy(body)
    assert copied == body
    copied["messages"][0]["content"][0]["text"] = "changed"
    copied["messages"].append({"role": "assistant"})
    assert body == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "n": 1,
    }
    odd = {"when": {1, 2}}  # not JSON: copied by deepcopy, still deep
    assert jsonio.copy(odd)["when"] is not odd["when"]
