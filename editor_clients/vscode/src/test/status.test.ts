import './stub/register';

import * as assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { formatRate, maskedTokens, throughput } from '../preview';
import { StatusController, statusText } from '../status';
import { FakeConnection, READY_STATUS } from './fakes';
import { stub } from './stub/vscode';

beforeEach(() => stub.reset());

test('masked tokens: one glyph (one code point) per masked token, resolved text not counted', () => {
    assert.equal(maskedTokens([{ text: 'abc', resolved: true }, { text: '░░░░', resolved: false }]), 4);
    assert.equal(maskedTokens([{ text: '𝕏𝕏', resolved: false }]), 2);
    assert.equal(maskedTokens([]), 0);
});

test('tokens/s: tokens committed between the first and last snapshot over the time between them', () => {
    const t = throughput([
        { time: 1000, masked: 12, step: 0 },
        { time: 1400, masked: 5, step: 2 },
        { time: 1800, masked: 0, step: 4 },
    ]);
    assert.deepEqual(t, { tokens: 12, seconds: 0.8, steps: 4, tokensPerSecond: 15, tokensPerStep: 3 });
    assert.equal(formatRate(t), '15.0 tok/s');
    assert.equal(formatRate({ ...t!, tokensPerSecond: 431.6 }), '432 tok/s');
    assert.equal(formatRate(undefined), '');
});

test('tokens/s is undefined when it cannot be measured', () => {
    assert.equal(throughput([]), undefined);
    assert.equal(throughput([{ time: 0, masked: 5, step: 0 }]), undefined);
    assert.equal(throughput([{ time: 5, masked: 5, step: 0 }, { time: 5, masked: 0, step: 1 }]), undefined);
    assert.equal(throughput([{ time: 0, masked: 0, step: 0 }, { time: 9, masked: 0, step: 1 }]), undefined);
});

test('the status text: state first, then the last rate', () => {
    assert.match(statusText({ server: 'starting' }).text, /starting/);
    assert.match(statusText({ server: 'running', model: 'loading' }).text, /loading model/);
    assert.match(statusText({ server: 'running', model: 'failed', error: 'no weights' }).tooltip, /no weights/);
    const last = { tokens: 24, seconds: 0.2, steps: 6, tokensPerSecond: 120, tokensPerStep: 4 };
    const ready = statusText({ server: 'running', model: 'ready', device: 'cuda:0', last, lastMode: 'infill' });
    assert.equal(ready.text, '$(sparkle) unmask: ready · 120 tok/s');
    assert.match(ready.tooltip, /device: cuda:0/);
    assert.match(ready.tooltip, /24 tokens in 0\.20 s \(120 tok\/s, 4\.0 tokens\/step over 6 steps\)/);
    assert.match(statusText({ server: 'running', model: 'ready', busy: 'rewriting', last }).text, /rewriting$/);
    assert.match(statusText({ server: 'stopped' }).text, /stopped/);
});

test('a block edit stays busy from its first step until its answer, past the final preview', () => {
    const status = new StatusController();
    const item = stub.statusItems.at(-1)!;
    status.update({ server: 'running', model: 'ready' });
    status.setBusy('rewriting'); // the request goes out
    status.setActivity('rewrite 3/16'); // a preview
    assert.match(item.text, /unmask: rewrite 3\/16$/);
    status.setActivity(undefined); // the final preview: the answer is not in yet
    assert.match(item.text, /loading~spin.*unmask: rewriting$/);
    status.setBusy(undefined); // the answer
    assert.equal(item.text, '$(sparkle) unmask: ready');
    status.dispose();
});

test('the status item asks the server for unmask/status', async () => {
    const status = new StatusController();
    const item = stub.statusItems[0]!;
    assert.ok(item.visible);
    assert.equal(item.command, 'unmask.showStatus');
    const connection = new FakeConnection(() => READY_STATUS);
    const answer = await status.poll(connection);
    assert.equal(answer?.model, 'ready');
    assert.deepEqual(connection.requests.map((r) => r.method), ['unmask/status']);
    assert.match(item.text, /unmask: ready/);
    status.setThroughput({ tokens: 10, seconds: 1, steps: 2, tokensPerSecond: 10, tokensPerStep: 5 }, 'infill');
    assert.match(item.text, /10\.0 tok\/s/);
    status.dispose();
    assert.ok(item.disposed);
});
