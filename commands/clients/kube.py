"""Kubernetes through the official client: off the event loop, with errors fit for chat.

`Kube` owns its own `ApiClient` (no global configuration), runs every blocking call in a
thread, hands back API objects as JSON dicts (what kubectl's rules in `commands.clients.kubectl`
work on), and turns `ApiException`s and connection failures into `KubeError`s whose text
can be shown to a user as is. The `kubernetes` package is imported only when a `Kube` is
built, and of it only the configuration, `ApiClient` and `Watch`: the requests are
`commands.clients.kube_api`'s, not the generated API classes (which load every model).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml

from commands.clients import kubectl
from commands.clients.kube_api import AppsV1, CoreV1

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.watch import Watch

    from commands.core.config import KubernetesConfig

Obj = dict[str, Any]
T = TypeVar("T")
Kind = Literal["deployments", "replicasets", "pods", "services", "events"]
WATCH_SECONDS = 60  # a watch request's server-side timeout: its thread ends by then at worst


class KubeError(Exception):
    """A Kubernetes call failed; `str(error)` is a message for the user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class KubeConfigError(KubeError):
    """No usable kubeconfig or in-cluster service account."""


class KubeUnavailable(KubeError):
    """The API server cannot be reached (refused, DNS, TLS, reset)."""


class KubeTimeout(KubeUnavailable):
    """The API server did not answer in time."""


class ServerError(KubeError):
    """The API server answered 5xx."""


class Forbidden(KubeError):
    """401 or 403: the credentials or RBAC do not allow this."""


class NotFound(KubeError):
    """404."""


class Conflict(KubeError):
    """409: the object changed since it was read (or already exists)."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""


class Invalid(KubeError):
    """400 or 422: the API refused the request as malformed or invalid."""


_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}
_TRANSIENT = (KubeUnavailable, ServerError)


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a connection failure (`connection refused`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[0].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text.rsplit(": ", 1)[-1] if ": " in text else text or type(exc).__name__


def _status_message(body: str | None) -> str:
    """The `message` of a Kubernetes `Status` body, else the body itself (shortened), or ""."""
    if not body:
        return ""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body.strip()[:300]


def _with_precondition(patch: Obj | list[Obj], resource_version: str | None) -> Obj | list[Obj]:
    """The patch made conditional on `resource_version` (the API answers 409 if it moved)."""
    if resource_version is None:
        return patch
    if isinstance(patch, list):
        guard = {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
        return [*patch, guard]
    body = copy.deepcopy(patch)
    body.setdefault("metadata", {})["resourceVersion"] = resource_version
    return body


@dataclass(frozen=True)
class WatchEvent:
    """What a `WatchStream` hands to its sink.

    `SYNC`: a fresh list (`items`), the complete current state; `ADDED`/`MODIFIED`/`DELETED`:
    one object; `ERROR`: a transient failure, the stream retries; `FAILED`: a permanent
    failure, the stream has ended.
    """

    type: str
    obj: Obj | None = None
    items: list[Obj] | None = None
    error: KubeError | None = None


class Kube:
    """One namespace of one cluster, through the official client running in threads.

    Calls run on a bounded thread pool of their own (`max_concurrent_calls`), each with the
    request timeout on connecting and on every read, so a hung API server ties up at most that
    many threads for at most that long, and never the loop's default executor that the state
    file, log rendering and everything else share. Watches have their own threads.
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        request_timeout_seconds: float = 10.0,
        max_concurrent_calls: int = 8,
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.request_timeout = request_timeout_seconds
        self._executor = ThreadPoolExecutor(max_concurrent_calls, thread_name_prefix="kube")
        self.apps = AppsV1(api_client)
        self.core = CoreV1(api_client)

    @classmethod
    def connect(
        cls,
        namespace: str,
        *,
        kubeconfig: Path | str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        request_timeout_seconds: float = 10.0,
        max_concurrent_calls: int = 8,
    ) -> Kube:
        """Load a kubeconfig (path and context) or the in-cluster service account. Blocking."""
        from kubernetes import client, config
        from urllib3.util.retry import Retry

        configuration = client.Configuration()
        # retry refused connections only: a read that timed out is not tried again, so a
        # hung API server costs one request timeout, as the reply says
        configuration.retries = Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.1)
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                api_client = client.ApiClient(configuration)
            else:
                api_client = config.new_client_from_config(
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=context,
                    persist_config=False,
                    client_configuration=configuration,
                )
        except (
            config.ConfigException,
            OSError,
            ValueError,
            TypeError,
            AttributeError,
            yaml.YAMLError,
        ) as exc:
            # a kubeconfig that is not YAML, or not a mapping, fails inside the client's loader
            source = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig}"
            raise KubeConfigError(f"cannot load Kubernetes settings from {source}: {exc}") from None
        return cls(api_client, namespace, request_timeout_seconds, max_concurrent_calls)

    @classmethod
    async def from_config(cls, settings: KubernetesConfig, namespace: str) -> Kube:
        """Build from the `kubernetes` config section, importing the client in a thread."""
        return await asyncio.to_thread(
            partial(
                cls.connect,
                namespace,
                kubeconfig=settings.kubeconfig,
                context=settings.context,
                in_cluster=settings.use_in_cluster(),
                request_timeout_seconds=settings.request_timeout_seconds,
                max_concurrent_calls=settings.max_concurrent_calls,
            )
        )

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self.api_client.configuration.host)

    async def close(self) -> None:
        await asyncio.to_thread(self.api_client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- reads ----------------------------------------------------------------------------

    async def get_deployment(self, name: str) -> Obj:
        return await self._call(self.apps.read_namespaced_deployment, name, self.namespace)

    async def list_objects(
        self, kind: Kind, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[Obj]:
        """The objects of one kind in the namespace, optionally selected."""
        listing = await self._call(
            self._list_method(kind),
            self.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        return listing.get("items") or []

    async def get_service(self, name: str) -> Obj:
        return await self._call(self.core.read_namespaced_service, name, self.namespace)

    async def list_nodes(self) -> list[Obj]:
        return (await self._call(self.core.list_node)).get("items") or []

    async def read_pod_log(self, pod: str, **params: Any) -> bytes:
        """A pod's log as sent; `params` are the client's (container, previous, tail_lines ...)."""
        return await self._in_pool(
            self._request_blocking, self.core.read_namespaced_pod_log, pod, self.namespace, **params
        )

    async def deployment_names(self) -> list[str]:
        return [d["metadata"]["name"] for d in await self.list_objects("deployments")]

    async def owned_replicasets(self, deployment: Obj) -> list[Obj]:
        """The ReplicaSets a Deployment controls: its selector, then the controller uid."""
        selector = kubectl.label_selector(deployment["spec"]["selector"])
        replicasets = await self.list_objects("replicasets", label_selector=selector)
        return kubectl.owned(replicasets, deployment)

    async def owned_pods(self, deployment: Obj, replicasets: list[Obj] | None = None) -> list[Obj]:
        """The pods of a Deployment's ReplicaSets."""
        if replicasets is None:
            replicasets = await self.owned_replicasets(deployment)
        uids = {rs["metadata"]["uid"] for rs in replicasets}
        selector = kubectl.label_selector(deployment["spec"]["selector"])
        pods = await self.list_objects("pods", label_selector=selector)
        return [pod for pod in pods if kubectl.controller_uid(pod) in uids]

    # --- writes ---------------------------------------------------------------------------

    async def patch_deployment(
        self, name: str, patch: Obj | list[Obj], *, resource_version: str | None = None
    ) -> Obj:
        """A strategic-merge patch (dict) or JSON patch (list); 409 if `resource_version` moved."""
        body = _with_precondition(patch, resource_version)
        return await self._call(self.apps.patch_namespaced_deployment, name, self.namespace, body)

    async def scale_deployment(self, name: str, replicas: int) -> Obj:
        """Set the replica count through the `scale` subresource, as `kubectl scale` does."""
        body = {"spec": {"replicas": replicas}}
        return await self._call(
            self.apps.patch_namespaced_deployment_scale, name, self.namespace, body
        )

    # --- watches --------------------------------------------------------------------------

    def watch(
        self,
        kind: Kind,
        sink: Callable[[WatchEvent], None],
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> WatchStream:
        """A list-then-watch stream of one kind; use `async with`. `sink` runs on the loop."""
        return WatchStream(self, kind, sink, label_selector, field_selector)

    # --- plumbing -------------------------------------------------------------------------

    def _list_method(self, kind: Kind) -> Callable[..., Any]:
        methods: dict[str, Callable[..., Any]] = {
            "deployments": self.apps.list_namespaced_deployment,
            "replicasets": self.apps.list_namespaced_replica_set,
            "pods": self.core.list_namespaced_pod,
            "services": self.core.list_namespaced_service,
            "events": self.core.list_namespaced_event,
        }
        return methods[kind]

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self._in_pool(self.call_blocking, method, *args, **kwargs)

    async def _in_pool(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def call_blocking(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one client method (in a worker thread) and return its decoded JSON body."""
        data = self._request_blocking(method, *args, **kwargs)
        try:
            return json.loads(data)
        except ValueError:
            raise KubeError(f"Kubernetes API at {self.server} sent a malformed answer") from None

    def _request_blocking(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """Call one client method (in a worker thread) and return its raw body."""
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
            )
            try:
                return bytes(response.data)
            finally:
                response.release_conn()
        except Exception as exc:
            error = self.translate(exc)
            if error is None:
                raise
            raise error from exc

    def translate(self, exc: BaseException) -> KubeError | None:
        """The `KubeError` for a client or connection exception; None for anything else."""
        from kubernetes.client.exceptions import ApiException
        from urllib3 import exceptions as http

        if isinstance(exc, ApiException):
            return self._api_error(exc)
        if isinstance(exc, http.MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        if isinstance(exc, http.TimeoutError) and not isinstance(exc, http.NewConnectionError):
            return KubeTimeout(
                f"Kubernetes API at {self.server} did not answer within {self.request_timeout:g}s"
            )
        if isinstance(exc, http.HTTPError | OSError):
            return KubeUnavailable(
                f"Kubernetes API at {self.server} is unreachable ({_os_reason(exc)})"
            )
        return None

    def _api_error(self, exc: Any) -> KubeError:
        status = int(exc.status or 0)
        reason = str(exc.reason or "").strip()
        if status == 0:
            detail = reason.splitlines()[-1] if reason else "no answer"
            return KubeUnavailable(f"Kubernetes API at {self.server} is unreachable ({detail})")
        message = _status_message(exc.body)
        answered = f"Kubernetes API at {self.server} answered {status} {reason}".rstrip()
        if message and message != reason:
            answered += f": {message}"
        if status == 401:
            return Forbidden(f"{answered} (the credentials were refused)", status)
        if status in _BY_STATUS:
            return _BY_STATUS[status](message or answered, status)
        if status >= 500:
            return ServerError(answered, status)
        return KubeError(answered, status)


class WatchStream:
    """List, then watch from the list's resourceVersion, in a thread of its own.

    Like kubectl, it lists again on 410 Gone and whenever the watch request ends (each one
    has a server-side timeout). Transient failures are reported and retried with back-off.
    Events reach `sink` on the event loop through `call_soon_threadsafe`. `stop()` (or leaving
    the `async with`) interrupts the thread and waits until it has ended.
    """

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        sink: Callable[[WatchEvent], None],
        label_selector: str | None,
        field_selector: str | None,
    ) -> None:
        self._kube, self._kind, self._sink = kube, kind, sink
        self._selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self._stopping = threading.Event()
        self._watch: Watch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None

    async def __aenter__(self) -> WatchStream:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        selector = self._selectors["field_selector"] or self._selectors["label_selector"]
        name = f"watch-{self._kind}-{selector}"
        threading.Thread(target=self._run, name=name, daemon=True).start()

    async def stop(self) -> None:
        """Stop the thread and wait for it to end."""
        self._stopping.set()
        finished = self._finished
        while finished is not None and not finished.done():
            watch = self._watch
            if watch is not None:
                watch.stop()  # shuts the socket down: the blocked read returns
            await asyncio.wait([finished], timeout=0.05)

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._list_and_watch()
        except BaseException as exc:  # never let the thread die silently
            self._deliver(WatchEvent("FAILED", error=KubeError(f"watch failed: {exc!r}")))
        finally:
            self._post(self._set_finished)

    def _set_finished(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _list_and_watch(self) -> None:
        backoff = 0.2
        method = self._kube._list_method(self._kind)
        while not self._stopping.is_set():
            try:
                listing = self._kube.call_blocking(method, self._kube.namespace, **self._selectors)
                self._deliver(WatchEvent("SYNC", items=listing.get("items") or []))
                backoff = 0.2
                self._watch_from(method, listing["metadata"]["resourceVersion"])
            except Gone:
                continue
            except _TRANSIENT as exc:
                if self._stopping.is_set():
                    return
                self._deliver(WatchEvent("ERROR", error=exc))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except KubeError as exc:
                self._deliver(WatchEvent("FAILED", error=exc))
                return

    def _watch_from(self, method: Callable[..., Any], resource_version: str) -> None:
        from kubernetes.watch import Watch

        watch = Watch(return_type=object)  # objects stay plain dicts
        self._watch = watch
        if self._stopping.is_set():
            return
        read_timeout = WATCH_SECONDS + self._kube.request_timeout
        try:
            for event in watch.stream(
                method,
                self._kube.namespace,
                resource_version=resource_version,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=(self._kube.request_timeout, read_timeout),
                **self._selectors,
            ):
                if self._stopping.is_set():
                    return
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._deliver(WatchEvent(event["type"], obj=event["raw_object"]))
        except Exception as exc:
            if self._stopping.is_set():
                return
            error = self._kube.translate(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            self._watch = None

    def _deliver(self, event: WatchEvent) -> None:
        if not self._stopping.is_set():
            self._post(partial(self._sink, event))

    def _post(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self._stopping.set()
