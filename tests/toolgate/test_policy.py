"""The policy's ``mcp`` section and ``tools`` allow-lists: what they accept, errors that
say where and what, and the one permission check behind tools/list and tools/call."""

from __future__ import annotations

import fnmatch
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.policy import PolicyError, parse_policy
from bastion.policy.schema import KeyRestrictions
from bastion.toolgate.access import resolve_tool_access
from bastion.toolgate.service import _could_match

GOOD = """\
version: 1
roles:
  admin: {tools: ["*"]}
  analyst: {tools: ["files.read_*", "prompt:files.*"]}
  guest: {tools: ["files.list_dir"]}
teams:
  interns: {tools: ["files.read_notes"]}
mcp:
  servers:
    files:
      command: [python, -m, files_server]
      tools:
        delete_file: {destructive: true}
        read_file:
          arguments: {path: {max_length: 200, pattern: "^/srv/"}}
          rate_limit: {per_minute: 30, per: user}
    mail: {url: "http://127.0.0.1:9000/mcp"}
"""


def _principal(role: str, team: str | None = None, tools: list[str] | None = None) -> Principal:
    restrictions = KeyRestrictions(tools=tools) if tools is not None else None
    return Principal(
        "k1", "bst_k1", f"{role}-user", team, role, frozenset(Permission), restrictions
    )


def test_a_policy_with_servers_and_allow_lists_is_accepted() -> None:
    policy = parse_policy(GOOD).policy
    assert policy.mcp.servers["files"].transport == "stdio"
    assert policy.mcp.servers["mail"].transport == "http"
    assert policy.mcp.servers["files"].rule("delete_file").destructive
    assert not policy.mcp.servers["files"].rule("anything_else").destructive


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (("mail: {url:", "mail: {command: [x], url:"), "mcp.servers.mail", "not both"),
        (
            ('mail: {url: "http://127.0.0.1:9000/mcp"}', "mail: {}"),
            "mcp.servers.mail",
            "either url",
        ),
        (("per: user", "per: planet"), "rate_limit.per", "expected"),
        (('pattern: "^/srv/"', 'pattern: "(unclosed"'), "path.pattern", "regular expression"),
        (
            ('guest: {tools: ["files.list_dir"]}', 'guest: {tools: ["filez.list_dir"]}'),
            "roles.guest.tools[0]",
            "unknown MCP server 'filez'",
        ),
        (
            ('guest: {tools: ["files.list_dir"]}', 'guest: {tools: ["files"]}'),
            "roles.guest.tools[0]",
            "name a tool",
        ),
        (("interns: {tools:", "interns: {toolz:"), "teams.interns.toolz", "unknown key"),
        (("    files:\n", "    files/x:\n"), "mcp.servers", "invalid name"),
    ],
)
def test_each_mistake_is_an_error_that_says_where(
    change: tuple[str, str], where: str, says: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(PolicyError) as caught:
        parse_policy(GOOD.replace(old, new, 1))
    text = str(caught.value)
    assert where in text and says in text, text


@pytest.mark.parametrize(
    ("role", "team", "key_tools", "allowed", "refused"),
    [
        ("admin", None, None, ["files.delete_file", "mail.send", "prompt:files.x"], []),
        (
            "analyst",
            None,
            None,
            ["files.read_file", "prompt:files.greet"],
            ["files.delete_file", "mail.send"],
        ),
        ("guest", None, None, ["files.list_dir"], ["files.read_file", "prompt:files.greet"]),
        ("analyst", "interns", None, ["files.read_notes"], ["files.read_file"]),  # team narrows
        ("admin", None, ["mail.*"], ["mail.send"], ["files.list_dir"]),  # the key narrows
        ("admin", "ghosts", None, [], ["files.list_dir", "mail.send"]),  # unknown team: nothing
        ("auditor", None, None, [], ["files.list_dir"]),  # no tools list: default deny
    ],
)
def test_one_check_decides_what_each_caller_may_use(
    role: str, team: str | None, key_tools: list[str] | None, allowed: list[str], refused: list[str]
) -> None:
    access = resolve_tool_access(parse_policy(GOOD).policy, _principal(role, team, key_tools))
    assert [n for n in allowed if access.allows(n)] == allowed
    assert [n for n in refused if access.allows(n)] == []


NAME = st.text(string.ascii_lowercase + "._:*?", min_size=0, max_size=8)


@given(
    pattern=NAME, prefix=st.text(string.ascii_lowercase + ".", min_size=1, max_size=6), rest=NAME
)
def test_the_server_prefilter_never_hides_a_name_a_pattern_matches(
    pattern: str, prefix: str, rest: str
) -> None:
    # _could_match(p, probe) must be true whenever some name starting with probe matches p.
    name = prefix + rest
    if fnmatch.fnmatchcase(name, pattern):
        assert _could_match(pattern, prefix)


def test_a_key_made_at_the_command_line_can_be_narrowed_to_some_tools() -> None:
    from bastion.cli.keys import parse_restrictions

    restrictions = parse_restrictions(None, None, None, None, [], "files.read_*, mail.send")
    assert restrictions is not None
    assert restrictions.tools == ["files.read_*", "mail.send"]
    access = resolve_tool_access(
        parse_policy(GOOD).policy, _principal("admin", None, restrictions.tools)
    )
    assert access.allows("mail.send") and not access.allows("files.delete_file")
