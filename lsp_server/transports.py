"""Transports: stdio for one editor, TCP and websockets for a shared daemon.

The message loops are ours rather than pygls's, for two reasons: a daemon
serves many connections at once over one model (pygls's `start_tcp` and
`start_ws` serve one and exit), and a malformed message must get a JSON-RPC
error answer (pygls only logs it, leaving the client waiting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from typing import Any

from pygls.exceptions import JsonRpcException
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.protocol import JsonRPCProtocol

from lsp_server.engine_host import EngineHost
from lsp_server.lifecycle import UnmaskProtocol, params_problem, with_params
from lsp_server.server import Session, Shared, build_server

log = logging.getLogger(__name__)
# LSP's header is `Content-Length: N\r\n`; stray blanks and a bare `\n` are forgiven, rather
# than the message lost along with the ones after it.
CONTENT_LENGTH = re.compile(rb"^Content-Length:[ \t]*(\d+)[ \t]*\r?\n$", re.IGNORECASE)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# An oversize message is never read whole: its head is, for the envelope's id and method
# (clients write them before the params in practice).
OVERSIZE_HEAD_BYTES = 4096


def send_error(protocol: JsonRPCProtocol, msg_id: Any, code: int, message: str) -> None:
    # A plain mapping, so that an unknown id is sent as `"id": null` as JSON-RPC requires
    # (pygls's typed message drops a None id).
    protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def is_id(value: Any) -> bool:
    """A JSON-RPC id as LSP has it: a string or an integer (null only in an error answer)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def handle_body(protocol: JsonRPCProtocol, body: bytes) -> None:
    """Dispatch one message; anything unreadable is answered with an error, never dropped silently."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        send_error(protocol, None, -32700, f"unmask: parse error, the message is not JSON in UTF-8: {error}")
        return
    except RecursionError:
        send_error(protocol, None, -32700, "unmask: parse error, the message nests too deeply")
        return
    if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
        msg_id = raw.get("id") if isinstance(raw, dict) else None
        send_error(
            protocol,
            msg_id if is_id(msg_id) else None,
            -32600,
            "unmask: invalid request, expected a JSON-RPC 2.0 object",
        )
        return
    if "id" in raw and not is_id(raw["id"]):
        send_error(protocol, None, -32600, "unmask: invalid request, an id is a string or an integer")
        return
    if "method" in raw and not isinstance(raw["method"], str):
        send_error(protocol, raw.get("id"), -32600, "unmask: invalid request, a method is a string")
        return
    raw = with_params(raw)
    is_request = "id" in raw and "method" in raw
    if is_request and isinstance(protocol, UnmaskProtocol) and (problem := protocol.refuse(raw)):
        send_error(protocol, raw["id"], *problem)
        return
    try:
        message = protocol.structure_message(raw)
    except Exception as error:
        reason = params_problem(error.__cause__ or error)
        if is_request:
            send_error(protocol, raw["id"], -32602, f"unmask: invalid params for {raw['method']}: {reason}")
        else:
            log.warning("dropping malformed notification %s: %s", raw.get("method"), error)
            if isinstance(protocol, UnmaskProtocol):
                protocol.lost_notification(raw, f"a malformed {raw.get('method')} was dropped ({reason})")
        return
    if isinstance(protocol, UnmaskProtocol):
        protocol.served(raw)
    protocol.handle_message(message)


def handle_safely(protocol: JsonRPCProtocol, body: bytes) -> None:
    """`handle_body`, with any failure answered and logged: one bad message never ends a connection."""
    try:
        handle_body(protocol, body)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:
        log.exception("message could not be handled")
        send_error(
            protocol, None, -32603, f"unmask: internal error handling a message: {type(error).__name__}"
        )


def envelope_fields(head: bytes) -> dict[str, Any]:
    """The top-level members of a JSON object that `head` begins, as far as they can be read:
    a member whose value runs past the head (or is not JSON) is given as `...`, and reading
    stops there. Only the top level counts, so an "id" inside the params is never taken for
    the message's."""
    text = head.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}

    def past_blanks(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    at = past_blanks(0)
    if not text.startswith("{", at):
        return fields
    at += 1
    while True:
        at = past_blanks(at)
        try:
            key, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            return fields
        at = past_blanks(at)
        if not isinstance(key, str) or not text.startswith(":", at):
            return fields
        fields[key] = ...
        try:
            value, at = decoder.raw_decode(text, past_blanks(at + 1))
        except (ValueError, RecursionError):  # cut off by the head's end, or not JSON
            return fields
        at = past_blanks(at)
        # A number cut by the head's end would still decode ("12" of "123"): a value counts only
        # when the head shows where it ends.
        if at >= len(text) or text[at] not in ",}":
            return fields
        fields[key] = value
        if text[at] == "}":
            return fields
        at += 1


def refuse_oversize(protocol: JsonRPCProtocol, head: bytes, length: int) -> None:
    """Answer a message too large to read. A request whose id and method are in `head` gets
    the error under its id; a response from the client (a result or an error in `head`) is only
    logged; anything else may have been a document change, so it is answered under a null id and
    the connection's documents are marked out of sync until the client sends their text again."""
    fields = envelope_fields(head)
    reason = f"a message of {length} bytes was over the {MAX_MESSAGE_BYTES} byte limit and dropped"
    if "result" in fields or "error" in fields:
        log.warning("a response from the client was dropped: %s", reason)
        return
    is_request = is_id(fields.get("id")) and isinstance(fields.get("method"), str)
    send_error(protocol, fields["id"] if is_request else None, -32600, f"unmask: {reason}")
    if not is_request and isinstance(protocol, UnmaskProtocol):
        protocol.lost_unread(reason)


class HeaderOverLimit(Exception):
    """A header line longer than the reader holds: the stream cannot be framed past it."""


async def skip(reader, length: int) -> None:
    """Read past `length` bytes in bounded chunks: an oversize message is never held in memory."""
    while length > 0:
        chunk = min(length, 1 << 20)
        await reader.readexactly(chunk)
        length -= chunk


async def read_framed(reader, protocol: JsonRPCProtocol) -> None:
    """The Content-Length framed loop shared by stdio and TCP; returns at end of stream."""
    length = 0
    while True:
        try:
            header = await reader.readline()
        except ValueError as error:  # asyncio's reader says so when a line outgrows its limit
            raise HeaderOverLimit(str(error)) from error
        if not header:
            return
        match = CONTENT_LENGTH.fullmatch(header)
        if match:
            length = int(match.group(1))
        elif header.strip() == b"" and length:
            if length > MAX_MESSAGE_BYTES:
                head = await reader.readexactly(min(length, OVERSIZE_HEAD_BYTES))
                await skip(reader, length - len(head))
                refuse_oversize(protocol, head, length)
            else:
                handle_safely(protocol, await reader.readexactly(length))
            length = 0


async def serve_connection(session: Session, read) -> None:
    try:
        await read
    except SystemExit:  # `exit` from this client ends its connection, not the daemon
        pass
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        log.info("connection %d closed: %s", session.connection, error)
    except HeaderOverLimit as error:
        send_error(session.server.protocol, None, -32600, "unmask: a header line over the size limit")
        log.info("connection %d closed: %s", session.connection, error)
    finally:
        for task in list(session.tasks):  # the load's progress and the like: nobody left to tell
            task.cancel()
        protocol = session.server.protocol
        protocol._shutdown = True
        # The client is gone: its requests are cancelled (their jobs stop at the next step)
        # rather than denoising for nobody while other clients wait for the worker.
        for future in list(protocol._request_futures.values()):
            future.cancel()
        session.shared.scheduler.forget(session.connection)


class NonBlockingClose:
    """A writer whose close never raises SystemExit inside the event loop (pygls's exit does)."""

    def __init__(self, write, close) -> None:
        self._write, self._close = write, close

    def write(self, data: bytes):
        return self._write(data)

    def close(self) -> None:
        result = self._close()
        if asyncio.iscoroutine(result):
            asyncio.ensure_future(result)


async def serve_tcp(shared: Shared, host: str, port: int) -> None:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = build_server(shared)
        session.server.protocol.set_writer(NonBlockingClose(writer.write, writer.close))
        log.info("tcp connection %d from %s", session.connection, writer.get_extra_info("peername"))
        await serve_connection(session, read_framed(reader, session.server.protocol))
        writer.close()

    server = await asyncio.start_server(on_connect, host, port, limit=MAX_MESSAGE_BYTES)
    announce("tcp", server.sockets[0].getsockname())
    async with server:
        await server.serve_forever()


async def serve_ws(shared: Shared, host: str, port: int) -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def on_connect(websocket) -> None:
        session = build_server(shared)
        protocol = session.server.protocol
        # Text frames: a browser client (vscode-ws-jsonrpc) JSON-parses `event.data`, a Blob for binary.
        send = NonBlockingClose(lambda data: websocket.send(data.decode("utf-8")), websocket.close)
        protocol.set_writer(send, include_headers=False)

        async def read() -> None:
            while True:
                try:
                    data = await websocket.recv(decode=False)
                except ConnectionClosed:
                    return
                handle_safely(protocol, data)

        await serve_connection(session, read())

    async with serve(on_connect, host, port, max_size=MAX_MESSAGE_BYTES) as server:
        announce("ws", next(iter(server.sockets)).getsockname())
        await server.serve_forever()


def serve_stdio(shared: Shared) -> int:
    """Serve one editor on stdin/stdout; the exit code LSP asks for (0 after shutdown, else 1)."""
    session = build_server(shared)
    protocol = session.server.protocol
    protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    reader = StdinAsyncReader(sys.stdin.buffer, session.server.thread_pool)
    try:
        asyncio.run(read_framed(reader, protocol))
    except SystemExit as exit_:  # the client's `exit`
        return exit_.code if isinstance(exit_.code, int) else 1
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0 if protocol._shutdown else 1


def answered_errors(record: logging.LogRecord) -> bool:
    """Keep pygls's traceback of an error it answered to the client (a cancel, a changed
    document, bad params) out of the log: the client has it, and an editor's LSP log would
    fill with tracebacks of expected outcomes. Anything else is logged as it was."""
    error = record.exc_info[1] if record.exc_info else None
    if record.name.startswith("pygls") and record.getMessage().startswith("Unable to deserialize"):
        return False  # handle_body answers it (-32602) or logs one line naming the bad field
    return not (record.name.startswith("pygls") and isinstance(error, JsonRpcException))


def announce(kind: str, address) -> None:
    # Tests and scripts read this line to learn the port when they asked for port 0.
    print(f"unmask: serving {kind} on {address[0]}:{address[1]}", file=sys.stderr, flush=True)


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        filename=args.log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pygls").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(answered_errors)
    # The decoding flags as given: they are turned into settings on the loader thread, where
    # importing the engine (and torch) cannot hold up the handshake.
    decoding = {
        "refresh": args.cache_refresh,
        "margin": args.cache_margin,
        "no_cuda_graphs": args.no_cuda_graphs,
        "fused_confidence": args.fused_confidence,
        "null_run_floor": args.null_run_floor,
    }
    shared = Shared(
        host=EngineHost(args.model, args.device, args.dtype, decoding),
        batch_limit=getattr(args, "batch", None),
    )
    args.host = args.host or "127.0.0.1"  # also when called without `main`'s parsing
    listens = args.tcp is not None or args.ws is not None
    if listens and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: every process that can reach it can use the model", args.host)
    code = 0
    try:
        if args.tcp is not None:
            asyncio.run(serve_tcp(shared, args.host, args.tcp))
        elif args.ws is not None:
            asyncio.run(serve_ws(shared, args.host, args.ws))
        else:
            code = serve_stdio(shared)
    except KeyboardInterrupt:
        pass
    except OSError as error:  # the port is taken, the host is not this machine's, ...
        where = f"{args.host}:{args.tcp if args.tcp is not None else args.ws}"
        print(f"unmask serve: cannot listen on {where}: {error.strerror or error}", file=sys.stderr)
        code = 2
    # Straight out, past interpreter teardown: the loader thread may be inside torch's import,
    # and tearing the interpreter down under it aborts the process (SIGABRT) instead of exiting.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):  # stdout is closed after the client's `exit`
            stream.flush()
    logging.shutdown()
    os._exit(code)
