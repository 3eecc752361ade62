import './stub/register';

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeEach, test } from 'node:test';
import {
    affectsServer,
    commandProblem,
    documentSelector,
    initializationOptions,
    LANGUAGES,
    readSettings,
    serverTransport,
    substitute,
    unservedReason,
} from '../settings';
import { getConfiguration } from '../vscodeapi';
import { stub } from './stub/vscode';

const EXTENSION = path.resolve(__dirname, '..', '..');
const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION, 'package.json'), 'utf8')) as {
    activationEvents: string[];
    contributes: {
        configuration: { properties: Record<string, unknown> };
        commands: { command: string }[];
        keybindings: { command: string; key: string; when?: string }[];
    };
};

beforeEach(() => stub.reset());

test('the contributed defaults become the README defaults, in camelCase', () => {
    assert.deepEqual(initializationOptions(getConfiguration('unmask')), {
        singleLineTokens: 24,
        multiLineTokens: 64,
        alternatives: 3,
        previews: true,
        maskGlyph: '░',
        loadWaitSeconds: 30,
        maxDocumentBytes: 2000000,
    });
});

test('every initialization option is one the README lists', () => {
    const readme = path.resolve(EXTENSION, '..', '..', 'README.md');
    if (!fs.existsSync(readme)) {
        return;
    }
    const protocol = fs.readFileSync(readme, 'utf8');
    for (const key of Object.keys(initializationOptions(getConfiguration('unmask')))) {
        assert.ok(protocol.includes(`\`${key}\``), `README.md does not list initializationOptions.${key}`);
    }
});

test('user values are passed through; values the server would refuse are left out', () => {
    stub.settings.set('unmask.singleLineTokens', 8);
    stub.settings.set('unmask.multiLineTokens', 0);
    stub.settings.set('unmask.alternatives', 2.5);
    stub.settings.set('unmask.previews', false);
    stub.settings.set('unmask.maskGlyph', '##');
    stub.settings.set('unmask.loadWaitSeconds', 2.5);
    stub.settings.set('unmask.maxDocumentBytes', 'big');
    assert.deepEqual(initializationOptions(getConfiguration('unmask')), {
        singleLineTokens: 8,
        previews: false,
        loadWaitSeconds: 2.5,
    });
    stub.settings.set('unmask.maskGlyph', '𝕏'); // one code point, two UTF-16 units
    assert.equal(initializationOptions(getConfiguration('unmask')).maskGlyph, '𝕏');
});

test('the command runs over stdio unless a port is set', () => {
    const settings = readSettings(getConfiguration('unmask'));
    assert.deepEqual(settings.command, ['unmask', 'serve']);
    assert.deepEqual(serverTransport(settings), { kind: 'stdio', command: 'unmask', args: ['serve'] });
    stub.settings.set('unmask.server.port', 7654);
    assert.deepEqual(serverTransport(readSettings(getConfiguration('unmask'))), {
        kind: 'socket',
        host: '127.0.0.1',
        port: 7654,
    });
    stub.settings.set('unmask.server.host', 'gpu-box');
    stub.settings.set('unmask.server.port', 70000);
    assert.equal(serverTransport(readSettings(getConfiguration('unmask'))).kind, 'stdio');
});

test('command words get ${workspaceFolder}, ${userHome} and ~ substituted; a bad command falls back', () => {
    stub.settings.set('unmask.server.command', ['${workspaceFolder}/.venv/bin/unmask', 'serve', '--model', '~/m']);
    const settings = readSettings(getConfiguration('unmask'), { workspaceFolder: '/ws', userHome: '/home/me' });
    assert.deepEqual(settings.command, ['/ws/.venv/bin/unmask', 'serve', '--model', '/home/me/m']);
    assert.equal(substitute('a~b', { userHome: '/h' }), 'a~b');
    stub.settings.set('unmask.server.command', []);
    assert.deepEqual(readSettings(getConfiguration('unmask')).command, ['unmask', 'serve']);
    stub.settings.set('unmask.server.command', 'unmask serve');
    assert.deepEqual(readSettings(getConfiguration('unmask')).command, ['unmask', 'serve']);
});

test('the manifest: activation events, selector, commands and keybindings agree', () => {
    const activated = manifest.activationEvents.map((e) => e.replace(/^onLanguage:/, ''));
    assert.deepEqual([...activated].sort(), [...LANGUAGES].sort());
    for (const language of ['python', 'javascript', 'typescript', 'go', 'rust', 'lua']) {
        assert.ok(documentSelector().some((f) => f.language === language && f.scheme === 'file'));
    }
    const commands = manifest.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual(commands, [
        'unmask.acceptBlockEdit',
        'unmask.rejectBlockEdit',
        'unmask.restart',
        'unmask.rewriteBlock',
        'unmask.showStatus',
        'unmask.suggestEdits',
    ]);
    for (const binding of manifest.contributes.keybindings) {
        assert.ok(commands.includes(binding.command), binding.command);
        assert.ok(binding.when, `${binding.key} has no when clause`);
    }
    const keys = Object.fromEntries(manifest.contributes.keybindings.map((k) => [k.command, k.key]));
    assert.equal(keys['unmask.rewriteBlock'], 'ctrl+alt+r');
    assert.equal(keys['unmask.suggestEdits'], 'ctrl+alt+s');
    for (const key of ['server.command', 'server.host', 'server.port', 'singleLineTokens', 'multiLineTokens',
        'alternatives', 'previews', 'maskGlyph']) {
        assert.ok(`unmask.${key}` in manifest.contributes.configuration.properties, key);
    }
});

test('values that cannot be used are named, with what was wanted; good ones name nothing', () => {
    assert.deepEqual(readSettings(getConfiguration('unmask')).problems, []);
    stub.settings.set('unmask.maskGlyph', '##');
    stub.settings.set('unmask.alternatives', 2.5);
    stub.settings.set('unmask.server.port', 70000);
    stub.settings.set('unmask.server.command', 'unmask serve');
    stub.settings.set('unmask.server.startTimeoutSeconds', -1);
    const settings = readSettings(getConfiguration('unmask'));
    assert.deepEqual(settings.problems, [
        'unmask.server.command "unmask serve" is not a list of words',
        'unmask.server.port 70000 is not a port (1 to 65535, or 0 to start the server)',
        'unmask.server.startTimeoutSeconds -1 is not a positive number',
        'unmask.alternatives 2.5 is not a positive whole number',
        'unmask.maskGlyph "##" is not one character',
    ]);
    assert.equal(settings.startTimeoutSeconds, 30);
    assert.equal(settings.options.maskGlyph, undefined);
});

test('a daemon command is no stdio command; a --model named tcp is', () => {
    assert.match(commandProblem(['unmask', 'serve', '--tcp', '7777']) ?? '', /runs a daemon \(--tcp\)/);
    assert.match(commandProblem(['unmask', 'serve', '--ws=8765']) ?? '', /\(--ws\).*unmask\.server\.port/);
    assert.equal(commandProblem(['unmask', 'serve', '--model', '/models/--tcp']), undefined);
    assert.equal(commandProblem(['unmask', 'serve']), undefined);
});

test('only server settings restart the server: not the trace level', () => {
    const changed = (key: string) => (section: string) => key === section || key.startsWith(`${section}.`);
    assert.equal(affectsServer(changed('unmask.trace.server')), false);
    assert.equal(affectsServer(changed('unmask.server.port')), true);
    assert.equal(affectsServer(changed('unmask.server.startTimeoutSeconds')), true);
    assert.equal(affectsServer(changed('unmask.previews')), true);
    assert.equal(affectsServer(changed('editor.fontSize')), false);
});

test('documents the server never sees are named with the reason', () => {
    assert.equal(unservedReason('file', 'python'), undefined);
    assert.equal(unservedReason('untitled', 'rust'), undefined);
    assert.match(unservedReason('vscode-notebook-cell', 'python') ?? '', /not vscode-notebook-cell: documents/);
    assert.match(unservedReason('file', 'markdown') ?? '', /does not know markdown/);
});
