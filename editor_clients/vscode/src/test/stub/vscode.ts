// A stand-in for the `vscode` module: just the API surface src/vscodeapi.ts
// wraps, recording what the extension does so tests can look. `register.ts`
// makes `require('vscode')` resolve here.

import * as fs from 'fs';
import * as path from 'path';

// ---------------------------------------------------------------- values

export class Position {
    constructor(
        readonly line: number,
        readonly character: number,
    ) {}

    isBefore(other: Position): boolean {
        return this.line < other.line || (this.line === other.line && this.character < other.character);
    }

    isEqual(other: Position): boolean {
        return this.line === other.line && this.character === other.character;
    }
}

export class Range {
    readonly start: Position;
    readonly end: Position;

    constructor(startLine: number, startCharacter: number, endLine: number, endCharacter: number) {
        this.start = new Position(startLine, startCharacter);
        this.end = new Position(endLine, endCharacter);
    }

    get isEmpty(): boolean {
        return this.start.isEqual(this.end);
    }
}

export class Selection extends Range {
    readonly anchor: Position;
    readonly active: Position;

    constructor(anchorLine: number, anchorCharacter: number, activeLine: number, activeCharacter: number) {
        const anchor = new Position(anchorLine, anchorCharacter);
        const active = new Position(activeLine, activeCharacter);
        const [start, end] = active.isBefore(anchor) ? [active, anchor] : [anchor, active];
        super(start.line, start.character, end.line, end.character);
        this.anchor = anchor;
        this.active = active;
    }
}

export class ThemeColor {
    constructor(readonly id: string) {}
}

export class Uri {
    private constructor(
        readonly scheme: string,
        readonly fsPath: string,
    ) {}

    static file(p: string): Uri {
        return new Uri('file', p);
    }

    static parse(value: string): Uri {
        const match = /^([a-z][\w+.-]*):\/\/(.*)$/i.exec(value);
        return match ? new Uri(match[1]!, decodeURIComponent(match[2]!)) : new Uri('file', value);
    }

    toString(): string {
        return `${this.scheme}://${encodeURI(this.fsPath)}`;
    }
}

export interface RecordedReplace {
    uri: Uri;
    range: Range;
    newText: string;
}

export class WorkspaceEdit {
    readonly replaces: RecordedReplace[] = [];

    replace(uri: Uri, range: Range, newText: string): void {
        this.replaces.push({ uri, range, newText });
    }

    get size(): number {
        return new Set(this.replaces.map((r) => r.uri.toString())).size;
    }
}

export enum StatusBarAlignment {
    Left = 1,
    Right = 2,
}

export enum ProgressLocation {
    SourceControl = 1,
    Window = 10,
    Notification = 15,
}

export enum ConfigurationTarget {
    Global = 1,
    Workspace = 2,
    WorkspaceFolder = 3,
}

export class Disposable {
    constructor(private readonly callback: () => void) {}

    dispose(): void {
        this.callback();
    }
}

type Listener<T> = (value: T) => unknown;

export class EventEmitter<T> {
    private listeners: { listener: Listener<T>; thisArgs: unknown }[] = [];

    /** VS Code's `Event`: (listener, thisArgs?, disposables?) → Disposable. */
    readonly event = (listener: Listener<T>, thisArgs?: unknown, disposables?: Disposable[]): Disposable => {
        const entry = { listener, thisArgs };
        this.listeners.push(entry);
        const disposable = new Disposable(() => {
            this.listeners = this.listeners.filter((l) => l !== entry);
        });
        disposables?.push(disposable);
        return disposable;
    };

    fire(value: T): void {
        for (const { listener, thisArgs } of [...this.listeners]) {
            listener.call(thisArgs, value);
        }
    }

    dispose(): void {
        this.listeners = [];
    }
}

export class CancellationTokenSource {
    private readonly emitter = new EventEmitter<void>();
    readonly token = {
        isCancellationRequested: false,
        onCancellationRequested: this.emitter.event,
    };

    cancel(): void {
        if (!this.token.isCancellationRequested) {
            this.token.isCancellationRequested = true;
            this.emitter.fire();
        }
    }
}

export class CodeActionKind {
    static readonly Empty = new CodeActionKind('');
    static readonly QuickFix = new CodeActionKind('quickfix');
    static readonly Refactor = new CodeActionKind('refactor');
    static readonly RefactorExtract = new CodeActionKind('refactor.extract');
    static readonly RefactorInline = new CodeActionKind('refactor.inline');
    static readonly RefactorMove = new CodeActionKind('refactor.move');
    static readonly RefactorRewrite = new CodeActionKind('refactor.rewrite');
    static readonly Source = new CodeActionKind('source');
    static readonly SourceOrganizeImports = new CodeActionKind('source.organizeImports');
    static readonly SourceFixAll = new CodeActionKind('source.fixAll');
    static readonly Notebook = new CodeActionKind('notebook');

    constructor(readonly value: string) {}

    append(part: string): CodeActionKind {
        return new CodeActionKind(this.value ? `${this.value}.${part}` : part);
    }
}

export enum InlineCompletionTriggerKind {
    Invoke = 0,
    Automatic = 1,
}

export class InlineCompletionItem {
    filterText: string | undefined;

    constructor(
        readonly insertText: string | { value: string },
        readonly range?: Range,
        readonly command?: unknown,
    ) {}
}

export class InlineCompletionList {
    constructor(readonly items: InlineCompletionItem[]) {}
}

export class TabInputText {
    constructor(readonly uri: Uri) {}
}

// ---------------------------------------------------------------- documents and editors

export class TextLine {
    constructor(
        readonly lineNumber: number,
        readonly text: string,
    ) {}
}

export class StubDocument {
    readonly uri: Uri;
    version: number;
    isClosed = false;
    private lines: string[];

    constructor(
        uri: string,
        text: string,
        readonly languageId = 'python',
        version = 1,
    ) {
        this.uri = Uri.parse(uri);
        this.version = version;
        this.lines = text.split('\n');
    }

    get lineCount(): number {
        return this.lines.length;
    }

    getText(): string {
        return this.lines.join('\n');
    }

    lineAt(line: number): TextLine {
        const text = this.lines[line];
        if (text === undefined) {
            throw new Error(`line ${line} out of range`);
        }
        return new TextLine(line, text);
    }

    offsetAt(position: Position): number {
        let offset = 0;
        for (let i = 0; i < position.line; i++) {
            offset += this.lines[i]!.length + 1;
        }
        return offset + position.character;
    }

    /**
     * Replace ranges (in current coordinates, applied back to front), bump the
     * version and fire `onDidChangeTextDocument` as VS Code would.
     */
    apply(replaces: readonly { range: Range; newText: string }[]): void {
        let text = this.getText();
        const sorted = [...replaces].sort((a, b) => this.offsetAt(b.range.start) - this.offsetAt(a.range.start));
        const contentChanges = sorted.map((r) => ({
            range: r.range,
            rangeOffset: this.offsetAt(r.range.start),
            rangeLength: this.offsetAt(r.range.end) - this.offsetAt(r.range.start),
            text: r.newText,
        }));
        for (const change of contentChanges) {
            text = text.slice(0, change.rangeOffset) + change.text + text.slice(change.rangeOffset + change.rangeLength);
        }
        this.lines = text.split('\n');
        this.version += 1;
        documentChanged.fire({ document: this, contentChanges, reason: undefined });
    }
}

export type DecorationTypeStub = { key: string; options: unknown; disposed: boolean; dispose(): void };

export class StubEditor {
    selection: Selection;
    /** The last decorations set per decoration type key. */
    readonly decorations = new Map<string, unknown[]>();
    /** Every setDecorations call, in order. */
    readonly calls: { type: string; count: number }[] = [];

    constructor(readonly document: StubDocument) {
        this.selection = new Selection(0, 0, 0, 0);
    }

    setDecorations(type: DecorationTypeStub, decorations: readonly unknown[]): void {
        this.decorations.set(type.key, [...decorations]);
        this.calls.push({ type: type.key, count: decorations.length });
    }
}

// ---------------------------------------------------------------- recorded state

interface Message {
    level: 'info' | 'warning' | 'error';
    text: string;
}

function packageDefaults(): Map<string, unknown> {
    const defaults = new Map<string, unknown>();
    const manifest = path.resolve(__dirname, '..', '..', '..', 'package.json');
    const json = JSON.parse(fs.readFileSync(manifest, 'utf8')) as {
        contributes: { configuration: { properties: Record<string, { default?: unknown }> } };
    };
    for (const [key, schema] of Object.entries(json.contributes.configuration.properties)) {
        defaults.set(key, schema.default);
    }
    return defaults;
}

export const stub = {
    editors: [] as StubEditor[],
    active: undefined as StubEditor | undefined,
    documents: [] as StubDocument[],
    messages: [] as Message[],
    /** What showXMessage resolves to (a button title), per call. */
    answers: [] as (string | undefined)[],
    contexts: new Map<string, unknown>(),
    applied: [] as WorkspaceEdit[],
    refuseEdits: false,
    settings: new Map<string, unknown>(),
    decorationTypes: [] as DecorationTypeStub[],
    commands: new Map<string, (...args: unknown[]) => unknown>(),
    statusItems: [] as StatusBarItemStub[],
    inlineProviders: [] as { selector: unknown; provider: unknown }[],

    reset(): void {
        this.editors = [];
        this.active = undefined;
        this.documents = [];
        this.messages = [];
        this.answers = [];
        this.contexts.clear();
        this.applied = [];
        this.refuseEdits = false;
        this.settings = packageDefaults();
        this.decorationTypes = [];
        this.commands.clear();
        this.statusItems = [];
        this.inlineProviders = [];
    },

    /** Open a document in a visible (and active) editor. */
    open(uri: string, text: string, languageId = 'python', version = 1): StubEditor {
        const editor = new StubEditor(new StubDocument(uri, text, languageId, version));
        this.documents.push(editor.document);
        this.editors.push(editor);
        this.active = editor;
        return editor;
    },

    /**
     * Show a document in a NEW editor, made active (VS Code makes a new
     * TextEditor, without decorations, each time a tab becomes visible again).
     */
    reveal(document: StubDocument): StubEditor {
        const editor = new StubEditor(document);
        this.editors.push(editor);
        visibleEditorsChanged.fire([...this.editors]);
        this.focus(editor);
        return editor;
    },

    /** Hide an editor (its tab switched away); the last visible editor, if any, becomes active. */
    hide(editor: StubEditor): void {
        this.editors = this.editors.filter((e) => e !== editor);
        visibleEditorsChanged.fire([...this.editors]);
        if (this.active === editor) {
            this.focus(this.editors.at(-1));
        }
    },

    /** Make an editor the active one. */
    focus(editor: StubEditor | undefined): void {
        if (this.active !== editor) {
            this.active = editor;
            activeEditorChanged.fire(editor);
        }
    },

    /** The decorations last set on an editor, per decoration type, in creation order. */
    decorationsOf(editor: StubEditor): unknown[][] {
        return this.decorationTypes.map((t) => editor.decorations.get(t.key) ?? []);
    },
};
stub.settings = packageDefaults();

let typeCount = 0;

export class StatusBarItemStub {
    text = '';
    tooltip: string | undefined;
    name: string | undefined;
    command: string | undefined;
    visible = false;
    disposed = false;

    constructor(
        readonly id: string,
        readonly alignment: StatusBarAlignment,
        readonly priority: number | undefined,
    ) {}

    show(): void {
        this.visible = true;
    }

    hide(): void {
        this.visible = false;
    }

    dispose(): void {
        this.disposed = true;
    }
}

function message(level: Message['level']) {
    return (text: string, ...items: unknown[]): Promise<unknown> => {
        stub.messages.push({ level, text });
        const answer = stub.answers.shift();
        return Promise.resolve(items.length ? answer : undefined);
    };
}

function configuration(section: string) {
    return {
        get<T>(key: string, fallback?: T): T | undefined {
            const full = section ? `${section}.${key}` : key;
            return stub.settings.has(full) ? (stub.settings.get(full) as T) : fallback;
        },
        has(key: string): boolean {
            return stub.settings.has(section ? `${section}.${key}` : key);
        },
        update(key: string, value: unknown): Promise<void> {
            stub.settings.set(section ? `${section}.${key}` : key, value);
            return Promise.resolve();
        },
    };
}

const configurationChanged = new EventEmitter<unknown>();

/** Fire `onDidChangeConfiguration` for a change of the setting `key` (and the sections above it). */
export function changeSetting(key: string, value: unknown): void {
    stub.settings.set(key, value);
    configurationChanged.fire({
        affectsConfiguration: (section: string) => key === section || key.startsWith(`${section}.`),
    });
}
const documentChanged = new EventEmitter<unknown>();
const documentClosed = new EventEmitter<unknown>();
const visibleEditorsChanged = new EventEmitter<unknown>();
const activeEditorChanged = new EventEmitter<unknown>();

const windowApi = {
    get activeTextEditor(): StubEditor | undefined {
        return stub.active;
    },
    get visibleTextEditors(): StubEditor[] {
        return stub.editors;
    },
    onDidChangeVisibleTextEditors: visibleEditorsChanged.event,
    onDidChangeActiveTextEditor: activeEditorChanged.event,
    /** One tab group with a text tab per visible editor (vscode-languageclient syncs visible documents). */
    tabGroups: {
        get all(): { tabs: { input: TabInputText }[] }[] {
            return [{ tabs: stub.editors.map((e) => ({ input: new TabInputText(e.document.uri) })) }];
        },
        onDidChangeTabs: new EventEmitter<unknown>().event,
    },
    createOutputChannel(name: string) {
        const lines: string[] = [];
        const log = (text: string): void => {
            lines.push(text);
        };
        return {
            name,
            lines,
            logLevel: 2,
            onDidChangeLogLevel: new EventEmitter<number>().event,
            info: log,
            warn: log,
            error: log,
            debug: log,
            trace: log,
            appendLine: log,
            append: log,
            replace: log,
            clear(): void {},
            show(): void {},
            hide(): void {},
            dispose(): void {},
        };
    },
    createTextEditorDecorationType(options: unknown): DecorationTypeStub {
        const type: DecorationTypeStub = {
            key: `decoration-${typeCount++}`,
            options,
            disposed: false,
            dispose(): void {
                this.disposed = true;
            },
        };
        stub.decorationTypes.push(type);
        return type;
    },
    createStatusBarItem(id: string, alignment: StatusBarAlignment, priority?: number): StatusBarItemStub {
        const item = new StatusBarItemStub(id, alignment, priority);
        stub.statusItems.push(item);
        return item;
    },
    showInformationMessage: message('info'),
    showWarningMessage: message('warning'),
    showErrorMessage: message('error'),
    withProgress<T>(
        _options: unknown,
        task: (progress: { report(value: unknown): void }, token: CancellationTokenSource['token']) => Promise<T>,
    ): Promise<T> {
        return task({ report(): void {} }, new CancellationTokenSource().token);
    },
};

const workspaceApi = {
    get textDocuments(): StubDocument[] {
        return stub.documents;
    },
    workspaceFolders: undefined as { uri: Uri }[] | undefined,
    notebookDocuments: [] as unknown[],
    getConfiguration: configuration,
    onDidChangeConfiguration: configurationChanged.event,
    onDidChangeTextDocument: documentChanged.event,
    onDidCloseTextDocument: documentClosed.event,
    applyEdit(edit: WorkspaceEdit): Promise<boolean> {
        if (stub.refuseEdits) {
            return Promise.resolve(false);
        }
        stub.applied.push(edit);
        const byDocument = new Map<StubDocument, RecordedReplace[]>();
        for (const r of edit.replaces) {
            const document = stub.documents.find((d) => d.uri.toString() === r.uri.toString());
            if (!document) {
                return Promise.resolve(false);
            }
            byDocument.set(document, [...(byDocument.get(document) ?? []), r]);
        }
        for (const [document, replaces] of byDocument) {
            document.apply(replaces);
        }
        return Promise.resolve(true);
    },
};

const commandsApi = {
    registerCommand(command: string, callback: (...args: unknown[]) => unknown): Disposable {
        stub.commands.set(command, callback);
        return new Disposable(() => stub.commands.delete(command));
    },
    executeCommand(command: string, ...rest: unknown[]): Promise<unknown> {
        if (command === 'setContext') {
            stub.contexts.set(String(rest[0]), rest[1]);
            return Promise.resolve(undefined);
        }
        const callback = stub.commands.get(command);
        return Promise.resolve(callback ? callback(...rest) : undefined);
    },
};

/**
 * Namespaces: what is defined above, and for anything else vscode-languageclient
 * reaches for, an inert stand-in (`onX` events that never fire, functions that
 * return a disposable).
 */
function namespace<T extends object>(api: T): T {
    return new Proxy(api, {
        get(target, name, receiver) {
            if (name in target) {
                return Reflect.get(target, name, receiver);
            }
            if (typeof name !== 'string') {
                return undefined;
            }
            if (/^on[A-Z]/.test(name)) {
                return new EventEmitter<unknown>().event;
            }
            return () => new Disposable(() => undefined);
        },
    });
}

export const window = namespace(windowApi);
export const workspace = namespace(workspaceApi);
export const commands = namespace(commandsApi);
export const languages = namespace({
    /** A document selector's score for a document (filters of scheme and language only). */
    match(selector: unknown, document: StubDocument): number {
        const filters = Array.isArray(selector) ? selector : [selector];
        return filters.some((f: { scheme?: string; language?: string } | string) =>
            typeof f === 'string'
                ? f === document.languageId
                : (!f.scheme || f.scheme === document.uri.scheme) && (!f.language || f.language === document.languageId),
        )
            ? 10
            : 0;
    },
    registerInlineCompletionItemProvider(selector: unknown, provider: unknown): Disposable {
        stub.inlineProviders.push({ selector, provider });
        return new Disposable(() => {
            stub.inlineProviders = stub.inlineProviders.filter((p) => p.provider !== provider);
        });
    },
});
export const env = namespace({ language: 'en', appName: 'stub', machineId: 'stub', sessionId: 'stub' });
export const extensions = namespace({ all: [] as unknown[] });
export const version = '1.91.0';

// vscode-languageclient touches many more names when it loads (e.g.
// `class ProtocolCompletionItem extends code.CompletionItem`): any other
// capitalised name resolves to an inert placeholder class, so that the real
// client module loads and `activate` can be exercised. Nothing checks them.
const placeholders = new Map<string, unknown>();
module.exports = new Proxy(module.exports as Record<string | symbol, unknown>, {
    get(target, name) {
        if (name in target) {
            return target[name];
        }
        if (typeof name === 'string' && /^[A-Z]/.test(name)) {
            if (!placeholders.has(name)) {
                placeholders.set(name, class {});
            }
            return placeholders.get(name);
        }
        return undefined;
    },
});
