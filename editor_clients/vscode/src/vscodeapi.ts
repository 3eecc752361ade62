// A thin wrapper around every `vscode` API this extension touches, in the
// style of microsoft/vscode-python-tools-extension-template's
// `common/vscodeapi.ts`. Logic modules import only this file, so tests can run
// them under Node against a stubbed `vscode` module (see src/test/stub).

import {
    CancellationToken,
    CancellationTokenSource,
    commands,
    ConfigurationChangeEvent,
    ConfigurationScope,
    ConfigurationTarget,
    DecorationOptions,
    DecorationRenderOptions,
    Disposable,
    ExtensionContext,
    LogOutputChannel,
    MessageItem,
    Position,
    ProgressLocation,
    Range,
    StatusBarAlignment,
    StatusBarItem,
    TextDocument,
    TextDocumentChangeEvent,
    TextEditor,
    TextEditorDecorationType,
    ThemeColor,
    Uri,
    window,
    workspace,
    WorkspaceConfiguration,
    WorkspaceEdit,
} from 'vscode';

export type {
    CancellationToken,
    ConfigurationChangeEvent,
    DecorationOptions,
    DecorationRenderOptions,
    Disposable,
    ExtensionContext,
    LogOutputChannel,
    StatusBarItem,
    TextDocument,
    TextDocumentChangeEvent,
    TextEditor,
    TextEditorDecorationType,
    WorkspaceConfiguration,
};
export { CancellationTokenSource, Position, Range, ThemeColor, Uri, WorkspaceEdit };

export function createOutputChannel(name: string): LogOutputChannel {
    return window.createOutputChannel(name, { log: true });
}

export function getConfiguration(section: string, scope?: ConfigurationScope): WorkspaceConfiguration {
    return workspace.getConfiguration(section, scope);
}

/** Write a user (global) setting. */
export function updateGlobalSetting(section: string, key: string, value: unknown): Thenable<void> {
    return workspace.getConfiguration(section).update(key, value, ConfigurationTarget.Global);
}

export function onDidChangeConfiguration(listener: (event: ConfigurationChangeEvent) => unknown): Disposable {
    return workspace.onDidChangeConfiguration(listener);
}

export function onDidChangeTextDocument(listener: (event: TextDocumentChangeEvent) => unknown): Disposable {
    return workspace.onDidChangeTextDocument(listener);
}

export function onDidCloseTextDocument(listener: (document: TextDocument) => unknown): Disposable {
    return workspace.onDidCloseTextDocument(listener);
}

export function onDidChangeVisibleTextEditors(listener: (editors: readonly TextEditor[]) => unknown): Disposable {
    return window.onDidChangeVisibleTextEditors(listener);
}

export function onDidChangeActiveTextEditor(listener: (editor: TextEditor | undefined) => unknown): Disposable {
    return window.onDidChangeActiveTextEditor(listener);
}

export function workspaceFolderPath(): string | undefined {
    return workspace.workspaceFolders?.[0]?.uri.fsPath;
}

export function applyEdit(edit: WorkspaceEdit): Thenable<boolean> {
    return workspace.applyEdit(edit);
}

export function textDocuments(): readonly TextDocument[] {
    return workspace.textDocuments;
}

export function registerCommand(command: string, callback: (...args: unknown[]) => unknown): Disposable {
    return commands.registerCommand(command, callback);
}

export function executeCommand<T = unknown>(command: string, ...rest: unknown[]): Thenable<T> {
    return commands.executeCommand<T>(command, ...rest);
}

/** `setContext`, for the `when` clauses of the keybindings. */
export function setContext(key: string, value: unknown): Thenable<unknown> {
    return commands.executeCommand('setContext', key, value);
}

export function activeTextEditor(): TextEditor | undefined {
    return window.activeTextEditor;
}

export function visibleTextEditors(): readonly TextEditor[] {
    return window.visibleTextEditors;
}

export function createTextEditorDecorationType(options: DecorationRenderOptions): TextEditorDecorationType {
    return window.createTextEditorDecorationType(options);
}

export function setDecorations(
    editor: TextEditor,
    type: TextEditorDecorationType,
    decorations: readonly DecorationOptions[],
): void {
    editor.setDecorations(type, decorations);
}

export function createStatusBarItem(id: string, priority?: number): StatusBarItem {
    return window.createStatusBarItem(id, StatusBarAlignment.Right, priority);
}

export function showInformationMessage(message: string, ...items: string[]): Thenable<string | undefined> {
    return window.showInformationMessage(message, ...items);
}

export function showWarningMessage(message: string, ...items: string[]): Thenable<string | undefined> {
    return window.showWarningMessage(message, ...items);
}

export function showErrorMessage(message: string, ...items: MessageItem[]): Thenable<MessageItem | undefined> {
    return window.showErrorMessage(message, ...items);
}

/** A cancellable progress notification around `task`. */
export function withProgress<T>(title: string, task: (token: CancellationToken) => Thenable<T>): Thenable<T> {
    return window.withProgress({ location: ProgressLocation.Notification, title, cancellable: true }, (_progress, token) =>
        task(token),
    );
}
