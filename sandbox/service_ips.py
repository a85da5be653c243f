"""Service cluster IPs: the service CIDR, the addresses kept out of it, and the allocator.

Like the API server, a new ClusterIP-backed Service without a `clusterIP` gets one, and an
update that leaves it out keeps the one it has (it cannot change).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sandbox.seed import REGISTRY_HOST

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
RESERVED_CLUSTER_IPS = frozenset({"10.96.0.1", "10.96.0.10", REGISTRY_HOST.split(":")[0]})


def cluster_ip(name: str, taken: set[str]) -> str:
    """A stable address in the service CIDR for `name`, not in `taken` and not reserved."""
    offset = sum(name.encode()) * 7919 + len(name)
    while True:
        address = str(SERVICE_CIDR[2 + offset % (SERVICE_CIDR.num_addresses - 3)])
        if address not in taken and address not in RESERVED_CLUSTER_IPS:
            return address
        offset += 1


def service_spec(ip: str) -> dict[str, Any]:
    """The fields the API server fills into a ClusterIP Service's spec for address `ip`."""
    return {
        "clusterIP": ip,
        "clusterIPs": [ip],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }


def assign_cluster_ip(service: dict[str, Any], taken: set[str]) -> None:
    """Give a new Service (not ExternalName) an address and its spec's defaults, in place."""
    spec = service.setdefault("spec", {})
    if spec.get("type") == "ExternalName":
        return
    ip = spec.get("clusterIP") or cluster_ip(service["metadata"].get("name", ""), taken)
    for key, value in service_spec(ip).items():
        spec.setdefault(key, value)


def keep_cluster_ip(service: dict[str, Any], old: dict[str, Any]) -> None:
    """An update that leaves the address out keeps the stored one, in place."""
    spec, before = service.setdefault("spec", {}), old.get("spec") or {}
    for key in ("clusterIP", "clusterIPs"):
        if key in before:
            spec.setdefault(key, before[key])
