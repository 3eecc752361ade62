// activate / deactivate: wiring only. The logic lives in client.ts,
// preview.ts, blockEdit.ts and status.ts.

import * as os from 'os';
import { LanguageClient, State } from 'vscode-languageclient/node';
import { BlockEditController } from './blockEdit';
import { createClient } from './client';
import { PreviewController } from './preview';
import { affectsServer, readSettings, serverTransport } from './settings';
import { StatusController, statusText } from './status';
import * as api from './vscodeapi';

let client: LanguageClient | undefined;
let lifecycle: Promise<void> = Promise.resolve();
let stopServer: (() => Promise<void>) | undefined;

function message(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

export function activate(context: api.ExtensionContext): Promise<void> {
    const output = api.createOutputChannel('unmask');
    const status = new StatusController();
    const previews = new PreviewController({
        onFinished: (finished) => status.setThroughput(finished.throughput, finished.mode),
        onActivity: (activity) => status.setActivity(activity),
    });
    const blockEdits = new BlockEditController(() => client, { busy: (busy) => status.setBusy(busy) });

    async function stop(): Promise<void> {
        const running = client;
        client = undefined;
        status.stopPolling();
        previews.reset(); // the next connection numbers its requests from 0 again; nothing denoises now
        await blockEdits.clear();
        if (running) {
            try {
                await running.stop();
            } catch (error) {
                output.warn(`stopping the server: ${message(error)}`);
            }
        }
        status.update({ server: 'stopped', model: undefined, device: undefined });
    }

    async function start(): Promise<void> {
        let created: LanguageClient | undefined;
        try {
            const settings = readSettings(api.getConfiguration('unmask'), {
                workspaceFolder: api.workspaceFolderPath(),
                userHome: os.homedir(),
            });
            const transport = serverTransport(settings);
            output.info(
                transport.kind === 'socket'
                    ? `connecting to ${transport.host}:${transport.port}`
                    : `starting ${[transport.command, ...transport.args].join(' ')}`,
            );
            output.info(`initializationOptions ${JSON.stringify(settings.options)}`);
            // Only the current client's snapshots: a stopping one's late ones belong to no request of ours.
            const current = createClient(settings, output, (params) =>
                client === current ? previews.handle(params) : undefined,
            );
            created = current;
            current.onDidChangeState((event) => {
                if (client !== current) {
                    return;
                }
                if (event.newState === State.Stopped || event.newState === State.Starting) {
                    // Also when vscode-languageclient restarts a crashed server by itself: a new connection.
                    previews.reset();
                }
                if (event.newState === State.Stopped) {
                    status.update({ server: 'stopped' });
                } else if (event.newState === State.Running) {
                    // Also after vscode-languageclient restarted a crashed server by itself.
                    status.update({ server: 'running' });
                    void status.poll(current);
                }
            });
            client = current;
            status.update({ server: 'starting', model: undefined, error: undefined });
            await current.start();
        } catch (error) {
            if (client === created) {
                client = undefined; // commands then say "not running" instead of failing inside the client
            }
            status.update({ server: 'failed', error: message(error) });
            output.error(`the server did not start: ${message(error)}`);
            void api.showErrorMessage(
                `unmask: the server did not start (${message(error)}). Check the unmask.server.* settings.`,
            );
        }
    }

    // One start or stop at a time, in order; a failure never blocks the next one.
    const restart = (): Promise<void> => (lifecycle = lifecycle.catch(() => undefined).then(stop).then(start));
    stopServer = () => (lifecycle = lifecycle.catch(() => undefined).then(stop));

    async function showStatus(): Promise<void> {
        await status.poll(client);
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
