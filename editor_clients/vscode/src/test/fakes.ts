// A fake connection (the `Requester` the controllers talk through).

import type { Requester } from '../protocol';
import type { TextEditor } from '../vscodeapi';
import type { StubEditor } from './stub/vscode';

export interface Sent {
    method: string;
    params: unknown;
}

export interface Token {
    isCancellationRequested: boolean;
}

export class FakeConnection implements Requester {
    readonly requests: Sent[] = [];
    /** The cancellation token each request was sent with, in the same order. */
    readonly tokens: (Token | undefined)[] = [];
    readonly notifications: Sent[] = [];

    constructor(private readonly answer: (method: string, params: unknown) => unknown) {}

    sendRequest<R>(method: string, params: unknown, token?: Token): Promise<R> {
        this.requests.push({ method, params });
        this.tokens.push(token);
        try {
            const value = this.answer(method, params);
            return value instanceof Promise ? (value as Promise<R>) : Promise.resolve(value as R);
        } catch (error) {
            return Promise.reject(error);
        }
    }

    sendNotification(method: string, params: unknown): Promise<void> {
        this.notifications.push({ method, params });
        return Promise.resolve();
    }
}

/** A JSON-RPC error as vscode-jsonrpc rejects with. */
/** An `unmask/status` answer of a server whose model is loaded. */
export const READY_STATUS = {
    model: 'ready',
    error: null,
    device: 'cpu',
    encoding: 'utf-16',
    accepted: 0,
    rejected: 0,
};

export function rpcError(code: number, message: string): Error & { code: number } {
    return Object.assign(new Error(message), { code });
}

/** The stub editor where the extension expects VS Code's (the stub implements what it uses). */
export function asEditor(editor: StubEditor): TextEditor {
    return editor as unknown as TextEditor;
}

/** A rewrite of lines 1-2 of the tests' `def f(x)` source, as the server answers it at version 1. */
export const REWRITE_OF_BODY = {
    mode: 'rewrite',
    range: { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } },
    version: 1,
    edits: [
        {
            range: { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } },
            newText: '    return x + 1\n',
            version: 1,
            score: -0.5,
        },
    ],
};
