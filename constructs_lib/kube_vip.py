"""kube-vip as a static pod on k3s servers: the API endpoint's VIP, held by ARP on one server at a time.

Why a static pod and not a DaemonSet: the VIP must answer before the second server, the agents, Terraform and
Cilium (`k8sServiceHost`) use it, and a DaemonSet only runs once the API, a CNI and the scheduler work. kubelet
starts static pods from `<data-dir>/agent/pod-manifests` (k3s's DefaultPodManifestPath) as soon as k3s starts,
with host networking, so no CNI is needed. install.sh writes the manifest before k3s first starts.

kube-vip talks to the local API server (k3s's admin kubeconfig, https://127.0.0.1:6443) for leader election on a
Lease, so only the leader holds the VIP, and the VIP moves when that server's API stops answering. The settings
are kube-vip's environment variables (pkg/kubevip/config_envvar.go at v1.2.3, each name checked there); the
manifest is ours. At v1.2.3 (pkg/manager/manager.go) a `k8s_config_file` other than /etc/kubernetes/admin.conf
that exists is used as it is, its server (127.0.0.1) included, so kube-vip never needs the VIP it holds. The
lease holder is the Kubernetes node name (`vip_nodename` from spec.nodeName, as kube-vip's own manifest generator
sets it), not the hostname, which cloned machines may share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

# ghcr.io's kube-vip image at the release tag (.github/workflows/release.yaml at that tag pushes it). The digest
# can't be resolved offline, so the tag is the pin; Renovate's docker datasource can add the digest.
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip:v1.2.3"
# Where kubelet in k3s reads static pods, and the admin kubeconfig k3s writes on every server.
POD_MANIFESTS_DIR = "/var/lib/rancher/k3s/agent/pod-manifests"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"


@dataclass(frozen=True)
class KubeVip:
    """The VIP for the API endpoint, held by kube-vip on the servers.

    Props:
        image: the kube-vip image (tag, or tag@digest).
        interface: network interface that carries the VIP; None lets kube-vip take the default route's interface.
        lease_name: the Lease in kube-system used for leader election.
        lease_duration, renew_deadline, retry_period: leader election timings in seconds (kube-vip's defaults).
    """

    image: str = KUBE_VIP_IMAGE
    interface: str | None = None
    lease_name: str = "plndr-cp-lock"
    lease_duration: int = 5
    renew_deadline: int = 3
    retry_period: int = 1


def static_pod_manifest(vip: KubeVip, *, address: str, port: int) -> str:
    """The static pod (YAML) that holds `address` for the API on `port`."""
    env: dict[str, Any] = {
        "vip_arp": "true",
        "address": address,
        "port": str(port),
        "vip_subnet": "32",
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        # Services stay with Cilium's LB-IPAM: kube-vip only serves the control plane.
        "svc_enable": "false",
        "vip_leaderelection": "true",
        "vip_leasename": vip.lease_name,
        "vip_leaseduration": str(vip.lease_duration),
        "vip_renewdeadline": str(vip.renew_deadline),
        "vip_retryperiod": str(vip.retry_period),
        "k8s_config_file": K3S_KUBECONFIG,
    }
    if vip.interface:
        env["vip_interface"] = vip.interface
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system", "labels": {"app.kubernetes.io/name": "kube-vip"}},
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "kube-vip",
                    "image": vip.image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["manager"],
                    "env": [
                        *({"name": k, "value": v} for k, v in env.items()),
                        {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": K3S_KUBECONFIG, "readOnly": True}],
                }
            ],
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": K3S_KUBECONFIG, "type": "File"}}],
        },
    }
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False)
