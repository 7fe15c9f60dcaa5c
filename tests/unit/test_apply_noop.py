"""The no-op check that keeps a resync write-free, and its ownership half."""

from t2i_operator.apply import is_subset, needs_apply, owned_paths

DESIRED = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "s", "namespace": "d", "labels": {"a": "1"}},
    "spec": {"ports": [{"name": "http", "port": 5000}], "selector": {"a": "1"}},
}


def live(extra_label=None, port=5000, owned_label_b=False):
    labels = {"a": "1"}
    if extra_label:
        labels["b"] = extra_label
    fields = {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {
            "f:ports": {'k:{"port":5000,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}}},
            "f:selector": {},
        },
    }
    if owned_label_b:
        fields["f:metadata"]["f:labels"]["f:b"] = {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "s",
            "namespace": "d",
            "labels": labels,
            "resourceVersion": "9",
            "managedFields": [
                {"manager": "t2i-operator", "operation": "Apply", "fieldsV1": fields},
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:x": {}}},
            ],
        },
        "spec": {
            "ports": [{"name": "http", "port": port, "protocol": "TCP", "targetPort": 5000}],
            "selector": {"a": "1"},
            "clusterIP": "10.0.0.7",
        },
    }


def test_defaults_added_by_the_server_do_not_count_as_drift():
    assert is_subset(DESIRED, live())
    assert not needs_apply(DESIRED, live())


def test_changed_value_or_list_length_is_drift():
    assert needs_apply(DESIRED, live(port=5001))
    longer = {**DESIRED, "spec": {**DESIRED["spec"], "ports": DESIRED["spec"]["ports"] * 2}}
    assert needs_apply(longer, live())
    assert needs_apply(DESIRED, None)


def test_a_field_we_still_own_but_no_longer_send_needs_an_apply():
    # label b set by us earlier, now dropped from the desired object → apply removes it
    assert needs_apply(DESIRED, live(extra_label="2", owned_label_b=True))
    # label b set by someone else → not ours to remove
    assert not needs_apply(DESIRED, live(extra_label="2", owned_label_b=False))


def test_owned_paths_only_count_our_apply_manager():
    paths = owned_paths(live(), "t2i-operator")
    assert ("spec", "ports", "[]", "port") in paths
    assert ("x",) not in paths


def test_canonicalised_quantities_and_dropped_empties_are_no_change():
    """Issue 16 item 6: what the API server canonicalises is compared the way it stores it."""
    desired = {
        "spec": {
            "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
            "storageClassName": "",
            "capacity": {"storage": "50Gi"},
        }
    }
    live = {
        "spec": {
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "capacity": {"storage": "50Gi"},
        }
    }
    assert is_subset(desired, live)
    live["spec"]["resources"]["requests"]["cpu"] = "600m"
    assert not is_subset(desired, live)


def test_foreign_entries_in_keyed_lists_are_no_change_but_ours_still_count():
    desired = {"env": [{"name": "OMP_NUM_THREADS", "value": "2"}]}
    foreign = {"env": [{"name": "OMP_NUM_THREADS", "value": "2"}, {"name": "FOO", "value": "x"}]}
    assert is_subset(desired, foreign)
    assert not is_subset(desired, {"env": [{"name": "OMP_NUM_THREADS", "value": "3"}]})
    assert not is_subset(desired, {"env": [{"name": "FOO", "value": "x"}]})
