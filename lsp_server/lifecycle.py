"""The connection rules of LSP's base protocol that pygls leaves to the server.

- The lifecycle: a request before `initialize` is answered -32002
  (ServerNotInitialized), a second `initialize` and any request after
  `shutdown` -32600 (InvalidRequest); pygls would serve the first, renegotiate
  on the second and leave the client of the third waiting forever.
- JSON-RPC's params "may be omitted": an absent `params` is read as null
  rather than refused (Neovim's `client:request(method)` omits it).
- Bookkeeping: pygls files every handler's future under an id and forgets
  only those of requests, so a long session kept one future per keystroke;
  here every future is forgotten once it is done.

`refusal` is the rule as a pure function; `UnmaskProtocol` applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cattrs.errors import AttributeValidationNote, IterableValidationNote
from lsprotocol import types
from pygls.protocol import LanguageServerProtocol

SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600


def refusal(method: str, initialized: bool, shut_down: bool) -> tuple[int, str] | None:
    """The error a request for `method` gets in this state of the connection, or None to serve it."""
    if shut_down:
        return INVALID_REQUEST, f"unmask: {method} after shutdown; the server only accepts exit now"
    if method == types.INITIALIZE:
        return (INVALID_REQUEST, "unmask: initialize may only be sent once") if initialized else None
    if not initialized:
        return SERVER_NOT_INITIALIZED, f"unmask: {method} before initialize; initialize first"
    return None


def with_params(raw: dict[str, Any]) -> dict[str, Any]:
    """The message with an omitted `params` spelled out as null (JSON-RPC lets it be left out)."""
    return raw if "params" in raw or "method" not in raw else {**raw, "params": None}


def params_problems(error: BaseException, path: str = "") -> list[str]:
    """What cattrs found wrong in a message, one line per field: `params.position.character:
    invalid literal for int() with base 10: 'x'` rather than its "While structuring
    InlineCompletionRequest (1 sub-exception)". Paths use the Python attribute names."""
    if isinstance(error, BaseExceptionGroup):
        found = []
        for sub in error.exceptions:
            step = next((_step(note) for note in getattr(sub, "__notes__", ()) if _step(note)), "")
            found += params_problems(sub, f"{path}{step}")
        return found
    where = path.lstrip(".") or "the message"
    if isinstance(error, KeyError):
        return [f"{where}: {error.args[0]!r} is missing" if error.args else f"{where}: a field is missing"]
    return [f"{where}: {error}"]


def _step(note: object) -> str:
    if isinstance(note, IterableValidationNote):
        return f"[{note.index!r}]"
    if isinstance(note, AttributeValidationNote):
        return f".{note.name}"
    return ""


def params_problem(error: BaseException) -> str:
    """`params_problems` in one line (the first few)."""
    problems = params_problems(error)
    shown = "; ".join(problems[:3])
    return shown + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")


def strict_int(value: Any, kind: type) -> int:
    """An LSP integer as sent: cattrs would take "5" as 5, true as 1 and 5.7 as 5. `kind` is
    `int`, `bool` or an integer enum (the hook is found for subclasses too); an enum checks
    its values."""
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0: how some JSON encoders write an integral number
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value if kind is int else kind(value)


def strict_str(value: Any, kind: type) -> str:
    """An LSP string as sent: cattrs would take 5 as "5" (a didChange inserting the text 5).
    `kind` is `str` or a string enum, which checks its values."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value if kind is str else kind(value)


class UnmaskProtocol(LanguageServerProtocol):
    """pygls's protocol with the lifecycle kept, every handler's future forgotten when done, and
    integers and strings read as sent (no coercion)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._converter.register_structure_hook(int, strict_int)  # this protocol's own converter
        self._converter.register_structure_hook(str, strict_str)
        self.initialize_received = False
        # Called with the uri of a `didChange` too malformed to apply: the server's copy has
        # missed an edit, so later ranged edits must not be applied to it.
        self.on_lost_change: Callable[[str, str], None] | None = None
        # Called when a message was dropped unread (too large): any document may have missed an edit.
        self.on_lost_all: Callable[[str], None] | None = None

    def refuse(self, raw: dict[str, Any]) -> tuple[int, str] | None:
        """What a request (`raw` has an id and a method) is answered instead of being served."""
        return refusal(str(raw["method"]), self.initialize_received, self._shutdown)

    def served(self, raw: dict[str, Any]) -> None:
        """`raw` was read and goes to its handler: an `initialize` with bad params can be sent again."""
        if raw.get("method") == types.INITIALIZE and "id" in raw:
            self.initialize_received = True

    def lost_notification(self, raw: dict[str, Any], reason: str) -> None:
        """A notification that could not be read; a lost `didChange` leaves its document out of sync."""
        params = raw.get("params")
        document = params.get("textDocument") if isinstance(params, dict) else None
        uri = document.get("uri") if isinstance(document, dict) else None
        if (
            raw.get("method") == types.TEXT_DOCUMENT_DID_CHANGE
            and isinstance(uri, str)
            and self.on_lost_change
        ):
            self.on_lost_change(uri, reason)

    def lost_unread(self, reason: str) -> None:
        """A message was dropped unread: it may have changed any document."""
        if self.on_lost_all:
            self.on_lost_all(reason)

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget(msg_id, done))

    def _forget(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]
