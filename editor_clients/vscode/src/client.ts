// The LanguageClient: how to reach the server (a stdio command, or a socket to
// a running `unmask serve --tcp PORT` daemon), what to send at `initialize`,
// and the `unmask/preview` handler. Inline completion needs nothing here:
// vscode-languageclient (>= 10) registers VS Code's inline completion provider
// itself when the server announces `inlineCompletionProvider`.

import * as net from 'net';
import {
    Executable,
    LanguageClient,
    LanguageClientOptions,
    RevealOutputChannelOn,
    ServerOptions,
    StreamInfo,
} from 'vscode-languageclient/node';
import { PREVIEW } from './protocol';
import { documentSelector, ServerTransport, serverTransport, UnmaskSettings } from './settings';
import { LogOutputChannel, workspaceFolderPath } from './vscodeapi';

export const CLIENT_ID = 'unmask';
export const CLIENT_NAME = 'unmask';

/** A socket that resolves once connected (and rejects on the first error before that). */
function connect(host: string, port: number): Promise<StreamInfo> {
    return new Promise<StreamInfo>((resolve, reject) => {
        const socket = net.connect({ host, port });
        const fail = (error: Error): void => reject(error);
        socket.once('error', fail);
        socket.once('connect', () => {
            socket.removeListener('error', fail);
            resolve({ reader: socket, writer: socket });
        });
    });
}

export function serverOptions(transport: ServerTransport): ServerOptions {
    if (transport.kind === 'socket') {
        return () => connect(transport.host, transport.port);
    }
    // No `transport` field: the command runs exactly as configured, talking LSP on stdio.
    const executable: Executable = {
        command: transport.command,
        args: transport.args,
        options: { cwd: workspaceFolderPath() },
    };
    return { run: executable, debug: executable };
}

export function createClient(
    settings: UnmaskSettings,
    output: LogOutputChannel,
    onPreview: (params: unknown) => unknown,
): LanguageClient {
    const clientOptions: LanguageClientOptions = {
        documentSelector: documentSelector(),
        initializationOptions: settings.options,
        outputChannel: output,
        revealOutputChannelOn: RevealOutputChannelOn.Never,
    };
    const client = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions(serverTransport(settings)), clientOptions);
    client.onNotification(PREVIEW, (params: unknown) => {
        onPreview(params);
    });
    return client;
}
