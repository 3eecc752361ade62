"""The protocol's pure rules: lifecycle, omitted params, settings, code action kinds, led answers."""

from __future__ import annotations

import pytest
from lsprotocol import types

from diffusion.engine import Candidate, Segment
from lsp_server.block_edit import code_actions, offers
from lsp_server.infill_request import led_by
from lsp_server.lifecycle import INVALID_REQUEST, SERVER_NOT_INITIALIZED, UnmaskProtocol, refusal, with_params
from lsp_server.protocol import Settings
from lsp_server.transports import envelope_fields, refuse_oversize


@pytest.mark.parametrize(
    ("method", "initialized", "shut_down", "code"),
    [
        ("initialize", False, False, None),
        ("initialize", True, False, INVALID_REQUEST),  # only once
        ("textDocument/inlineCompletion", False, False, SERVER_NOT_INITIALIZED),
        ("shutdown", False, False, SERVER_NOT_INITIALIZED),
        ("unmask/status", True, False, None),
        ("unmask/status", True, True, INVALID_REQUEST),  # nothing after shutdown
        ("shutdown", True, True, INVALID_REQUEST),
        ("initialize", False, True, INVALID_REQUEST),
    ],
)
def test_lifecycle(method, initialized, shut_down, code):
    problem = refusal(method, initialized, shut_down)
    assert (problem[0] if problem else None) == code
    if problem:
        assert method in problem[1] or "once" in problem[1]


def test_malformed_params_are_named_field_by_field():
    from pygls.lsp.server import LanguageServer

    from lsp_server.lifecycle import UnmaskProtocol, params_problem

    protocol = LanguageServer("test", "0", protocol_cls=UnmaskProtocol).protocol

    def problem(params) -> str:
        raw = {"jsonrpc": "2.0", "id": 1, "method": "textDocument/inlineCompletion", "params": params}
        with pytest.raises(Exception) as caught:
            protocol.structure_message(raw)
        return params_problem(caught.value.__cause__ or caught.value)

    position = {"line": 1, "character": 1}
    said = problem(
        {
            "textDocument": {"uri": "u"},
            "position": {"line": 0, "character": "x"},
            "context": {"triggerKind": 99},
        }
    )
    assert "params.position.character: expected an integer, got 'x'" in said
    assert "params.context.trigger_kind: 99 is not a valid InlineCompletionTriggerKind" in said
    assert problem({"position": position, "context": {"triggerKind": 1}}) == (
        "params.text_document: 'textDocument' is missing"
    )


def test_integers_and_strings_are_read_as_sent():
    from pygls.lsp.server import LanguageServer

    from lsp_server.lifecycle import UnmaskProtocol, params_problem

    converter = LanguageServer("test", "0", protocol_cls=UnmaskProtocol).protocol._converter
    assert converter.structure({"line": 5, "character": 2.0}, types.Position) == types.Position(5, 2)
    for bad in ({"line": "5", "character": 0}, {"line": True, "character": 0}, {"line": 5.7, "character": 0}):
        with pytest.raises(Exception) as caught:
            converter.structure(bad, types.Position)
        assert params_problem(caught.value).startswith("line: expected an integer, got ")
    with pytest.raises(Exception) as caught:
        converter.structure({"text": 5}, types.TextDocumentContentChangeWholeDocument)
    assert params_problem(caught.value) == "text: expected a string, got 5"
    flags = {"applyEdit": True, "workspaceEdit": {"documentChanges": False}}  # booleans are ints' kin
    assert converter.structure(flags, types.WorkspaceClientCapabilities).apply_edit is True
    with pytest.raises(Exception) as caught:
        converter.structure({"applyEdit": 1}, types.WorkspaceClientCapabilities)
    assert params_problem(caught.value) == "apply_edit: expected true or false, got 1"
    kind = {"triggerKind": 99}  # an integer enum is still checked as one
    with pytest.raises(Exception) as caught:
        converter.structure(kind, types.InlineCompletionContext)
    assert "99 is not a valid InlineCompletionTriggerKind" in params_problem(caught.value)
    token = {"token": "abc", "value": {"kind": "end"}}  # an int-or-string union keeps both
    assert converter.structure(token, types.ProgressParams).token == "abc"
    assert converter.structure({**token, "token": 7}, types.ProgressParams).token == 7


def test_omitted_params_are_null_and_present_ones_kept():
    assert with_params({"id": 1, "method": "unmask/status"})["params"] is None
    assert with_params({"id": 1, "method": "m", "params": {"a": 1}})["params"] == {"a": 1}
    assert "params" not in with_params({"id": 1, "result": None})  # a response has none


def test_a_client_without_options_gets_no_previews():
    assert Settings.from_options(None) == (Settings(previews=False), [])
    assert Settings.from_options({})[0].previews is True
    assert Settings.from_options({"previews": False})[0].previews is False
    settings, problems = Settings.from_options({"singleLineTokens": -3, "maskGlyph": "ab"})
    assert settings.single_line_tokens == 24 and settings.mask_glyph == "░" and len(problems) == 2
    assert Settings.from_options([1])[1]  # not an object: reported


@pytest.mark.parametrize(
    ("only", "offered"),
    [
        (None, True),
        (["refactor"], True),
        (["refactor.rewrite"], True),
        (["quickfix"], False),
        (["source.organizeImports"], False),
        (["refactor.extract"], False),
        (["refactor.rewrite.more"], False),  # a narrower kind than ours
        ([], False),
        ([""], True),  # LSP's Empty kind: every kind falls under it
        ([types.CodeActionKind.Refactor], True),  # an enum member, as typed clients send
    ],
)
def test_code_action_kinds_nest_by_dots(only, offered):
    assert offers(only) is offered


def test_code_actions_as_literals_or_bare_commands():
    range_ = types.Range(types.Position(2, 0), types.Position(3, 1))
    literals = code_actions("file:///a.py", range_)
    assert [a.kind for a in literals] == [types.CodeActionKind.RefactorRewrite] * 2
    assert [a.command.command for a in literals] == ["unmask.rewrite", "unmask.suggest"]
    bare = code_actions("file:///a.py", range_, literals=False)
    assert all(isinstance(c, types.Command) for c in bare)
    assert [c.command for c in bare] == ["unmask.rewrite", "unmask.suggest"]
    assert bare[0].arguments == [
        {
            "textDocument": {"uri": "file:///a.py"},
            "range": {"start": {"line": 2, "character": 0}, "end": {"line": 3, "character": 1}},
        }
    ]


def test_an_answer_led_by_the_selected_item_extends_it():
    candidate = Candidate(4, (Segment("(x)", True, 2), Segment("", False, 2)), -0.5)
    led = led_by(candidate, "pri")
    assert led.text == "pri(x)" and led.unresolved == 2
    assert led_by(candidate, "") is candidate


def test_errors_answered_to_the_client_leave_no_traceback_in_the_log():
    import logging
    import sys

    from pygls.exceptions import JsonRpcContentModified

    from lsp_server.transports import answered_errors

    def record(name: str, error: Exception) -> logging.LogRecord:
        try:
            raise error
        except Exception:
            return logging.getLogger(name).makeRecord(
                name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )

    assert not answered_errors(record("pygls.protocol.json_rpc", JsonRpcContentModified("changed")))
    assert answered_errors(record("pygls.protocol.json_rpc", ValueError("a bug")))  # bugs stay
    assert answered_errors(record("lsp_server.server", JsonRpcContentModified("ours")))


def test_the_engine_host_loads_without_decoding_flags():
    from lsp_server.engine_host import EngineHost

    host = EngineHost(None, "cpu")
    assert host.ready.wait(300) and host.error is None and host.engine is not None


@pytest.mark.parametrize(
    ("head", "fields"),
    [
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "m", "params": {"text": "xxx',
            {"jsonrpc": "2.0", "id": 7, "method": "m", "params": ...},
        ),
        (b'{"method":"m","id":"a\\"b","params":', {"method": "m", "id": 'a"b', "params": ...}),
        # an id inside the params is not the message's
        (b'{"method": "didChange", "params": {"id": 3, "text": "xx', {"method": "didChange", "params": ...}),
        # cut inside a number, a string or a nested value: that member's value is not taken
        (b'{"method": "m", "id": 12', {"method": "m", "id": ...}),
        (b'{"method": "m", "id": "ab', {"method": "m", "id": ...}),
        (b'{"id": 1.5, "method": "m", "params": [1, 2', {"id": 1.5, "method": "m", "params": ...}),
        (b'{"id": "\\q", "method": "m"}', {"id": ...}),  # a bad escape ends the reading, raising nothing
        (b'{"id": 4, "result": {"applied": tr', {"id": 4, "result": ...}),
        (b'{"id": 4}', {"id": 4}),
        (b'[{"id": 1}]', {}),
        (b'\xff\xfe{"id": 1', {}),
        (b"", {}),
    ],
)
def test_an_oversize_message_is_read_for_its_top_level_envelope_only(head, fields):
    assert envelope_fields(head) == fields


@pytest.mark.parametrize(
    ("head", "answered_id", "out_of_sync"),
    [
        (b'{"jsonrpc": "2.0", "id": 7, "method": "m", "params": {"text": "xx', 7, False),
        (b'{"jsonrpc": "2.0", "id": 7, "params": {"text": "xx', None, True),  # a method may follow
        (b'{"jsonrpc": "2.0", "method": "didChange", "params": {"id": 7, "x', None, True),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "m", "params": {"x', None, True),
        (b'{"jsonrpc": "2.0", "id": 7, "result": {"x', "no answer", False),  # the client's response
    ],
)
def test_an_oversize_message_is_answered_by_what_its_head_shows(head, answered_id, out_of_sync):
    sent, lost = [], []

    class Protocol(UnmaskProtocol):
        def __init__(self):
            pass

        def _send_data(self, data):
            sent.append(data)

        def lost_unread(self, reason):
            lost.append(reason)

    refuse_oversize(Protocol(), head, 1 << 30)
    if answered_id == "no answer":
        assert sent == []
    else:
        assert [(m["id"], m["error"]["code"]) for m in sent] == [(answered_id, -32600)]
    assert bool(lost) == out_of_sync
