"""The language server: one pygls server per connection over one shared engine.

Handlers here are glue: they read a document snapshot, hand the work to a
request module (`infill_request`, `block_edit`) and turn failures into
JSON-RPC errors. State shared by every connection (the model host and the
scheduler's worker) lives in `Shared`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)
from pygls.lsp.server import LanguageServer

from lsp_server import __version__, block_edit, infill_request
from lsp_server.documents import Change, DocumentError, DocumentStore, Stamp
from lsp_server.engine_host import EngineHost, ModelUnavailable
from lsp_server.lifecycle import UnmaskProtocol
from lsp_server.positions import Point, PositionError
from lsp_server.protocol import (
    BLOCK_EDIT,
    DID_ACCEPT,
    DID_REJECT,
    PREVIEW,
    REWRITE_COMMAND,
    STATUS,
    SUGGEST_COMMAND,
    ParamsError,
    Settings,
    Unservable,
    parse_block_edit,
)
from lsp_server.scheduler import JobStopped, Outcome, Scheduler

log = logging.getLogger(__name__)
PROGRESS_CREATE_SECONDS = 10.0  # how long the client may take to accept the load's progress token
PROGRESS_POLL_SECONDS = 0.1


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but could not be served (loading, a failed job)."""

    CODE = -32803


@dataclass
class Shared:
    """What every connection shares: one resident model, one worker."""

    host: EngineHost
    scheduler: Scheduler = field(default_factory=Scheduler)
    batch_limit: int | None = None  # serve --batch; None: by device (infill_request.batch_limit)
    connections: itertools.count = field(default_factory=itertools.count)


@dataclass
class Session:
    """One connection's view: its pygls server, its settings, its identity for the scheduler."""

    server: LanguageServer
    shared: Shared
    connection: int
    settings: Settings = field(default_factory=Settings)
    documents: DocumentStore = field(default_factory=DocumentStore)
    accepted: int = 0
    rejected: int = 0
    tasks: set[asyncio.Future] = field(default_factory=set)  # kept referenced until they end

    @property
    def encoding(self) -> str:
        # Negotiated in `initialize`; before it, the LSP default.
        capabilities = getattr(self.server.protocol, "server_capabilities", None)
        encoding = capabilities.position_encoding if capabilities is not None else None
        # pygls's default is the enum member, whose str() is "PositionEncodingKind.Utf16".
        return str(getattr(encoding, "value", encoding) or "utf-16")

    def snapshot(self, uri: str):
        return self.documents.snapshot(uri, self.encoding, self.settings.max_document_bytes)

    def stamp_of(self, uri: str) -> Stamp | None:
        return self.documents.stamp(uri)

    def preview(self, params: dict[str, Any]) -> None:
        if self.settings.previews:
            self.server.protocol.notify(PREVIEW, params)

    def keep(self, awaitable) -> asyncio.Future:
        """Run `awaitable` as a task held until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(awaitable)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    @property
    def request_id(self) -> Any:
        return self.server.protocol.msg_id


def as_rpc_error(error: Exception) -> Exception:
    """Map a failure of ours onto the JSON-RPC error a client understands."""
    if isinstance(error, JobStopped):
        outcome = error.end.outcome
        if outcome in (Outcome.CANCELLED, Outcome.SUPERSEDED):
            return JsonRpcRequestCancelled(f"unmask: request {outcome.value}")
        if outcome is Outcome.STALE:
            return JsonRpcContentModified(f"unmask: {error.end.message}; ask again for the new version")
        return RequestFailed(f"unmask: {error.end.message}")
    if isinstance(error, ParamsError | PositionError):
        return JsonRpcInvalidParams(f"unmask: {error}")
    if isinstance(error, Unservable | DocumentError):
        return RequestFailed(f"unmask: {error}")
    if isinstance(error, ModelUnavailable):
        return RequestFailed(str(error))
    return error


async def guarded(coroutine):
    try:
        return await coroutine
    except (JobStopped, ParamsError, Unservable, PositionError, DocumentError, ModelUnavailable) as error:
        raise as_rpc_error(error) from None


def to_plain(value: Any) -> Any:
    """pygls hands custom params over as namedtuples; turn them back into plain data."""
    if hasattr(value, "_asdict"):
        return {k: to_plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def ignore(*args: Any, **kwargs: Any) -> None:
    return None


def build_server(shared: Shared) -> Session:
    server = LanguageServer("unmask", __version__, protocol_cls=UnmaskProtocol)
    session = Session(server=server, shared=shared, connection=next(shared.connections))
    server.protocol.on_lost_change = session.documents.lose_sync
    server.protocol.on_lost_all = session.documents.lose_all_sync

    @server.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        # pygls's workspace would keep a second copy of every document, re-split into lines
        # at each keystroke (14 ms a change at 2 MB); the store above is the one read.
        workspace = server.workspace
        workspace.put_text_document = workspace.update_text_document = ignore  # type: ignore[method-assign]
        workspace.remove_text_document = ignore  # type: ignore[method-assign]
        session.settings, problems = Settings.from_options(to_plain(params.initialization_options))
        for problem in problems:
            server.window_show_message(
                types.ShowMessageParams(types.MessageType.Warning, f"unmask: {problem}")
            )

    # Document sync: our own store (see documents.py); pygls keeps a copy of its own we never read.
    @server.feature(types.INITIALIZED)
    def initialized(params: types.InitializedParams) -> None:
        session.keep(watch_load(session, wants_progress(client_capabilities(server))))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        session.documents.open(item.uri, item.text, item.version, item.language_id)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        changes = [
            Change(
                None
                if isinstance(change, types.TextDocumentContentChangeWholeDocument)
                else (
                    Point(change.range.start.line, change.range.start.character),
                    Point(change.range.end.line, change.range.end.character),
                ),
                change.text,
            )
            for change in params.content_changes
        ]
        problem = session.documents.change(
            params.text_document.uri, params.text_document.version, changes, session.encoding
        )
        if problem is not None:
            log.warning(problem)
            server.window_log_message(types.LogMessageParams(types.MessageType.Warning, problem))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        session.documents.close(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams):
        info = params.context.selected_completion_info
        selected = (
            None
            if info is None
            else infill_request.Selected(
                Point(info.range.start.line, info.range.start.character),
                Point(info.range.end.line, info.range.end.character),
                info.text,
            )
        )
        position = params.position
        return await guarded(
            infill_request.run(session, params.text_document.uri, position.line, position.character, selected)
        )

    @server.feature(BLOCK_EDIT)
    async def block_edit_request(params: Any):
        try:
            request = parse_block_edit(to_plain(params))
        except ParamsError as error:
            raise as_rpc_error(error) from None
        return await guarded(block_edit.run(session, request))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
    )
    def code_action(params: types.CodeActionParams):
        uri = params.text_document.uri
        if not block_edit.offers(params.context.only) or shared.host.error:
            return []  # not asked for, or no model to run them (the status request says why)
        try:
            session.snapshot(uri)  # an unknown, binary or oversized document has nothing to offer
        except DocumentError:
            return []
        capabilities = client_capabilities(server)
        text_document = capabilities.text_document if capabilities is not None else None
        code_action_caps = text_document.code_action if text_document is not None else None
        literals = bool(code_action_caps and code_action_caps.code_action_literal_support)
        return block_edit.code_actions(uri, params.range, literals)

    # Variadic: pygls structures each argument into the matching parameter's type, so a
    # single `list` parameter would receive the first argument's keys, not the arguments.
    @server.command(REWRITE_COMMAND)
    async def rewrite_command(*arguments: Any):
        return await run_command(session, "rewrite", list(arguments))

    @server.command(SUGGEST_COMMAND)
    async def suggest_command(*arguments: Any):
        return await run_command(session, "suggest", list(arguments))

    @server.feature(types.SHUTDOWN)
    def shutdown(params: Any) -> None:
        # pygls then cancels what is pending while iterating the very dict a cancelled
        # command's callback deletes from ("dictionary changed size"): cancelled here first,
        # from a copy, pygls finds them all done.
        protocol = server.protocol
        current = protocol.msg_id
        for msg_id, future in list(protocol._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()

    @server.feature(DID_ACCEPT)
    def did_accept(params: Any) -> None:
        session.accepted += 1

    @server.feature(DID_REJECT)
    def did_reject(params: Any) -> None:
        session.rejected += 1

    @server.feature(STATUS)
    def status(params: Any) -> dict[str, Any]:
        host = shared.host
        engine = host.engine
        return {
            "model": host.status(),
            "error": host.error,
            "device": str(engine.device) if engine else None,
            # What the resident engine decodes with (the defaults, or `unmask serve`'s flags).
            "decoding": dataclasses.asdict(engine.settings) if engine else None,
            "encoding": session.encoding,
            "accepted": session.accepted,
            "rejected": session.rejected,
            # Over the daemon's life: runs that served several jobs at once, and those jobs.
            "batched_runs": shared.scheduler.batched_runs,
            "batched_jobs": shared.scheduler.batched_jobs,
            "jobs_ended": dict(shared.scheduler.ended),
        }

    return session


def client_capabilities(server: LanguageServer) -> types.ClientCapabilities | None:
    return getattr(server.protocol, "client_capabilities", None)


def wants_progress(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client shows server-initiated `$/progress` (LSP's `window.workDoneProgress`)."""
    window = capabilities.window if capabilities is not None else None
    return bool(window and window.work_done_progress)


async def watch_load(session: Session, progress: bool) -> None:
    """Tell the client how the model's load goes: as `$/progress` while it runs (to a client
    that shows it), and with `window/showMessage` if it failed (to every client, also one
    that connects after the failure), since every request will fail until the server restarts."""
    host = session.shared.host
    if progress and not host.ready.is_set():
        await report_loading(session)
    await host.settled()
    if host.error:
        session.server.window_show_message(
            types.ShowMessageParams(types.MessageType.Error, f"unmask: {host.error}")
        )


async def report_loading(session: Session) -> None:
    """The model's load as a standard work-done progress: begin, a report per stage, end.

    Any LSP client shows it (Neovim's `vim.lsp.status()`, VS Code's progress
    notification) without knowing `unmask/status`. A client that refuses the
    token, or never answers, gets no progress and loses nothing else.
    """
    host = session.shared.host
    progress = session.server.work_done_progress
    token = f"unmask-load-{session.connection}"
    # Waited for without cancelling: a late answer to a cancelled request would be an error.
    created = asyncio.ensure_future(progress.create_async(token))
    await asyncio.wait({created}, timeout=PROGRESS_CREATE_SECONDS)
    if not created.done() or created.cancelled() or created.exception() is not None:
        # refused, unanswered or disconnected: the load goes on regardless
        log.info("no load progress for connection %d", session.connection)
        return
    stage = host.stage
    progress.begin(token, types.WorkDoneProgressBegin(title="unmask", message=stage, cancellable=False))
    while not host.ready.is_set():
        await asyncio.sleep(PROGRESS_POLL_SECONDS)
        if host.stage != stage and not host.ready.is_set():
            stage = host.stage
            progress.report(token, types.WorkDoneProgressReport(message=stage))
    progress.end(token, types.WorkDoneProgressEnd(message=host.outcome()))


def follow_cancellation(session: Session) -> asyncio.Future | None:
    """Cancel the running task when its request is cancelled; the request's future.

    pygls runs a command's handler as a task of its own under another id, so
    `$/cancelRequest` (or `shutdown`) for the command would only cancel the
    outer request and leave the denoising, and its edit, to go on. A cancel
    read before this task first ran has already removed the request's future:
    the task is then cancelled at once.
    """
    protocol = session.server.protocol
    msg_id = protocol.msg_id
    outer = protocol._request_futures.get(msg_id)
    task = asyncio.current_task()
    if task is None or outer is task:
        return None
    if outer is None or outer.cancelled():
        raise asyncio.CancelledError(f"request {msg_id} was cancelled before it started")
    # The callback runs on the loop's thread (pygls cancels from a handler): cancel directly,
    # so no step can slip in between the cancel and the task seeing it.
    outer.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
    return outer


async def run_command(session: Session, mode: str, arguments: list[Any]):
    """`workspace/executeCommand`: compute the block edit, apply the best through the client."""
    outer = follow_cancellation(session)
    arguments = to_plain(arguments) or []
    if not arguments or not isinstance(arguments[0], dict):
        raise JsonRpcInvalidParams(f"unmask: {mode} expects one argument {{textDocument, range|position}}")
    try:
        request = parse_block_edit({**arguments[0], "mode": mode})
    except ParamsError as error:
        raise as_rpc_error(error) from None
    result = await guarded(block_edit.run(session, request))
    if outer is not None and outer.cancelled():
        raise asyncio.CancelledError("cancelled after its last step")  # no edit for a cancelled command
    if result["edits"]:
        apply_edit(session, request.uri, result["edits"][0])
    return result


def apply_edit(session: Session, uri: str, edit: dict[str, Any]) -> None:
    """Ask the client to apply `edit`, in the form it supports; tell the user when it does not."""
    server = session.server
    capabilities = client_capabilities(server)
    workspace = capabilities.workspace if capabilities is not None else None
    if not (workspace and workspace.apply_edit):
        server.window_show_message(
            types.ShowMessageParams(
                types.MessageType.Warning,
                "unmask: this editor does not accept edits from the server (workspace/applyEdit); "
                "use unmask/blockEdit and apply its edits yourself",
            )
        )
        return
    text_edit = types.TextEdit(
        range=server.protocol._converter.structure(edit["range"], types.Range), new_text=edit["newText"]
    )
    versioned = bool(workspace.workspace_edit and workspace.workspace_edit.document_changes)
    workspace_edit = (
        # Versioned, so the client refuses the edit if the document moved on meanwhile.
        types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=edit["version"]
                    ),
                    edits=[text_edit],
                )
            ]
        )
        if versioned
        # Unversioned: made from the copy the stream just checked was still current.
        else types.WorkspaceEdit(changes={uri: [text_edit]})
    )

    def answered(future: asyncio.Future) -> None:
        problem = None
        if future.cancelled():
            return
        if future.exception() is not None:
            problem = f"the editor failed to apply the edit: {future.exception()}"
        elif not future.result().applied:
            problem = (
                f"the editor did not apply the edit: {future.result().failure_reason or 'no reason given'}"
            )
        if problem:
            log.warning(problem)
            server.window_show_message(
                types.ShowMessageParams(types.MessageType.Warning, f"unmask: {problem}")
            )

    params = types.ApplyWorkspaceEditParams(edit=workspace_edit)
    session.keep(server.workspace_apply_edit_async(params)).add_done_callback(answered)
