// Drives code-server (VS Code in the browser) with headless Chromium for vscode.sh: opens a file,
// puts the cursor at the end of a line, asks for an inline suggestion and saves a PNG
// once unmask's ghost text is on screen.
//
//   node vscode_shot.mjs URL FILE LINE OUT.png
//
// SHOT_NODE_MODULES: the folder holding puppeteer-core; CHROMIUM: the browser to drive.
// SHOT_DEBUG=1 keeps a screenshot of each stage beside OUT.png. SHOT_DENOISE=FRAME.png also
// writes a frame of the block denoising (dim mask glyphs beside resolved text) there.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url, file, lineArg, out] = process.argv.slice(2);
if (!url || !file || !lineArg || !out) {
    console.error('usage: node vscode_shot.mjs URL FILE LINE OUT.png');
    process.exit(2);
}
const line = Number(lineArg);
const require = createRequire(path.join(process.env.SHOT_NODE_MODULES ?? '.', 'x.js'));
const puppeteer = require('puppeteer-core');
const debug = Boolean(process.env.SHOT_DEBUG);
const denoiseOut = process.env.SHOT_DENOISE ? path.resolve(process.env.SHOT_DENOISE) : '';
const GLYPH = '░';
const WIDTH = 1200;
const HEIGHT = 720;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.log(`[${(performance.now() / 1000).toFixed(1)} s]`, ...args);

async function waitFor(page, what, predicate, arg, seconds) {
    try {
        await page.waitForFunction(predicate, { timeout: seconds * 1000, polling: 250 }, arg);
    } catch (error) {
        await page.screenshot({ path: out.replace(/\.png$/, '') + '-failed.png' });
        throw new Error(`timed out waiting for ${what} (see ${out.replace(/\.png$/, '')}-failed.png)`);
    }
}

async function stage(page, name) {
    if (debug) {
        await page.screenshot({ path: out.replace(/\.png$/, '') + `-${name}.png` });
    }
}

// The unmask status-bar item's text, or '' while it is not there.
function unmaskStatus() {
    for (const item of document.querySelectorAll('.statusbar-item')) {
        const text = item.textContent ?? '';
        if (text.includes('unmask:')) {
            return text.trim();
        }
    }
    return '';
}

// Mask glyphs and resolved letters in the preview (decorations drawn as ::after content).
function previewCounts(glyph) {
    let masks = 0;
    let letters = 0;
    for (const element of document.querySelectorAll('.monaco-editor .view-lines span')) {
        const content = getComputedStyle(element, '::after').content;
        if (content && content !== 'none' && content !== 'normal') {
            masks += content.split(glyph).length - 1;
            letters += (content.match(/[A-Za-z]/g) ?? []).length;
        }
    }
    return { masks, letters };
}

// While the block denoises, keep a screenshot of each preview frame; once the final ghost text is
// there, write the frame with both resolved text and masks, nearest to 45% of the most masks seen.
async function watchDenoise(page, ghost, seconds) {
    const frames = [];
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
        if (await page.evaluate(`/[A-Za-z]/.test((${ghost})())`)) {
            const mixed = frames.filter((frame) => frame.masks > 0 && frame.letters > 0);
            const pool = mixed.length > 0 ? mixed : frames.filter((frame) => frame.masks > 0);
            if (pool.length === 0) {
                log('no preview frame was caught');
                return;
            }
            const most = Math.max(...frames.map((frame) => frame.masks));
            pool.sort((a, b) => Math.abs(a.masks - 0.45 * most) - Math.abs(b.masks - 0.45 * most));
            const fs = await import('node:fs/promises');
            await fs.writeFile(denoiseOut, pool[0].png);
            log(`${frames.length} preview frames; kept one with ${pool[0].masks} of ${most} masks: ${denoiseOut}`);
            return;
        }
        const counts = await page.evaluate(previewCounts, GLYPH);
        if (counts.masks > 0) {
            frames.push({ ...counts, png: await page.screenshot({ type: 'png' }) });
        } else {
            await sleep(50);
        }
    }
    throw new Error('no ghost text');
}

const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || 'chromium',
    headless: true,
    defaultViewport: { width: WIDTH, height: HEIGHT, deviceScaleFactor: 1 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--window-size=${WIDTH},${HEIGHT}`],
});
try {
    const page = await browser.newPage();
    log('opening', url);
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 120_000 });
    await waitFor(page, 'the workbench', () => document.querySelector('.monaco-workbench .part.editor'), null, 120);
    log('workbench up');
    await sleep(3000); // let the explorer and the extension host settle before typing

    // Quick Open the file.
    await page.click('.monaco-workbench .part.editor');
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyP');
    await page.keyboard.up('Control');
    await waitFor(page, 'quick open', () => document.querySelector('.quick-input-widget:not([style*="display: none"]) input'), null, 30);
    await page.keyboard.type(path.basename(file), { delay: 20 });
    await waitFor(
        page,
        'the file in quick open',
        (name) => [...document.querySelectorAll('.quick-input-list .monaco-list-row')].some((row) => row.textContent.includes(name)),
        path.basename(file),
        60,
    );
    await page.keyboard.press('Enter');
    await waitFor(
        page,
        'the editor',
        (name) => document.querySelector(`.tab.active[aria-label*="${name}"]`) && document.querySelector('.monaco-editor .view-lines'),
        path.basename(file),
        60,
    );
    log('file open');

    // Wait for the server and its model, so the request does not wait on the load.
    await waitFor(
        page,
        'the unmask server (status bar)',
        `(${unmaskStatus})() !== '' && !/starting|loading|stopped|failed/.test((${unmaskStatus})())`,
        null,
        300,
    );
    log('status:', await page.evaluate(unmaskStatus));
    await stage(page, 'ready');

    // Go to the line, then to its end.
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyG');
    await page.keyboard.up('Control');
    await sleep(500);
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await sleep(500);
    await page.keyboard.press('End');
    await sleep(500);
    await stage(page, 'cursor');

    // Ask through the command palette (Trigger Inline Suggestion; its key, alt+\, did not
    // reach the editor when sent by puppeteer), and wait for ghost text with letters in it.
    const ghost = () =>
        [...document.querySelectorAll('.monaco-editor [class*="ghost-text"]')]
            .map((element) => element.textContent ?? '')
            .join('');
    for (let attempt = 1; ; attempt++) {
        log(`asking (attempt ${attempt})`);
        await page.keyboard.press('F1');
        await waitFor(page, 'the command palette', () => document.querySelector('.quick-input-widget:not([style*="display: none"]) input'), null, 30);
        await page.keyboard.type('Trigger Inline Suggestion', { delay: 10 });
        await waitFor(
            page,
            'the command in the palette',
            () => document.querySelector('.quick-input-list .monaco-list-row.focused')?.textContent?.includes('Trigger Inline Suggestion'),
            null,
            30,
        );
        await page.keyboard.press('Enter');
        try {
            if (denoiseOut) {
                await watchDenoise(page, ghost, 90);
            } else {
                await page.waitForFunction(`/[A-Za-z]/.test((${ghost})())`, { timeout: 90_000, polling: 100 });
            }
            break;
        } catch {
            if (attempt === 3) {
                await page.screenshot({ path: out.replace(/\.png$/, '') + '-failed.png' });
                throw new Error('no ghost text appeared');
            }
        }
    }
    await sleep(1500); // the final text, not a frame of the denoise
    log('ghost text:', JSON.stringify(await page.evaluate(ghost)));
    log('status:', await page.evaluate(unmaskStatus));
    await page.screenshot({ path: out, type: 'png' });
    log('wrote', out);
} finally {
    await browser.close();
}
