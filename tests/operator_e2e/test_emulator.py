"""The test API server itself: each of the 14 gaps vanilla kmock 0.8 has (TESTING.md) is filled,
or the operator's end-to-end tests would be testing the emulator's bugs.

In-process (one event loop), so only the async aiohttp client is used here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import pytest

from tests.support.kmock_server import DEFAULT_CRDS, build_emulator

VK = "/apis/tollgate.dev/v1alpha1/namespaces/tenants/virtualkeys"
CM = "/api/v1/namespaces/tenants/configmaps"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    emulator = build_emulator(DEFAULT_CRDS, ["tenants"])
    emulator.on_write = None
    async with emulator, kmock.Server(emulator) as server, \
            aiohttp.ClientSession(base_url=str(server.url)) as session:
        yield session


async def _json(response: aiohttp.ClientResponse) -> Any:
    return json.loads(await response.read())


def _key(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "VirtualKey",
            "metadata": {"name": name}, "spec": {"customerId": "c", **spec}}


async def test_namespaces_are_objects_and_writes_need_one(
        http: aiohttp.ClientSession) -> None:  # gaps 1, 11
    async with http.get("/api/v1/namespaces") as response:
        names = {n["metadata"]["name"] for n in (await _json(response))["items"]}
    assert {"default", "tenants", "tollgate-system"} <= names
    async with http.get("/api/v1/namespaces/tenants") as response:
        assert (await _json(response))["status"]["phase"] == "Active"
    async with http.post("/api/v1/namespaces/nowhere/configmaps",
                         json={"metadata": {"name": "x"}}) as response:
        assert response.status == 404
        assert (await _json(response))["reason"] == "NotFound"


async def test_create_fills_metadata_answers_201_and_refuses_duplicates(
        http: aiohttp.ClientSession) -> None:  # gaps 2, 5, 6, 14
    async with http.post(VK, json=_key("a")) as response:
        assert response.status == 201
        created = await _json(response)
    metadata = created["metadata"]
    assert metadata["uid"] and metadata["resourceVersion"] and metadata["creationTimestamp"]
    assert metadata["generation"] == 1
    async with http.post(VK, json=_key("a")) as response:
        assert response.status == 409
        assert (await _json(response))["reason"] == "AlreadyExists"
    async with http.post("/api/v1/namespaces/tenants/events",
                         json={"metadata": {"generateName": "a."}}) as response:
        assert (await _json(response))["metadata"]["name"].startswith("a.")
    async with http.get(f"{VK}/missing") as response:
        assert response.status == 404
        assert (await _json(response))["reason"] == "NotFound"


async def test_lists_carry_kind_and_filter_by_label(http: aiohttp.ClientSession) -> None:  # 3
    for name, team in (("x", "red"), ("y", "blue")):
        await http.post(CM, json={"metadata": {"name": name, "labels": {"team": team}}})
    async with http.get(CM, params={"labelSelector": "team=red"}) as response:
        listed = await _json(response)
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["x"]


async def test_writes_honour_resource_versions(http: aiohttp.ClientSession) -> None:  # 2, 8
    async with http.post(CM, json={"metadata": {"name": "c"}, "data": {"k": "1"}}) as response:
        first = await _json(response)
    stale = first["metadata"]["resourceVersion"]
    async with http.put(f"{CM}/c", json={**first, "data": {"k": "2"}}) as response:
        assert response.status == 200
        assert (await _json(response))["data"] == {"k": "2"}
    async with http.put(f"{CM}/c", json={**first, "data": {"k": "3"}}) as response:
        assert response.status == 409
        assert (await _json(response))["reason"] == "Conflict"
    async with http.patch(f"{CM}/c", json={"metadata": {"resourceVersion": stale}},
                          headers={"Content-Type": "application/merge-patch+json"}) as response:
        assert response.status == 409
    test_op = [{"op": "test", "path": "/metadata/resourceVersion", "value": stale},
               {"op": "add", "path": "/data/k", "value": "4"}]
    async with http.patch(f"{CM}/c", json=test_op,
                          headers={"Content-Type": "application/json-patch+json"}) as response:
        assert response.status == 422  # what kopf's optimistic finalizer patches expect


async def test_generation_and_the_status_subresource(http: aiohttp.ClientSession) -> None:
    await http.post(VK, json=_key("g"))
    merge = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{VK}/g", json={"status": {"x": 1}, "metadata": {"labels": {"a": "b"}}},
                          headers=merge) as response:
        body = await _json(response)
    assert body["metadata"]["generation"] == 1 and "x" not in body.get("status", {})
    async with http.patch(f"{VK}/g/status", json={"status": {"keyId": "k"}, "spec": {"z": 1}},
                          headers=merge) as response:
        body = await _json(response)
    assert body["status"] == {"keyId": "k"} and "z" not in body["spec"]
    async with http.patch(f"{VK}/g", json={"spec": {"customerId": "d"}},
                          headers=merge) as response:
        assert (await _json(response))["metadata"]["generation"] == 2


async def test_finalizers_hold_deletion_until_removed(http: aiohttp.ClientSession) -> None:
    await http.post(VK, json={**_key("f"), "metadata": {"name": "f", "finalizers": ["x/y"]}})
    async with http.delete(f"{VK}/f") as response:
        assert (await _json(response))["metadata"]["deletionTimestamp"]
    async with http.get(f"{VK}/f") as response:
        assert response.status == 200
    async with http.patch(f"{VK}/f", json={"metadata": {"finalizers": None}},
                          headers={"Content-Type": "application/merge-patch+json"}):
        pass
    async with http.get(f"{VK}/f") as response:
        assert response.status == 404


async def _events(http: aiohttp.ClientSession, params: dict[str, str], count: int
                  ) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with http.get(CM, params={"watch": "true", **params}) as response:
        assert response.headers["Content-Type"].startswith("application/json")  # gap 9
        async with asyncio.timeout(5):
            while len(events) < count:
                events.append(json.loads(await response.content.readline()))
    return events


async def test_watches_resume_from_a_resource_version(http: aiohttp.ClientSession) -> None:
    await http.post(CM, json={"metadata": {"name": "w1"}})
    async with http.get(CM) as response:
        since = (await _json(response))["metadata"]["resourceVersion"]
    await http.post(CM, json={"metadata": {"name": "w2"}})  # missed between list and watch
    await http.delete(f"{CM}/w1")
    events = await _events(http, {"resourceVersion": since, "watch": "True"}, 2)  # gap 7, 12
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w2"), ("DELETED", "w1")]


async def test_a_too_old_resource_version_is_gone() -> None:  # gap 12
    emulator = build_emulator(DEFAULT_CRDS, ["tenants"], log_size=2)
    emulator.on_write = None
    async with emulator, kmock.Server(emulator) as server, \
            aiohttp.ClientSession(base_url=str(server.url)) as http:
        for name in ("o1", "o2", "o3", "o4"):
            await http.post(CM, json={"metadata": {"name": name}})
        (event,) = await _events(http, {"resourceVersion": "1"}, 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_initial_events_end_with_the_bookmark_kubectl_waits_for(
        http: aiohttp.ClientSession) -> None:  # gap 10
    await http.post(CM, json={"metadata": {"name": "i1"}})
    added, bookmark = await _events(http, {"sendInitialEvents": "true",
                                           "resourceVersionMatch": "NotOlderThan"}, 2)
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_discovery_names_core_v1_and_keeps_short_names_off_subresources(
        http: aiohttp.ClientSession) -> None:  # gaps 4, 13
    async with http.get("/api/v1") as response:
        assert (await _json(response))["groupVersion"] == "v1"
    async with http.get("/apis/tollgate.dev/v1alpha1") as response:
        resources = {r["name"]: r for r in (await _json(response))["resources"]}
    assert resources["virtualkeys"]["shortNames"] == ["vk"]
    assert "shortNames" not in resources["virtualkeys/status"]


async def test_secrets_fold_string_data_and_crs_print_tables(
        http: aiohttp.ClientSession) -> None:
    async with http.post("/api/v1/namespaces/tenants/secrets",
                         json={"metadata": {"name": "s"}, "stringData": {"k": "v"}}) as response:
        body = await _json(response)
    assert body["data"] == {"k": "dg=="} and "stringData" not in body
    await http.post(VK, json=_key("t", budget={"maxUSD": "5"}))
    async with http.get(VK, headers={"Accept": "application/json;as=Table;v=v1;"
                                               "g=meta.k8s.io"}) as response:
        table = await _json(response)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:3] == ["Name", "Customer", "Budget"]
    assert table["rows"][0]["cells"][:3] == ["t", "c", "5"]
