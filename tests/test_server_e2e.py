"""End to end: pygls's client, the real server and the real built-in model, over every transport."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_harness import TRANSPORTS, connect, frame, read_frame, start_daemon, to_plain

URI = "file:///work/example.py"
SOURCE = (
    "import os\n"
    "\n"
    "\n"
    "def list_python_files(root):\n"
    '    """Every .py file below root."""\n'
    "    found = []\n"
    "    for directory, _, names in os.walk(root):\n"
    "        for name in names:\n"
    "            if name.endswith('.py'):\n"
    "                found.append(os.path.join(directory, name))\n"
    "    return \n"
    "\n"
    "\n"
    "def main():\n"
    "    \n"
    "\n"
    "\n"
    "if __name__ == '__main__':\n"
    "    main()\n"
)
RETURN_LINE = 10  # "    return |"
BODY_LINE = 14  # an empty function body: multi-line infill


@contextlib.asynccontextmanager
async def client_over(kind: str, *extra: str):
    daemon = await start_daemon(kind, *extra) if kind != "stdio" else None
    try:
        async with connect(kind, daemon, extra=extra if kind == "stdio" else ()) as client:
            await client.initialize()
            yield client
    finally:
        if daemon:
            await daemon.stop()


async def _until(predicate, client) -> None:
    while not predicate():
        client.arrived.clear()
        await client.arrived.wait()


def error_code(error: BaseException) -> int | None:
    return getattr(error, "code", None)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_previews_arrive_in_order_and_the_last_equals_the_response(kind):
    async with client_over(kind) as client:
        client.open(URI, SOURCE)
        result = await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "infill-1"), 120)
        previews = client.previews_for("infill-1")
        assert previews, "no unmask/preview arrived"
        steps = [p["step"] for p in previews]
        assert steps == sorted(steps) and steps[0] == 0
        masked = [sum(len(s["text"]) for s in p["segments"] if not s["resolved"]) for p in previews]
        assert masked == sorted(masked, reverse=True), "the unresolved part grew between steps"
        last = previews[-1]
        assert last["final"] and not last["cancelled"]
        assert all(not p["final"] for p in previews[:-1])
        assert all(s["resolved"] for s in last["segments"])
        assert last["version"] == 1 and last["uri"] == URI
        items = result.items
        expected = items[0].insert_text if items else ""
        assert last["text"] == expected
        if items:
            assert "\n" not in expected, "a single-line infill spilled onto other lines"
            assert items[0].range.start == types.Position(RETURN_LINE, 11)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_cancel_answers_32800_and_sends_a_cancelled_preview(kind):
    async with client_over(kind) as client:
        client.open(URI, SOURCE)
        pending = client.inline_completion(URI, BODY_LINE, 4, "to-cancel")
        await client.wait_for_preview(lambda p: p["id"] == "to-cancel" and p["step"] >= 1)
        client.cancel("to-cancel")
        with pytest.raises(JsonRpcException) as caught:
            await asyncio.wait_for(pending, 30)
        assert error_code(caught.value) == -32800
        cancelled = await client.wait_for_preview(lambda p: p["id"] == "to-cancel" and p["cancelled"], 10)
        assert not cancelled["final"]
        # The server keeps serving after a cancellation.
        again = await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "after"), 120)
        assert isinstance(again, types.InlineCompletionList)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_stale_version_gets_no_stale_text(kind):
    async with client_over(kind) as client:
        client.open(URI, SOURCE)
        pending = client.inline_completion(URI, BODY_LINE, 4, "stale")
        await client.wait_for_preview(lambda p: p["id"] == "stale" and p["step"] >= 1)
        client.change(URI, 2, (0, 0), (0, 0), "# edited\n")
        with pytest.raises(JsonRpcException) as caught:
            await asyncio.wait_for(pending, 30)
        assert error_code(caught.value) in (-32801, -32800)
        assert not any(p["final"] for p in client.previews_for("stale"))


async def test_the_newest_request_per_document_wins():
    async with client_over("stdio") as client:
        client.open(URI, SOURCE)
        first = client.inline_completion(URI, BODY_LINE, 4, "old")
        await client.wait_for_preview(lambda p: p["id"] == "old")
        second = client.inline_completion(URI, RETURN_LINE, 11, "new")
        with pytest.raises(JsonRpcException) as caught:
            await asyncio.wait_for(first, 30)
        assert error_code(caught.value) == -32800
        assert isinstance(await asyncio.wait_for(second, 120), types.InlineCompletionList)


async def test_two_websocket_clients_are_served_at_once():
    daemon = await start_daemon("ws")
    try:
        async with connect("ws", daemon) as one, connect("ws", daemon) as two:
            await one.initialize()
            await two.initialize(encoding="utf-8")
            one.open(URI, SOURCE)
            two.open(URI, SOURCE.replace("found", "hits"))
            results = await asyncio.wait_for(
                asyncio.gather(
                    one.inline_completion(URI, RETURN_LINE, 11, "a"),
                    two.inline_completion(URI, RETURN_LINE, 11, "b"),
                ),
                180,
            )
            assert all(isinstance(r, types.InlineCompletionList) for r in results)
            assert one.previews_for("a") and not one.previews_for("b")
            assert two.previews_for("b") and not two.previews_for("a")
            assert one.previews_for("a")[-1]["final"] and two.previews_for("b")[-1]["final"]
    finally:
        await daemon.stop()


async def test_requests_queued_from_several_documents_share_forward_passes():
    # On a CPU a batch is no gain (serve --batch's default there is 1): asked for here, to run it.
    async with client_over("stdio", "--batch", "8") as client:
        uris = [f"file:///work/doc{i}.py" for i in range(3)]
        for i, uri in enumerate(uris):
            client.open(uri, SOURCE.replace("found", f"found{i}"))
        # The first keeps the worker busy while the other two queue up behind it.
        first = client.inline_completion(uris[0], BODY_LINE, 4, "busy")
        await client.wait_for_preview(lambda p: p["id"] == "busy")
        queued = [client.inline_completion(uri, RETURN_LINE, 11, f"q{i}") for i, uri in enumerate(uris[1:])]
        results = await asyncio.wait_for(asyncio.gather(first, *queued), 180)
        status = to_plain(await asyncio.wait_for(client.request("unmask/status", {}, "status"), 30))
        assert status["batched_runs"] >= 1 and status["batched_jobs"] >= 2
        for request_id, result, uri in zip(["q0", "q1"], results[1:], uris[1:], strict=True):
            previews = client.previews_for(request_id)
            assert [p["uri"] for p in previews] == [uri] * len(previews)  # nobody hears another's steps
            assert previews[-1]["final"] and sum(p["final"] for p in previews) == 1
            expected = result.items[0].insert_text if result.items else ""
            assert previews[-1]["text"] == expected


async def test_block_edit_rewrite_and_code_action():
    async with client_over("stdio") as client:
        client.open(URI, SOURCE)
        params = {"textDocument": {"uri": URI}, "position": {"line": 8, "character": 12}, "mode": "rewrite"}
        result = await asyncio.wait_for(client.request("unmask/blockEdit", params, "rw"), 120)
        assert result.mode == "rewrite" and result.version == 1
        for edit in result.edits:
            assert edit.version == 1 and isinstance(edit.newText, str)
            assert edit.range.start.line <= 8 <= edit.range.end.line
        previews = client.previews_for("rw")
        assert previews and previews[-1]["final"] and previews[-1]["mode"] == "rewrite"
        params_action = types.CodeActionParams(
            types.TextDocumentIdentifier(URI),
            types.Range(types.Position(8, 0), types.Position(8, 0)),
            types.CodeActionContext(diagnostics=[]),
        )
        actions = await client.request_untyped(types.TEXT_DOCUMENT_CODE_ACTION, params_action, "actions")
        commands = {a["command"]["command"] for a in actions}
        assert all(a["kind"] == types.CodeActionKind.RefactorRewrite for a in actions)
        assert commands == {"unmask.rewrite", "unmask.suggest"}
        for action in actions:  # each action's command, run as a client runs it
            command = action["command"]
            run = types.ExecuteCommandParams(command=command["command"], arguments=command["arguments"])
            done = to_plain(
                await asyncio.wait_for(
                    client.request_untyped(types.WORKSPACE_EXECUTE_COMMAND, run, command["command"]), 120
                )
            )
            assert done["mode"] == command["command"].removeprefix("unmask.") and done["version"] == 1
            if done["edits"]:  # the best alternative comes back as a versioned workspace edit
                await asyncio.wait_for(_until(lambda: client.applied_edits, client), 30)
                change = client.applied_edits.pop()["edit"]["documentChanges"][0]
                assert change["textDocument"] == {"uri": URI, "version": 1}
                assert change["edits"][0]["newText"] == done["edits"][0]["newText"]
                assert change["edits"][0]["range"] == done["edits"][0]["range"]
        with pytest.raises(JsonRpcException) as no_arguments:
            run = types.ExecuteCommandParams(command="unmask.rewrite", arguments=[])
            await asyncio.wait_for(client.request_untyped(types.WORKSPACE_EXECUTE_COMMAND, run, "bare"), 30)
        assert error_code(no_arguments.value) == -32602
        suggest = {**params, "mode": "suggest"}
        result = await asyncio.wait_for(client.request("unmask/blockEdit", suggest, "sg"), 120)
        assert result.mode == "suggest"
        for edit in result.edits:
            assert edit.range.start.line >= 6 and edit.version == 1


async def test_initialize_is_answered_before_the_model_is_loaded():
    async with connect("stdio") as client:
        result = await asyncio.wait_for(client.initialize(), 20)
        assert result.capabilities.inline_completion_provider is not None
        assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf16
        status = await client.request("unmask/status", {}, "status")
        assert status.model in ("loading", "ready")


async def test_the_model_load_is_reported_as_standard_progress():
    """A client that shows `$/progress` sees the load begin, its stages, and how it ended."""
    async with connect("stdio") as client:
        await asyncio.wait_for(client.initialize(progress=True), 20)
        await asyncio.wait_for(_until(lambda: any(k == "end" for k, _ in client.progress), client), 120)
        kinds = [kind for kind, _ in client.progress]
        assert kinds[0] == "create" and kinds[1] == "begin" and kinds[-1] == "end"
        assert set(kinds[2:-1]) <= {"report"}
        begin, end = client.progress[1][1], client.progress[-1][1]
        assert begin["title"] == "unmask" and begin["message"]
        assert end["message"].startswith("model ready in ") and end["message"].endswith(" on cpu")
        status = await client.request("unmask/status", {}, "status")
        assert status.model == "ready"


async def test_a_client_that_refuses_progress_is_served_all_the_same():
    async with connect("stdio") as client:
        client.refuse_progress = True
        await asyncio.wait_for(client.initialize(progress=True), 20)
        client.open(URI, SOURCE)
        response = await asyncio.wait_for(client.inline_completion(URI, RETURN_LINE, 11, "after"), 120)
        assert response.items and response.items[0].insert_text
        assert [kind for kind, _ in client.progress] == ["create"]  # nothing sent on a refused token


async def test_no_progress_once_the_model_is_loaded():
    daemon = await start_daemon("tcp")
    try:
        async with connect("tcp", daemon) as first:
            await first.initialize()
            first.open(URI, SOURCE)
            await asyncio.wait_for(first.inline_completion(URI, RETURN_LINE, 11, "warm"), 120)
        async with connect("tcp", daemon) as second:
            await second.initialize(progress=True)
            status = await second.request("unmask/status", {}, "status")
            assert status.model == "ready" and second.progress == []
    finally:
        await daemon.stop()


async def test_utf8_position_encoding_is_negotiated():
    async with connect("stdio") as client:
        result = await client.initialize(encoding="utf-8")
        assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
        text = "name = 'é'  # café\nvalue = \n"
        client.open(URI, text)
        # utf-8 column 9 on line 1 is just after "value = ".
        response = await asyncio.wait_for(client.inline_completion(URI, 1, 8, "u8"), 120)
        if response.items:
            assert response.items[0].range.start == types.Position(1, 8)


async def test_a_client_that_disconnects_mid_stream_has_its_job_cancelled():
    """Nobody is left to read its previews: the worker stops at the next step, for the others' sake."""
    import json

    daemon = await start_daemon("tcp")
    try:
        reader, writer = await asyncio.open_connection(daemon.host, daemon.port)

        def send(message: dict) -> None:
            writer.write(frame(json.dumps(message).encode()))

        init = {"capabilities": {}, "initializationOptions": {"previews": True}}
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        item = {"uri": URI, "languageId": "python", "version": 1, "text": SOURCE}
        send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}})
        position = {"line": BODY_LINE, "character": 4}  # a multi-line infill: many steps
        params = {"textDocument": {"uri": URI}, "position": position, "context": {"triggerKind": 1}}
        send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": params})
        while (await asyncio.wait_for(read_frame(reader), 120)).get("method") != "unmask/preview":
            pass
        writer.transport.abort()  # gone mid-stream, without shutdown or exit

        async with connect("tcp", daemon) as other:
            await other.initialize()

            async def ended() -> dict:
                while True:
                    status = to_plain(await other.request("unmask/status", {}, f"s{id(object())}"))
                    if sum(status["jobs_ended"].values()):
                        return status["jobs_ended"]
                    await asyncio.sleep(0.05)

            assert await asyncio.wait_for(ended(), 60) == {"cancelled": 1}
            other.open(URI, SOURCE)
            result = await asyncio.wait_for(other.inline_completion(URI, RETURN_LINE, 11, "after"), 120)
            assert isinstance(result, types.InlineCompletionList)
    finally:
        await daemon.stop()
