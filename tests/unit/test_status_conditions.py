"""Status derivation: Ready tells the truth (crash loops, deadlines, rollouts, HPA, inputs)."""

from t2i_operator import spec
from t2i_operator.status import Problem, compute_status
from tutorial import OWNER

NOW = "2026-11-25T05:00:00Z"
EARLIER = "2026-11-25T04:00:00Z"


def deployment(want=1, updated=1, total=1, available=1, ready=None, gen=2, observed=2, conds=()):
    return {
        "metadata": {"name": OWNER.name, "generation": gen},
        "spec": {"replicas": want},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": available if ready is None else ready,
            "conditions": list(conds),
        },
    }


def pod(name="p-0", node="g8i-0", phase="Running", waiting=None, scheduled=None):
    status = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [
            {"name": "t2i-server", "restartCount": 5, "state": {"waiting": {"reason": waiting}}}
        ]
    if scheduled:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": scheduled,
            }
        ]
    return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": status}


def status_of(
    dep, pods=(), *, raw=None, hpa=None, problem=None, previous=None, gen=7, lost=frozenset()
):
    return compute_status(
        spec=spec.parse(raw or {}),
        owner=OWNER,
        generation=gen,
        deployment=dep,
        pods=list(pods),
        hpa=hpa,
        problem=problem,
        previous=previous,
        now=NOW,
        lost_nodes=lost,
    )


def cond(status, ctype):
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_available_deployment_is_ready_with_url_selector_and_nodes():
    s = status_of(deployment(), [pod(node="g8i-1")])
    assert cond(s, "Ready")["status"] == "True"
    assert cond(s, "Progressing")["status"] == "False"
    assert cond(s, "Degraded")["status"] == "False"
    assert s["url"] == "http://stable-diffusion-ipex.default.svc:5000"
    assert s["selector"] == (
        "app.kubernetes.io/instance=stable-diffusion-ipex,app.kubernetes.io/name=t2i-server"
    )
    assert (s["replicas"], s["readyReplicas"], s["observedGeneration"]) == (1, 1, 7)
    assert (s["pool"], s["modelSource"], s["nodes"]) == ("G8i", "Bundled", ["g8i-1"])
    for c in s["conditions"]:
        assert c["reason"] and c["message"] and c["observedGeneration"] == 7
        assert c["lastTransitionTime"] == NOW


def test_crash_looping_pods_are_not_ready_even_if_counted_available():
    s = status_of(
        deployment(want=2, updated=2, total=2, available=2),
        [pod(), pod("p-1", waiting="CrashLoopBackOff")],
    )
    assert cond(s, "Ready")["status"] == "False"
    assert cond(s, "Ready")["reason"] == "CrashLoopBackOff"
    assert cond(s, "Degraded")["status"] == "True"
    assert "p-1" in cond(s, "Degraded")["message"]


def test_crash_loop_reason_carries_the_servers_last_words_shortened():
    crashed = pod("p-0", waiting="CrashLoopBackOff")
    log_tail = '{"level": "INFO", "msg": "starting"}\nt2i-server: backend \'compile\' needs g++\n\n'
    crashed["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"exitCode": 2, "reason": "Error", "message": log_tail}
    }
    message = cond(status_of(deployment(), [crashed]), "Ready")["message"]
    assert message.endswith("it exited with: t2i-server: backend 'compile' needs g++")
    assert "starting" not in message
    terminated = crashed["status"]["containerStatuses"][0]["lastState"]["terminated"]
    terminated["message"] = "t2i-server: " + "x" * 5000
    message = cond(status_of(deployment(), [crashed]), "Ready")["message"]
    assert len(message) < 400 and message.endswith("x…")
    # Any other last line (a JSON log record may hold a prompt) stays out of the status.
    terminated["message"] = '{"msg": "request", "prompt": "my secret prompt"}\n'
    assert "secret" not in cond(status_of(deployment(), [crashed]), "Ready")["message"]
    quiet = status_of(deployment(), [pod(waiting="CrashLoopBackOff")])
    assert "exited with" not in cond(quiet, "Ready")["message"]


def test_progress_deadline_exceeded_is_degraded():
    dead = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "x" has timed out progressing.',
    }
    s = status_of(deployment(updated=1, available=0, conds=[dead]), [pod()])
    assert cond(s, "Degraded")["status"] == "True"
    assert cond(s, "Degraded")["reason"] == "ProgressDeadlineExceeded"
    assert cond(s, "Ready")["status"] == "False"
    assert cond(s, "Progressing")["status"] == "False"


def test_rolling_update_in_progress_is_progressing_not_ready():
    s = status_of(deployment(want=3, updated=1, total=4, available=3), [pod()])
    assert cond(s, "Ready")["status"] == "False"
    assert cond(s, "Progressing")["status"] == "True"
    assert cond(s, "Degraded")["status"] == "False"
    old = status_of(deployment(want=3, updated=3, total=4, available=3))
    assert cond(old, "Ready")["reason"] == "RollingOut"


def test_deployment_controller_behind_is_not_ready():
    s = status_of(deployment(gen=3, observed=2))
    assert cond(s, "Ready")["reason"] == "RolloutPending"


def test_unschedulable_pod_is_degraded_with_the_schedulers_message():
    s = status_of(
        deployment(available=0, ready=0, total=1),
        [pod(node=None, phase="Pending", scheduled="0/4 nodes are available")],
    )
    assert cond(s, "Degraded")["reason"] == "Unschedulable"
    assert "0/4 nodes" in cond(s, "Ready")["message"]
    assert s["nodes"] == []


def test_a_pod_on_a_deleted_node_is_lost_though_its_status_still_says_ready():
    ready_pods = [pod("p-0", node="tdx-0"), pod("p-1", node="g8i-0")]
    assert (
        cond(status_of(deployment(want=2, updated=2, total=2, available=2), ready_pods), "Ready")[
            "status"
        ]
        == "True"
    )
    s = status_of(
        deployment(want=2, updated=2, total=2, available=2), ready_pods, lost=frozenset({"tdx-0"})
    )
    assert cond(s, "Ready")["status"] == "False"
    assert cond(s, "Degraded")["reason"] == "NodeLost"
    assert "p-0" in cond(s, "Degraded")["message"] and "tdx-0" in cond(s, "Degraded")["message"]


def test_hpa_present_counts_against_the_deployments_replicas():
    hpa = {"metadata": {"name": OWNER.name}, "status": {"desiredReplicas": 2}}
    s = status_of(
        deployment(want=2, updated=2, total=2, available=2),
        [pod(), pod("p-1", node="g8i-1")],
        raw={"replicas": 1, "autoscaling": {"enabled": True}},
        hpa=hpa,
    )
    assert cond(s, "Ready")["status"] == "True"
    assert "HPA" in cond(s, "Ready")["message"]
    assert s["nodes"] == ["g8i-0", "g8i-1"]


def test_missing_input_is_reported_without_children():
    problem = Problem("SecretNotFound", "Secret default/x (spec.model.oss...) does not exist")
    s = status_of(None, problem=problem, raw={"model": {"source": "OSS", "oss": {"bucket": "b"}}})
    assert cond(s, "Ready")["status"] == "False"
    assert cond(s, "Ready")["reason"] == "SecretNotFound"
    assert cond(s, "Degraded")["status"] == "True"
    # Nothing of this generation is applied: status claims neither it nor its source.
    assert "observedGeneration" not in s and "modelSource" not in s
    assert cond(s, "Ready")["observedGeneration"] == 7


def test_no_deployment_yet():
    s = status_of(None)
    assert cond(s, "Ready")["reason"] == "DeploymentMissing"
    assert cond(s, "Progressing")["status"] == "True"


def test_scaled_to_zero_is_not_ready():
    s = status_of(deployment(want=0, updated=0, total=0, available=0))
    assert cond(s, "Ready")["reason"] == "ScaledToZero"


def test_transition_time_only_moves_when_status_changes():
    first = status_of(deployment(), [pod()])
    previous = {
        **first,
        "conditions": [{**c, "lastTransitionTime": EARLIER} for c in first["conditions"]],
    }
    again = status_of(deployment(), [pod()], previous=previous)
    assert all(c["lastTransitionTime"] == EARLIER for c in again["conditions"])
    broken = status_of(deployment(), [pod(waiting="CrashLoopBackOff")], previous=previous)
    assert cond(broken, "Ready")["lastTransitionTime"] == NOW
    assert cond(broken, "Progressing")["lastTransitionTime"] == EARLIER  # stayed False


def test_terminating_pods_are_ignored():
    gone = pod(waiting="CrashLoopBackOff")
    gone["metadata"]["deletionTimestamp"] = EARLIER
    s = status_of(deployment(), [gone, pod("p-1", node="g8i-1")])
    assert cond(s, "Ready")["status"] == "True"
    assert s["nodes"] == ["g8i-1"]
