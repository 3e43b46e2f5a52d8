"""Credentials as entity types (issue #23, item 1): found, masked, restored, and not
found in ordinary text. The values are made-up examples in each provider's format."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.privacy import Analyzer, PrivacyGuard, PrivacyPolicy
from bastion.privacy import entities as E

# (entity type, the text around it with {} where the value goes, the value)
CASES: list[tuple[str, str, str]] = [
    (E.SECRET_AWS, "aws_access_key_id={}", "AKIAIOSFODNN7EXAMPLE"),
    (E.SECRET_AWS, "key id ASIAY34FZKBOKMUTVV7A in the log", "ASIAY34FZKBOKMUTVV7A"),
    (E.SECRET_AWS, "aws_secret_access_key = {}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    (E.SECRET_GCP, "maps key: {}", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    (E.SECRET_GCP, "client_secret {} for the app", "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"),
    (
        E.SECRET_AZURE,
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix=core.windows.net",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ),
    (
        E.SECRET_AZURE,
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}",
        "3xAmPlEkEyZ1x2c3v4b5n6m7a8s9d0f1g2h3j4k5l6q=",
    ),
    (E.SECRET_AZURE, "client_secret: '{}'", "abc8Q~Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE_d"),
    (E.SECRET_GITHUB, "token {}.", "ghp_EXAMPLENOTAREALGITHUBTOKEN0000000000"),
    (
        E.SECRET_GITHUB,
        "GH_TOKEN={}",
        "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd",
    ),
    (E.SECRET_GITLAB, "use {} to push", "glpat-Abc123Def456Ghi789Jk"),
    (E.SECRET_SLACK, "bot: {}", "xoxb-00000-00000-EXAMPLENOTAREALTOKEN"),
    (
        E.SECRET_SLACK,
        "post to {} please",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    (E.SECRET_STRIPE, "stripe.api_key = '{}'", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (E.SECRET_STRIPE, "test with {}", "rk_test_51Hc2bXExAmPlE0123456789abcdef"),
    (E.SECRET_OPENAI, "OPENAI_API_KEY={}", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
    (E.SECRET_OPENAI, "old key {}", "sk-abcdefghij1234567890T3BlbkFJabcdefghij1234567890"),
    (
        E.SECRET_ANTHROPIC,
        "x-api-key: {}",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD-_xyzAA",
    ),
    (E.SECRET_HUGGINGFACE, "HF_TOKEN={}", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    (
        E.SECRET_NPM,
        "//registry.npmjs.org/:_authToken={}",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    ),
    (E.SECRET_TWILIO, "sid {} ok", "AC0123456789abcdef0123456789abcdef"),
    (E.SECRET_TWILIO, "api key {}", "SK0123456789abcdef0123456789abcdef"),
    (
        E.SECRET_SENDGRID,
        "SENDGRID_API_KEY={}",
        "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    ),
    (
        E.SECRET_API_KEY,
        "GROQ_API_KEY={}",
        "gsk_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kL9nP2rS5uX8",
    ),
    (
        E.SECRET_JWT,
        "Authorization: Bearer {}",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    (
        E.SECRET_PRIVATE_KEY,
        "my key:\n{}\nthanks",
        "-----BEGIN RSA PRIVATE KEY-----\nTk9UQVJFQUxLRVkK\n-----END RSA PRIVATE KEY-----",
    ),
    (
        E.SECRET_PRIVATE_KEY,  # a GCP service-account file: newlines escaped inside JSON
        '{{"type": "service_account", "private_key": "{}", "client_email": "x"}}',
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----",
    ),
    (
        E.SECRET_PRIVATE_KEY,
        "truncated: {}",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
    ),
    (E.SECRET_PASSWORD, "postgresql://admin:{}@db.example.com:5432/app", "s3cr3tP4ss"),
    (E.SECRET_PASSWORD, "mongodb+srv://app:{}@cluster0.example.net/test", "Zq9!wX7#"),
    (
        E.SECRET_PASSWORD,
        "Server=tcp:x.database.windows.net;User ID=me;Password={};Encrypt=true",
        "Hunter2Pass!",
    ),
    (E.SECRET_PASSWORD, "user=bob;pass={}", "opensesame9"),
    (E.SECRET_PASSWORD, 'DB_PASSWORD="{}"', "correct horse battery staple"),
    (E.SECRET_PASSWORD, "the password is {}", "hunter2"),
    (E.SECRET_GENERIC, "api_key: {}", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    (E.SECRET_GENERIC, "the signing secret is {} (rotate it)", "q8Zr2LmX0vB7nT4kW9cY1pD6"),
    (E.SECRET_GENERIC, "Authorization: Bearer {}", "d41d8c98f00b204e9800998ecf8427e0f1a2"),
]


@pytest.fixture(scope="module")
def guard() -> PrivacyGuard:
    return PrivacyGuard(PrivacyPolicy.model_validate({"prompt": {"entities": ["SECRET"]}}))


@pytest.mark.parametrize(("entity_type", "template", "value"), CASES)
def test_each_kind_of_credential_is_found_as_its_type(
    analyzer: Analyzer, entity_type: str, template: str, value: str
) -> None:
    text = template.format(value)
    found = [(s.entity_type, s.text) for s in analyzer.analyze(text)]
    assert (entity_type, value) in found, found


@pytest.mark.parametrize(("entity_type", "template", "value"), CASES)
def test_each_credential_is_masked_with_a_placeholder_and_restored(
    guard: PrivacyGuard, entity_type: str, template: str, value: str
) -> None:
    text = template.format(value)
    vault = guard.vault()
    masked = guard.protect_text(text, vault)
    assert value not in masked.value
    assert f"<{entity_type}_1>" in masked.value
    assert masked.counts.get(entity_type) == 1
    assert f"pii:{entity_type}" in masked.flags
    assert all(value not in flag for flag in masked.flags)
    # The answer quoting the placeholder gets the value back for the caller.
    answer = guard.check_response(f"You sent {masked.value}", vault)
    assert value in answer.text


def test_only_the_password_of_a_url_or_connection_string_is_masked(guard: PrivacyGuard) -> None:
    text = "postgresql://admin:s3cr3tP4ss@db.example.com:5432/app; Server=db;User=me;Pwd=Xy7pQ2z!"
    masked = guard.protect_text(text, guard.vault()).value
    assert masked == (
        "postgresql://admin:<SECRET_PASSWORD_1>@db.example.com:5432/app; "
        "Server=db;User=me;Pwd=<SECRET_PASSWORD_2>"
    )


ORDINARY = [
    "The key to success is preparation; the token economy of the 1970s is another matter.",
    "Please reset my password: I forgot it. The password is stored hashed, as required.",
    "password: required; password=self.password; password = os.environ['PW']",
    "Internationalization and counterrevolutionaries are long words, not credentials.",
    "Visit https://example.com/docs/getting-started/installation-guide for details.",
    "Call me at +1 415 555 0132 or write to jane.doe@example.com about IBAN GB82WEST12345698765432.",
    "The commit 3f2a9c1d4e5b6a7f8091a2b3c4d5e6f708192a3b fixed it; see PR #1234.",
    "postgresql://user:password@localhost/db and https://user:<password>@host/ in the docs",
    "Tokens per minute: 100000. Max tokens: 4096. Secret Service agents. Key West, Florida.",
    "Passport number on file; boarding pass: 12A.",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_holds_no_credential(analyzer: Analyzer, text: str) -> None:
    found = [s for s in analyzer.analyze(text) if s.entity_type.startswith("SECRET_")]
    assert found == []


@pytest.mark.shared_data
def test_the_shared_personal_data_and_legal_prose_hold_no_credential(
    shared_data: Path, analyzer: Analyzer
) -> None:
    records = json.loads((shared_data / "pii" / "synth_dataset_v2.json").read_text("utf-8"))
    texts = [r["full_text"] for r in records]
    with (shared_data / "regulations" / "eu_regulations.jsonl").open(encoding="utf-8") as f:
        texts += [json.loads(line)["text"] for line in f]
    secrets = E.SECRET_ENTITIES
    found = [(s.entity_type, s.text) for t in texts for s in analyzer.analyze(t, secrets)]
    assert len(texts) > 1500
    assert found == []


_ALNUM = string.ascii_uppercase + string.digits


@given(
    body=st.text(alphabet=_ALNUM, min_size=16, max_size=16),
    before=st.sampled_from(["", " ", "(", '"', "key=", "\n", "id: ", "«"]),
    after=st.sampled_from(["", " ", ")", '"', ".", ",", "\n", ". Next", "»"]),
    prose=st.text(alphabet=string.ascii_letters + " .,;é漢", max_size=30),
)
def test_an_aws_key_id_is_found_whole_wherever_it_stands(
    analyzer: Analyzer, body: str, before: str, after: str, prose: str
) -> None:
    value = "AKIA" + body
    text = f"{prose} {before}{value}{after} {prose}"
    found = [(s.entity_type, s.text) for s in analyzer.analyze(text, [E.SECRET_AWS])]
    assert found == [(E.SECRET_AWS, value)]


def test_secret_names_one_type_per_secret_kind_in_the_policy() -> None:
    policy = PrivacyPolicy.model_validate(
        {
            "prompt": {
                "entities": ["EMAIL_ADDRESS", "SECRET"],
                "operators": {"SECRET": "redact", "SECRET_PRIVATE_KEY": "block"},
            },
            "thresholds": {"SECRET": 0.8},
        }
    )
    assert policy.prompt.entities == ["EMAIL_ADDRESS", *E.SECRET_ENTITIES]
    assert policy.prompt.operator_for(E.SECRET_AWS).type == "redact"
    assert policy.prompt.operator_for(E.SECRET_PRIVATE_KEY).type == "block"
    assert policy.prompt.operator_for(E.EMAIL_ADDRESS).type == "placeholder"
    assert policy.thresholds[E.SECRET_GENERIC] == 0.8
    with pytest.raises(ValueError, match="SECRET for every SECRET_"):
        PrivacyPolicy.model_validate({"prompt": {"entities": ["SECRETS"]}})
