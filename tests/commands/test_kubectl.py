"""kubectl's Deployment rules as pure functions: status text, undo target and patch, history."""

from __future__ import annotations

import pytest

from commands.clients import kubectl
from commands.clients.kubectl import KubectlError

UID = "d-uid"


def deployment(**status: int) -> kubectl.Obj:
    return {
        "metadata": {
            "name": "nova",
            "uid": UID,
            "generation": status.pop("generation", 2),
            "annotations": {
                kubectl.REVISION: "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {"replicas": status.pop("desired", 2), "template": template("v3")},
        "status": {"observedGeneration": 2, **status},
    }


def template(tag: str, hash_label: str | None = None) -> kubectl.Obj:
    labels = {"app": "nova", **({kubectl.POD_TEMPLATE_HASH: hash_label} if hash_label else {})}
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "nova", "image": f"reg/nova:{tag}"}]},
    }


def replicaset(revision: int | None, tag: str, cause: str | None = None) -> kubectl.Obj:
    annotations = {kubectl.REVISION: str(revision)} if revision is not None else {}
    if cause:
        annotations[kubectl.CHANGE_CAUSE] = cause
    annotations["deployment.kubernetes.io/desired-replicas"] = "2"
    return {
        "metadata": {
            "name": f"nova-{tag}",
            "uid": f"rs-{tag}",
            "annotations": annotations,
            "creationTimestamp": f"2024-01-0{revision or 1}T00:00:00Z",
            "ownerReferences": [{"uid": UID, "controller": True}],
        },
        "spec": {"template": template(tag, hash_label=f"h{tag}")},
    }


@pytest.mark.parametrize(
    ("fields", "message", "done"),
    [
        ({"generation": 3}, "Waiting for deployment spec update to be observed...", False),
        (
            {"updatedReplicas": 1},
            'Waiting for deployment "nova" rollout to finish: 1 out of 2 new replicas have been '
            "updated...",
            False,
        ),
        (
            {"updatedReplicas": 2, "replicas": 3},
            'Waiting for deployment "nova" rollout to finish: 1 old replicas are pending '
            "termination...",
            False,
        ),
        (
            {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 1},
            'Waiting for deployment "nova" rollout to finish: 1 of 2 updated replicas are '
            "available...",
            False,
        ),
        (
            {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2},
            'deployment "nova" successfully rolled out',
            True,
        ),
    ],
)
def test_rollout_status_matches_kubectl(fields: dict[str, int], message: str, done: bool) -> None:
    status = kubectl.rollout_status(deployment(**fields))
    assert (status.message, status.done, status.failed) == (message, done, False)


def test_progress_deadline_exceeded_is_a_failure() -> None:
    obj = deployment(updatedReplicas=1)
    obj["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    status = kubectl.rollout_status(obj)
    assert status.failed and status.message == 'deployment "nova" exceeded its progress deadline'


def test_undo_targets_previous_or_named_revision_with_kubectls_errors() -> None:
    sets = [replicaset(1, "v1"), replicaset(3, "v3"), replicaset(2, "v2")]
    assert kubectl.undo_target(deployment(), sets, 0)["metadata"]["name"] == "nova-v2"
    assert kubectl.undo_target(deployment(), sets, 1)["metadata"]["name"] == "nova-v1"
    with pytest.raises(KubectlError, match="unable to find specified revision 7 in history"):
        kubectl.undo_target(deployment(), sets, 7)
    with pytest.raises(KubectlError, match="unable to find specified revision -1 in history"):
        kubectl.undo_target(deployment(), sets, -1)
    with pytest.raises(KubectlError, match='no rollout history found for deployment "nova"'):
        kubectl.undo_target(deployment(), [replicaset(3, "v3")], 0)


def test_undo_patch_restores_template_and_keeps_skip_listed_annotations() -> None:
    patch = kubectl.undo_patch(deployment(), replicaset(1, "v1", cause="deploy v1"))
    assert patch[0] == {"op": "replace", "path": "/spec/template", "value": template("v1")}
    assert patch[1] == {
        "op": "replace",
        "path": "/metadata/annotations",
        "value": {
            kubectl.REVISION: "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            kubectl.CHANGE_CAUSE: "deploy v1",
        },
    }


def test_templates_compare_without_the_hash_label() -> None:
    assert kubectl.equal_ignore_hash(template("v1", "abc"), template("v1"))
    assert not kubectl.equal_ignore_hash(template("v1", "abc"), template("v2", "abc"))
    rs = [replicaset(2, "v2"), replicaset(3, "v3")]
    assert kubectl.new_replicaset(deployment(), rs) is rs[1]


def test_history_rows_sorted_with_none_for_missing_change_cause() -> None:
    rows = kubectl.history(
        [replicaset(2, "v2", cause="by alice"), replicaset(1, "v1"), replicaset(None, "v0")]
    )
    assert [(r.number, r.change_cause_text, r.images) for r in rows] == [
        (0, "<none>", ("reg/nova:v0",)),
        (1, "<none>", ("reg/nova:v1",)),
        (2, "by alice", ("reg/nova:v2",)),
    ]


def test_label_selector_string() -> None:
    selector = {
        "matchLabels": {"app": "nova"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert kubectl.label_selector(selector) == "app=nova,tier in (api,web),!canary"


def test_template_equality_is_semantic() -> None:
    bare = template("v1")
    padded = template("v1", "abc")
    padded["metadata"]["annotations"] = {}
    padded["spec"]["containers"][0]["env"] = []
    assert kubectl.equal_ignore_hash(bare, padded)
