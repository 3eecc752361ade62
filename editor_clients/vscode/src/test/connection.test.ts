// The extension's connection when the server misbehaves: a server that never answers
// `initialize`, a restart while a start waits or while vscode-languageclient relaunches a
// crashed server, a daemon that goes away with a diff pending, a daemon command where a
// stdio one belongs, and which setting changes restart the server.

import './stub/register';

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, test } from 'node:test';
import { NOT_RUNNING, PENDING_CONTEXT } from '../blockEdit';
import { activate, deactivate } from '../extension';
import type { ExtensionContext } from '../vscodeapi';
import { REWRITE_OF_BODY } from './fakes';
import { FakeServer } from './fakeServer';
import { changeSetting, stub } from './stub/vscode';

const URI = 'file:///work/connection.py';
const SOURCE = ['def f(x):', '    y = x + 1', '    return ', '', 'print(f(2))'].join('\n');

let context = { subscriptions: [] as { dispose(): unknown }[] };
const servers: FakeServer[] = [];

async function fakeServer(): Promise<FakeServer> {
    const server = await FakeServer.start();
    servers.push(server);
    return server;
}

afterEach(async () => {
    await deactivate();
    for (const disposable of context.subscriptions) {
        disposable.dispose();
    }
    context = { subscriptions: [] };
    for (const server of servers.splice(0)) {
        await server.close();
    }
});

const status = (): string => stub.statusItems.at(-1)?.text ?? '';
const tooltip = (): string => String(stub.statusItems.at(-1)?.tooltip ?? '');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, seconds = 20): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}; status "${status()}"; messages ${JSON.stringify(stub.messages)}`);
        }
        await sleep(20);
    }
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

test('a stdio server that never answers initialize: given up after startTimeoutSeconds, its process ended', async () => {
    const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'unmask-hung-')), 'pid');
    stub.reset();
    // A process that reads its stdin and never writes a word.
    const hung = `require('fs').writeFileSync(process.argv[1], String(process.pid)); process.stdin.resume();`;
    stub.settings.set('unmask.server.command', [process.execPath, '-e', hung, pidFile]);
    stub.settings.set('unmask.server.startTimeoutSeconds', 0.5);
    stub.open(URI, SOURCE);
    const began = Date.now();
    await activate(context as unknown as ExtensionContext);
    assert.ok(Date.now() - began < 10_000, 'the start waited far past its time limit');
    assert.match(status(), /unmask: failed/);
    assert.match(tooltip(), /no answer to initialize within 0\.5 s/);
    assert.ok(stub.messages.some((m) => m.level === 'error' && /startTimeoutSeconds/.test(m.text)));
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await until('the hung server process to be ended', () => !alive(pid), 10);
    await stub.commands.get('unmask.rewriteBlock')!();
    assert.equal(stub.messages.at(-1)!.text, NOT_RUNNING);
});

test('a restart while a start waits for its server ends that start at once and connects anew', async () => {
    const hung = await fakeServer();
    hung.initializeDelay = () => Infinity;
    const good = await fakeServer();
    stub.reset();
    stub.settings.set('unmask.server.port', hung.port);
    stub.open(URI, SOURCE);
    void activate(context as unknown as ExtensionContext); // waits on the hung server (30 s by default)
    await until('the connection to the hung server', () => hung.opened === 1);
    assert.match(status(), /unmask: starting/);

    changeSetting('unmask.server.port', good.port); // the user puts the right port in
    await until('the restart to reach the good server', () => good.live === 1, 10);
    await until('the status to leave "starting"', () => !/starting/.test(status()), 10);
    assert.equal(hung.opened, 0, 'the waiting connection was left open');
    assert.ok(
        !stub.messages.some((m) => m.level === 'error'),
        `a start ended on purpose was reported as a failure: ${JSON.stringify(stub.messages)}`,
    );
    const ended = await Promise.race([deactivate().then(() => true), sleep(5000).then(() => false)]);
    assert.ok(ended, 'deactivate did not finish');
    await until('the good connection to close', () => good.opened === 0, 5);
});

test('a server that dies at every start: the start fails, said so, and no connection is left', async () => {
    const server = await fakeServer();
    server.hangUpOnInitialize = () => true; // vscode-languageclient relaunches it a few times first
    stub.reset();
    stub.settings.set('unmask.server.port', server.port);
    stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    assert.match(status(), /unmask: failed/);
    const errors = stub.messages.filter((m) => m.level === 'error');
    assert.equal(errors.length, 1, `one failure, told once: ${JSON.stringify(errors)}`);
    assert.match(errors[0]!.text, /did not start/);
    const tries = server.connections.length;
    await sleep(1000);
    assert.equal(server.connections.length, tries, 'a relaunch went on behind the failed start');
    assert.equal(server.opened, 0);
});

test('the daemon goes away with a diff pending: the diff is dropped, the status says so, commands say why', async () => {
    const server = await fakeServer();
    server.blockEdit = () => REWRITE_OF_BODY;
    stub.reset();
    stub.settings.set('unmask.server.port', server.port);
    const editor = stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    await until('ready', () => /unmask: ready/.test(status()));
    await stub.commands.get('unmask.rewriteBlock')!();
    assert.equal(stub.contexts.get(PENDING_CONTEXT), true);

    await server.close(); // the daemon exits: nothing listens any more, relaunches are refused
    await until('the diff to be dropped', () => stub.contexts.get(PENDING_CONTEXT) === false);
    await until('the status to leave "ready"', () => /unmask: (stopped|failed|starting)/.test(status()));
    assert.doesNotMatch(tooltip(), /model: ready|device:/);
    assert.equal(await stub.commands.get('unmask.acceptBlockEdit')!(), 'nothing');
    assert.equal(editor.document.getText(), SOURCE, 'an edit was applied after its server went away');
    await until('vscode-languageclient to give up relaunching', () => /unmask: (stopped|failed)/.test(status()), 30);
    await stub.commands.get('unmask.rewriteBlock')!();
    assert.equal(stub.messages.at(-1)!.text, NOT_RUNNING);
});

test('a restart while a crashed server is relaunched leaves one connection, and none after deactivate', async () => {
    const server = await fakeServer();
    server.initializeDelay = (index) => (index === 1 ? 1500 : 0); // the relaunch takes 1.5 s to answer
    stub.reset();
    stub.settings.set('unmask.server.port', server.port);
    stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    await until('ready', () => /unmask: ready/.test(status()));
    server.crash();
    await until('vscode-languageclient to reconnect', () => server.connections.length === 2);
    await stub.commands.get('unmask.restart')!();
    await until('the restart to connect', () => server.live === 1 && server.connections.length === 3, 10);
    await sleep(2000); // past the relaunch's delayed answer
    assert.equal(server.opened, 1, 'the relaunched connection outlived the restart');
    assert.equal(stub.inlineProviders.length, 1, "two clients registered inline completion");
    await deactivate();
    await until('every connection to close', () => server.opened === 0, 5);
});

test('a daemon command where a stdio one belongs is refused at once, with the way out', async () => {
    stub.reset();
    stub.settings.set('unmask.server.command', ['unmask', 'serve', '--tcp', '7777']);
    stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    assert.match(status(), /unmask: failed/);
    const error = stub.messages.find((m) => m.level === 'error');
    assert.ok(error && /--tcp/.test(error.text) && /unmask\.server\.port/.test(error.text), JSON.stringify(stub.messages));
});

test('a server option restarts the server; a trace level or an unused setting does not', async () => {
    const server = await fakeServer();
    stub.reset();
    stub.settings.set('unmask.server.port', server.port);
    stub.open(URI, SOURCE);
    await activate(context as unknown as ExtensionContext);
    await until('ready', () => /unmask: ready/.test(status()));
    changeSetting('unmask.trace.server', 'verbose');
    changeSetting('editor.fontSize', 20);
    await sleep(500);
    assert.equal(server.connections.length, 1);
    changeSetting('unmask.singleLineTokens', 12);
    await until('the restart', () => server.connections.length === 2 && server.live === 1);
    changeSetting('unmask.maskGlyph', '##'); // refused: said so, and the default is used
    await until('the second restart', () => server.connections.length === 3 && server.live === 1);
    assert.ok(
        stub.messages.some((m) => m.level === 'warning' && /unmask\.maskGlyph "##" is not one character/.test(m.text)),
        JSON.stringify(stub.messages),
    );
});
