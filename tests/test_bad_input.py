"""Bad input gets a clear error and the server keeps serving."""

from __future__ import annotations

import asyncio
import json

import pytest
from pygls.exceptions import JsonRpcException

from tests.lsp_harness import connect, frame, read_frame, start_daemon, stdio_process
from tests.test_server_e2e import RETURN_LINE, SOURCE, URI, client_over


async def assert_still_serving(client) -> None:
    client.open("file:///work/healthy.py", SOURCE)
    result = await asyncio.wait_for(
        client.inline_completion("file:///work/healthy.py", RETURN_LINE, 11, "ok"), 120
    )
    assert result is not None


async def expect_error(future, match: str) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as caught:
        await asyncio.wait_for(future, 120)
    assert match in str(caught.value), str(caught.value)
    return caught.value


async def test_unknown_uri_out_of_range_huge_and_not_utf8_documents():
    async with client_over("stdio") as client:
        await expect_error(
            client.inline_completion("file:///nowhere.py", 0, 0, "unknown"), "unknown document"
        )
        client.open(URI, SOURCE)
        await expect_error(client.inline_completion(URI, 500, 0, "line"), "out of range")
        big = "x = 1\n" * (5 * 1024 * 1024 // 6 + 1)
        client.open("file:///work/big.py", big)
        await expect_error(client.inline_completion("file:///work/big.py", 3, 0, "big"), "MB")
        client.open("file:///work/binary.py", "abc\0def\n")
        await expect_error(client.inline_completion("file:///work/binary.py", 0, 1, "nul"), "binary")
        # A lone surrogate is what a client's non-UTF-8 bytes become after lossy decoding.
        client.open("file:///work/latin1.py", "name = 'caf\udce9'\n")
        await expect_error(client.inline_completion("file:///work/latin1.py", 0, 3, "latin"), "UTF-8")
        params = {"textDocument": {"uri": URI}, "mode": "explode", "position": {"line": 1, "character": 0}}
        await expect_error(client.request("unmask/blockEdit", params, "mode"), "mode")
        await expect_error(client.request("unmask/blockEdit", {"textDocument": {}}, "nouri"), "uri")
        await assert_still_serving(client)


async def raw_ws_exchange(websocket, payload: bytes) -> dict:
    await websocket.send(payload)
    return json.loads(await asyncio.wait_for(websocket.recv(), 30))


async def test_malformed_json_on_the_websocket_gets_a_parse_error():
    from websockets.asyncio.client import connect as ws_connect

    daemon = await start_daemon("ws")
    try:
        async with ws_connect(f"ws://{daemon.host}:{daemon.port}") as websocket:
            reply = await raw_ws_exchange(websocket, b'{"jsonrpc": "2.0", "id": 1, "method": ')
            assert reply["error"]["code"] == -32700 and reply["id"] is None
            reply = await raw_ws_exchange(websocket, b"\xff\xfe not utf-8 at all")
            assert reply["error"]["code"] == -32700
            reply = await raw_ws_exchange(websocket, b"[1, 2, 3]")
            assert reply["error"]["code"] == -32600
            initialize = {"jsonrpc": "2.0", "id": 6, "method": "initialize", "params": {"capabilities": {}}}
            assert "result" in await raw_ws_exchange(websocket, json.dumps(initialize).encode())
            bad_params = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "textDocument/inlineCompletion",
                "params": {"x": 1},
            }
            reply = await raw_ws_exchange(websocket, json.dumps(bad_params).encode())
            assert reply["id"] == 7 and reply["error"]["code"] == -32602
        # The same daemon still serves a well-behaved client.
        async with connect("ws", daemon) as client:
            await client.initialize()
            await assert_still_serving(client)
    finally:
        await daemon.stop()


async def test_malformed_frames_over_stdio_keep_the_server_alive():
    async with stdio_process() as process:

        async def send(body: bytes) -> dict:
            process.stdin.write(frame(body))
            await process.stdin.drain()
            return await asyncio.wait_for(read_frame(process.stdout), 30)

        reply = await send(b"{not json")
        assert reply["error"]["code"] == -32700
        reply = await send(b"[" * 100_000 + b"]" * 100_000)  # nests past the parser's recursion limit
        assert reply["error"]["code"] == -32700 and "nests" in reply["error"]["message"]
        reply = await send(
            b'{"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"capabilities": {}}}'
        )
        assert reply["id"] == 3 and "capabilities" in reply["result"]
        # `exit` with no `shutdown` first: LSP's exit code 1, a clean exit even while the model loads.
        process.stdin.write(frame(b'{"jsonrpc": "2.0", "method": "exit"}'))
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), 30) == 1


async def test_shutdown_then_exit_while_the_model_loads_exits_0():
    async with stdio_process() as process:
        for body in (
            b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}',
            b'{"jsonrpc": "2.0", "id": 2, "method": "shutdown"}',
            b'{"jsonrpc": "2.0", "method": "exit"}',
        ):
            process.stdin.write(frame(body))
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), 30) == 0
