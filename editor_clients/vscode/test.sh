#!/usr/bin/env bash
# Tests of the VS Code extension, from a clean checkout:
#   npm ci (the committed lock file) → tsc (strict) → esbuild bundle → node --test:
#   unit tests against a stubbed `vscode` module, and an integration test
#   that drives the real Python server (`python -m lsp_server.cli serve`).
# The Python side reuses $REPO/.venv (CI makes it, with the project
# installed); without one it is created the README's way.
# UNMASK_TEST_MODEL=FOLDER runs the server with --model FOLDER instead of
# the built-in model. The last line printed is Node's test summary.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "test.sh: node and npm are needed (Node 20 or newer)" >&2
    exit 1
fi

if [ ! -x "$REPO/.venv/bin/python" ]; then
    echo "test.sh: creating $REPO/.venv" >&2
    python3 -m venv "$REPO/.venv"
    "$REPO/.venv/bin/python" -m pip install --quiet --upgrade pip
    "$REPO/.venv/bin/python" -m pip install --quiet torch==2.13.0
    "$REPO/.venv/bin/python" -m pip install --quiet -e "$REPO"
fi

npm ci --no-audit --no-fund --loglevel=error >&2
rm -rf out dist
npx --no-install tsc -p . >&2
# The bundle a .vsix ships (package.json's `main`): the whole-extension test runs it.
npm run --silent bundle >&2
export UNMASK_EXTENSION_MAIN="$HERE/dist/extension.js"

export UNMASK_REPO="$REPO"
export UNMASK_PYTHON="$REPO/.venv/bin/python"
exec node --test --test-reporter=tap out/test/*.test.js
