// The LanguageClient: how to reach the server (a stdio command, or a socket to
// a running `unmask serve --tcp PORT` daemon), what to send at `initialize`,
// and the `unmask/preview` handler. Inline completion needs nothing here:
// vscode-languageclient (>= 10) registers VS Code's inline completion provider
// itself when the server announces `inlineCompletionProvider`.

import * as net from 'net';
import {
    CloseAction,
    ErrorHandler,
    Executable,
    LanguageClient,
    LanguageClientOptions,
    RevealOutputChannelOn,
    ServerOptions,
    State,
    StreamInfo,
} from 'vscode-languageclient/node';
import { PREVIEW } from './protocol';
import { documentSelector, ServerTransport, serverTransport, UnmaskSettings } from './settings';
import { LogOutputChannel, workspaceFolderPath } from './vscodeapi';

export const CLIENT_ID = 'unmask';
export const CLIENT_NAME = 'unmask';

/** A socket that resolves once connected (and rejects on the first error, or a close, before that). */
function connect(host: string, port: number, opened: (socket: net.Socket) => void): Promise<StreamInfo> {
    return new Promise<StreamInfo>((resolve, reject) => {
        const socket = net.connect({ host, port });
        opened(socket);
        const fail = (error: Error): void => reject(error);
        // Destroyed before it connected (an abort): no 'error' comes, only 'close'.
        const closed = (): void => reject(new Error(`the connection to ${host}:${port} was closed before it opened`));
        socket.once('error', fail);
        socket.once('close', closed);
        socket.once('connect', () => {
            socket.removeListener('error', fail);
            socket.removeListener('close', closed);
            resolve({ reader: socket, writer: socket });
        });
    });
}

export function serverOptions(transport: ServerTransport, opened: (socket: net.Socket) => void = () => undefined): ServerOptions {
    if (transport.kind === 'socket') {
        return () => connect(transport.host, transport.port, opened);
    }
    // No `transport` field: the command runs exactly as configured, talking LSP on stdio.
    const executable: Executable = {
        command: transport.command,
        args: transport.args,
        options: { cwd: workspaceFolderPath() },
    };
    return { run: executable, debug: executable };
}

/** A language client and the means to end its connection whatever state it is in. */
export interface ServerConnection {
    readonly client: LanguageClient;
    /**
     * End the connection (or the server process) now, with no restart after it. Unlike
     * `client.stop()`, this also works while the client is starting: a start waiting on a
     * server that never answers `initialize` then fails at once.
     */
    abort(): void;
    /** Whether `abort` was called. */
    readonly aborted: boolean;
    /** Start the client; a failure rejects, and is shown by the caller only (not also by the library). */
    start(): Promise<void>;
}

/** How long a server process killed by `abort` gets to exit before it is killed outright. */
const KILL_GRACE_MS = 2000;

/**
 * vscode-languageclient's client, quiet about a connection ended on purpose or a start whose
 * caller reports it: no error notification for those, and no unhandled rejection from the library stopping a client that
 * is still starting after its `initialize` failed (it cannot be stopped then, and says so by
 * throwing into a promise nobody awaits).
 */
class UnmaskLanguageClient extends LanguageClient {
    aborted = false;
    /** While our own start runs: its caller reports a failure once, in its own words. */
    quiet = false;

    /**
     * vscode-languageclient's start, failing when the server is gone. When the connection
     * closes during `initialize`, the library forgets its start promise (which then rejects
     * with no handler) and its `start()` resolves although nothing runs.
     */
    override async start(): Promise<void> {
        const pending = super.start();
        (this as unknown as { _onStart?: Promise<void> })._onStart?.catch(() => undefined);
        await pending;
        if (this.state !== State.Running) {
            throw new Error('the connection closed before the server answered initialize');
        }
    }

    override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
        super.error(message, data, this.aborted || this.quiet ? false : showNotification);
    }

    override stop(timeout?: number): Promise<void> {
        if (this.state === State.Starting || this.state === State.StartFailed) {
            return Promise.resolve(); // nothing runs to be stopped; the caller aborts what is left
        }
        return super.stop(timeout);
    }
}

export function createClient(
    settings: UnmaskSettings,
    output: LogOutputChannel,
    onPreview: (params: unknown) => unknown,
): ServerConnection {
    let socket: net.Socket | undefined;
    let fallback: ErrorHandler | undefined;
    // vscode-languageclient's own handler (restart a crashed server a few times), except
    // after an abort: that connection was ended on purpose.
    const standard = (): ErrorHandler => (fallback ??= client.createDefaultErrorHandler());
    const errorHandler: ErrorHandler = {
        error: (error, message, count) => standard().error(error, message, count),
        closed: () => (client.aborted ? { action: CloseAction.DoNotRestart, handled: true } : standard().closed()),
    };
    const clientOptions: LanguageClientOptions = {
        documentSelector: documentSelector(),
        initializationOptions: settings.options,
        outputChannel: output,
        revealOutputChannelOn: RevealOutputChannelOn.Never,
        errorHandler,
        // The start's caller reports a failed initialize once, in its own words.
        initializationFailedHandler: () => false,
    };
    const transport = serverTransport(settings);
    const options = serverOptions(transport, (opened) => {
        socket = opened;
    });
    const client = new UnmaskLanguageClient(CLIENT_ID, CLIENT_NAME, options, clientOptions);
    client.onNotification(PREVIEW, (params: unknown) => {
        onPreview(params);
    });
    return {
        client,
        get aborted() {
            return client.aborted;
        },
        async start() {
            client.quiet = true;
            try {
                await client.start();
            } finally {
                client.quiet = false;
            }
        },
        abort() {
            client.aborted = true;
            socket?.destroy();
            const process = client.serverProcess;
            if (process && process.exitCode === null && process.signalCode === null) {
                process.kill();
                setTimeout(() => {
                    if (process.exitCode === null && process.signalCode === null) {
                        process.kill('SIGKILL');
                    }
                }, KILL_GRACE_MS).unref();
            }
        },
    };
}
