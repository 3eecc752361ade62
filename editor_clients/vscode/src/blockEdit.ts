// Rewrite a block / suggest edits: `unmask/blockEdit`, the diff as
// decorations, then accept (a WorkspaceEdit, only if the document is still at
// the edit's version; `unmask/didAccept`) or reject (`unmask/didReject`).
//
// A rewrite answers alternatives for one range, best first: accepting applies
// the one shown. Suggest answers separate line hunks: accepting applies all.
//
// One diff is pending at a time, the answer of the latest run: an older run
// still in flight is dropped when it answers. The diff belongs to a document,
// not an editor: it is drawn in every visible editor of that document (again
// when one becomes visible: VS Code drops decorations with the editor when its
// tab is switched away), and PENDING_CONTEXT is true only while the active
// editor shows it, so the accept / reject keybindings act only there.

import { DecorationSet } from './decorations';
import { blockLayout, Layout, resolvedText } from './layout';
import {
    BLOCK_EDIT,
    BlockEdit,
    BlockEditMode,
    BlockEditParams,
    BlockEditResult,
    CONTENT_MODIFIED,
    DID_ACCEPT,
    DID_REJECT,
    errorCode,
    isBlockEditResult,
    LspPosition,
    LspRange,
    REQUEST_CANCELLED,
    Requester,
} from './protocol';
import { unservedReason } from './settings';
import {
    activeTextEditor,
    applyEdit,
    CancellationToken,
    CancellationTokenSource,
    Range,
    setContext,
    showErrorMessage,
    showInformationMessage,
    showWarningMessage,
    TextDocument,
    TextEditor,
    visibleTextEditors,
    withProgress,
    WorkspaceEdit,
} from './vscodeapi';

/** What a command says when there is no running server to ask. */
export const NOT_RUNNING = 'unmask: the server is not running (unmask: Restart Server starts it again).';

export const PENDING_CONTEXT = 'unmask.blockEditPending';

// ---------------------------------------------------------------- pure part

export interface SelectionLike {
    start: LspPosition;
    end: LspPosition;
    active: LspPosition;
    isEmpty: boolean;
}

/** The request: a non-empty selection is the range to edit, else the cursor picks the block. */
export function blockEditParams(
    uri: string,
    selection: SelectionLike,
    mode: BlockEditMode,
    alternatives?: number,
): BlockEditParams {
    const point = (p: LspPosition): LspPosition => ({ line: p.line, character: p.character });
    const params: BlockEditParams = selection.isEmpty
        ? { textDocument: { uri }, position: point(selection.active), mode }
        : { textDocument: { uri }, range: { start: point(selection.start), end: point(selection.end) }, mode };
    if (alternatives !== undefined) {
        params.alternatives = alternatives;
    }
    return params;
}

function before(a: LspPosition, b: LspPosition): boolean {
    return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/** The edits accepting applies: the chosen alternative of a rewrite, every hunk of a suggestion. */
export function editsToApply(result: BlockEditResult, choice = 0): BlockEdit[] {
    if (result.mode === 'rewrite') {
        const chosen = result.edits[choice];
        return chosen ? [chosen] : [];
    }
    const sorted = [...result.edits].sort((a, b) =>
        before(a.range.start, b.range.start) ? -1 : before(b.range.start, a.range.start) ? 1 : 0,
    );
    // Hunks never overlap; if they ever did, keep the first of each overlapping pair.
    return sorted.filter((edit, i) => i === 0 || !before(edit.range.start, sorted[i - 1]!.range.end));
}

/** Edits may be applied only to the document version they were computed for. */
export function versionMatches(result: BlockEditResult, edits: readonly BlockEdit[], current: number | undefined): boolean {
    return current !== undefined && result.version === current && edits.every((e) => e.version === current);
}

export type AcceptPlan =
    | { ok: true; edits: BlockEdit[] }
    | { ok: false; reason: 'stale' | 'empty' | 'closed' };

export function planAccept(result: BlockEditResult, current: number | undefined, choice = 0): AcceptPlan {
    const edits = editsToApply(result, choice);
    if (current === undefined) {
        return { ok: false, reason: 'closed' };
    }
    if (edits.length === 0) {
        return { ok: false, reason: 'empty' };
    }
    if (!versionMatches(result, edits, current)) {
        return { ok: false, reason: 'stale' };
    }
    return { ok: true, edits };
}

/** The diff: replaced text struck through, new text beside it. */
export function diffLayout(edits: readonly BlockEdit[], lineLength: (line: number) => number): Layout {
    const layout: Layout = { covered: [], pieces: [] };
    for (const edit of edits) {
        const one = blockLayout(edit.range, resolvedText(edit.newText), lineLength);
        layout.covered.push(...one.covered);
        layout.pieces.push(...one.pieces);
    }
    return layout;
}

export function toRange(range: LspRange): Range {
    return new Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

/** The WorkspaceEdit for a plan's edits. */
export function workspaceEditFor(document: TextDocument, edits: readonly BlockEdit[]): WorkspaceEdit {
    const edit = new WorkspaceEdit();
    for (const e of edits) {
        edit.replace(document.uri, toRange(e.range), e.newText);
    }
    return edit;
}

// ---------------------------------------------------------------- controller

export interface Pending {
    document: TextDocument;
    uri: string;
    result: BlockEditResult;
    choice: number;
}

export type AcceptOutcome = 'applied' | 'stale' | 'empty' | 'closed' | 'refused' | 'nothing';

export interface BlockEditHooks {
    busy?: (text: string | undefined) => void;
}

export class BlockEditController {
    private pending: Pending | undefined;
    private readonly decorations = new DecorationSet('diff');
    /** The number of the latest run: only its answer is shown. */
    private runs = 0;
    /** Cancels the latest run's request: a newer run makes the server's work on it pointless. */
    private inFlight: CancellationTokenSource | undefined;
    /** The value PENDING_CONTEXT was last set to. */
    private context = false;

    constructor(
        private readonly connection: () => Requester | undefined,
        private readonly hooks: BlockEditHooks = {},
    ) {}

    get current(): Pending | undefined {
        return this.pending;
    }

    /** The rewrite / suggest command. Resolves to the result shown (or undefined). */
    async run(editor: TextEditor | undefined, mode: BlockEditMode): Promise<BlockEditResult | undefined> {
        const requester = this.connection();
        if (!editor) {
            void showInformationMessage('unmask: open a file to edit first.');
            return undefined;
        }
        const unserved = unservedReason(editor.document.uri.scheme, editor.document.languageId);
        if (unserved) {
            void showInformationMessage(`unmask: ${unserved}.`);
            return undefined;
        }
        if (!requester) {
            void showWarningMessage(NOT_RUNNING);
            return undefined;
        }
        const run = ++this.runs;
        this.inFlight?.cancel(); // the server stops denoising it at its next step
        const cancel = new CancellationTokenSource();
        this.inFlight = cancel;
        await this.clear();
        const document = editor.document;
        const uri = document.uri.toString();
        const params = blockEditParams(uri, editor.selection, mode);
        const title = mode === 'rewrite' ? 'unmask: rewriting block…' : 'unmask: looking for edits…';
        this.hooks.busy?.(mode === 'rewrite' ? 'rewriting' : 'suggesting');
        let raw: unknown;
        try {
            raw = await withProgress(title, (token: CancellationToken) => {
                token.onCancellationRequested(() => cancel.cancel()); // the notification's Cancel button
                return requester.sendRequest<unknown>(BLOCK_EDIT, params, cancel.token);
            });
        } catch (error) {
            if (run === this.runs) {
                this.report(error);
            }
            return undefined;
        } finally {
            if (run === this.runs) {
                this.inFlight = undefined;
                this.hooks.busy?.(undefined); // an older run answering leaves the latest one busy
            }
        }
        if (run !== this.runs) {
            return undefined; // superseded by a newer run while computed: that one's answer is shown
        }
        if (!isBlockEditResult(raw)) {
            void showErrorMessage('unmask: the server answered unmask/blockEdit with an unexpected shape.');
            return undefined;
        }
        if (raw.edits.length === 0) {
            void showInformationMessage(
                mode === 'rewrite' ? 'unmask: no different rewrite found.' : 'unmask: nothing looks doubtful here.',
            );
            return raw;
        }
        if (document.isClosed || document.version !== raw.version) {
            void showWarningMessage('unmask: the document changed while the edit was computed; ask again.');
            return raw;
        }
        await this.show({ document, uri, result: raw, choice: 0 });
        return raw;
    }

    async accept(): Promise<AcceptOutcome> {
        const pending = this.pending;
        if (!pending) {
            return 'nothing';
        }
        const document = pending.document;
        const current = document.isClosed ? undefined : document.version;
        const plan = planAccept(pending.result, current, pending.choice);
        if (!plan.ok) {
            await this.clear();
            if (plan.reason === 'stale') {
                void showWarningMessage('unmask: the document changed since this edit was computed; ask again.');
            }
            return plan.reason;
        }
        const applied = await applyEdit(workspaceEditFor(document, plan.edits));
        await this.clear();
        if (!applied) {
            void showWarningMessage('unmask: VS Code refused the edit.');
            return 'refused';
        }
        await this.tell(DID_ACCEPT, this.feedback(pending, plan.edits.length));
        return 'applied';
    }

    async reject(): Promise<boolean> {
        const pending = this.pending;
        if (!pending) {
            return false;
        }
        await this.clear();
        await this.tell(DID_REJECT, this.feedback(pending, 0));
        return true;
    }

    /** The document changed: the diff is drawn over text that moved; drop it. */
    async documentChanged(uri: string): Promise<void> {
        if (this.pending?.uri === uri) {
            await this.clear();
        }
    }

    /** The document was closed: its diff can no longer be accepted. */
    async documentClosed(uri: string): Promise<void> {
        await this.documentChanged(uri);
    }

    /** Editors were shown or hidden: draw the diff again in a new editor of its document. */
    async visibleEditorsChanged(editors: readonly TextEditor[]): Promise<void> {
        const pending = this.pending;
        if (!pending) {
            return;
        }
        if (pending.document.isClosed) {
            await this.clear();
            return;
        }
        for (const editor of editors) {
            if (editor.document.uri.toString() === pending.uri) {
                this.draw(pending, editor);
            }
        }
    }

    /** Another editor is active: the accept / reject keybindings follow the pending document. */
    async activeEditorChanged(editor: TextEditor | undefined): Promise<void> {
        await this.updateContext(editor);
    }

    /**
     * Send the server a feedback notification if it is there. Only counted there: a server
     * that went away after the edit was applied is no failure of the accept.
     */
    private async tell(method: string, params: unknown): Promise<void> {
        try {
            await this.connection()?.sendNotification(method, params);
        } catch {
            // the connection closed between the check and the send: nothing to count it
        }
    }

    async clear(): Promise<void> {
        const pending = this.pending;
        this.pending = undefined;
        if (pending) {
            this.undraw(pending);
        }
        await this.updateContext(activeTextEditor());
    }

    dispose(): void {
        void this.clear();
        this.decorations.dispose();
    }

    private async show(pending: Pending): Promise<void> {
        if (this.pending) {
            this.undraw(this.pending); // never leave an earlier diff drawn
        }
        this.pending = pending;
        for (const editor of this.editorsOf(pending.uri)) {
            this.draw(pending, editor);
        }
        await this.updateContext(activeTextEditor());
    }

    private draw(pending: Pending, editor: TextEditor): void {
        const doc = editor.document;
        const edits = editsToApply(pending.result, pending.choice);
        this.decorations.show(
            editor,
            diffLayout(edits, (line) => (line < doc.lineCount ? doc.lineAt(line).text.length : 0)),
        );
    }

    private undraw(pending: Pending): void {
        for (const editor of this.editorsOf(pending.uri)) {
            this.decorations.clear(editor);
        }
    }

    private editorsOf(uri: string): TextEditor[] {
        return visibleTextEditors().filter((e) => e.document.uri.toString() === uri);
    }

    /** PENDING_CONTEXT: a diff is pending and `active` shows its document. */
    private async updateContext(active: TextEditor | undefined): Promise<void> {
        const value = this.pending !== undefined && active?.document.uri.toString() === this.pending.uri;
        if (value !== this.context) {
            this.context = value;
            await setContext(PENDING_CONTEXT, value);
        }
    }

    private feedback(pending: Pending, applied: number): Record<string, unknown> {
        return {
            uri: pending.uri,
            version: pending.result.version,
            mode: pending.result.mode,
            alternative: pending.choice,
            edits: applied,
        };
    }

    private report(error: unknown): void {
        const code = errorCode(error);
        if (code === REQUEST_CANCELLED) {
            return; // the user cancelled, or a newer request for the document superseded this one
        }
        if (code === CONTENT_MODIFIED) {
            void showWarningMessage('unmask: the document changed while the edit was computed; ask again.');
            return;
        }
        if (!this.connection()) {
            void showErrorMessage(NOT_RUNNING); // it went away while asked: its own error names the client's state
            return;
        }
        const message = error instanceof Error ? error.message : String(error);
        void showErrorMessage(`unmask: ${message}`);
    }
}
