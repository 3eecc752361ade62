// `unmask/preview` snapshots → decorations, and the tokens/s of each request.
//
// Each snapshot is complete (never a delta), so the newest one simply
// replaces what is drawn. A snapshot is dropped when its `version` is not the
// document's current version or when it belongs to a request older than the
// newest one seen for that document; `cancelled` and `final` clear it (on
// `final` VS Code's own inline suggestion, or the block edit diff, takes over).
// Request ids are only comparable within one connection: `reset` forgets them
// all when the connection ends.

import { DecorationSet } from './decorations';
import { blockLayout, inlineLayout, Layout } from './layout';
import { isPreviewParams, PreviewParams, Segment } from './protocol';
import { TextEditor, textDocuments, visibleTextEditors } from './vscodeapi';

// ---------------------------------------------------------------- pure part

/** The layout of one snapshot: ghost-like at the cursor for infill, over the block otherwise. */
export function previewLayout(params: PreviewParams, lineLength: (line: number) => number): Layout {
    return params.mode === 'infill'
        ? inlineLayout(params.range, params.segments)
        : blockLayout(params.range, params.segments, lineLength);
}

/** Masked tokens in a snapshot: unresolved runs carry one glyph (one code point) per masked token. */
export function maskedTokens(segments: readonly Segment[]): number {
    return segments.filter((s) => !s.resolved).reduce((n, s) => n + Array.from(s.text).length, 0);
}

export interface Sample {
    /** Milliseconds, from any monotonic clock. */
    time: number;
    masked: number;
    step: number;
}

export interface Throughput {
    tokens: number;
    seconds: number;
    steps: number;
    tokensPerSecond: number;
    /** Tokens committed per denoising step: the parallelism a diffusion model buys. */
    tokensPerStep: number;
}

/**
 * Tokens committed between the first and the last snapshot, over the time
 * between their arrivals. Undefined when that cannot be measured (one
 * snapshot, no time elapsed, nothing committed).
 */
export function throughput(samples: readonly Sample[]): Throughput | undefined {
    const first = samples[0];
    const last = samples[samples.length - 1];
    if (!first || !last || samples.length < 2) {
        return undefined;
    }
    const tokens = first.masked - last.masked;
    const seconds = (last.time - first.time) / 1000;
    const steps = last.step - first.step;
    if (tokens <= 0 || seconds <= 0) {
        return undefined;
    }
    return {
        tokens,
        seconds,
        steps,
        tokensPerSecond: tokens / seconds,
        tokensPerStep: steps > 0 ? tokens / steps : tokens,
    };
}

export function formatRate(t: Throughput | undefined): string {
    if (!t) {
        return '';
    }
    const rate = t.tokensPerSecond >= 100 ? t.tokensPerSecond.toFixed(0) : t.tokensPerSecond.toFixed(1);
    return `${rate} tok/s`;
}

// ---------------------------------------------------------------- controller

export type PreviewOutcome =
    | 'rendered'
    | 'final'
    | 'cancelled'
    | 'stale-version'
    | 'stale-request'
    | 'unknown-document'
    | 'malformed';

export interface Finished {
    uri: string;
    id: PreviewParams['id'];
    mode: PreviewParams['mode'];
    throughput: Throughput | undefined;
}

export interface PreviewOptions {
    now?: () => number;
    onFinished?: (finished: Finished) => void;
    /** A request is denoising (`"infill 3/16"`), or none is any more (undefined): for the status bar. */
    onActivity?: (activity: string | undefined) => void;
}

type RequestKey = string;

function keyOf(id: PreviewParams['id']): RequestKey {
    return JSON.stringify(id);
}

interface DocumentState {
    active: PreviewParams['id'] | undefined;
    retired: Set<RequestKey>;
    samples: Sample[];
    drawn: boolean;
}

const RETIRED_KEPT = 64;

export class PreviewController {
    private readonly documents = new Map<string, DocumentState>();
    private readonly decorations = new DecorationSet('preview');
    private readonly now: () => number;

    constructor(private readonly options: PreviewOptions = {}) {
        this.now = options.now ?? (() => performance.now());
    }

    /** The `unmask/preview` notification handler. */
    handle(raw: unknown): PreviewOutcome {
        if (!isPreviewParams(raw)) {
            return 'malformed';
        }
        const params = raw;
        const state = this.stateOf(params.uri);
        const key = keyOf(params.id);
        if (state.retired.has(key) || this.older(params.id, state.active)) {
            return 'stale-request';
        }
        if (state.active !== undefined && keyOf(state.active) !== key) {
            this.retire(state, state.active); // a newer request supersedes the drawn one
        }
        state.active = params.id;
        const document = textDocuments().find((d) => d.uri.toString() === params.uri);
        if (!document) {
            this.finish(params, state, false);
            return 'unknown-document';
        }
        if (document.version !== params.version) {
            this.finish(params, state, false);
            return 'stale-version';
        }
        if (params.cancelled) {
            this.finish(params, state, false);
            return 'cancelled';
        }
        state.samples.push({ time: this.now(), masked: maskedTokens(params.segments), step: params.step });
        if (params.final) {
            this.finish(params, state, true);
            return 'final';
        }
        this.options.onActivity?.(`${params.mode} ${params.step}/${params.steps}`);
        for (const editor of this.editorsOf(params.uri)) {
            const doc = editor.document;
            this.decorations.show(
                editor,
                previewLayout(params, (line) => (line < doc.lineCount ? doc.lineAt(line).text.length : 0)),
            );
        }
        state.drawn = true;
        return 'rendered';
    }

    /** The document changed: whatever is drawn describes the old text. */
    documentChanged(uri: string): void {
        this.clear(uri);
    }

    clear(uri: string): void {
        const state = this.documents.get(uri);
        if (state?.drawn) {
            for (const editor of this.editorsOf(uri)) {
                this.decorations.clear(editor);
            }
            state.drawn = false;
        }
    }

    clearAll(): void {
        for (const uri of this.documents.keys()) {
            this.clear(uri);
        }
    }

    /**
     * The connection ended (stop, restart, or a crash vscode-languageclient
     * restarts by itself): forget every request. JSON-RPC ids are numbered per
     * connection, so the next connection's ids would collide with the old
     * ones; and no request of the old one is denoising any more.
     */
    reset(): void {
        this.clearAll();
        this.documents.clear();
        this.options.onActivity?.(undefined);
    }

    dispose(): void {
        this.clearAll();
        this.decorations.dispose();
        this.documents.clear();
    }

    private finish(params: PreviewParams, state: DocumentState, completed: boolean): void {
        this.clear(params.uri);
        this.options.onActivity?.(undefined);
        const samples = state.samples;
        this.retire(state, params.id);
        state.active = undefined;
        if (completed) {
            this.options.onFinished?.({
                uri: params.uri,
                id: params.id,
                mode: params.mode,
                throughput: throughput(samples),
            });
        }
    }

    private retire(state: DocumentState, id: PreviewParams['id']): void {
        state.retired.add(keyOf(id));
        state.samples = [];
        if (state.retired.size > RETIRED_KEPT) {
            const oldest = state.retired.values().next().value;
            if (oldest !== undefined) {
                state.retired.delete(oldest);
            }
        }
    }

    /** Numeric JSON-RPC ids grow: a smaller one than the active request's is an older request. */
    private older(id: PreviewParams['id'], active: PreviewParams['id'] | undefined): boolean {
        return typeof id === 'number' && typeof active === 'number' && id < active;
    }

    private stateOf(uri: string): DocumentState {
        let state = this.documents.get(uri);
        if (!state) {
            state = { active: undefined, retired: new Set(), samples: [], drawn: false };
            this.documents.set(uri, state);
        }
        return state;
    }

    private editorsOf(uri: string): TextEditor[] {
        return visibleTextEditors().filter((e) => e.document.uri.toString() === uri);
    }
}
