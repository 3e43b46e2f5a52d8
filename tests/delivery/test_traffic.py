"""The split: one route key, one version; the weight's share of keys; shadows never answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.delivery.traffic import Plan, bucket

CANARY = Plan("ro_test", "canary", candidate=3, baseline=2, weight=25)


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1_000, max_size=1_000, unique=True))
@settings(max_examples=5, deadline=None)
def test_one_user_stays_on_one_version_across_1000_calls(keys: list[str]) -> None:
    first = {k: CANARY.route(k).primary for k in keys}
    for _ in range(3):
        assert {k: CANARY.route(k).primary for k in keys} == first


def test_the_weight_is_the_share_of_users_on_the_candidate() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    on_canary = sum(CANARY.route(k).primary.arm == "canary" for k in keys)
    assert 0.23 < on_canary / len(keys) < 0.27


@given(st.text(min_size=1, max_size=60))
def test_users_on_the_canary_stay_there_as_the_weight_grows(key: str) -> None:
    arms = [Plan("ro_test", "canary", 3, 2, w).route(key).primary.arm for w in (5, 25, 50, 99)]
    first = arms.index("canary") if "canary" in arms else len(arms)
    assert all(a == "canary" for a in arms[first:])


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_bucket_is_in_range(salt: str, key: str) -> None:
    assert 0 <= bucket(salt, key) < 10_000


def test_shadow_answers_come_from_production_and_the_candidate_only_scores() -> None:
    plan = Plan("ro_s", "shadow", candidate=3, baseline=2, weight=100)
    for i in range(1_000):
        routing = plan.route(f"u{i}")
        assert (routing.primary.version, routing.primary.arm) == (2, "production")
        assert [(s.version, s.arm) for s in routing.shadows] == [(3, "shadow")]


def test_an_ab_split_names_its_arms() -> None:
    plan = Plan("ro_ab", "ab", candidate=3, baseline=2, weight=50)
    seen = {(r.primary.version, r.primary.arm) for r in (plan.route(f"u{i}") for i in range(500))}
    assert seen == {(2, "a"), (3, "b")}
