// The whole extension: `activate` with the REAL vscode-languageclient (under
// the stubbed `vscode` module) starting the REAL Python server from the
// `unmask.server.command` setting. Inline completion goes through the
// provider vscode-languageclient registers itself; the commands run as
// VS Code would run them.
//
// Environment: as integration.test.ts (UNMASK_PYTHON, UNMASK_TEST_MODEL).

import './stub/register';

import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type * as Extension from '../extension';
import { PENDING_CONTEXT } from '../blockEdit';
import type { ExtensionContext } from '../vscodeapi';
import {
    CancellationTokenSource,
    InlineCompletionList,
    InlineCompletionTriggerKind,
    Position,
    Selection,
    StatusBarItemStub,
    stub,
    StubDocument,
    StubEditor,
} from './stub/vscode';
import { bufferUri, LIST_PYTHON_FILES, PYTHON, TIMEOUT } from './realServer';


// test.sh points UNMASK_EXTENSION_MAIN at the esbuild bundle, the file a .vsix ships (its
// `main`), so this test runs what users install; without it, tsc's output.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { activate, deactivate }: typeof Extension = require(process.env.UNMASK_EXTENSION_MAIN ?? '../extension');

const URI = bufferUri('example_for_vscode_tests.py');
const SOURCE = [
    ...LIST_PYTHON_FILES,
    '',
].join('\n');

interface InlineProvider {
    provideInlineCompletionItems(
        document: StubDocument,
        position: Position,
        context: { triggerKind: InlineCompletionTriggerKind; selectedCompletionInfo: undefined },
        token: CancellationTokenSource['token'],
    ): Promise<InlineCompletionList | undefined>;
}

let editor: StubEditor;
let item: StatusBarItemStub;
const context = { subscriptions: [] as { dispose(): unknown }[] };

async function until(what: string, check: () => boolean, seconds = 120): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline || /unmask: failed/.test(stub.statusItems[0]?.text ?? '')) {
            throw new Error(`timed out waiting for ${what}; status "${item?.text}"; messages ${JSON.stringify(stub.messages)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

function command(name: string): (...args: unknown[]) => unknown {
    const callback = stub.commands.get(name);
    assert.ok(callback, `${name} is not registered`);
    return callback;
}

before(async () => {
    stub.reset();
    const serve = [PYTHON, '-m', 'lsp_server.cli', 'serve'];
    if (process.env.UNMASK_TEST_MODEL) {
        serve.push('--model', process.env.UNMASK_TEST_MODEL);
    }
    stub.settings.set('unmask.server.command', serve);
    stub.settings.set('unmask.singleLineTokens', 8);
    stub.settings.set('unmask.multiLineTokens', 16);
    stub.settings.set('unmask.alternatives', 2);
    stub.settings.set('unmask.loadWaitSeconds', 120);
    editor = stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    item = stub.statusItems[0]!;
});

after(async () => {
    await deactivate();
    for (const disposable of context.subscriptions) {
        disposable.dispose();
    }
});

test('activate: commands registered, the server started, the model reported ready', { timeout: TIMEOUT }, async () => {
    assert.deepEqual([...stub.commands.keys()].filter((c) => /^unmask\.[a-z]+[A-Z]/.test(c) || c === 'unmask.restart').sort(), [
        'unmask.acceptBlockEdit',
        'unmask.rejectBlockEdit',
        'unmask.restart',
        'unmask.rewriteBlock',
        'unmask.showStatus',
        'unmask.suggestEdits',
    ]);
    // The server's own commands, registered by vscode-languageclient from executeCommandProvider.
    assert.ok(stub.commands.has('unmask.rewrite') && stub.commands.has('unmask.suggest'));
    assert.equal(stub.inlineProviders.length, 1, 'vscode-languageclient registered no inline completion provider');
    assert.deepEqual(
        stub.messages.filter((m) => m.level !== 'info'),
        [],
    );
    await until('the model to load', () => /unmask: ready/.test(item.text));
});

test('inline completion through vscode-languageclient: previews drawn, then the item; tokens/s in the status bar', { timeout: TIMEOUT }, async () => {
    const provider = stub.inlineProviders[0]!.provider as InlineProvider;
    const calls = editor.calls.length;
    const result = await provider.provideInlineCompletionItems(
        editor.document,
        new Position(10, 11),
        { triggerKind: InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined },
        new CancellationTokenSource().token,
    );
    assert.ok(result instanceof InlineCompletionList);
    for (const completion of result.items) {
        assert.equal(typeof completion.insertText, 'string');
        assert.ok(!String(completion.insertText).includes('\n'));
        assert.deepEqual([completion.range?.start.line, completion.range?.start.character], [10, 11]);
    }
    // Preview decorations were set while it denoised (non-empty), and cleared by the final snapshot.
    const mine = editor.calls.slice(calls);
    const previewText = stub.decorationTypes[1]!.key;
    assert.ok(mine.some((c) => c.type === previewText && c.count > 0), 'no preview was drawn');
    assert.equal(editor.decorations.get(previewText)?.length, 0);
    assert.match(item.text, /unmask: ready · [\d.]+ tok\/s$/);
});

test('rewrite command → diff → accept command: the edit lands, the server gets the new text', { timeout: TIMEOUT }, async (t) => {
    editor.selection = new Selection(8, 12, 8, 12);
    await command('unmask.rewriteBlock')();
    if (stub.contexts.get(PENDING_CONTEXT) !== true) {
        assert.match(stub.messages.at(-1)?.text ?? '', /no different rewrite/);
        t.diagnostic('the model proposed no different rewrite: accept not exercised');
        return;
    }
    const version = editor.document.version;
    await command('unmask.acceptBlockEdit')();
    assert.equal(stub.applied.length, 1);
    assert.equal(editor.document.version, version + 1);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
    // vscode-languageclient sent the change: the server serves the new version.
    const provider = stub.inlineProviders[0]!.provider as InlineProvider;
    const lines = editor.document.lineCount;
    const last = editor.document.lineAt(lines - 1).text.length;
    const again = await provider.provideInlineCompletionItems(
        editor.document,
        new Position(lines - 1, last),
        { triggerKind: InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined },
        new CancellationTokenSource().token,
    );
    assert.ok(again instanceof InlineCompletionList, `no answer for version ${editor.document.version}`);
});

test('suggest command → reject command; status; restart', { timeout: TIMEOUT }, async (t) => {
    editor.selection = new Selection(5, 4, 5, 4);
    await command('unmask.suggestEdits')();
    if (stub.contexts.get(PENDING_CONTEXT) === true) {
        await command('unmask.rejectBlockEdit')();
        assert.equal(stub.contexts.get(PENDING_CONTEXT), false);
        t.diagnostic('suggested edits shown and rejected');
    } else {
        t.diagnostic(`no suggestion: ${stub.messages.at(-1)?.text}`);
    }
    assert.equal(stub.applied.length <= 1, true);
    stub.answers.push(undefined);
    await command('unmask.showStatus')();
    assert.match(stub.messages.at(-1)!.text, /unmask server: running · model: ready/);
    await command('unmask.restart')();
    assert.equal(stub.inlineProviders.length, 1);
    await until('the restarted server to report ready', () => /unmask: ready/.test(item.text));
});
