"""Least privilege: the chart grants each component exactly the API access its code uses.

The tables below list every (apiGroup, resource, verb) the operator and the gateway call, and
where. They are declared here because the operator package has no table of verbs yet; what it
does declare, the `Kind`s operator/kube.py talks to, is checked against the table, so a new
kind there fails this test until it is listed (and granted). When operator/kube.py declares
its verbs too, derive OPERATOR_CALLS from it.
Scopes:
  watched   the namespaces the operator watches: cluster-wide, or operator.watchNamespaces
            plus the credentials namespaces
  target    the release namespace (the operator's --target-namespace, the gateways' home)
  cluster   cluster-scoped, whatever the mode
Modes restrict an entry to cluster-wide or namespaced operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.chart.tools import NAMESPACE, Rendered, render, set_json
from tollgate.operator import kube


@dataclass(frozen=True)
class Call:
    group: str
    resource: str
    verbs: tuple[str, ...]
    scope: str  # watched | target | cluster
    mode: str = "any"  # any | clusterwide | namespaced
    why: str = ""


OPERATOR_CALLS = (
    # kopf: indexes and event handlers (operator/handlers/*), finalizer and annotation patches.
    Call("tollgate.dev", "virtualkeys", ("list", "watch", "patch"), "watched"),
    Call("tollgate.dev", "providercredentials", ("list", "watch", "patch"), "watched"),
    Call("", "secrets", ("list", "watch"), "watched", why="kopf index of referenced Secrets"),
    # operator/reconcile.py through operator/kube.py.
    Call("tollgate.dev", "virtualkeys/status", ("patch",), "watched", why="kube.patch_status"),
    Call("tollgate.dev", "providercredentials/status", ("patch",), "watched"),
    Call("", "secrets", ("create", "patch"), "watched", why="generated and rotated key tokens"),
    Call("", "events", ("create",), "watched", why="kube.post_event"),
    Call("", "configmaps", ("get", "list", "create", "update", "delete"), "target",
         why="kube.apply of the config parts (create, or get+replace), stale parts deleted"),
    Call("", "secrets", ("get", "create", "update"), "target", why="the credentials Secret"),
    # operator/leader.py.
    Call("coordination.k8s.io", "leases", ("get", "create", "update"), "target",
         why="leader election: one active replica"),
    # kopf's own observation of the cluster.
    Call("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"), "cluster",
         why="kopf notices CRDs appearing and disappearing"),
    Call("", "namespaces", ("list", "watch"), "cluster", "namespaced",
         why="kopf's namespace scan"),
)

GATEWAY_CALLS = (
    Call("", "configmaps", ("get", "list", "watch"), "target",
         why="reload without the kubelet's delay"),
    Call("coordination.k8s.io", "leases", ("get", "create", "update"), "target",
         why="one status publisher at a time"),
    Call("tollgate.dev", "virtualkeys/status", ("patch",), "watched", why="spend and conditions"),
    Call("", "events", ("create",), "watched", why="kube/events.py: an Event per key alert"),
)

Grant = tuple[str, str, str, str]  # (namespace or "*", apiGroup, resource, verb)


def needed(calls: tuple[Call, ...], watch: list[str]) -> set[Grant]:
    """Every grant the calls need; `watch` is every watched namespace, empty: cluster-wide."""
    mode = "namespaced" if watch else "clusterwide"
    out: set[Grant] = set()
    for call in calls:
        if call.mode not in ("any", mode):
            continue
        namespaces = {"watched": watch or ["*"], "target": [NAMESPACE], "cluster": ["*"]}
        for namespace in namespaces[call.scope]:
            out.update((namespace, call.group, call.resource, verb) for verb in call.verbs)
    return out


def granted(rendered: Rendered, service_account: str) -> set[Grant]:
    """What the ServiceAccount may do, from the rendered Roles, ClusterRoles and bindings."""
    roles: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for kind in ("Role", "ClusterRole"):
        for role in rendered.of(kind):
            namespace = role["metadata"].get("namespace") if kind == "Role" else None
            roles[(kind, namespace, role["metadata"]["name"])] = role["rules"]
    out: set[Grant] = set()
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in rendered.of(kind):
            subjects = binding["subjects"]
            if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account
                       and s["namespace"] == NAMESPACE for s in subjects):
                continue
            where = binding["metadata"].get("namespace") if kind == "RoleBinding" else "*"
            ref = binding["roleRef"]
            role_ns = where if ref["kind"] == "Role" else None
            rules = roles[(ref["kind"], role_ns, ref["name"])]
            for rule in rules:
                assert "resourceNames" not in rule
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            assert "*" not in (group, resource, verb), f"wildcard in {ref}"
                            out.add((where, group, resource, verb))
    return out


def service_account(rendered: Rendered, component: str) -> str:
    deployment = rendered.one("Deployment", f"-{component}")
    return str(deployment["spec"]["template"]["spec"]["serviceAccountName"])


MODES = {
    "cluster-wide": ([], []),
    # The operator also watches the credentials namespace (the release namespace by default).
    "namespaced": (["tenants", "team-a"], ["tenants", "team-a", NAMESPACE]),
}


@pytest.mark.parametrize("component,calls",
                         [("operator", OPERATOR_CALLS), ("gateway", GATEWAY_CALLS)],
                         ids=["operator", "gateway"])
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_rbac_grants_exactly_what_the_code_calls(mode: str, component: str,
                                                 calls: tuple[Call, ...]) -> None:
    values, watch = MODES[mode]
    rendered = render(sets=[set_json("operator.watchNamespaces", values)])
    have = granted(rendered, service_account(rendered, component))
    want = needed(calls, watch)
    assert sorted(want - have) == [], "missing permissions"
    assert sorted(have - want) == [], "permissions no code uses"


def test_every_kind_the_operator_talks_to_is_in_the_table() -> None:
    kinds = [value for value in vars(kube).values() if isinstance(value, kube.Kind)]
    assert len(kinds) >= 6
    listed = {(call.group, call.resource.split("/")[0]) for call in OPERATOR_CALLS}
    for kind in kinds:
        group = kind.api_version.split("/")[0] if "/" in kind.api_version else ""
        assert (group, kind.plural) in listed, f"{kind.kind}: add its calls to OPERATOR_CALLS"


def test_rbac_can_be_left_to_someone_else() -> None:
    rendered = render(sets=[set_json("operator.rbac.create", False),
                            set_json("gateway.rbac.create", False)])
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert rendered.of(kind) == []
    # Without RBAC the gateway has no use for an API token.
    spec = rendered.one("Deployment", "-gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


def test_the_evaluation_redis_gets_no_api_token() -> None:
    spec = render().one("Deployment", "-redis")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
