// Activation paths other than "start the stdio command": a command that does
// not exist, and connecting to a running `unmask serve --tcp` daemon
// (unmask.server.host / unmask.server.port).

import './stub/register';

import * as assert from 'node:assert/strict';
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { activate, deactivate } from '../extension';
import type { ExtensionContext } from '../vscodeapi';
import { stub } from './stub/vscode';
import { PYTHON, REPO } from './realServer';

let context = { subscriptions: [] as { dispose(): unknown }[] };
let daemon: ChildProcessWithoutNullStreams | undefined;

afterEach(async () => {
    await deactivate();
    for (const disposable of context.subscriptions) {
        disposable.dispose();
    }
    context = { subscriptions: [] };
    if (daemon && daemon.exitCode === null) {
        const exited = new Promise((resolve) => daemon!.once('exit', resolve));
        daemon.kill('SIGTERM');
        await exited;
    }
    daemon = undefined;
});

async function until(what: string, check: () => boolean, seconds = 120): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline || /unmask: failed/.test(stub.statusItems[0]?.text ?? '')) {
            throw new Error(`timed out waiting for ${what}: ${stub.statusItems[0]?.text}; ${JSON.stringify(stub.messages)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

test('a server command that does not exist: status "failed", an error shown, commands still answer', async () => {
    stub.reset();
    stub.settings.set('unmask.server.command', [path.join(REPO, 'no-such-dir', 'unmask'), 'serve']);
    stub.open('file:///work/a.py', 'x = 1\n');
    await activate(context as unknown as ExtensionContext);
    assert.match(stub.statusItems[0]!.text, /unmask: failed/);
    assert.ok(stub.messages.some((m) => m.level === 'error' && /did not start/.test(m.text)));
    await stub.commands.get('unmask.rewriteBlock')!();
    assert.match(stub.messages.at(-1)!.text, /not running/);
});

test('unmask.server.port: connect to a running TCP daemon instead of starting a command', { timeout: 180_000 }, async () => {
    const args = ['-m', 'lsp_server.cli', 'serve', '--tcp', '0'];
    if (process.env.UNMASK_TEST_MODEL) {
        args.push('--model', process.env.UNMASK_TEST_MODEL);
    }
    const started = spawn(PYTHON, args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    daemon = started;
    let log = '';
    const port = await new Promise<number>((resolve, reject) => {
        started.stderr.on('data', (chunk: Buffer) => {
            log += chunk.toString();
            const match = /serving tcp on ([\d.]+):(\d+)/.exec(log);
            if (match) {
                resolve(Number(match[2]));
            }
        });
        started.once('exit', (code) => reject(new Error(`the daemon exited (${code}) before listening:\n${log}`)));
        started.once('error', reject);
    });
    stub.reset();
    stub.settings.set('unmask.server.command', [path.join(REPO, 'no-such-dir', 'unmask')]); // must not be used
    stub.settings.set('unmask.server.port', port);
    stub.open('file:///work/a.py', 'x = 1\n');
    await activate(context as unknown as ExtensionContext);
    await until('the daemon to report its model ready', () => /unmask: ready/.test(stub.statusItems[0]!.text));
    assert.equal(stub.inlineProviders.length, 1);
    assert.deepEqual(stub.messages.filter((m) => m.level === 'error'), []);
});
