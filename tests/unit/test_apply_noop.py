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
