// A scripted language server on a TCP port (what `unmask.server.port`
// connects to), for the lifecycle the real server cannot be made to show on
// cue: the test sends `unmask/preview` snapshots with the request ids it
// chooses, answers `unmask/blockEdit` as it likes, and drops connections as a
// crashing server would.

import * as net from 'node:net';
import {
    createMessageConnection,
    MessageConnection,
    SocketMessageReader,
    SocketMessageWriter,
} from 'vscode-jsonrpc/node';
import { READY_STATUS } from './fakes';

export class FakeServer {
    /** One per connection the client made, in order. */
    readonly connections: MessageConnection[] = [];
    private readonly sockets: net.Socket[] = [];
    /** The answer to `unmask/blockEdit`. */
    blockEdit: (params: unknown) => unknown = () => null;
    /** Milliseconds before the `index`th connection's `initialize` is answered; Infinity: never. */
    initializeDelay: (index: number) => number = () => 0;
    /** Whether the `index`th connection is dropped when its `initialize` arrives, as a server dying at start. */
    hangUpOnInitialize: (index: number) => boolean = () => false;
    private readonly open = new Set<net.Socket>();
    private readonly initialized = new Set<net.Socket>();

    private constructor(
        private readonly server: net.Server,
        readonly port: number,
    ) {
        server.on('connection', (socket) => this.accept(socket));
    }

    static async start(): Promise<FakeServer> {
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        return new FakeServer(server, (server.address() as net.AddressInfo).port);
    }

    /** Send a notification on the newest connection. */
    notify(method: string, params: unknown): Promise<void> {
        const latest = this.connections.at(-1);
        if (!latest) {
            throw new Error('no client is connected');
        }
        return latest.sendNotification(method, params);
    }

    /** Connections that completed `initialize` and are still open. */
    get live(): number {
        return [...this.open].filter((socket) => this.initialized.has(socket)).length;
    }

    /** Connections still open, initialized or not. */
    get opened(): number {
        return this.open.size;
    }

    /** Drop the newest connection, as a server that crashed. */
    crash(): void {
        this.sockets.at(-1)?.destroy();
    }

    async close(): Promise<void> {
        for (const socket of this.sockets) {
            socket.destroy();
        }
        await new Promise((resolve) => this.server.close(resolve));
    }

    private accept(socket: net.Socket): void {
        const connection = createMessageConnection(new SocketMessageReader(socket), new SocketMessageWriter(socket));
        const delay = this.initializeDelay(this.connections.length);
        const hangUp = this.hangUpOnInitialize(this.connections.length);
        connection.onRequest('initialize', async () => {
            if (hangUp) {
                socket.destroy();
            }
            await new Promise((resolve) => (Number.isFinite(delay) ? setTimeout(resolve, delay) : undefined));
            return { capabilities: { inlineCompletionProvider: true }, serverInfo: { name: 'fake unmask' } };
        });
        connection.onNotification('initialized', () => {
            this.initialized.add(socket);
        });
        this.open.add(socket);
        connection.onRequest('unmask/status', () => READY_STATUS);
        connection.onRequest('unmask/blockEdit', (params: unknown) => this.blockEdit(params));
        connection.onRequest('shutdown', () => null);
        connection.onNotification('exit', () => {
            socket.end();
        });
        socket.on('error', () => undefined); // a crash() or the client hanging up
        socket.on('close', () => {
            this.open.delete(socket);
            connection.dispose();
        });
        connection.listen();
        this.sockets.push(socket);
        this.connections.push(connection);
    }
}
