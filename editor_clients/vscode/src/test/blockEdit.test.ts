import './stub/register';

import * as assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import {
    BlockEditController,
    blockEditParams,
    diffLayout,
    editsToApply,
    PENDING_CONTEXT,
    planAccept,
    versionMatches,
} from '../blockEdit';
import type { BlockEdit, BlockEditResult } from '../protocol';
import { onDidChangeActiveTextEditor, onDidChangeVisibleTextEditors } from '../vscodeapi';
import { asEditor, FakeConnection, rpcError } from './fakes';
import { Range, Selection, stub, StubDocument, StubEditor } from './stub/vscode';

const URI = 'file:///work/example.py';
const SOURCE = ['def f(x):', '    y = x + 1', '    return y', '', 'print(f(2))'].join('\n');

function edit(startLine: number, endLine: number, newText: string, version = 1): BlockEdit {
    return {
        range: { start: { line: startLine, character: 0 }, end: { line: endLine, character: 0 } },
        newText,
        version,
        score: -0.5,
    };
}

function rewrite(edits: BlockEdit[], version = 1): BlockEditResult {
    return {
        mode: 'rewrite',
        range: { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } },
        version,
        edits,
    };
}

let editor: StubEditor;
beforeEach(() => {
    stub.reset();
    editor = stub.open(URI, SOURCE);
});

test('a selection is sent as the range, a cursor as the position', () => {
    const cursor = new Selection(2, 4, 2, 4);
    assert.deepEqual(blockEditParams(URI, cursor, 'rewrite'), {
        textDocument: { uri: URI },
        position: { line: 2, character: 4 },
        mode: 'rewrite',
    });
    const selection = new Selection(3, 0, 1, 2); // made bottom-up
    assert.deepEqual(blockEditParams(URI, selection, 'suggest', 2), {
        textDocument: { uri: URI },
        range: { start: { line: 1, character: 2 }, end: { line: 3, character: 0 } },
        mode: 'suggest',
        alternatives: 2,
    });
});

test('accepting a rewrite applies the chosen alternative; a suggestion applies every hunk', () => {
    const alternatives = [edit(1, 3, '    return x + 1\n'), edit(1, 3, '    y = x\n    return y\n')];
    assert.deepEqual(editsToApply(rewrite(alternatives)), [alternatives[0]]);
    assert.deepEqual(editsToApply(rewrite(alternatives), 1), [alternatives[1]]);
    assert.deepEqual(editsToApply(rewrite(alternatives), 5), []);
    const hunks = [edit(3, 4, '\n'), edit(1, 2, '    y = x + 2\n'), edit(1, 3, 'overlaps\n')];
    const suggest: BlockEditResult = { ...rewrite(hunks), mode: 'suggest' };
    assert.deepEqual(editsToApply(suggest), [hunks[1], hunks[0]]);
});

test('edits are applied only when the document is still at their version', () => {
    const result = rewrite([edit(1, 3, 'new\n')]);
    assert.ok(versionMatches(result, result.edits, 1));
    assert.ok(!versionMatches(result, result.edits, 2));
    assert.ok(!versionMatches(result, [edit(1, 3, 'new\n', 0)], 1));
    assert.deepEqual(planAccept(result, 1), { ok: true, edits: result.edits });
    assert.deepEqual(planAccept(result, 2), { ok: false, reason: 'stale' });
    assert.deepEqual(planAccept(result, undefined), { ok: false, reason: 'closed' });
    assert.deepEqual(planAccept(rewrite([]), 1), { ok: false, reason: 'empty' });
});

test('the diff strikes the old range and draws the new lines beside it', () => {
    const lengths = SOURCE.split('\n').map((l) => l.length);
    const layout = diffLayout([edit(1, 3, '    z = x\n    return z\n')], (line) => lengths[line]!);
    assert.deepEqual(layout.covered, [edit(1, 3, '').range]);
    assert.deepEqual(
        layout.pieces.map((p) => [p.line, p.character, p.text]),
        [
            [1, 13, 'z = x'],
            [2, 12, 'return z'],
        ],
    );
});

test('rewrite → diff shown → accept: the WorkspaceEdit, the new text, didAccept', async () => {
    const result = rewrite([edit(1, 3, '    return x + 1\n'), edit(1, 3, '    pass\n')]);
    const connection = new FakeConnection(() => result);
    const controller = new BlockEditController(() => connection);
    editor.selection = new Selection(2, 6, 2, 6);
    assert.deepEqual(await controller.run(asEditor(editor), 'rewrite'), result);
    assert.deepEqual(connection.requests, [
        {
            method: 'unmask/blockEdit',
            params: { textDocument: { uri: URI }, position: { line: 2, character: 6 }, mode: 'rewrite' },
        },
    ]);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);
    const [covered = [], text = []] = stub.decorationsOf(editor) as { range: Range }[][];
    assert.equal(covered.length, 1);
    assert.equal(text.length, 1);
    const strike = stub.decorationTypes[0]!.options as { textDecoration: string };
    assert.equal(strike.textDecoration, 'line-through');

    assert.equal(await controller.accept(), 'applied');
    assert.equal(stub.applied.length, 1);
    const [replace] = stub.applied[0]!.replaces;
    assert.equal(replace!.uri.toString(), URI);
    assert.deepEqual(
        [replace!.range.start.line, replace!.range.start.character, replace!.range.end.line, replace!.range.end.character],
        [1, 0, 3, 0],
    );
    assert.equal(replace!.newText, '    return x + 1\n');
    assert.equal(editor.document.getText(), 'def f(x):\n    return x + 1\n\nprint(f(2))');
    assert.equal(editor.document.version, 2);
    assert.deepEqual(connection.notifications.map((n) => n.method), ['unmask/didAccept']);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    assert.deepEqual(stub.decorationsOf(editor), [[], []]);
    assert.equal(await controller.accept(), 'nothing');
});

test('accept after the document changed applies nothing and says so', async () => {
    const connection = new FakeConnection(() => rewrite([edit(1, 3, 'x\n')]));
    const controller = new BlockEditController(() => connection);
    await controller.run(asEditor(editor), 'rewrite');
    editor.document.version = 2;
    assert.equal(await controller.accept(), 'stale');
    assert.equal(stub.applied.length, 0);
    assert.equal(editor.document.getText(), SOURCE);
    assert.deepEqual(connection.notifications, []);
    assert.match(stub.messages.at(-1)!.text, /changed/);
    assert.deepEqual(stub.decorationsOf(editor), [[], []]);
});

test('suggest → reject: nothing applied, didReject sent', async () => {
    const hunks = [edit(1, 2, '    y = x + 2\n'), edit(2, 3, '    return y * 2\n')];
    const connection = new FakeConnection(() => ({ ...rewrite(hunks), mode: 'suggest' }));
    const controller = new BlockEditController(() => connection);
    editor.selection = new Selection(1, 0, 3, 0);
    await controller.run(asEditor(editor), 'suggest');
    assert.deepEqual((connection.requests[0]!.params as { range: unknown }).range, {
        start: { line: 1, character: 0 },
        end: { line: 3, character: 0 },
    });
    assert.equal(stub.decorationsOf(editor)[1]!.length, 2);
    assert.ok(await controller.reject());
    assert.equal(stub.applied.length, 0);
    assert.deepEqual(connection.notifications.map((n) => n.method), ['unmask/didReject']);
    assert.deepEqual(stub.decorationsOf(editor), [[], []]);
});

test('a refused edit and a document edit while pending', async () => {
    const connection = new FakeConnection(() => rewrite([edit(1, 3, 'x\n')]));
    const controller = new BlockEditController(() => connection);
    await controller.run(asEditor(editor), 'rewrite');
    stub.refuseEdits = true;
    assert.equal(await controller.accept(), 'refused');
    assert.deepEqual(connection.notifications, []);
    await controller.run(asEditor(editor), 'rewrite');
    await controller.documentChanged(URI);
    assert.equal(controller.current, undefined);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
});

test('server errors: cancelled is silent, content-modified warns, others are shown', async () => {
    let failure: Error = rpcError(-32800, 'cancelled');
    const controller = new BlockEditController(() => new FakeConnection(() => {
        throw failure;
    }));
    assert.equal(await controller.run(asEditor(editor), 'rewrite'), undefined);
    assert.equal(stub.messages.length, 0);
    failure = rpcError(-32801, 'modified');
    await controller.run(asEditor(editor), 'rewrite');
    assert.equal(stub.messages.at(-1)!.level, 'warning');
    failure = rpcError(-32803, 'unmask: no block to edit at this position');
    await controller.run(asEditor(editor), 'suggest');
    assert.deepEqual(stub.messages.at(-1), { level: 'error', text: 'unmask: unmask: no block to edit at this position' });
    assert.equal(controller.current, undefined);
});

test('no edits, no server, an answer for an older version', async () => {
    const empty = new BlockEditController(() => new FakeConnection(() => rewrite([])));
    await empty.run(asEditor(editor), 'rewrite');
    assert.equal(empty.current, undefined);
    assert.equal(stub.messages.at(-1)!.level, 'info');
    const none = new BlockEditController(() => undefined);
    assert.equal(await none.run(asEditor(editor), 'rewrite'), undefined);
    assert.match(stub.messages.at(-1)!.text, /not running/);
    const old = new BlockEditController(() => new FakeConnection(() => rewrite([edit(1, 3, 'x\n')], 0)));
    await old.run(asEditor(editor), 'rewrite');
    assert.equal(old.current, undefined);
});

test('a document the server never sees: said why, nothing asked', async () => {
    const connection = new FakeConnection(() => rewrite([edit(1, 3, 'x\n')]));
    const controller = new BlockEditController(() => connection);
    const markdown = stub.open('file:///work/notes.md', '# notes\n', 'markdown');
    assert.equal(await controller.run(asEditor(markdown), 'rewrite'), undefined);
    assert.match(stub.messages.at(-1)!.text, /does not know markdown/);
    const cell = stub.open('vscode-notebook-cell:///work/nb.ipynb', 'x = 1\n');
    assert.equal(await controller.run(asEditor(cell), 'suggest'), undefined);
    assert.match(stub.messages.at(-1)!.text, /not vscode-notebook-cell: documents/);
    assert.equal(connection.requests.length, 0);
});

test('feedback to a server that went away after the edit was applied: the accept still succeeds', async () => {
    class Gone extends FakeConnection {
        override sendNotification(): Promise<void> {
            return Promise.reject(new Error('Client is not running'));
        }
    }
    const controller = new BlockEditController(() => new Gone(() => {
        const version = editor.document.version; // the accept below moves it on
        return rewrite([edit(1, 3, '    return x + 1\n', version)], version);
    }));
    await controller.run(asEditor(editor), 'rewrite');
    assert.equal(await controller.accept(), 'applied');
    await controller.run(asEditor(editor), 'rewrite');
    assert.equal(await controller.reject(), true);
});

/** A connection whose answers the test releases, per document, in any order. */
function heldConnection(result: (uri: string) => BlockEditResult): {
    connection: FakeConnection;
    release: (uri: string) => void;
} {
    const held = new Map<string, () => void>();
    const connection = new FakeConnection(
        (_method, params) =>
            new Promise((resolve) => {
                const uri = (params as { textDocument: { uri: string } }).textDocument.uri;
                held.set(uri, () => resolve(result(uri)));
            }),
    );
    return { connection, release: (uri) => held.get(uri)!() };
}

const OTHER = 'file:///work/other.py';
/** The pending diff's document (a function: no narrowing by earlier asserts). */
const pendingUri = (controller: BlockEditController): string | undefined => controller.current?.uri;
const drawnCount = (e: StubEditor): number => stub.decorationsOf(e).reduce((n, d) => n + d.length, 0);

test('two runs in flight: only the latest one is shown, whichever answers last; no diff left behind', async () => {
    const other = stub.open(OTHER, SOURCE);
    const { connection, release } = heldConnection(() => rewrite([edit(1, 3, 'x\n')]));
    const busy: (string | undefined)[] = [];
    const controller = new BlockEditController(() => connection, { busy: (b) => busy.push(b) });
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

    // The older run answers last: dropped.
    const first = controller.run(asEditor(editor), 'rewrite');
    await settle();
    assert.equal(connection.tokens[0]?.isCancellationRequested, false);
    const second = controller.run(asEditor(other), 'suggest');
    await settle();
    // The older request is cancelled on the server too: its work would be thrown away.
    assert.equal(connection.tokens[0]?.isCancellationRequested, true);
    assert.equal(connection.tokens[1]?.isCancellationRequested, false);
    release(OTHER);
    assert.ok(await second);
    assert.deepEqual(busy, ['rewriting', 'suggesting', undefined]);
    release(URI);
    assert.equal(await first, undefined);
    assert.equal(pendingUri(controller), OTHER);
    assert.equal(drawnCount(editor), 0);
    assert.ok(drawnCount(other) > 0);
    assert.ok(await controller.reject());
    assert.equal(drawnCount(other), 0);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);

    // The older run answers first: it is still dropped; the busy state lasts until the latest answers.
    busy.length = 0;
    const third = controller.run(asEditor(editor), 'rewrite');
    await settle();
    const fourth = controller.run(asEditor(other), 'rewrite');
    await settle();
    release(URI);
    assert.equal(await third, undefined);
    assert.deepEqual(busy, ['rewriting', 'rewriting']);
    assert.equal(controller.current, undefined);
    release(OTHER);
    assert.ok(await fourth);
    assert.deepEqual(busy, ['rewriting', 'rewriting', undefined]);
    assert.equal(pendingUri(controller), OTHER);
    assert.equal(drawnCount(editor), 0);
    assert.ok(drawnCount(other) > 0);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);
    assert.equal(await controller.accept(), 'applied');
    assert.deepEqual([drawnCount(editor), drawnCount(other)], [0, 0]);
});

test('the diff follows its document: drawn again in a new editor, keybindings only where it is shown', async () => {
    const connection = new FakeConnection(() => rewrite([edit(1, 3, '    return x + 1\n')]));
    const controller = new BlockEditController(() => connection);
    const wiring = [
        onDidChangeVisibleTextEditors((editors) => controller.visibleEditorsChanged(editors)),
        onDidChangeActiveTextEditor((active) => controller.activeEditorChanged(active)),
    ];
    try {
        await controller.run(asEditor(editor), 'rewrite');
        assert.ok(drawnCount(editor) > 0);
        assert.equal(stub.contexts.get(PENDING_CONTEXT), true);

        // Its tab is switched away: VS Code disposes the editor, and its decorations with it.
        stub.hide(editor);
        assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
        const back = stub.reveal(editor.document);
        assert.ok(back !== editor);
        assert.ok(drawnCount(back) > 0, 'the diff was not drawn again');
        assert.equal(stub.contexts.get(PENDING_CONTEXT), true);

        // Another document in the active editor: accept / reject are not for it.
        const other = stub.reveal(new StubDocument(OTHER, 'x = 1\n'));
        assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
        assert.equal(drawnCount(other), 0);
        assert.ok(drawnCount(back) > 0, 'the pending document is still visible beside it');
        stub.focus(back);
        assert.equal(stub.contexts.get(PENDING_CONTEXT), true);

        assert.equal(await controller.accept(), 'applied');
        assert.equal(back.document.getText(), 'def f(x):\n    return x + 1\n\nprint(f(2))');
        assert.equal(drawnCount(back), 0);
        assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
        stub.focus(other);
        stub.focus(back);
        assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    } finally {
        wiring.forEach((d) => d.dispose());
    }
});

test('a closed document drops its pending diff', async () => {
    const controller = new BlockEditController(() => new FakeConnection(() => rewrite([edit(1, 3, 'x\n')])));
    await controller.run(asEditor(editor), 'rewrite');
    editor.document.isClosed = true;
    await controller.visibleEditorsChanged([]);
    assert.equal(controller.current, undefined);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    await controller.run(asEditor(stub.open(OTHER, SOURCE)), 'rewrite');
    assert.equal(pendingUri(controller), OTHER);
    await controller.documentClosed(URI);
    assert.equal(pendingUri(controller), OTHER);
    await controller.documentClosed(OTHER);
    assert.equal(controller.current, undefined);
});
