"""A local Slack: the Web API and Socket Mode on 127.0.0.1, spoken to by the unmodified
slack-bolt and slack-sdk, recording every call so tests assert what the bot posted.

Web API (`{url}/api/METHOD`): arguments from the query, a form or a JSON body (form values that
hold JSON, such as `blocks`, are decoded); `Authorization: Bearer` must carry the bot token (the
app token for `apps.connections.open`); answers are `{"ok": true, ...}` or `{"ok": false,
"error": ...}` with status 200, and a configurable share of a method's calls is answered 429 with
`Retry-After` (`limit`). Methods: auth.test, apps.connections.open, chat.postMessage,
chat.update, chat.postEphemeral, reactions.add, reactions.get, files.getUploadURLExternal, the
upload URL itself, files.completeUploadExternal, usergroups.users.list, conversations.info; a
`response_url` is served too.

Socket Mode: `apps.connections.open` returns `ws://127.0.0.1:PORT/socket?ticket=N`; a new
connection is sent `{"type": "hello", ...}`, then envelopes `{"envelope_id", "type",
"payload", "accepts_response_payload", "retry_attempt", "retry_reason"}` of type
`slash_commands`, `events_api` or `interactive`; the client answers `{"envelope_id",
"payload"?}`. The fake can drop its connections, go silent (accept connections, answer pings,
never say hello nor deliver: the failure of bolt-python#1529) and redeliver an envelope.

HTTP mode: `signed_post` sends a payload as Slack does (form-encoded commands, JSON events,
`payload=` form for interactions) with `X-Slack-Signature` = `v0=` HMAC-SHA256 of
`v0:TIMESTAMP:BODY`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.serving import serve_app

BOT_TOKEN = "xoxb-holmbot-test"
APP_TOKEN = "xapp-holmbot-test"
SIGNING_SECRET = "holmbot-signing-secret"
BOT_USER = "UHOLMBOT"
BOT_ID = "BHOLMBOT"
TEAM = "T0HOLM"
APP_ID = "A0HOLM"
JSON_FIELDS = {"blocks", "attachments", "files", "metadata"}


@dataclass
class Call:
    """One Web API call as the fake took it."""

    method: str
    args: dict[str, Any]
    status: int
    at: float  # time.monotonic() when it arrived
    error: str | None = None


@dataclass
class Message:
    """A message in a channel, with every version it had."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        """Everything the message shows, as text."""
        return blocks_text(self.blocks) or self.text

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [
            {**element, "block_id": block.get("block_id", f"b{index}")}
            for index, block in enumerate(self.blocks)
            if block.get("type") == "actions"
            for element in block.get("elements", [])
        ]


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    content: bytes = b""
    channel: str | None = None
    thread_ts: str | None = None
    title: str | None = None
    initial_comment: str | None = None
    completed: bool = False


@dataclass
class Channel:
    name: str
    is_member: bool = True
    is_private: bool = False


@dataclass
class Envelope:
    """A Socket Mode envelope as sent (again with a higher `retry_attempt` on redelivery)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    retry_attempt: int = 0

    def frame(self) -> dict[str, Any]:
        frame = {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.type != "events_api",
        }
        if self.type == "events_api":
            frame["retry_attempt"] = self.retry_attempt
            frame["retry_reason"] = "timeout" if self.retry_attempt else ""
        return frame


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    """The text of Block Kit blocks: headers, sections and their fields, context, buttons."""
    parts: list[str] = []

    def text_of(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
                parts.append(node["text"])
                return
            for value in node.values():
                text_of(value)
        elif isinstance(node, list):
            for item in node:
                text_of(item)

    text_of(blocks)
    return "\n".join(parts)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class FakeSlack:
    """A workspace with one bot, some channels, user groups, and everything recorded."""

    def __init__(self, seed: int = 7) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}  # by ts
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response URLs
        self.uploads: dict[str, Upload] = {}
        self.channels: dict[str, Channel] = {"C0OPS": Channel("ops")}
        self.usergroups: dict[str, list[str]] = {}
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.silent = False
        self.connections_opened = 0
        self._limits: dict[str, tuple[float, int]] = {}
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._live: list[web.WebSocketResponse] = []  # connections that were said hello to
        self._acked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads: aiohttp allows 1 MiB
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner, self.url = await serve_app(app)
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def limit(self, method: str, share: float, retry_after: int = 1) -> None:
        """Answer `share` of `method`'s calls with 429 and `Retry-After: retry_after`."""
        self._limits[method] = (share, retry_after)

    # --- what was said ------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def posted(self, channel: str | None = None) -> list[Message]:
        """Messages the bot posted, oldest first (in `channel` if given)."""
        return [
            m
            for m in self.messages.values()
            if m.user == BOT_USER and (channel is None or m.channel == channel)
        ]

    def replies(self, ts: str) -> list[Message]:
        """The bot's messages in the thread of message `ts`."""
        return [m for m in self.posted() if m.thread_ts == ts]

    def ephemeral_to(self, user: str) -> list[dict[str, Any]]:
        return [e for e in self.ephemerals if e["user"] == user]

    # --- the Web API --------------------------------------------------------------------------

    async def _arguments(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        for name in JSON_FIELDS & args.keys():
            if isinstance(args[name], str) and args[name][:1] in "[{":
                args[name] = json.loads(args[name])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._arguments(request)
        now = time.monotonic()
        share, wait = self._limits.get(method, (0.0, 1))
        if share and self._random.random() < share:
            self.calls.append(Call(method, args, 429, now, "ratelimited"))
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(wait)},
            )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if token != wanted:
            answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
        elif handler is None:
            answer = {"ok": False, "error": "unknown_method"}
        else:
            answer = handler(args)
        self.calls.append(Call(method, args, 200, now, answer.get("error")))
        return web.json_response(answer)

    def _next_ts(self) -> str:
        n = next(self._ids)
        return f"{1_760_000_000 + n}.{n:06d}"

    def _channel_error(self, channel: str | None) -> str | None:
        known = self.channels.get(channel or "")
        if known is None:
            return "channel_not_found"
        return None if known.is_member else "not_in_channel"

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://holm.slack.com/",
            "team": "holm",
            "user": "holmbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        self.connections_opened += 1
        host = self.url.removeprefix("http://")
        return {"ok": True, "url": f"ws://{host}/socket?ticket={self.connections_opened}"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if error := self._channel_error(args.get("channel")):
            return {"ok": False, "error": error}
        message = self.add_message(
            args["channel"],
            BOT_USER,
            args.get("text", ""),
            args.get("blocks") or [],
            args.get("thread_ts"),
        )
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": {}}

    def add_message(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        message = Message(channel, self._next_ts(), user, text, blocks or [], thread_ts)
        message.versions.append({"text": text, "blocks": message.blocks, "at": time.monotonic()})
        self.messages[message.ts] = message
        return message

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        if message.user != BOT_USER:
            return {"ok": False, "error": "cant_update_message"}
        message.text = args.get("text", "")
        message.blocks = args.get("blocks") or []  # text without blocks removes the blocks
        message.versions.append(
            {"text": message.text, "blocks": message.blocks, "at": time.monotonic()}
        )
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if error := self._channel_error(args.get("channel")):
            return {"ok": False, "error": error}
        self.ephemerals.append(
            {
                "channel": args["channel"],
                "user": args.get("user"),
                "text": args.get("text", ""),
                "blocks": args.get("blocks") or [],
                "thread_ts": args.get("thread_ts"),
                "shown": blocks_text(args.get("blocks") or []) or args.get("text", ""),
            }
        )
        return {"ok": True, "message_ts": self._next_ts()}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("timestamp", ""))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        users = message.reactions.setdefault(args["name"], [])
        if BOT_USER in users:
            return {"ok": False, "error": "already_reacted"}
        users.append(BOT_USER)
        return {"ok": True}

    def _reactions_get(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("timestamp", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        reactions = [
            {"name": name, "users": list(users), "count": len(users)}
            for name, users in message.reactions.items()
            if users
        ]
        shown = {"type": "message", "ts": message.ts, "text": message.text, "user": message.user}
        return {
            "ok": True,
            "type": "message",
            "channel": message.channel,
            "message": shown | {"reactions": reactions},
        }

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        self.uploads[file_id] = Upload(file_id, args.get("filename", ""), int(args["length"]))
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        done = []
        for item in args.get("files") or []:
            upload = self.uploads.get(item["id"])
            if upload is None or len(upload.content) != upload.length:
                return {"ok": False, "error": "file_not_found"}
            upload.completed = True
            upload.channel = args.get("channel_id")
            upload.thread_ts = args.get("thread_ts")
            upload.title = item.get("title")
            upload.initial_comment = args.get("initial_comment")
            done.append({"id": upload.file_id, "title": upload.title, "name": upload.filename})
        return {"ok": True, "files": done}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.usergroups.get(args.get("usergroup", ""))
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(members)}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(args.get("channel", ""))
        if channel is None or (channel.is_private and not channel.is_member):
            return {"ok": False, "error": "channel_not_found"}
        return {
            "ok": True,
            "channel": {
                "id": args["channel"],
                "name": channel.name,
                "is_channel": True,
                "is_private": channel.is_private,
                "is_member": channel.is_member,
            },
        }

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404)
        upload.content = await request.read()
        self.calls.append(Call("upload", {"file_id": upload.file_id}, 200, time.monotonic()))
        return web.Response(text=f"OK - {len(upload.content)}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append({"id": request.match_info["id"], **(await request.json())})
        return web.Response(text="ok")

    def completed_uploads(self) -> list[Upload]:
        return [upload for upload in self.uploads.values() if upload.completed]

    # --- Socket Mode --------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        if not self.silent:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": APP_ID},
                }
            )
            self._live.append(ws)
        try:
            async for frame in ws:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    await self._took_ack(json.loads(frame.data))
        finally:
            for connections in (self._sockets, self._live):
                if ws in connections:
                    connections.remove(ws)
        return ws

    async def _took_ack(self, answer: dict[str, Any]) -> None:
        envelope_id = answer.get("envelope_id")
        if envelope_id is None:
            return
        async with self._acked:
            self.acks.setdefault(envelope_id, []).append(answer.get("payload") or {})
            self._acked.notify_all()

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._live)

    async def drop(self) -> None:
        """Close every Socket Mode connection from the server's side."""
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"dropped")

    async def send(self, envelope: Envelope, timeout: float = 10.0) -> Envelope:
        """Send an envelope on the newest live connection (waiting for one, bounded)."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise AssertionError("no Socket Mode connection to send on")
            await asyncio.sleep(0.02)
        live = [ws for ws in self._live if not ws.closed]
        await live[-1].send_json(envelope.frame())
        return envelope

    async def redeliver(self, envelope: Envelope) -> Envelope:
        """Send the same envelope again, as Slack does when it saw no ack in time."""
        again = Envelope(
            envelope.envelope_id, envelope.type, envelope.payload, envelope.retry_attempt + 1
        )
        return await self.send(again)

    async def ack_of(self, envelope: Envelope, timeout: float = 5.0) -> dict[str, Any]:
        """The payload of the newest ack of `envelope` ({} for a bare ack), waited for."""
        want = envelope.retry_attempt + 1
        async with asyncio.timeout(timeout), self._acked:
            await self._acked.wait_for(lambda: len(self.acks.get(envelope.envelope_id, [])) >= want)
        return self.acks[envelope.envelope_id][want - 1]

    def _envelope(self, kind: str, payload: dict[str, Any]) -> Envelope:
        return Envelope(f"env-{next(self._ids):06d}", kind, payload)

    # --- payloads, as Slack sends them ----------------------------------------------------------

    def command_payload(
        self, command: str, text: str = "", *, user: str, channel: str = "C0OPS"
    ) -> dict[str, Any]:
        n = next(self._ids)
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "team_domain": "holm",
            "channel_id": channel,
            "channel_name": self.channels.get(channel, Channel("unknown")).name,
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.url}/respond/{n}",
            "trigger_id": f"{n}.{self._random.randrange(10**12)}.abcdef",
        }

    def event_body(self, event: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "event": {"event_ts": self._next_ts(), **event},
            "type": "event_callback",
            "event_id": f"Ev{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{n}",
        }

    def reaction_event(
        self, user: str, message: Message, name: str, *, removed: bool = False
    ) -> dict[str, Any]:
        users = message.reactions.setdefault(name, [])
        if removed and user in users:
            users.remove(user)
        elif not removed:
            users.append(user)
        return {
            "type": "reaction_removed" if removed else "reaction_added",
            "user": user,
            "reaction": name,
            "item_user": message.user,
            "item": {"type": "message", "channel": message.channel, "ts": message.ts},
        }

    def mention_event(
        self, user: str, text: str, channel: str = "C0OPS", thread_ts: str | None = None
    ) -> dict[str, Any]:
        said = self.add_message(channel, user, f"<@{BOT_USER}> {text}", thread_ts=thread_ts)
        event = {"type": "app_mention", "user": user, "text": said.text, "ts": said.ts}
        event.update({"channel": channel, "team": TEAM})
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def click_payload(self, message: Message, label: str, user: str) -> dict[str, Any]:
        """A click on the button labelled `label` of `message`, as it shows now."""
        button = next((b for b in message.buttons if b["text"]["text"] == label), None)
        if button is None:
            raise AssertionError(f"no {label!r} button on message {message.ts}: {message.buttons}")
        n = next(self._ids)
        threaded = {"thread_ts": message.thread_ts} if message.thread_ts else {}
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
                **threaded,
            },
            "trigger_id": f"{n}.{self._random.randrange(10**12)}.fedcba",
            "team": {"id": TEAM, "domain": "holm"},
            "channel": {"id": message.channel, "name": self.channels[message.channel].name},
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "blocks": message.blocks,
                "user": message.user,
                **threaded,
            },
            "response_url": f"{self.url}/respond/{n}",
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": button["block_id"],
                    "text": button["text"],
                    "value": button.get("value", ""),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def command(
        self, command: str, text: str = "", *, user: str, channel: str = "C0OPS"
    ) -> Envelope:
        payload = self.command_payload(command, text, user=user, channel=channel)
        return await self.send(self._envelope("slash_commands", payload))

    async def event(self, event: dict[str, Any]) -> Envelope:
        return await self.send(self._envelope("events_api", self.event_body(event)))

    async def click(self, message: Message, label: str, user: str) -> Envelope:
        payload = self.click_payload(message, label, user)
        return await self.send(self._envelope("interactive", payload))


async def signed_post(
    url: str,
    kind: str,
    payload: dict[str, Any],
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> tuple[int, str]:
    """POST a command (`kind` "command"), event ("event") or interaction ("interactive") to a
    bot's HTTP endpoint, signed as Slack signs; (status, body) of the answer."""
    if kind == "command":
        body = urllib.parse.urlencode(payload).encode()
        content_type = "application/x-www-form-urlencoded"
    elif kind == "interactive":
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body = json.dumps(payload).encode()
        content_type = "application/json"
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": signature or sign(secret, body, stamp),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.text()
