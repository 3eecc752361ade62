// activate / deactivate: wiring only. The logic lives in client.ts,
// preview.ts, blockEdit.ts and status.ts.

import * as os from 'os';
import { LanguageClient, State } from 'vscode-languageclient/node';
import { BlockEditController } from './blockEdit';
import { createClient, ServerConnection } from './client';
import { PreviewController } from './preview';
import { affectsServer, commandProblem, readSettings, serverTransport } from './settings';
import { StatusController, statusText } from './status';
import * as api from './vscodeapi';

let server: ServerConnection | undefined;
let starting: ServerConnection | undefined;
let lifecycle: Promise<void> = Promise.resolve();
let stopServer: (() => Promise<void>) | undefined;

/** How long a stop waits for vscode-languageclient to finish relaunching a crashed server. */
const SETTLE_MS = 5000;

function message(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

/** The promise's value, or `undefined` once `ms` have passed (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    promise.catch(() => undefined); // a rejection after the time is up is nobody's to handle
    const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
    });
    try {
        return await Promise.race([promise, late]);
    } finally {
        clearTimeout(timer);
    }
}

/**
 * Resolves once the client's start in progress has finished, features registered and all
 * (at once if none is). Its state turns Running before its features are registered: a
 * client stopped at that moment would register them after its stop, and keep them.
 */
async function settled(client: LanguageClient): Promise<true> {
    if (client.state === State.Starting || client.state === State.Running) {
        await client.start().catch(() => undefined); // the start in progress, not a new one
    }
    return true;
}

/**
 * End a connection whatever its state. vscode-languageclient cannot stop a client that is
 * starting (it throws), which is its state while it relaunches a crashed server: wait for
 * that to settle, and abort it if it does not.
 */
async function shutDown(connection: ServerConnection, output: api.LogOutputChannel): Promise<void> {
    const { client } = connection;
    if ((await within(settled(client), SETTLE_MS)) === undefined) {
        output.warn('the server was still starting: ending it');
        connection.abort();
        return;
    }
    if (client.state !== State.Running) {
        connection.abort(); // failed or stopped: make sure no process or socket is left behind
        return;
    }
    try {
        await client.stop();
    } catch (error) {
        output.warn(`stopping the server: ${message(error)}`);
        connection.abort();
    }
}

export function activate(context: api.ExtensionContext): Promise<void> {
    const output = api.createOutputChannel('unmask');
    const status = new StatusController();
    const previews = new PreviewController({
        onFinished: (finished) => status.setThroughput(finished.throughput, finished.mode),
        onActivity: (activity) => status.setActivity(activity),
    });
    // A client that is starting takes requests too: it sends them once it is running.
    const running = (): LanguageClient | undefined =>
        server && (server.client.isRunning() || server.client.state === State.Starting) ? server.client : undefined;
    const blockEdits = new BlockEditController(running, { busy: (busy) => status.setBusy(busy) });

    async function stop(): Promise<void> {
        const ending = server;
        server = undefined;
        status.stopPolling();
        previews.reset(); // the next connection numbers its requests from 0 again; nothing denoises now
        await blockEdits.clear();
        if (ending) {
            await shutDown(ending, output);
        }
        status.update({ server: 'stopped', model: undefined, device: undefined });
    }

    function failed(reason: string): void {
        status.update({ server: 'failed', model: undefined, device: undefined, error: reason });
        output.error(`the server did not start: ${reason}`);
        void api.showErrorMessage(`unmask: the server did not start (${reason}). Check the unmask.server.* settings.`);
    }

    async function start(): Promise<void> {
        const settings = readSettings(api.getConfiguration('unmask'), {
            workspaceFolder: api.workspaceFolderPath(),
            userHome: os.homedir(),
        });
        if (settings.problems.length > 0) {
            void api.showWarningMessage(`unmask: ${settings.problems.join('; ')}; using the defaults for those.`);
        }
        const transport = serverTransport(settings);
        if (transport.kind === 'stdio') {
            const problem = commandProblem([transport.command, ...transport.args]);
            if (problem) {
                failed(problem);
                return;
            }
        }
        output.info(
            transport.kind === 'socket'
                ? `connecting to ${transport.host}:${transport.port}`
                : `starting ${[transport.command, ...transport.args].join(' ')}`,
        );
        output.info(`initializationOptions ${JSON.stringify(settings.options)}`);
        // Only the current client's snapshots: a stopping one's late ones belong to no request of ours.
        const current = createClient(settings, output, (params) =>
            server === current ? previews.handle(params) : undefined,
        );
        current.client.onDidChangeState((event) => {
            if (server !== current) {
                return;
            }
            if (event.oldState === State.Running) {
                // The connection is gone (vscode-languageclient may be relaunching a crashed
                // server): a diff computed on it can no longer be told to the server, and its
                // requests are numbered from 0 again on the next one.
                previews.reset();
                void blockEdits.clear();
            }
            if (event.newState === State.Stopped) {
                status.update({ server: 'stopped', model: undefined, device: undefined });
            } else if (event.newState === State.StartFailed && starting !== current) {
                // A relaunch after a crash failed (a first start's failure is reported by start).
                status.update({
                    server: 'failed',
                    model: undefined,
                    device: undefined,
                    error: 'the server stopped and could not be started again',
                });
            } else if (event.newState === State.Starting) {
                status.update({ server: 'starting', model: undefined, device: undefined });
            } else if (event.newState === State.Running) {
                // Also after vscode-languageclient restarted a crashed server by itself.
                status.update({ server: 'running', error: undefined });
                void status.poll(current.client);
            }
        });
        server = current;
        starting = current;
        status.update({ server: 'starting', model: undefined, error: undefined });
        const started = current.start();
        let timedOut = false;
        try {
            const answered = await within(
                started.then(() => true),
                settings.startTimeoutSeconds * 1000,
            );
            if (!answered) {
                timedOut = true;
                current.abort();
                await within(started, SETTLE_MS).catch(() => undefined); // fails once its connection closes
                throw new Error(
                    `no answer to initialize within ${settings.startTimeoutSeconds} s ` +
                        '(unmask.server.startTimeoutSeconds)',
                );
            }
        } catch (error) {
            const endedOnPurpose = current.aborted && !timedOut; // by a restart: the next start is on its way
            // Whatever vscode-languageclient may still be trying (it relaunches a server that
            // hung up during initialize), this client is done: no connection outlives it.
            current.abort();
            if (server === current) {
                server = undefined; // commands then say "not running" instead of failing inside the client
            }
            if (endedOnPurpose) {
                return;
            }
            failed(message(error));
        } finally {
            if (starting === current) {
                starting = undefined;
            }
        }
    }

    // One start or stop at a time, in order; a failure never blocks the next one. A start
    // still waiting for its server is ended first: the user asked for another.
    const queue = (step: () => Promise<void>): Promise<void> => {
        starting?.abort();
        return (lifecycle = lifecycle.catch(() => undefined).then(step));
    };
    const restart = (): Promise<void> => queue(() => stop().then(start));
    stopServer = () => queue(stop);

    async function showStatus(): Promise<void> {
        await status.poll(running());
        const { tooltip } = statusText(status.snapshot);
        const choice = await api.showInformationMessage(
            tooltip.replace(/\nClick for details\.$/, '').split('\n').join(' · '),
            'Restart',
            'Show Output',
        );
        if (choice === 'Restart') {
            await restart();
        } else if (choice === 'Show Output') {
            output.show(true);
        }
    }

    context.subscriptions.push(
        output,
        { dispose: () => status.dispose() },
        { dispose: () => previews.dispose() },
        { dispose: () => blockEdits.dispose() },
        api.registerCommand('unmask.rewriteBlock', () => blockEdits.run(api.activeTextEditor(), 'rewrite')),
        api.registerCommand('unmask.suggestEdits', () => blockEdits.run(api.activeTextEditor(), 'suggest')),
        api.registerCommand('unmask.acceptBlockEdit', () => blockEdits.accept()),
        api.registerCommand('unmask.rejectBlockEdit', () => blockEdits.reject()),
        api.registerCommand('unmask.restart', () => restart()),
        api.registerCommand('unmask.showStatus', () => showStatus()),
        api.onDidChangeTextDocument((event) => {
            if (event.contentChanges.length > 0) {
                const uri = event.document.uri.toString();
                previews.documentChanged(uri);
                void blockEdits.documentChanged(uri);
            }
        }),
        api.onDidCloseTextDocument((document) => {
            const uri = document.uri.toString();
            previews.clear(uri);
            void blockEdits.documentClosed(uri);
        }),
        api.onDidChangeVisibleTextEditors((editors) => blockEdits.visibleEditorsChanged(editors)),
        api.onDidChangeActiveTextEditor((editor) => blockEdits.activeEditorChanged(editor)),
        api.onDidChangeConfiguration((event) => {
            if (affectsServer((section) => event.affectsConfiguration(section))) {
                void restart();
            }
        }),
    );

    // Ghost text is VS Code's own inline suggestion: it must be switched on.
    if (api.getConfiguration('editor').get<boolean>('inlineSuggest.enabled') === false) {
        void api
            .showWarningMessage('unmask: inline suggestions are off (editor.inlineSuggest.enabled).', 'Turn On')
            .then((choice) =>
                choice === 'Turn On' ? api.updateGlobalSetting('editor', 'inlineSuggest.enabled', true) : undefined,
            );
    }
    return restart();
}

export function deactivate(): Promise<void> {
    return stopServer ? stopServer() : Promise.resolve();
}
