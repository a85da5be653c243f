"""The Kubernetes API calls holmbot makes, on the official client's `ApiClient`, without its
generated API classes.

`kubernetes.client.AppsV1Api` and `CoreV1Api` import, as they load, the pydantic model of every
kind their methods take or return: about 280 modules, 26 MiB resident and half a second of a
start, for answers holmbot reads as JSON anyway. Each `Endpoint` is a request the way the
generated method serializes it (its path, the API's camelCase query names, `Accept`, the
bearer token), with the client's configuration, TLS, retries and REST layer (which picks the
patch content type: JSON patch for a list, strategic merge for an object). Like a generated
method called with `_preload_content=False` it returns the unread urllib3 response and raises
`ApiException` for any other status than 2xx, so `kubernetes.watch.Watch` streams it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# the keyword arguments an endpoint takes, and the name the API has for each
QUERY_NAMES = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "watch": "watch",
    "container": "container",
    "previous": "previous",
    "tail_lines": "tailLines",
    "since_seconds": "sinceSeconds",
    "timestamps": "timestamps",
    "limit_bytes": "limitBytes",
}


@dataclass(frozen=True)
class Endpoint:
    """One API path and method: called with its path parameters in the order they appear,
    then the body for a write, and query parameters by keyword (None ones are left out)."""

    api_client: ApiClient
    method: str
    path: str  # "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    params: tuple[str, ...]  # the path's parameters, in the order they are passed

    def __call__(
        self,
        *args: Any,
        _preload_content: bool = False,
        _request_timeout: Any = None,
        **query: Any,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        if _preload_content:
            raise ValueError("holmbot's endpoints return the unread response only")
        takes_body = self.method in ("PATCH", "PUT", "POST")
        if len(args) != len(self.params) + takes_body:
            raise TypeError(f"{self.method} {self.path} takes {self.params} and a body")
        unknown = set(query) - QUERY_NAMES.keys()
        if unknown:
            raise TypeError(f"{self.method} {self.path}: unknown parameters {sorted(unknown)}")
        request = self.api_client.param_serialize(
            method=self.method,
            resource_path=self.path,
            path_params=dict(zip(self.params, args, strict=False)),
            query_params=sorted(  # in the API's (alphabetical) order, as generated
                (QUERY_NAMES[k], v) for k, v in query.items() if v is not None
            ),
            header_params={
                "Accept": "application/json",
                **({"Content-Type": "application/json-patch+json"} if takes_body else {}),
            },
            body=args[-1] if takes_body else None,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response


class AppsV1:
    """The `apps/v1` calls: Deployments and ReplicaSets in a namespace."""

    def __init__(self, api_client: ApiClient) -> None:
        base = "/apis/apps/v1/namespaces/{namespace}"
        self.read_namespaced_deployment = Endpoint(
            api_client, "GET", base + "/deployments/{name}", ("name", "namespace")
        )
        self.list_namespaced_deployment = Endpoint(
            api_client, "GET", base + "/deployments", ("namespace",)
        )
        self.list_namespaced_replica_set = Endpoint(
            api_client, "GET", base + "/replicasets", ("namespace",)
        )
        self.patch_namespaced_deployment = Endpoint(
            api_client, "PATCH", base + "/deployments/{name}", ("name", "namespace")
        )
        self.patch_namespaced_deployment_scale = Endpoint(
            api_client, "PATCH", base + "/deployments/{name}/scale", ("name", "namespace")
        )


class CoreV1:
    """The core `v1` calls: pods and their logs, Services and Events, nodes."""

    def __init__(self, api_client: ApiClient) -> None:
        base = "/api/v1/namespaces/{namespace}"
        self.list_namespaced_pod = Endpoint(api_client, "GET", base + "/pods", ("namespace",))
        self.read_namespaced_pod_log = Endpoint(
            api_client, "GET", base + "/pods/{name}/log", ("name", "namespace")
        )
        self.list_namespaced_service = Endpoint(
            api_client, "GET", base + "/services", ("namespace",)
        )
        self.read_namespaced_service = Endpoint(
            api_client, "GET", base + "/services/{name}", ("name", "namespace")
        )
        self.list_namespaced_event = Endpoint(api_client, "GET", base + "/events", ("namespace",))
        self.list_node = Endpoint(api_client, "GET", "/api/v1/nodes", ())
