// Preloaded with `node --require`: `require('vscode')` resolves to the stub.

import Module = require('module');

type Resolve = (request: string, ...rest: unknown[]) => string;
const internals = Module as unknown as { _resolveFilename: Resolve };
const stubPath = require.resolve('./vscode');
const original = internals._resolveFilename;

internals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === 'vscode' ? stubPath : original.call(this, request, ...rest);
};
