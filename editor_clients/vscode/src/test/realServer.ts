// What the tests that start the REAL Python server share: where the
// repository and its Python are, how long a model-backed test may take, and
// the document they edit (never written to disk: an open buffer).
//
// Environment: UNMASK_REPO (default: four levels up from out/test),
// UNMASK_PYTHON (default: <repo>/.venv/bin/python, else python3).

import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = process.env.UNMASK_REPO ?? path.resolve(__dirname, '..', '..', '..', '..');
const VENV_PYTHON = path.join(REPO, '.venv', 'bin', 'python');
export const PYTHON = process.env.UNMASK_PYTHON ?? (fs.existsSync(VENV_PYTHON) ? VENV_PYTHON : 'python3');
export const TIMEOUT = 180_000;

/** An unsaved buffer's URI inside the repository. */
export function bufferUri(name: string): string {
    return `file://${path.join(REPO, name)}`;
}

/** A function whose last line, `    return `, is where the tests ask for an infill. */
export const LIST_PYTHON_FILES = [
    'import os',
    '',
    '',
    'def list_python_files(root):',
    '    """Every .py file below root."""',
    '    found = []',
    '    for directory, _, names in os.walk(root):',
    '        for name in names:',
    "            if name.endswith('.py'):",
    '                found.append(os.path.join(directory, name))',
    '    return ',
];
/** The line of `    return ` in LIST_PYTHON_FILES. */
export const RETURN_LINE = 10;
