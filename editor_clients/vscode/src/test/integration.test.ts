// The REAL Python server (`python -m lsp_server.cli serve`), driven through
// vscode-jsonrpc with the extension's own code: its initializationOptions
// builder, its `unmask/preview` handler (decorations on a stub editor), its
// block edit controller (request, diff, accept / reject) and status poller.
//
// Environment: UNMASK_PYTHON (default: <repo>/.venv/bin/python, else python3),
// UNMASK_TEST_MODEL (a model folder, passed as --model; default: the built-in model).

import './stub/register';

import * as assert from 'node:assert/strict';
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import {
    createMessageConnection,
    MessageConnection,
    StreamMessageReader,
    StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import { BlockEditController, PENDING_CONTEXT, planAccept } from '../blockEdit';
import { NEWLINE_MARK } from '../layout';
import { Finished, PreviewController, PreviewOutcome } from '../preview';
import { BlockEditResult, PREVIEW, PreviewParams, ServerStatus } from '../protocol';
import { readSettings } from '../settings';
import { StatusController } from '../status';
import { getConfiguration } from '../vscodeapi';
import { asEditor } from './fakes';
import { Selection, stub, StubEditor } from './stub/vscode';
import { bufferUri, LIST_PYTHON_FILES, PYTHON, REPO, RETURN_LINE, TIMEOUT } from './realServer';


const URI = bufferUri('example_for_vscode_integration.py');
const SOURCE = [
    ...LIST_PYTHON_FILES,
    '',
    '',
    'def main():',
    '    ',
    '',
    '',
    "if __name__ == '__main__':",
    '    main()',
    '',
].join('\n');

interface Seen {
    params: PreviewParams;
    outcome: PreviewOutcome;
    /** The preview text decorations right after handling, as drawn text. */
    drawn: string[];
}

let server: ChildProcessWithoutNullStreams;
let connection: MessageConnection;
let editor: StubEditor;
let stderr = '';
const seen: Seen[] = [];
const finished: Finished[] = [];
const shown: string[] = [];
let afterPreview: ((params: PreviewParams) => void) | undefined;
let previews: PreviewController;

function drawnText(): string[] {
    // The preview style's decoration types are the first two the stub saw made.
    const text = stub.decorationTypes[1];
    const options = (text ? (editor.decorations.get(text.key) ?? []) : []) as {
        renderOptions: { after: { contentText: string } };
    }[];
    return options.map((o) => o.renderOptions.after.contentText);
}

before(async () => {
    stub.reset();
    // Small spans keep the CPU run short; they travel as the extension sends them.
    stub.settings.set('unmask.singleLineTokens', 8);
    stub.settings.set('unmask.multiLineTokens', 16);
    stub.settings.set('unmask.alternatives', 2);
    stub.settings.set('unmask.loadWaitSeconds', 120);
    const args = ['-m', 'lsp_server.cli', 'serve'];
    if (process.env.UNMASK_TEST_MODEL) {
        args.push('--model', process.env.UNMASK_TEST_MODEL);
    }
    server = spawn(PYTHON, args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    server.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
    });
    // Fail fast, not by hanging, when the server cannot start or dies.
    const gone = new Promise<never>((_resolve, reject) => {
        server.once('error', (error) => reject(serverFailed(error)));
        server.once('exit', (code) => reject(serverFailed(new Error(`the server exited with ${code}`))));
    });
    gone.catch(() => undefined);
    connection = createMessageConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
    previews = new PreviewController({ onFinished: (f) => finished.push(f) });
    connection.onNotification(PREVIEW, (params: PreviewParams) => {
        const outcome = previews.handle(params);
        seen.push({ params, outcome, drawn: drawnText() });
        afterPreview?.(params);
    });
    connection.onNotification('window/showMessage', (params: { message: string }) => {
        shown.push(params.message);
    });
    connection.onRequest('workspace/applyEdit', () => ({ applied: false }));
    connection.listen();

    editor = stub.open(URI, SOURCE);
    const options = readSettings(getConfiguration('unmask')).options;
    assert.deepEqual(options, {
        singleLineTokens: 8,
        multiLineTokens: 16,
        alternatives: 2,
        previews: true,
        maskGlyph: '░',
        loadWaitSeconds: 120,
        maxDocumentBytes: 2000000,
    });
    const result = await Promise.race([
        gone,
        connection.sendRequest<{ capabilities: Record<string, unknown> }>('initialize', {
            processId: process.pid,
            rootUri: null,
            capabilities: { general: { positionEncodings: ['utf-16'] }, textDocument: { inlineCompletion: {} } },
            initializationOptions: options,
        }),
    ]);
    assert.ok(result.capabilities.inlineCompletionProvider, 'no inlineCompletionProvider announced');
    await connection.sendNotification('initialized', {});
    await connection.sendNotification('textDocument/didOpen', {
        textDocument: { uri: URI, languageId: 'python', version: 1, text: SOURCE },
    });
});

after(async () => {
    try {
        await Promise.race([connection.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 5000))]);
        await connection.sendNotification('exit');
    } catch {
        // already gone
    }
    connection.dispose();
    await new Promise<void>((resolve) => {
        if (server.exitCode !== null) {
            resolve();
            return;
        }
        const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
        server.once('exit', () => {
            clearTimeout(timer);
            resolve();
        });
        server.kill('SIGTERM');
    });
});

function serverFailed(error: unknown): Error {
    return new Error(`${error instanceof Error ? error.message : String(error)}\nserver stderr:\n${stderr}`);
}

test('inline completion: previews drawn at the cursor step by step, cleared on final, tokens/s measured', { timeout: TIMEOUT }, async (t) => {
    const before = seen.length;
    let result: { items: { insertText: string; range?: unknown }[] };
    try {
        result = await connection.sendRequest('textDocument/inlineCompletion', {
            textDocument: { uri: URI },
            position: { line: RETURN_LINE, character: 11 },
            context: { triggerKind: 1 },
        });
    } catch (error) {
        throw serverFailed(error);
    }
    const mine = seen.slice(before);
    assert.ok(mine.length >= 2, 'expected a snapshot per step and a final one');
    const id = mine[0]!.params.id;
    assert.ok(mine.every((s) => s.params.id === id && s.params.mode === 'infill' && s.params.version === 1));
    const outcomes = mine.map((s) => s.outcome);
    assert.equal(outcomes.at(-1), 'final');
    assert.ok(outcomes.slice(0, -1).every((o) => o === 'rendered'), outcomes.join());
    // Step 0: every token masked, drawn as 8 glyphs at the cursor.
    const first = mine[0]!;
    assert.equal(first.params.step, 0);
    assert.equal(first.drawn.join(''), '░'.repeat(8));
    // Each drawing is exactly that snapshot's text, newlines shown as marks.
    for (const s of mine.slice(0, -1)) {
        assert.equal(s.drawn.join('').split(` ${NEWLINE_MARK} `).join('\n'), s.params.text.replace(/\n[ \t]*/g, '\n'));
    }
    assert.deepEqual(drawnText(), [], 'the final snapshot should clear the preview');
    const last = mine.at(-1)!.params;
    const expected = result.items[0]?.insertText ?? '';
    assert.equal(last.text, expected);
    const done = finished.find((f) => f.id === id);
    assert.ok(done?.throughput, 'no tokens/s measured');
    assert.ok(done.throughput.tokensPerSecond > 0);
    assert.equal(done.throughput.tokens, 8 - 0);
    assert.deepEqual(shown, [], 'the server complained about the initializationOptions');
    t.diagnostic(
        `${mine.length} snapshots, ${JSON.stringify(last.text)}, ` +
            `${done.throughput.tokensPerSecond.toFixed(1)} tok/s, ${done.throughput.tokensPerStep.toFixed(1)} tokens/step`,
    );
});

test('previews computed for an older document version are dropped and cleared', { timeout: TIMEOUT }, async () => {
    const before = seen.length;
    // Right after the first snapshot is drawn, the editor's document moves on (the user typed).
    afterPreview = () => {
        editor.document.version = 2;
        afterPreview = undefined;
    };
    try {
        await connection.sendRequest('textDocument/inlineCompletion', {
            textDocument: { uri: URI },
            position: { line: RETURN_LINE, character: 11 },
            context: { triggerKind: 1 },
        });
    } catch (error) {
        throw serverFailed(error);
    } finally {
        editor.document.version = 1;
    }
    const mine = seen.slice(before);
    const id = mine[0]!.params.id;
    assert.equal(mine[0]!.outcome, 'rendered');
    assert.equal(mine[1]?.outcome, 'stale-version');
    assert.ok(mine.slice(2).every((s) => s.outcome === 'stale-request'));
    assert.deepEqual(drawnText(), []);
    assert.ok(!finished.some((f) => f.id === id), 'a stale request reported a final');
});

test('rewrite: previews over the block, edits shaped for the document, accept builds the WorkspaceEdit', { timeout: TIMEOUT }, async (t) => {
    const controller = new BlockEditController(() => connection);
    editor.selection = new Selection(8, 12, 8, 12);
    const before = seen.length;
    let result: BlockEditResult | undefined;
    try {
        result = await controller.run(asEditor(editor), 'rewrite');
    } catch (error) {
        throw serverFailed(error);
    }
    assert.ok(result, `no result; messages: ${JSON.stringify(stub.messages)}\n${stderr}`);
    assert.equal(result.mode, 'rewrite');
    assert.equal(result.version, 1);
    assert.ok(result.range.start.line <= 8 && 8 <= result.range.end.line);
    assert.ok(result.edits.length >= 1 && result.edits.length <= 2, `${result.edits.length} edits`);
    for (const e of result.edits) {
        assert.deepEqual(e.range, result.range);
        assert.equal(e.version, 1);
        assert.equal(typeof e.newText, 'string');
        assert.ok(e.score === null || typeof e.score === 'number');
    }
    t.diagnostic(`${result.edits.length} alternatives for lines ${result.range.start.line}-${result.range.end.line}`);
    // Previews were drawn over the block while it denoised, then cleared.
    const mine = seen.slice(before);
    assert.ok(mine.some((s) => s.outcome === 'rendered' && s.params.mode === 'rewrite' && s.drawn.length > 0));
    assert.equal(mine.at(-1)!.outcome, 'final');
    // The diff: the old block struck through (one covered range), the new text beside it.
    const diffTypes = stub.decorationTypes.slice(2);
    const covered = (editor.decorations.get(diffTypes[0]!.key) ?? []) as unknown[];
    const added = (editor.decorations.get(diffTypes[1]!.key) ?? []) as unknown[];
    assert.equal(covered.length, 1);
    assert.ok(added.length >= 1 || result.edits[0]!.newText.trim() === '');
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);

    // A document that moved on refuses the edit...
    assert.deepEqual(planAccept(result, 2), { ok: false, reason: 'stale' });
    // ...the one at the edit's version takes it, through a WorkspaceEdit.
    const best = result.edits[0]!;
    const lines = SOURCE.split('\n');
    const offset = (p: { line: number; character: number }): number =>
        lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
    const expected = SOURCE.slice(0, offset(best.range.start)) + best.newText + SOURCE.slice(offset(best.range.end));
    assert.equal(await controller.accept(), 'applied');
    const [replace] = stub.applied.at(-1)!.replaces;
    assert.equal(replace!.uri.toString(), URI);
    assert.equal(replace!.newText, best.newText);
    assert.deepEqual(
        [replace!.range.start.line, replace!.range.start.character, replace!.range.end.line, replace!.range.end.character],
        [best.range.start.line, best.range.start.character, best.range.end.line, best.range.end.character],
    );
    assert.equal(editor.document.getText(), expected);
    assert.equal(editor.document.version, 2);
    assert.equal(stub.contexts.get(PENDING_CONTEXT), false);

    // Keep the server's copy in step, then check it counted the acceptance.
    await connection.sendNotification('textDocument/didChange', {
        textDocument: { uri: URI, version: 2 },
        contentChanges: [{ text: editor.document.getText() }],
    });
    const status = new StatusController();
    const answer: ServerStatus | undefined = await status.poll(connection);
    status.dispose();
    assert.equal(answer?.model, 'ready');
    assert.equal(answer?.accepted, 1);
});

test('suggest: hunks inside the block at the current version; reject is counted', { timeout: TIMEOUT }, async (t) => {
    const controller = new BlockEditController(() => connection);
    editor.selection = new Selection(8, 12, 8, 12);
    const version = editor.document.version;
    let result: BlockEditResult | undefined;
    try {
        result = await controller.run(asEditor(editor), 'suggest');
    } catch (error) {
        throw serverFailed(error);
    }
    assert.ok(result, `no result; messages: ${JSON.stringify(stub.messages)}\n${stderr}`);
    assert.equal(result.mode, 'suggest');
    assert.equal(result.version, version);
    for (const e of result.edits) {
        assert.equal(e.version, version);
        assert.ok(e.range.start.line >= result.range.start.line && e.range.end.line <= result.range.end.line + 1);
    }
    t.diagnostic(`${result.edits.length} suggested hunks`);
    if (result.edits.length === 0) {
        assert.match(stub.messages.at(-1)!.text, /nothing looks doubtful/);
        return;
    }
    assert.ok(await controller.reject());
    assert.ok(stub.decorationsOf(editor).every((d) => d.length === 0), 'decorations left after reject');
    const answer = await connection.sendRequest<ServerStatus>('unmask/status', {});
    assert.equal(answer.rejected, 1);
});
