"""Start the real server over a transport and drive it with pygls's real client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

TRANSPORTS = ("stdio", "tcp", "ws")
ANNOUNCE = re.compile(r"serving (tcp|ws) on ([\d.]+):(\d+)")


def frame(body: bytes) -> bytes:
    """One LSP message on the wire: its Content-Length header, then its body."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_frame(stream: asyncio.StreamReader) -> dict[str, Any]:
    """The next LSP message from `stream`, as plain data."""
    length = 0
    while (line := await stream.readline()) != b"\r\n":
        if not line:
            raise EOFError("the server closed the stream")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(await stream.readexactly(length))


@contextlib.asynccontextmanager
async def stdio_process() -> AsyncIterator[asyncio.subprocess.Process]:
    """The real server over stdio, driven by raw frames; killed at the end if still running."""
    process = await asyncio.create_subprocess_exec(
        *server_command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def server_command(*extra: str, model: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "lsp_server.cli", "serve", *extra]
    # UNMASK_TEST_MODEL is a development override; CI uses the built-in model.
    if model := model or os.environ.get("UNMASK_TEST_MODEL"):
        command += ["--model", model]
    return command


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    host: str
    port: int

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


async def start_daemon(kind: str, *extra: str) -> Daemon:
    process = await asyncio.create_subprocess_exec(
        *server_command(f"--{kind}", "0", *extra), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"server exited before listening (code {await process.wait()})")
        if match := ANNOUNCE.search(line):
            daemon = Daemon(process, match.group(2), int(match.group(3)))
            asyncio.ensure_future(_drain(process.stderr))
            return daemon


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@dataclass
class Client:
    """A pygls client that records `unmask/preview` notifications as they arrive."""

    lsp: LanguageClient
    previews: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    applied_edits: list[dict[str, Any]] = field(default_factory=list)  # workspace/applyEdit params
    progress: list[tuple[str, Any]] = field(default_factory=list)  # ("create", token), ("begin", value), ...
    refuse_progress: bool = False  # answer window/workDoneProgress/create with an error
    messages: list[tuple[int, str]] = field(default_factory=list)  # window/showMessage (type, text)
    apply_result: types.ApplyWorkspaceEditResult = field(
        default_factory=lambda: types.ApplyWorkspaceEditResult(applied=True)
    )

    async def wait_for_preview(self, predicate, timeout: float = 60) -> dict[str, Any]:
        async def poll():
            while True:
                for preview in self.previews:
                    if predicate(preview):
                        return preview
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(poll(), timeout)

    def previews_for(self, request_id: Any) -> list[dict[str, Any]]:
        return [p for p in self.previews if p["id"] == request_id]

    async def initialize(
        self,
        encoding: str | None = "utf-16",
        options: dict | None = None,
        no_options: bool = False,
        progress: bool = False,
        capabilities: types.ClientCapabilities | None = None,
    ) -> types.InitializeResult:
        """`initialize`, then `initialized`. By default the client declares what Neovim and
        VS Code do: edits from the server (versioned), code action literals, `encoding`."""
        if capabilities is None:
            capabilities = types.ClientCapabilities(
                general=types.GeneralClientCapabilities(
                    position_encodings=[encoding] if encoding is not None else None
                ),
                window=types.WindowClientCapabilities(work_done_progress=progress),
                workspace=types.WorkspaceClientCapabilities(
                    apply_edit=True,
                    workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
                ),
                text_document=types.TextDocumentClientCapabilities(
                    code_action=types.CodeActionClientCapabilities(
                        code_action_literal_support=types.ClientCodeActionLiteralOptions(
                            code_action_kind=types.ClientCodeActionKindOptions(
                                value_set=[types.CodeActionKind.RefactorRewrite]
                            )
                        )
                    )
                ),
            )
        result = await self.lsp.initialize_async(
            types.InitializeParams(
                capabilities=capabilities,
                initialization_options=None if no_options else (options or {}),
            )
        )
        self.lsp.initialized(types.InitializedParams())
        return result

    def open(self, uri: str, text: str, version: int = 1, language: str = "python") -> None:
        self.lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, version, text))
        )

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.lsp.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(*start), types.Position(*end)), text=text
                    )
                ],
            )
        )

    def request(self, method: str, params: Any, msg_id: str) -> asyncio.Future:
        return asyncio.wrap_future(self.lsp.protocol.send_request(method, params, msg_id=msg_id))

    def request_untyped(self, method: str, params: Any, msg_id: str) -> asyncio.Future:
        """A request whose result stays plain data: pygls's typed union for some results
        (`(Command | CodeAction)[]`) picks the wrong member."""
        future = self.lsp.protocol.send_request(method, params, msg_id=msg_id)
        self.lsp.protocol._result_types.pop(msg_id, None)
        return asyncio.wrap_future(future)

    def inline_completion(self, uri: str, line: int, character: int, msg_id: str) -> asyncio.Future:
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
        return self.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id)

    def cancel(self, msg_id: str) -> None:
        self.lsp.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))


def to_plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: to_plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


@contextlib.asynccontextmanager
async def connect(
    kind: str, daemon: Daemon | None = None, model: str | None = None, extra: tuple[str, ...] = ()
) -> AsyncIterator[Client]:
    """A client connected over `kind`; stdio starts its own server (on `model`, with `extra`
    arguments to `unmask serve`), tcp/ws use `daemon`."""
    lsp = LanguageClient("unmask-tests", "1")
    client = Client(lsp)

    @lsp.feature("unmask/preview")
    def on_preview(params):
        client.previews.append(to_plain(params))
        client.arrived.set()

    @lsp.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(params):
        client.messages.append((int(params.type), params.message))
        client.arrived.set()

    @lsp.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_progress_create(params):
        client.progress.append(("create", params.token))
        client.arrived.set()
        if client.refuse_progress:
            raise RuntimeError("this client shows no progress")

    @lsp.feature(types.PROGRESS)
    def on_progress(params):
        value = to_plain(params.value) if hasattr(params.value, "_asdict") else params.value
        if not isinstance(value, dict):
            value = lsp.protocol._converter.unstructure(value)
        client.progress.append((value["kind"], value))
        client.arrived.set()

    @lsp.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(params):
        client.applied_edits.append(lsp.protocol._converter.unstructure(params))
        client.arrived.set()
        return client.apply_result

    if kind == "stdio":
        await lsp.start_io(*server_command(*extra, model=model))
    elif kind == "tcp":
        assert daemon is not None
        await lsp.start_tcp(daemon.host, daemon.port)
    else:
        assert daemon is not None
        await lsp.start_ws(daemon.host, daemon.port)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lsp.shutdown_async(None), 10)
            lsp.exit(None)
        if kind == "stdio":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lsp.stop(), 10)
        else:
            lsp._stop_event.set()
