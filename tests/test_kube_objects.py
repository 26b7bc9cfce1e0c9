"""Reading Kubernetes objects: kubectl Lists, YAML, multi-document YAML, single
objects, v1 Endpoints, and one-line errors that name the file and the field."""

from __future__ import annotations

import json

import pytest

from conftest import IPT, KP

from svcinspect.errors import InputError
from svcinspect.parse.kube_objects import merge_states, parse_objects

OBJECTS = (IPT / "objects.json").read_text()


def test_kubectl_list_gives_every_service_slice_and_node():
    st = parse_objects(OBJECTS, "objects.json")
    assert (len(st.services), len(st.slices), len(st.nodes)) == (28, 27, 2)
    hw = st.service("default", "hello-world")
    assert hw.type == "NodePort" and hw.cluster_ips == ("10.96.10.10",)
    assert [(p.name, p.protocol, p.port, p.node_port) for p in hw.ports] == [("", "tcp", 80, 31611)]
    lb = st.service("default", "lb-ranges")
    assert [i.ip for i in lb.load_balancer_ingress] == ["192.0.2.100"]
    assert lb.load_balancer_source_ranges == ("203.0.113.0/24", "198.51.100.0/25")
    aff = st.service("default", "affinity")
    assert (aff.session_affinity, aff.affinity_timeout) == ("ClientIP", 600)
    assert st.service("default", "etp-local-has").health_check_node_port == 32001
    assert st.service("default", "headless").headless
    assert st.node("node-a").zone == "zone-a"


def test_slice_endpoints_keep_conditions_pods_nodes_and_hints():
    st = parse_objects(OBJECTS, "objects.json")
    (sl,) = st.slices_for(st.service("default", "only-terminating"))
    by_pod = {e.pod: e for e in sl.endpoints}
    t = by_pod["term-notserving"]
    assert (t.conditions.is_ready, t.conditions.is_serving, t.conditions.is_terminating) == (False, False, True)
    assert t.node_name == "node-b" and t.addresses == ("10.244.2.123",)
    (tz,) = st.slices_for(st.service("default", "topology-zone"))
    assert {e.pod: e.hint_zones for e in tz.endpoints} == {"tz-0": ("zone-a",), "tz-1": ("zone-a",),
                                                           "tz-2": ("zone-b",)}


def test_multi_document_yaml_manifests():
    text = "\n---\n".join(p.read_text() for p in sorted((KP / "scenario").glob("*.yaml")))
    st = parse_objects(text, "scenario.yaml")
    assert len(st.services) == 27 and len(st.nodes) == 2     # no default/kubernetes in the manifests
    assert st.service("default", "topology-zone").traffic_distribution == "PreferSameZone"


def test_single_object_and_json_array():
    svc = next(i for i in json.loads(OBJECTS)["items"] if i["kind"] == "Service")
    assert [s.name for s in parse_objects(json.dumps(svc), "one.json").services] == [svc["metadata"]["name"]]
    assert len(parse_objects(json.dumps([svc, svc]), "arr.json").services) == 2


def test_typed_api_lists_whose_items_have_no_kind():
    items = [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")}
             for i in json.loads(OBJECTS)["items"] if i["kind"] == "Node"]
    st = parse_objects(json.dumps({"kind": "NodeList", "apiVersion": "v1", "items": items}), "nodes.json")
    assert [n.name for n in st.nodes] == ["node-a", "node-b"]


ENDPOINTS_YAML = """
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses:
  - {ip: 10.1.0.5, nodeName: n1, targetRef: {kind: Pod, name: web-0}}
  notReadyAddresses:
  - {ip: 10.1.0.6, nodeName: n2}
  ports: [{name: http, port: 8080, protocol: TCP}]
"""


def test_v1_endpoints_are_a_fallback_and_say_so():
    st = parse_objects(ENDPOINTS_YAML, "ep.yaml")
    (sl,) = st.slices
    assert sl.service_name == "web" and sl.from_endpoints and sl.address_type == "IPv4"
    assert [(e.addresses[0], e.conditions.is_ready, e.pod) for e in sl.endpoints] == [
        ("10.1.0.5", True, "web-0"), ("10.1.0.6", False, None)]
    assert any("using 1 v1 Endpoints" in n for n in st.notes)
    # With EndpointSlices present, Endpoints are ignored (kube-proxy reads slices), and that is said too.
    both = merge_states([st, parse_objects(OBJECTS, "objects.json")])
    assert not any(s.from_endpoints for s in both.slices)
    assert any("ignored 1 v1 Endpoints" in n for n in both.notes)


def test_other_kinds_are_skipped_and_counted():
    st = parse_objects(ENDPOINTS_YAML + "\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: p}\n", "mix.yaml")
    assert any("skipped 1 Pod" in n for n in st.notes)


@pytest.mark.parametrize("text,words", [
    ('{"kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"ports": [{"port": "http"}]}}',
     "bad.json: Service shop/web: spec.ports[0].port: expected an integer, got 'http'"),
    ('{"kind": "Service", "metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.300", "ports": []}}',
     "bad.json: Service default/web: spec.clusterIPs[0]: '10.0.0.300' is not an IP address"),
    ('{"kind": "EndpointSlice", "metadata": {"name": "s", "namespace": "a"}, "addressType": "IPv4",'
     ' "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}]}',
     "bad.json: EndpointSlice a/s: endpoints[0].conditions.ready: expected true or false"),
    ('{"kind": "Service", "spec": {}}', "bad.json: Service in document 1: metadata: missing"),
    ('{"kind": "Service", "metadata": {"name": "x"}', "bad.json:1: not valid JSON"),
    ("kind: Service\nmetadata: {name: [\n", "bad.json:3: not valid YAML or JSON"),
    ("", "bad.json: empty"),
    ("just words", "bad.json: document 1: expected a Kubernetes object"),
    ("*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n", "iptables-save output, not Kubernetes objects"),
    ('{"kind": "Pod", "metadata": {"name": "p"}}', "no Services, EndpointSlices or Nodes here (only Pod)"),
])
def test_malformed_input_is_one_line_naming_file_and_field(text, words):
    with pytest.raises(InputError) as err:
        parse_objects(text, "bad.json")
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_malformed_objects_exit_2(cli, tmp_path):
    bad = tmp_path / "objects.json"
    bad.write_text('{"kind": "List", "items": [{"kind": "Service", "metadata": {"name": "w"}, "spec": '
                   '{"ports": [{"port": 80, "protocol": "ICMP"}]}}]}')
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(bad), "--node", "node-a")
    assert r.code == 2
    assert "spec.ports[0].protocol: 'ICMP' is not TCP, UDP or SCTP" in r.err and "Traceback" not in r.err
