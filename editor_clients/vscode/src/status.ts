// The status-bar item: server and model state, and the last suggestion's tokens/s.

import { formatRate, Throughput } from './preview';
import { Requester, ServerStatus, STATUS } from './protocol';
import { createStatusBarItem, StatusBarItem } from './vscodeapi';

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusState {
    server: ServerState;
    model?: string;
    device?: string | null;
    error?: string | null;
    busy?: string; // a block edit in flight, until its answer arrives
    activity?: string; // the denoising step the last preview showed, until the final one
    last?: Throughput;
    lastMode?: string;
}

// ---------------------------------------------------------------- pure part

export function statusText(state: StatusState): { text: string; tooltip: string } {
    let label: string;
    let icon = '$(sparkle)';
    if (state.server === 'stopped') {
        label = 'stopped';
        icon = '$(circle-slash)';
    } else if (state.server === 'failed' || state.model === 'failed') {
        label = 'failed';
        icon = '$(error)';
    } else if (state.server === 'starting' || state.model === undefined || state.model === 'loading') {
        label = state.server === 'starting' ? 'starting' : 'loading model';
        icon = '$(loading~spin)';
    } else {
        label = state.model;
    }
    // The step beats the request's name; the name stays until the answer is in, which
    // can come after the final preview (suggest scores its candidates after denoising).
    const working = state.activity ?? state.busy;
    if (working) {
        label = working;
        icon = '$(loading~spin)';
    }
    const rate = formatRate(state.last);
    const text = `${icon} unmask: ${label}${rate && !working ? ` · ${rate}` : ''}`;
    const lines = [`unmask server: ${state.server}`, `model: ${state.model ?? 'unknown'}`];
    if (state.device) {
        lines.push(`device: ${state.device}`);
    }
    if (state.error) {
        lines.push(`error: ${state.error}`);
    }
    if (state.last) {
        const t = state.last;
        lines.push(
            `last ${state.lastMode ?? 'suggestion'}: ${t.tokens} tokens in ${t.seconds.toFixed(2)} s ` +
                `(${rate}, ${t.tokensPerStep.toFixed(1)} tokens/step over ${t.steps} steps)`,
        );
    }
    lines.push('Click for details.');
    return { text, tooltip: lines.join('\n') };
}

// ---------------------------------------------------------------- controller

const POLL_MS = 1500;

export class StatusController {
    private readonly item: StatusBarItem;
    private state: StatusState = { server: 'stopped' };
    private timer: ReturnType<typeof setTimeout> | undefined;
    private generation = 0;

    constructor() {
        this.item = createStatusBarItem('unmask.status', 100);
        this.item.name = 'unmask';
        this.item.command = 'unmask.showStatus';
        this.render();
        this.item.show();
    }

    get snapshot(): StatusState {
        return { ...this.state };
    }

    update(change: Partial<StatusState>): void {
        this.state = { ...this.state, ...change };
        this.render();
    }

    setThroughput(throughput: Throughput | undefined, mode: string): void {
        if (throughput) {
            this.update({ last: throughput, lastMode: mode });
        }
    }

    setBusy(busy: string | undefined): void {
        this.update({ busy });
    }

    setActivity(activity: string | undefined): void {
        this.update({ activity });
    }

    /** Ask the server for `unmask/status`; while the model loads, ask again. */
    async poll(requester: Requester | undefined): Promise<ServerStatus | undefined> {
        this.stopPolling();
        const generation = ++this.generation;
        if (!requester) {
            return undefined;
        }
        let status: ServerStatus;
        try {
            status = await requester.sendRequest<ServerStatus>(STATUS, {});
        } catch (error) {
            if (generation === this.generation) {
                this.update({ error: error instanceof Error ? error.message : String(error) });
            }
            return undefined;
        }
        if (generation !== this.generation) {
            return status;
        }
        this.update({ server: 'running', model: status.model, device: status.device, error: status.error });
        if (status.model === 'loading') {
            this.timer = setTimeout(() => void this.poll(requester), POLL_MS);
        }
        return status;
    }

    stopPolling(): void {
        if (this.timer !== undefined) {
            clearTimeout(this.timer);
            this.timer = undefined;
        }
    }

    dispose(): void {
        this.generation++;
        this.stopPolling();
        this.item.dispose();
    }

    private render(): void {
        const { text, tooltip } = statusText(this.state);
        this.item.text = text;
        this.item.tooltip = tooltip;
    }
}
