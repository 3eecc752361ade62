// The extension's wiring across connections and editors, against a scripted
// server (fakeServer.ts) reached through `unmask.server.port`: previews after a
// restart or a crash (JSON-RPC ids start again on each connection), the status
// item after one, and the block-edit diff as editors are shown and hidden.

import './stub/register';

import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PENDING_CONTEXT } from '../blockEdit';
import { activate, deactivate } from '../extension';
import type { PreviewParams } from '../protocol';
import type { ExtensionContext } from '../vscodeapi';
import { REWRITE_OF_BODY } from './fakes';
import { FakeServer } from './fakeServer';
import { StatusBarItemStub, stub, StubDocument, StubEditor } from './stub/vscode';

const URI = 'file:///work/lifecycle.py';
const SOURCE = ['def f(x):', '    y = x + 1', '    return ', '', 'print(f(2))'].join('\n');

let server: FakeServer;
let editor: StubEditor;
let item: StatusBarItemStub;
const context = { subscriptions: [] as { dispose(): unknown }[] };

function snapshot(id: number, step: number, change: Partial<PreviewParams> = {}): PreviewParams {
    return {
        id,
        uri: URI,
        version: 1,
        range: { start: { line: 2, character: 11 }, end: { line: 2, character: 11 } },
        mode: 'infill',
        step,
        steps: 16,
        text: 'y░',
        segments: [
            { text: 'y', resolved: true },
            { text: '░', resolved: false },
        ],
        final: false,
        cancelled: false,
        ...change,
    };
}

async function until(what: string, check: () => boolean, seconds = 20): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}; status "${item.text}"; messages ${JSON.stringify(stub.messages)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
}

/** Decorations drawn in an editor, all types together. */
const drawn = (e: StubEditor): number => stub.decorationsOf(e).reduce((n, d) => n + d.length, 0);
const ready = (): boolean => /^\$\(sparkle\) unmask: ready$/.test(item.text);
/** The client is running on its `count`th connection (the status item's model may still show a step). */
const connected = (count: number) => (): boolean =>
    server.connections.length === count && /unmask server: running\nmodel: ready/.test(String(item.tooltip));

/** Send a snapshot; resolve once the editor's decorations say whether it was drawn. */
async function preview(params: PreviewParams, what: string): Promise<void> {
    const calls = editor.calls.length;
    await server.notify('unmask/preview', params);
    await until(what, () => editor.calls.length > calls);
}

before(async () => {
    server = await FakeServer.start();
    stub.reset();
    stub.settings.set('unmask.server.port', server.port);
    editor = stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    item = stub.statusItems[0]!;
    await until('the fake server to report ready', ready);
});

after(async () => {
    await deactivate();
    for (const disposable of context.subscriptions) {
        disposable.dispose();
    }
    await server.close();
});

test('restart: the new connection reuses request ids, its previews are drawn; the old step is gone', async () => {
    await preview(snapshot(5, 1), 'request 5 drawn');
    await preview(snapshot(5, 2, { final: true }), 'request 5 final');
    await preview(snapshot(6, 3), 'request 6 drawn');
    assert.match(item.text, /unmask: infill 3\/16$/);

    await stub.commands.get('unmask.restart')!();
    await until('the restarted connection to report ready', connected(2));
    assert.ok(ready(), `status "${item.text}" still shows the old connection's request`);
    assert.equal(drawn(editor), 0);

    // The new connection numbers its requests from 0 again.
    await preview(snapshot(5, 1), 'request 5 of the new connection');
    assert.ok(drawn(editor) > 0, 'a preview of the new connection was dropped as stale');
    assert.match(item.text, /unmask: infill 1\/16$/);
    await preview(snapshot(5, 2, { final: true }), 'its final snapshot');
    assert.equal(drawn(editor), 0);
    assert.ok(/unmask: ready/.test(item.text));
});

test('a crash vscode-languageclient restarts by itself: the same fresh start', async () => {
    await preview(snapshot(9, 4), 'request 9 drawn');
    assert.match(item.text, /unmask: infill 4\/16$/);
    server.crash();
    await until('the client to reconnect', connected(3));
    // Request 2 of the new connection: a smaller id than the old connection's request 9.
    await preview(snapshot(2, 1), 'request 2 of the new connection');
    assert.ok(drawn(editor) > 0, 'a preview of the new connection was dropped as stale');
    assert.match(item.text, /unmask: infill 1\/16$/);
    await preview(snapshot(2, 2, { cancelled: true, segments: [] }), 'its cancellation');
    assert.equal(drawn(editor), 0);
    assert.ok(ready(), `status "${item.text}"`);
});

test('a block-edit diff: drawn again when its document is shown again, accept/reject keys only there', async () => {
    server.blockEdit = () => REWRITE_OF_BODY;
    await stub.commands.get('unmask.rewriteBlock')!();
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);
    assert.ok(drawn(editor) > 0);

    const other = stub.reveal(new StubDocument('file:///work/other.py', 'x = 1\n'));
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    stub.hide(editor);
    const back = stub.reveal(editor.document);
    assert.ok(drawn(back) > 0, 'the diff was not drawn again');
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);
    stub.focus(other);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    stub.focus(back);
    await stub.commands.get('unmask.rejectBlockEdit')!();
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    assert.equal(drawn(back), 0);
});
