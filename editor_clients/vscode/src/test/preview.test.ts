import './stub/register';

import * as assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { attachment, DIM, LEAD_MARGIN } from '../decorations';
import { blockLayout, inlineLayout, NEWLINE_MARK, splitLines } from '../layout';
import { Finished, PreviewController, previewLayout } from '../preview';
import type { PreviewParams, Segment } from '../protocol';
import { Range, stub, StubEditor, ThemeColor } from './stub/vscode';

const URI = 'file:///work/example.py';
const SOURCE = ['def f(x):', '    y = x + 1', '    return ', '', 'print(f(2))'].join('\n');

function snapshot(change: Partial<PreviewParams> = {}): PreviewParams {
    const segments: Segment[] = change.segments ?? [
        { text: 'y', resolved: true },
        { text: '░░', resolved: false },
    ];
    return {
        id: 1,
        uri: URI,
        version: 1,
        range: { start: { line: 2, character: 11 }, end: { line: 2, character: 11 } },
        mode: 'infill',
        step: 1,
        steps: 4,
        text: segments.map((s) => s.text).join(''),
        segments,
        final: false,
        cancelled: false,
        ...change,
    };
}

interface Drawn {
    range: Range;
    renderOptions?: { after?: { contentText: string; textDecoration?: string; color: ThemeColor; margin?: string } };
}

/** [covered decorations, text decorations] of the preview style (the first two types made). */
function drawn(editor: StubEditor): { covered: Drawn[]; text: Drawn[] } {
    const [covered = [], text = []] = stub.decorationsOf(editor) as Drawn[][];
    return { covered, text };
}

let editor: StubEditor;
beforeEach(() => {
    stub.reset();
    editor = stub.open(URI, SOURCE);
});

test('segments split into lines; a trailing newline makes no extra line', () => {
    assert.deepEqual(
        splitLines([
            { text: 'a\n  b', resolved: true },
            { text: '░', resolved: false },
            { text: '\n', resolved: true },
        ]),
        [[{ text: 'a', resolved: true }], [{ text: '  b', resolved: true }, { text: '░', resolved: false }]],
    );
});

test('infill: resolved and masked runs in order, at the cursor, line breaks as a dim mark', () => {
    const range = { start: { line: 2, character: 11 }, end: { line: 2, character: 11 } };
    const layout = inlineLayout(range, [
        { text: 'x +', resolved: true },
        { text: '░░', resolved: false },
        { text: '\n    z', resolved: true },
    ]);
    assert.deepEqual(layout.covered, []);
    assert.deepEqual(
        layout.pieces.map((p) => [p.line, p.character, p.kind, p.text]),
        [
            [2, 11, 'resolved', 'x +'],
            [2, 11, 'masked', '░░'],
            [2, 11, 'newline', ` ${NEWLINE_MARK} `],
            [2, 11, 'resolved', 'z'],
        ],
    );
});

test('block: line i beside line i of the range, common indent removed, overflow joined on the last line', () => {
    const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } }; // lines 1-2
    const lengths = [9, 13, 11, 0, 11];
    const layout = blockLayout(
        range,
        [
            { text: '    y = x * 2\n    ', resolved: true },
            { text: '░░', resolved: false },
            { text: '\n    return y\n', resolved: true },
        ],
        (line) => lengths[line]!,
    );
    assert.deepEqual(layout.covered, [range]);
    assert.deepEqual(
        layout.pieces.map((p) => [p.line, p.character, p.kind, p.text, p.lead]),
        [
            [1, 13, 'resolved', 'y = x * 2', true],
            [2, 11, 'masked', '░░', true],
            [2, 11, 'newline', ` ${NEWLINE_MARK} `, false],
            [2, 11, 'resolved', 'return y', false],
        ],
    );
});

test('block: an insertion at a line start is drawn after the line before, as new lines', () => {
    const at = { line: 3, character: 0 };
    const layout = blockLayout({ start: at, end: at }, [{ text: '    a = 1\n    b = 2\n', resolved: true }], () => 7);
    assert.deepEqual(layout.covered, []);
    assert.deepEqual(
        layout.pieces.map((p) => [p.line, p.character, p.kind, p.text]),
        [
            [2, 7, 'newline', ` ${NEWLINE_MARK} `],
            [2, 7, 'resolved', 'a = 1'],
            [2, 7, 'newline', ` ${NEWLINE_MARK} `],
            [2, 7, 'resolved', 'b = 2'],
        ],
    );
});

test('a preview snapshot draws ghost-like after-attachments at the cursor', () => {
    const controller = new PreviewController();
    assert.equal(controller.handle(snapshot()), 'rendered');
    const { covered, text } = drawn(editor);
    assert.equal(covered.length, 0);
    assert.equal(text.length, 2);
    const [resolved, masked] = text as [Drawn, Drawn];
    assert.deepEqual([resolved.range.start.line, resolved.range.start.character], [2, 11]);
    assert.ok(resolved.range.isEmpty);
    assert.equal(resolved.renderOptions?.after?.contentText, 'y');
    assert.equal(resolved.renderOptions?.after?.color.id, 'editorGhostText.foreground');
    assert.equal(resolved.renderOptions?.after?.textDecoration, undefined);
    assert.equal(masked.renderOptions?.after?.contentText, '░░');
    assert.equal(masked.renderOptions?.after?.textDecoration, DIM);
});

test('the next snapshot replaces the drawing; final clears it and reports tokens/s', () => {
    let clock = 0;
    const finished: Finished[] = [];
    const controller = new PreviewController({ now: () => clock, onFinished: (f) => finished.push(f) });
    const masked = (n: number): Segment[] => [{ text: '░'.repeat(n), resolved: false }];
    assert.equal(controller.handle(snapshot({ step: 0, segments: masked(6) })), 'rendered');
    clock = 250;
    assert.equal(
        controller.handle(snapshot({ step: 1, segments: [{ text: 'abc', resolved: true }, ...masked(3)] })),
        'rendered',
    );
    assert.deepEqual(
        drawn(editor).text.map((d) => d.renderOptions?.after?.contentText),
        ['abc', '░░░'],
    );
    clock = 500;
    const last = snapshot({ step: 2, final: true, segments: [{ text: 'abcdef', resolved: true }] });
    assert.equal(controller.handle(last), 'final');
    assert.deepEqual(drawn(editor), { covered: [], text: [] });
    assert.equal(finished.length, 1);
    const t = finished[0]!.throughput!;
    assert.equal(t.tokens, 6);
    assert.equal(t.seconds, 0.5);
    assert.equal(t.tokensPerSecond, 12);
    assert.equal(t.tokensPerStep, 3);
});

test('the status bar hears which request is denoising, and when none is', () => {
    const activity: (string | undefined)[] = [];
    const controller = new PreviewController({ onActivity: (a) => activity.push(a) });
    controller.handle(snapshot({ step: 1 }));
    controller.handle(snapshot({ step: 2 }));
    controller.handle(snapshot({ step: 3, final: true, segments: [{ text: 'yz', resolved: true }] }));
    controller.handle(snapshot({ id: 2, mode: 'rewrite', step: 1 }));
    controller.handle(snapshot({ id: 2, cancelled: true, segments: [] }));
    assert.deepEqual(activity, ['infill 1/4', 'infill 2/4', undefined, 'rewrite 1/4', undefined]);
});

test('a snapshot for another document version is dropped, and clears what was drawn', () => {
    const finished: Finished[] = [];
    const controller = new PreviewController({ onFinished: (f) => finished.push(f) });
    assert.equal(controller.handle(snapshot()), 'rendered');
    editor.document.version = 2; // the user typed
    assert.equal(controller.handle(snapshot({ step: 2 })), 'stale-version');
    assert.deepEqual(drawn(editor).text, []);
    // The rest of that request is stale too, final included: nothing reported.
    assert.equal(controller.handle(snapshot({ step: 3, final: true, version: 1 })), 'stale-request');
    assert.equal(finished.length, 0);
    // A snapshot computed for the new version draws again.
    assert.equal(controller.handle(snapshot({ id: 2, version: 2 })), 'rendered');
});

test('a snapshot of an older request is dropped; the newer drawing stays', () => {
    const controller = new PreviewController();
    assert.equal(controller.handle(snapshot({ id: 7, segments: [{ text: 'new', resolved: true }] })), 'rendered');
    assert.equal(controller.handle(snapshot({ id: 6, segments: [{ text: 'old', resolved: true }] })), 'stale-request');
    assert.deepEqual(drawn(editor).text.map((d) => d.renderOptions?.after?.contentText), ['new']);
    // String ids (any JSON-RPC id): once superseded, a request stays dropped.
    assert.equal(controller.handle(snapshot({ id: 'a' })), 'rendered');
    assert.equal(controller.handle(snapshot({ id: 'b' })), 'rendered');
    assert.equal(controller.handle(snapshot({ id: 'a' })), 'stale-request');
});

test('cancelled clears the drawing', () => {
    const controller = new PreviewController();
    controller.handle(snapshot());
    assert.equal(drawn(editor).text.length, 2);
    assert.equal(controller.handle(snapshot({ cancelled: true, segments: [] })), 'cancelled');
    assert.deepEqual(drawn(editor), { covered: [], text: [] });
    assert.equal(controller.handle(snapshot({ step: 3 })), 'stale-request');
});

test('a document edit clears the drawing; malformed or unknown snapshots are ignored', () => {
    const controller = new PreviewController();
    controller.handle(snapshot());
    controller.documentChanged(URI);
    assert.deepEqual(drawn(editor).text, []);
    assert.equal(controller.handle({ uri: URI }), 'malformed');
    assert.equal(controller.handle(null), 'malformed');
    assert.equal(controller.handle(snapshot({ id: 9, uri: 'file:///elsewhere.py' })), 'unknown-document');
});

test('rewrite previews dim the block and draw each new line beside its old line', () => {
    const controller = new PreviewController();
    const params = snapshot({
        mode: 'rewrite',
        range: { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } },
        segments: [
            { text: '    y = ', resolved: true },
            { text: '░░░', resolved: false },
            { text: '\n    return y\n', resolved: true },
        ],
    });
    assert.equal(controller.handle(params), 'rendered');
    const { covered, text } = drawn(editor);
    assert.equal(covered.length, 1);
    assert.deepEqual(
        [covered[0]!.range.start.line, covered[0]!.range.end.line, covered[0]!.range.end.character],
        [1, 3, 0],
    );
    assert.deepEqual((stub.decorationTypes[0]!.options as { opacity: string }).opacity, '0.45');
    assert.deepEqual(
        text.map((d) => [d.range.start.line, d.range.start.character, d.renderOptions?.after?.contentText]),
        [
            [1, 13, 'y = '],
            [1, 13, '░░░'],
            [2, 11, 'return y'],
        ],
    );
    assert.equal(text[0]!.renderOptions?.after?.margin, LEAD_MARGIN);
    assert.equal(text[1]!.renderOptions?.after?.margin, undefined);
    assert.equal(previewLayout(params, () => 0).covered.length, 1);
});

test('diff attachments are green text on the inserted background', () => {
    const a = attachment({ line: 0, character: 0, text: 'x', kind: 'resolved', lead: true }, 'diff');
    const id = (color: unknown): string => (color as ThemeColor).id;
    assert.equal(id(a.color), 'gitDecoration.addedResourceForeground');
    assert.equal(id(a.backgroundColor), 'diffEditor.insertedTextBackground');
    assert.equal(a.margin, LEAD_MARGIN);
});

test('reset (the connection ended): request ids start again, nothing drawn, nothing denoising', () => {
    const activity: (string | undefined)[] = [];
    const controller = new PreviewController({ onActivity: (a) => activity.push(a) });
    // The old connection: request 7 finished, request 12 was mid-stream when it ended.
    assert.equal(controller.handle(snapshot({ id: 7, step: 1 })), 'rendered');
    assert.equal(controller.handle(snapshot({ id: 7, step: 2, final: true })), 'final');
    assert.equal(controller.handle(snapshot({ id: 12, step: 3, steps: 16 })), 'rendered');
    assert.equal(activity.at(-1), 'infill 3/16');
    controller.reset();
    assert.deepEqual(drawn(editor), { covered: [], text: [] });
    assert.equal(activity.at(-1), undefined);
    // The new connection numbers its requests from 0 again: ids the old one used, older or retired.
    assert.equal(controller.handle(snapshot({ id: 3, step: 1 })), 'rendered');
    assert.equal(controller.handle(snapshot({ id: 3, step: 2, final: true })), 'final');
    assert.equal(controller.handle(snapshot({ id: 7, step: 1 })), 'rendered');
    assert.equal(activity.at(-1), 'infill 1/4');
});
