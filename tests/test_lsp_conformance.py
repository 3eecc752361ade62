"""The base protocol's rules, against the real server: lifecycle, params, encodings, cancellation,
code actions, edits through the client, the selected completion item, websocket frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.lifecycle import UnmaskProtocol
from lsp_server.server import Shared, build_server
from lsp_server.transports import handle_body
from tests.lsp_harness import connect, frame, read_frame, start_daemon, stdio_process, to_plain
from tests.test_server_e2e import RETURN_LINE, SOURCE, URI, _until, error_code


class Raw:
    """A client written as frames over a stream pair (stdio or TCP), for what a typed client
    would refuse to send. It keeps every message it reads and accepts every edit it is sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seen: list[dict[str, Any]] = []

    @classmethod
    def over(cls, process: asyncio.subprocess.Process) -> Raw:
        return cls(process.stdout, process.stdin)

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """What the server sent on its own (notifications and its requests)."""
        return [m for m in self.seen if "method" in m]

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(frame(json.dumps({"jsonrpc": "2.0", **message}).encode()))

    async def until(self, predicate, timeout: float = 120) -> dict[str, Any]:
        """Read until a message satisfies `predicate`; that message."""
        await self.writer.drain()
        while True:
            message = await asyncio.wait_for(read_frame(self.reader), timeout)
            self.seen.append(message)
            if message.get("method") == "workspace/applyEdit":
                self.send({"id": message["id"], "result": {"applied": True}})
            if predicate(message):
                return message

    async def reply(self, msg_id: Any, timeout: float = 120) -> dict[str, Any]:
        """The answer to request `msg_id`."""
        return await self.until(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    async def start(self, text: str, init: dict[str, Any] | None = None) -> None:
        """initialize (with `init` params), initialized, and `text` opened as URI."""
        await self.request(0, "initialize", init or {"capabilities": {}})
        self.send({"method": "initialized", "params": {}})
        item = {"uri": URI, "languageId": "python", "version": 1, "text": text}
        self.send({"method": "textDocument/didOpen", "params": {"textDocument": item}})

    async def request(self, msg_id: Any, method: str, params: Any = ..., timeout: float = 120) -> dict:
        self.send({"id": msg_id, "method": method} | ({} if params is ... else {"params": params}))
        return await self.reply(msg_id, timeout)


async def test_lifecycle_and_omitted_params():
    async with stdio_process() as process:
        raw = Raw.over(process)
        before = await raw.request(1, "unmask/status")
        assert before["error"]["code"] == -32002 and "initialize first" in before["error"]["message"]
        early_shutdown = await raw.request(2, "shutdown")
        assert early_shutdown["error"]["code"] == -32002  # and the connection still takes initialize
        malformed = await raw.request(3, "initialize", {"capabilities": 7})
        assert malformed["error"]["code"] == -32602  # and it may be sent again, well formed
        first = await raw.request(3, "initialize", {"capabilities": {}})
        assert "capabilities" in first["result"]
        again = await raw.request(4, "initialize", {"capabilities": {}})
        assert again["error"]["code"] == -32600 and "once" in again["error"]["message"]
        raw.send({"method": "initialized", "params": {}})
        status = await raw.request(5, "unmask/status")  # no params at all: JSON-RPC allows it
        assert status["result"]["encoding"] == "utf-16"  # the default: the client offered none
        unknown = await raw.request(6, "unmask/nothing")
        assert unknown["error"]["code"] == -32601
        assert (await raw.request(7, "shutdown"))["result"] is None
        after = await raw.request(8, "unmask/status", {})
        assert after["error"]["code"] == -32600 and "after shutdown" in after["error"]["message"]
        raw.send({"method": "exit"})
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_utf16_is_used_when_the_client_offers_no_encoding():
    """Columns count UTF-16 units: an edit after astral characters lands where the client meant."""
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start('x = "😀😀" + y\n', {"capabilities": {}, "initializationOptions": {}})
        change = {
            "range": {"start": {"line": 0, "character": 9}, "end": {"line": 0, "character": 9}},
            "text": "Z",
        }
        raw.send(
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": URI, "version": 2}, "contentChanges": [change]},
            }
        )
        # A column past the line's end is clamped to it: the previews say where that is.
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": 0, "character": 99},
            "context": {"triggerKind": 1},
        }
        answer = await raw.request(2, "textDocument/inlineCompletion", params)
        assert "result" in answer, answer
        previews = [n["params"] for n in raw.notifications if n["method"] == "unmask/preview"]
        assert previews and previews[-1]["version"] == 2
        # 'x = "😀😀Z" + y' is 15 UTF-16 units; the same text misread as code points would be 13.
        assert previews[-1]["range"]["start"] == {"line": 0, "character": 15}


async def test_a_client_without_options_gets_answers_but_no_previews():
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start(SOURCE)
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": RETURN_LINE, "character": 11},
            "context": {"triggerKind": 1},
        }
        answer = await raw.request(2, "textDocument/inlineCompletion", params)
        assert "items" in answer["result"]
        assert not [n for n in raw.notifications if n["method"] == "unmask/preview"]


async def test_a_malformed_change_leaves_the_document_out_of_sync():
    """A didChange that cannot be read was an edit the server missed: later ones must not apply."""
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start(SOURCE)
        raw.send(
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": URI}, "contentChanges": []},
            }
        )
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": 0, "character": 0},
            "context": {"triggerKind": 1},
        }
        answer = await raw.request(2, "textDocument/inlineCompletion", params)
        assert answer["error"]["code"] == -32803 and "out of sync" in answer["error"]["message"]
        # the whole text again puts it back in sync
        whole = {"textDocument": {"uri": URI, "version": 3}, "contentChanges": [{"text": SOURCE}]}
        raw.send({"method": "textDocument/didChange", "params": whole})
        params["position"] = {"line": RETURN_LINE, "character": 11}
        assert "result" in await raw.request(3, "textDocument/inlineCompletion", params)


async def test_an_envelope_with_a_bad_id_or_method_is_an_invalid_request():
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start(SOURCE)
        raw.send({"id": {"an": "object"}, "method": "unmask/status", "params": {}})
        answer = await raw.until(lambda m: "error" in m)
        assert answer["id"] is None and answer["error"]["code"] == -32600
        assert await raw.request(3, 5) == {
            "jsonrpc": "2.0",
            "id": 3,
            "error": {"code": -32600, "message": "unmask: invalid request, a method is a string"},
        }
        # nothing else came for the bad id: the next answer is the next request's
        assert "result" in await raw.request(4, "unmask/status", {})
        assert [m for m in raw.seen if "error" in m and m.get("id") is None] == [answer]


async def test_a_header_with_stray_blanks_or_bare_newlines_is_still_read():
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start(SOURCE)
        for number, (head, end) in enumerate(
            [(b"Content-Length:  %d \r\n", b"\r\n"), (b"Content-Length: %d\n", b"\n")]
        ):
            body = json.dumps({"jsonrpc": "2.0", "id": 10 + number, "method": "unmask/status"}).encode()
            raw.writer.write(head % len(body) + end + body)
            assert "result" in await raw.reply(10 + number)


async def test_a_message_over_the_size_limit_is_answered_and_loses_no_edit_silently():
    """An oversize message is skipped unread: a request gets its error under its own id, and a
    notification (it may have been a change) leaves the documents out of sync."""
    from lsp_server.transports import MAX_MESSAGE_BYTES

    filler = "x" * (MAX_MESSAGE_BYTES + 1)
    async with stdio_process() as process:
        raw = Raw.over(process)
        await raw.start(SOURCE)
        answer = await raw.request(7, "unmask/status", {"padding": filler})
        assert answer["error"]["code"] == -32600 and "over the" in answer["error"]["message"]
        change = {"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": filler}]}
        raw.send({"method": "textDocument/didChange", "params": change})
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": RETURN_LINE, "character": 11},
            "context": {"triggerKind": 1},
        }
        answer = await raw.request(8, "textDocument/inlineCompletion", params)
        assert answer["error"]["code"] == -32803 and "out of sync" in answer["error"]["message"]


async def test_cancelling_a_command_stops_its_denoising_and_its_edit():
    async with connect("stdio") as client:
        await client.initialize()
        client.open(URI, SOURCE)
        argument = {"textDocument": {"uri": URI}, "position": {"line": 8, "character": 12}}
        run = types.ExecuteCommandParams(command="unmask.rewrite", arguments=[argument])
        pending = client.request_untyped(types.WORKSPACE_EXECUTE_COMMAND, run, "command")
        await client.wait_for_preview(lambda p: p["id"] == "command", timeout=120)
        client.cancel("command")
        with pytest.raises(JsonRpcException) as cancelled:
            await asyncio.wait_for(pending, 30)
        assert error_code(cancelled.value) == -32800
        await client.wait_for_preview(lambda p: p["id"] == "command" and p["cancelled"], timeout=30)
        # the worker stops at its next step, and no edit is ever sent

        async def ended() -> dict:
            while True:
                status = to_plain(await client.request("unmask/status", {}, f"s{id(object())}"))
                if status["jobs_ended"]:
                    return status["jobs_ended"]
                await asyncio.sleep(0.05)

        assert await asyncio.wait_for(ended(), 30) == {"cancelled": 1}
        await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "after"), 120)
        assert client.applied_edits == []
        assert not [p for p in client.previews_for("command") if p["final"]]


async def test_code_actions_follow_the_request_and_the_client():
    async with connect("stdio") as client:
        await client.initialize()
        client.open(URI, SOURCE)

        def ask(uri: str, only: list[str] | None, msg_id: str):
            params = types.CodeActionParams(
                types.TextDocumentIdentifier(uri),
                types.Range(types.Position(8, 0), types.Position(8, 0)),
                types.CodeActionContext(diagnostics=[], only=only),
            )
            return client.request_untyped(types.TEXT_DOCUMENT_CODE_ACTION, params, msg_id)

        assert len(await ask(URI, None, "all")) == 2
        assert len(await ask(URI, ["refactor"], "refactor")) == 2
        assert await ask(URI, ["quickfix"], "quickfix") == []
        assert await ask("file:///work/not-open.py", None, "unknown") == []
    async with connect("stdio") as bare:  # no codeActionLiteralSupport: commands, not literals
        await bare.initialize(capabilities=types.ClientCapabilities())
        bare.open(URI, SOURCE)
        params = types.CodeActionParams(
            types.TextDocumentIdentifier(URI),
            types.Range(types.Position(8, 0), types.Position(8, 0)),
            types.CodeActionContext(diagnostics=[]),
        )
        commands = await bare.request_untyped(types.TEXT_DOCUMENT_CODE_ACTION, params, "bare")
        assert [c["command"] for c in commands] == ["unmask.rewrite", "unmask.suggest"]
        assert all("kind" not in c for c in commands)


async def rewrite_through_command(client) -> dict[str, Any]:
    """`unmask.rewrite` at SOURCE's line 9 through workspace/executeCommand; its result."""
    argument = {"textDocument": {"uri": URI}, "position": {"line": 8, "character": 12}}
    run = types.ExecuteCommandParams(command="unmask.rewrite", arguments=[argument])
    return to_plain(
        await asyncio.wait_for(client.request_untyped(types.WORKSPACE_EXECUTE_COMMAND, run, "c"), 120)
    )


async def test_edits_through_the_client_follow_its_capabilities_and_answers():
    async with connect("stdio") as client:  # the client takes no edits from servers: told, not sent
        await client.initialize(capabilities=types.ClientCapabilities())
        client.open(URI, SOURCE)
        result = await rewrite_through_command(client)
        if result["edits"]:
            await asyncio.wait_for(_until(lambda: client.messages, client), 30)
            assert "does not accept edits" in client.messages[-1][1]
        assert client.applied_edits == []
    async with connect("stdio") as client:  # the client declines the edit: the user hears why
        await client.initialize()
        client.apply_result = types.ApplyWorkspaceEditResult(applied=False, failure_reason="read-only buffer")
        client.open(URI, SOURCE)
        result = await rewrite_through_command(client)
        if result["edits"]:
            await asyncio.wait_for(_until(lambda: client.messages, client), 30)
            assert "read-only buffer" in client.messages[-1][1]
    async with connect("stdio") as client:  # unversioned edits where the client has no documentChanges
        await client.initialize(
            capabilities=types.ClientCapabilities(
                workspace=types.WorkspaceClientCapabilities(apply_edit=True)
            )
        )
        client.open(URI, SOURCE)
        result = await rewrite_through_command(client)
        if result["edits"]:
            await asyncio.wait_for(_until(lambda: client.applied_edits, client), 30)
            edit = client.applied_edits[-1]["edit"]
            assert "documentChanges" not in edit or edit["documentChanges"] is None
            assert edit["changes"][URI][0]["newText"] == result["edits"][0]["newText"]


async def test_the_answer_extends_the_selected_completion_item():
    """LSP: with a completion menu item selected, the inline item must extend its text and range."""
    async with connect("stdio") as client:
        await client.initialize()
        client.open(URI, SOURCE)
        selected = types.Range(types.Position(RETURN_LINE, 11), types.Position(RETURN_LINE, 11))
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic,
                selected_completion_info=types.SelectedCompletionInfo(range=selected, text="fou"),
            ),
            text_document=types.TextDocumentIdentifier(URI),
            position=types.Position(RETURN_LINE, 11),
        )
        response = await asyncio.wait_for(
            client.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, "sel"), 120
        )
        previews = client.previews_for("sel")
        expected_range = {
            "start": {"line": RETURN_LINE, "character": 11},
            "end": {"line": RETURN_LINE, "character": 11},
        }
        assert all(p["text"].startswith("fou") and p["range"] == expected_range for p in previews[1:])
        for item in response.items:
            assert item.insert_text.startswith("fou") and len(item.insert_text) > 3
            assert item.range == selected
        assert (response.items[0].insert_text if response.items else "fou") == previews[-1]["text"]


async def test_websocket_answers_are_text_frames():
    from websockets.asyncio.client import connect as ws_connect

    daemon = await start_daemon("ws")
    try:
        async with ws_connect(f"ws://{daemon.host}:{daemon.port}") as websocket:
            message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            await websocket.send(json.dumps(message))
            reply = await asyncio.wait_for(websocket.recv(), 30)
            assert isinstance(reply, str) and json.loads(reply)["id"] == 1
    finally:
        await daemon.stop()


async def test_handled_notifications_are_forgotten():
    """pygls filed a future per notification and never let it go: one per keystroke, for ever."""
    session = build_server(Shared(host=None))  # no model: only document sync runs here
    protocol = session.server.protocol
    assert isinstance(protocol, UnmaskProtocol)
    sent: list[bytes] = []
    protocol.set_writer(type("Writer", (), {"write": sent.append, "close": lambda self: None})())

    def deliver(message: dict[str, Any]) -> None:
        handle_body(protocol, json.dumps({"jsonrpc": "2.0", **message}).encode())

    deliver({"id": 1, "method": "initialize", "params": {"capabilities": {}}})
    deliver({"method": "initialized", "params": {}})
    item = {"uri": URI, "languageId": "python", "version": 1, "text": SOURCE}
    deliver({"method": "textDocument/didOpen", "params": {"textDocument": item}})
    for version in range(2, 202):
        change = {
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "text": "#",
        }
        deliver(
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": URI, "version": version}, "contentChanges": [change]},
            }
        )
    for _ in range(3):
        await asyncio.sleep(0)
    assert protocol._request_futures == {}
    assert session.documents.snapshot(URI, "utf-16", 10**6).text.startswith("#" * 200 + "import os")


async def test_a_model_that_fails_to_load_is_said_and_nothing_is_offered(tmp_path):
    async with connect("stdio", model=str(tmp_path)) as client:  # an empty folder: no config.json
        await client.initialize(progress=True)
        # Said once, as an error message, whether it failed before or after `initialized`.
        await asyncio.wait_for(_until(lambda: client.messages, client), 120)
        assert client.messages == [(1, client.messages[0][1])] and "failed to load" in client.messages[0][1]
        if client.progress:  # it was still loading when the client said `initialized`
            assert "failed to load" in client.progress[-1][1]["message"]
        status = to_plain(await client.request("unmask/status", {}, "status"))
        assert status["model"] == "failed" and "config.json" in status["error"]
        client.open(URI, SOURCE)
        with pytest.raises(JsonRpcException) as failed:
            await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "ic"), 30)
        assert error_code(failed.value) == -32803 and "failed to load" in str(failed.value)
        params = types.CodeActionParams(
            types.TextDocumentIdentifier(URI),
            types.Range(types.Position(8, 0), types.Position(8, 0)),
            types.CodeActionContext(diagnostics=[]),
        )
        assert await client.request_untyped(types.TEXT_DOCUMENT_CODE_ACTION, params, "actions") == []


async def test_serve_takes_the_decoding_flags_and_status_reports_them():
    flags = ("--cache-refresh", "2", "--cache-margin", "8", "--null-run-floor", "0")
    async with connect("stdio", extra=flags) as client:
        await client.initialize()
        client.open(URI, SOURCE)
        await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "warm"), 120)
        decoding = to_plain(await client.request("unmask/status", {}, "status"))["decoding"]
        assert decoding["cache_refresh"] == 2 and decoding["cache_margin"] == 8
        assert decoding["null_run_floor"] is None and decoding["tau"] == 0.9


async def command_session(daemon) -> Raw:
    """Over TCP: initialized (edits accepted, versioned), SOURCE open, the model warm."""
    wire = Raw(*await asyncio.open_connection(daemon.host, daemon.port))
    capabilities = {"workspace": {"applyEdit": True, "workspaceEdit": {"documentChanges": True}}}
    await wire.start(SOURCE, {"capabilities": capabilities, "initializationOptions": {}})
    position = {"line": 8, "character": 12}
    await wire.request(
        "warm", "unmask/blockEdit", {"textDocument": {"uri": URI}, "position": position, "mode": "rewrite"}
    )
    return wire


REWRITE = {
    "command": "unmask.rewrite",
    "arguments": [{"textDocument": {"uri": URI}, "position": {"line": 8, "character": 12}}],
}


async def test_a_command_cancelled_before_it_starts_sends_no_edit():
    """The cancel is read in the same chunk as the command, before the command's task first runs."""
    daemon = await start_daemon("tcp")
    try:
        wire = await command_session(daemon)
        wire.send({"id": "cmd", "method": "workspace/executeCommand", "params": REWRITE})
        wire.send({"method": "$/cancelRequest", "params": {"id": "cmd"}})
        assert (await wire.reply("cmd"))["error"]["code"] == -32800
        await wire.request("status", "unmask/status")
        with pytest.raises(asyncio.TimeoutError):  # a whole rewrite's time: no edit comes
            await wire.until(lambda m: m.get("method") == "workspace/applyEdit", timeout=20)
        wire.writer.close()
    finally:
        await daemon.stop()


async def test_shutdown_while_a_command_runs_cancels_it_and_shuts_down():
    daemon = await start_daemon("tcp")
    try:
        wire = await command_session(daemon)
        wire.send({"id": "cmd", "method": "workspace/executeCommand", "params": REWRITE})
        await wire.until(lambda m: m.get("method") == "unmask/preview" and m["params"]["id"] == "cmd")
        assert (await wire.request("down", "shutdown", timeout=30))["result"] is None
        assert (await wire.request("after", "unmask/status", timeout=30))["error"]["code"] == -32600
        assert not [m for m in wire.seen if m.get("method") == "workspace/applyEdit"]
        wire.writer.close()
    finally:
        await daemon.stop()
