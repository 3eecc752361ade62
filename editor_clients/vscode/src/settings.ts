// Settings → how to reach the server and what to send as `initializationOptions`.
// Pure: the configuration comes in as anything with `get`.

/** The subset of `WorkspaceConfiguration` read here. */
export interface ConfigurationLike {
    get<T>(section: string): T | undefined;
}

/** `initializationOptions`, camelCase exactly as README.md's Protocol section lists them. */
export interface InitializationOptions {
    singleLineTokens?: number;
    multiLineTokens?: number;
    alternatives?: number;
    previews?: boolean;
    maskGlyph?: string;
    loadWaitSeconds?: number;
    maxDocumentBytes?: number;
}

export interface UnmaskSettings {
    command: string[];
    host: string;
    port: number;
    /** How long the server gets to answer `initialize` before the start is given up. */
    startTimeoutSeconds: number;
    options: InitializationOptions;
    /** Settings that were set to a value the extension cannot use, said in words (their defaults apply). */
    problems: string[];
}

export type ServerTransport =
    | { kind: 'stdio'; command: string; args: string[] }
    | { kind: 'socket'; host: string; port: number };

export const DEFAULT_COMMAND = ['unmask', 'serve'];
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_START_TIMEOUT_SECONDS = 30;

/** Setting key (under `unmask.`) → initialization option, and the type the server accepts. */
const OPTION_KEYS: ReadonlyArray<[keyof InitializationOptions, 'int' | 'number' | 'boolean' | 'glyph']> = [
    ['singleLineTokens', 'int'],
    ['multiLineTokens', 'int'],
    ['alternatives', 'int'],
    ['previews', 'boolean'],
    ['maskGlyph', 'glyph'],
    ['loadWaitSeconds', 'number'],
    ['maxDocumentBytes', 'int'],
];

function accepted(value: unknown, kind: 'int' | 'number' | 'boolean' | 'glyph'): boolean {
    switch (kind) {
        case 'int':
            return typeof value === 'number' && Number.isInteger(value) && value > 0;
        case 'number':
            return typeof value === 'number' && Number.isFinite(value) && value > 0;
        case 'boolean':
            return typeof value === 'boolean';
        case 'glyph':
            // The server wants exactly one character (one code point).
            return typeof value === 'string' && Array.from(value).length === 1;
    }
}

/**
 * The options to send. A value the server would refuse is left out (the server
 * then uses its default) rather than sent and reported back as a warning.
 */
export function initializationOptions(config: ConfigurationLike): InitializationOptions {
    return readOptions(config).options;
}

function readOptions(config: ConfigurationLike): { options: InitializationOptions; problems: string[] } {
    const options: Record<string, unknown> = {};
    const problems: string[] = [];
    for (const [key, kind] of OPTION_KEYS) {
        const value = config.get<unknown>(key);
        if (value === undefined || value === null) {
            continue;
        }
        if (accepted(value, kind)) {
            options[key] = value;
        } else {
            problems.push(`unmask.${key} ${JSON.stringify(value)} is not ${WANTED[kind]}`);
        }
    }
    return { options: options as InitializationOptions, problems };
}

const WANTED = {
    int: 'a positive whole number',
    number: 'a positive number',
    boolean: 'true or false',
    glyph: 'one character',
} as const;

/**
 * Why a stdio command cannot work, or undefined. The extension speaks LSP on the
 * command's stdin and stdout; `unmask serve --tcp`/`--ws` starts a daemon that
 * listens on a port instead and would never answer.
 */
export function commandProblem(command: readonly string[]): string | undefined {
    const daemon = command.slice(1).find((word) => /^--(tcp|ws)(=|$)/.test(word));
    if (daemon === undefined) {
        return undefined;
    }
    const flag = daemon.split('=')[0];
    return (
        `unmask.server.command runs a daemon (${flag}), which does not talk on stdio: ` +
        `remove ${flag} to have the extension start the server, or start the daemon yourself ` +
        `and set unmask.server.port to its port`
    );
}

export interface Substitutions {
    workspaceFolder?: string;
    userHome?: string;
}

/** `${workspaceFolder}`, `${userHome}` and a leading `~/` in a command word. */
export function substitute(word: string, values: Substitutions): string {
    let out = word;
    if (values.userHome !== undefined) {
        out = out.replace(/^~(?=\/|$)/, values.userHome).split('${userHome}').join(values.userHome);
    }
    if (values.workspaceFolder !== undefined) {
        out = out.split('${workspaceFolder}').join(values.workspaceFolder);
    }
    return out;
}

export function readSettings(config: ConfigurationLike, values: Substitutions = {}): UnmaskSettings {
    const problems: string[] = [];
    const rawCommand = config.get<unknown>('server.command');
    const commandOk =
        Array.isArray(rawCommand) && rawCommand.length > 0 && rawCommand.every((w) => typeof w === 'string' && w);
    if (rawCommand !== undefined && rawCommand !== null && !commandOk) {
        problems.push(`unmask.server.command ${JSON.stringify(rawCommand)} is not a list of words`);
    }
    const command = commandOk ? (rawCommand as string[]).map((w) => substitute(w, values)) : [...DEFAULT_COMMAND];
    const host = config.get<unknown>('server.host');
    const port = config.get<unknown>('server.port');
    const portOk = typeof port === 'number' && Number.isInteger(port) && port >= 0 && port < 65536;
    if (port !== undefined && port !== null && !portOk) {
        problems.push(`unmask.server.port ${JSON.stringify(port)} is not a port (1 to 65535, or 0 to start the server)`);
    }
    const timeout = config.get<unknown>('server.startTimeoutSeconds');
    const timeoutOk = typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0;
    if (timeout !== undefined && timeout !== null && !timeoutOk) {
        problems.push(`unmask.server.startTimeoutSeconds ${JSON.stringify(timeout)} is not ${WANTED.number}`);
    }
    const { options, problems: optionProblems } = readOptions(config);
    return {
        command,
        host: typeof host === 'string' && host.trim() ? host.trim() : DEFAULT_HOST,
        port: portOk ? (port as number) : 0,
        startTimeoutSeconds: timeoutOk ? (timeout as number) : DEFAULT_START_TIMEOUT_SECONDS,
        options,
        problems: [...problems, ...optionProblems],
    };
}

/** A port set means "connect to a running daemon"; otherwise start the command over stdio. */
export function serverTransport(settings: UnmaskSettings): ServerTransport {
    if (settings.port > 0) {
        return { kind: 'socket', host: settings.host, port: settings.port };
    }
    const [command = DEFAULT_COMMAND[0]!, ...args] = settings.command;
    return { kind: 'stdio', command, args };
}

/**
 * Whether a configuration change needs the server restarted (its options only apply at
 * `initialize`). `unmask.trace.*` does not: vscode-languageclient applies it live.
 */
export function affectsServer(affects: (section: string) => boolean): boolean {
    return SERVER_SECTIONS.some((section) => affects(section));
}

const SERVER_SECTIONS = ['unmask.server', ...OPTION_KEYS.map(([key]) => `unmask.${key}`)];

/** The languages the server's region picker knows (README: regions.py). */
export const LANGUAGES = [
    'python',
    'javascript',
    'javascriptreact',
    'typescript',
    'typescriptreact',
    'go',
    'rust',
    'lua',
] as const;

export interface DocumentFilter {
    scheme: string;
    language: string;
}

/** The URI schemes whose documents the client sends the server. */
export const SCHEMES = ['file', 'untitled'] as const;

/** Files and unsaved buffers of those languages. */
export function documentSelector(): DocumentFilter[] {
    return LANGUAGES.flatMap((language) => SCHEMES.map((scheme) => ({ scheme, language })));
}

/** Why the server never sees a document of this scheme and language, or undefined if it does. */
export function unservedReason(scheme: string, languageId: string): string | undefined {
    if (!(SCHEMES as readonly string[]).includes(scheme)) {
        return `unmask works on files and unsaved buffers, not ${scheme}: documents`;
    }
    if (!(LANGUAGES as readonly string[]).includes(languageId)) {
        return `unmask does not know ${languageId} (it knows ${LANGUAGES.join(', ')})`;
    }
    return undefined;
}
