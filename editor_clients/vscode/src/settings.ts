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
    options: InitializationOptions;
}

export type ServerTransport =
    | { kind: 'stdio'; command: string; args: string[] }
    | { kind: 'socket'; host: string; port: number };

export const DEFAULT_COMMAND = ['unmask', 'serve'];
export const DEFAULT_HOST = '127.0.0.1';

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
    const options: Record<string, unknown> = {};
    for (const [key, kind] of OPTION_KEYS) {
        const value = config.get<unknown>(key);
        if (value !== undefined && value !== null && accepted(value, kind)) {
            options[key] = value;
        }
    }
    return options as InitializationOptions;
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
    const rawCommand = config.get<unknown>('server.command');
    const command =
        Array.isArray(rawCommand) && rawCommand.length > 0 && rawCommand.every((w) => typeof w === 'string' && w)
            ? (rawCommand as string[]).map((w) => substitute(w, values))
            : [...DEFAULT_COMMAND];
    const host = config.get<unknown>('server.host');
    const port = config.get<unknown>('server.port');
    return {
        command,
        host: typeof host === 'string' && host.trim() ? host.trim() : DEFAULT_HOST,
        port: typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : 0,
        options: initializationOptions(config),
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

/** Whether a configuration change needs the server restarted (its options only apply at `initialize`). */
export function affectsServer(affects: (section: string) => boolean): boolean {
    return affects('unmask');
}

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

/** Files and unsaved buffers of those languages. */
export function documentSelector(): DocumentFilter[] {
    return LANGUAGES.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
    ]);
}
