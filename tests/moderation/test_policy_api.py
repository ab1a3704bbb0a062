"""Installing a policy at run time: admin only, validated, versioned, applied to the next slices."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from moderation.rules import Policy
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_slice, live_room

URL = "/api/v1/moderation/policy"

LESSON_POLICY: dict[str, Any] = {
    "version": "test-2026.03-a",
    "description": "flags one lesson word, to see a run-time policy at work",
    "rules": [{
        "id": "custom.lesson_words", "version": 3, "category": "custom", "severity": "low",
        "type": "keywords", "params": {"keywords": ["fractions"]},
    }],
}


async def test_only_admins_install_and_bad_policies_are_refused_with_every_problem(client: httpx.AsyncClient) -> None:
    shipped = Policy.default()
    mod = await logged_in(client, "moderator")
    r = await client.get(URL, headers=mod.headers)
    assert r.status_code == 200, r.text
    assert r.json()["origin"] == "file" and r.json()["version"] == shipped.version

    for role in ("moderator", "teacher", "student"):
        user = await logged_in(client, role)
        r = await client.put(URL, json=LESSON_POLICY, headers=user.headers)
        assert r.status_code == 403 and r.json()["error"] == "Forbidden", role
    client.cookies.clear()
    assert (await client.put(URL, json=LESSON_POLICY)).status_code == 401

    admin = await logged_in(client, "admin")
    broken = copy.deepcopy(LESSON_POLICY)
    broken["rules"][0]["category"] = "gossip"
    broken["rules"].append({"id": "x.regex", "version": 1, "category": "custom", "severity": "low",
                            "type": "keywords", "params": {"regexes": ["(unclosed"]}})
    r = await client.put(URL, json=broken, headers=admin.headers)
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"
    detail = r.json()["detail"]
    assert "custom.lesson_words" in detail and "x.regex" in detail  # every problem, named by rule
    bad: Any
    for bad in ([], {"version": "v"}, {"version": "v", "rules": []}):
        r = await client.put(URL, json=bad, headers=admin.headers)
        assert r.status_code == 422 and set(r.json()) == {"error", "detail"}, bad
    # Nothing was installed by the refused attempts.
    assert (await client.get(URL, headers=admin.headers)).json()["origin"] == "file"

    r = await client.put(URL, json=LESSON_POLICY, headers=admin.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["version"], body["origin"], body["rules"]) == ("test-2026.03-a", "database", 1)
    assert body["installed_by"] == admin.id
    assert (await client.put(URL, json=LESSON_POLICY, headers=admin.headers)).status_code == 200  # same again

    changed = copy.deepcopy(LESSON_POLICY)
    changed["rules"][0]["params"]["keywords"] = ["decimals"]
    r = await client.put(URL, json=changed, headers=admin.headers)
    assert r.status_code == 409 and r.json()["error"] == "Conflict"
    changed["version"] = shipped.version  # the shipped file's version names the shipped rules only
    assert (await client.put(URL, json=changed, headers=admin.headers)).status_code == 409

    now = (await client.get(URL, headers=mod.headers)).json()
    assert (now["version"], now["origin"]) == ("test-2026.03-a", "database")


@pytest.mark.slow
async def test_the_newest_installed_policy_applies_and_its_version_is_on_every_flag(client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin")
    assert (await client.put(URL, json=LESSON_POLICY, headers=admin.headers)).status_code == 201
    room = await live_room()
    speech = fixtures.transcode(fixtures.concat([fixtures.speech(
        "Today we will learn about fractions. One half is larger than one quarter."), 1.0]), ".webm")
    sid = await add_slice(room, speech)
    await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]

    r = await client.get(f"/api/v1/moderation/slices/{sid}/analysis", params={"reason": "policy check"},
                         headers=admin.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["policy_version"] == "test-2026.03-a"
    assert [(f["rule_id"], f["rule_version"], f["policy_version"], f["category"]) for f in got["flags"]] == [
        ("custom.lesson_words", "3", "test-2026.03-a", "custom")]
    assert "[fractions]" in got["flags"][0]["quote"].lower()

    newer = copy.deepcopy(LESSON_POLICY)
    newer["version"] = "test-2026.03-b"
    newer["rules"][0]["params"]["keywords"] = ["quarter"]
    assert (await client.put(URL, json=newer, headers=admin.headers)).status_code == 201
    sid2 = await add_slice(room, speech)
    await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]
    got2 = (await client.get(f"/api/v1/moderation/slices/{sid2}/analysis", params={"reason": "policy check"},
                             headers=admin.headers)).json()
    assert [(f["rule_id"], f["policy_version"]) for f in got2["flags"]] == [
        ("custom.lesson_words", "test-2026.03-b")]
    assert "[quarter]" in got2["flags"][0]["quote"].lower()
