// The `unmask/` messages, as README.md's "Protocol" section defines them.
// Pure data: no `vscode` import.

export const PREVIEW = 'unmask/preview';
export const BLOCK_EDIT = 'unmask/blockEdit';
export const DID_ACCEPT = 'unmask/didAccept';
export const DID_REJECT = 'unmask/didReject';
export const STATUS = 'unmask/status';

/** JSON-RPC "request cancelled" and LSP "content modified". */
export const REQUEST_CANCELLED = -32800;
export const CONTENT_MODIFIED = -32801;

export interface LspPosition {
    line: number;
    character: number;
}

export interface LspRange {
    start: LspPosition;
    end: LspPosition;
}

export type PreviewMode = 'infill' | 'rewrite' | 'suggest';
export type BlockEditMode = 'rewrite' | 'suggest';

export interface Segment {
    text: string;
    resolved: boolean;
}

/** `unmask/preview`: one full snapshot per denoising step (never a delta). */
export interface PreviewParams {
    id: number | string | null;
    uri: string;
    version: number;
    range: LspRange;
    mode: PreviewMode;
    step: number;
    steps: number;
    text: string;
    segments: Segment[];
    final: boolean;
    cancelled: boolean;
}

export interface BlockEditParams {
    textDocument: { uri: string };
    position?: LspPosition;
    range?: LspRange;
    mode: BlockEditMode;
    alternatives?: number;
}

export interface BlockEdit {
    range: LspRange;
    newText: string;
    version: number;
    score: number | null;
}

export interface BlockEditResult {
    mode: BlockEditMode;
    range: LspRange;
    version: number;
    edits: BlockEdit[];
}

export interface ServerStatus {
    model: 'loading' | 'ready' | 'failed' | string;
    error: string | null;
    device: string | null;
    encoding: string;
    accepted: number;
    rejected: number;
}

/** What the extension needs of a connection: a LanguageClient or a vscode-jsonrpc MessageConnection. */
export interface Requester {
    sendRequest<R>(method: string, params: unknown, token?: unknown): Promise<R>;
    sendNotification(method: string, params: unknown): Promise<void> | void;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null;
}

function isPosition(value: unknown): value is LspPosition {
    return isObject(value) && Number.isInteger(value.line) && Number.isInteger(value.character);
}

export function isRange(value: unknown): value is LspRange {
    return isObject(value) && isPosition(value.start) && isPosition(value.end);
}

/** A defensive check of a notification's shape: a malformed one is ignored, never thrown on. */
export function isPreviewParams(value: unknown): value is PreviewParams {
    return (
        isObject(value) &&
        typeof value.uri === 'string' &&
        Number.isInteger(value.version) &&
        isRange(value.range) &&
        typeof value.mode === 'string' &&
        Array.isArray(value.segments) &&
        value.segments.every((s: unknown) => isObject(s) && typeof s.text === 'string' && typeof s.resolved === 'boolean')
    );
}

export function isBlockEditResult(value: unknown): value is BlockEditResult {
    return (
        isObject(value) &&
        (value.mode === 'rewrite' || value.mode === 'suggest') &&
        isRange(value.range) &&
        Number.isInteger(value.version) &&
        Array.isArray(value.edits) &&
        value.edits.every(
            (e: unknown) =>
                isObject(e) && isRange(e.range) && typeof e.newText === 'string' && Number.isInteger(e.version),
        )
    );
}

/** The JSON-RPC error code of a rejected request, if any. */
export function errorCode(error: unknown): number | undefined {
    return isObject(error) && typeof error.code === 'number' ? error.code : undefined;
}
