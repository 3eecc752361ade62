// Where preview and diff text goes in the editor. Pure: no `vscode` import.
//
// VS Code decorations cannot insert virtual lines, so text is drawn as
// `after` attachments ("pieces") at document positions:
//  - inline layout (infill): every piece at the anchor, ghost-like; a line
//    break inside the text is drawn as a dim "⏎";
//  - block layout (rewrite, suggest, and the final diff): line i of the new
//    text is attached at the end of line i of the replaced range; new lines
//    past the range's last line are joined onto that line with "⏎".

import type { LspPosition, LspRange, Segment } from './protocol';

export type PieceKind = 'resolved' | 'masked' | 'newline';

/** Text drawn as an `after` attachment at (line, character). */
export interface Piece {
    line: number;
    character: number;
    text: string;
    kind: PieceKind;
    /** The first piece of a block line: drawn with a left margin, apart from the old text. */
    lead: boolean;
}

export interface Layout {
    /** Document text the new text replaces (dimmed in previews, struck through in diffs). */
    covered: LspRange[];
    pieces: Piece[];
}

export const NEWLINE_MARK = '⏎';
const NBSP = '\u00a0';

type Run = { text: string; resolved: boolean };

/** Segments cut at line breaks: one list of runs per line of the text. */
export function splitLines(segments: readonly Segment[]): Run[][] {
    const lines: Run[][] = [[]];
    for (const segment of segments) {
        const parts = segment.text.split(/\r\n|\r|\n/);
        parts.forEach((part, i) => {
            if (i > 0) {
                lines.push([]);
            }
            if (part) {
                lines[lines.length - 1]!.push({ text: part, resolved: segment.resolved });
            }
        });
    }
    // A trailing line break ends the text; it does not start a new (empty) line.
    while (lines.length > 1 && lines[lines.length - 1]!.length === 0) {
        lines.pop();
    }
    return lines;
}

/** Leading spaces and tabs of a line's runs, for dedenting. */
function indentOf(runs: readonly Run[]): number {
    let width = 0;
    for (const run of runs) {
        const match = /^[ \t]*/.exec(run.text)![0];
        width += match.length;
        if (match.length < run.text.length) {
            return width;
        }
    }
    return Number.POSITIVE_INFINITY; // blank line: does not count
}

/** Drop `count` leading whitespace characters; what remains of the indent becomes non-breaking spaces. */
function dedent(runs: readonly Run[], count: number, keepIndent: boolean): Run[] {
    const out: Run[] = [];
    let toDrop = count;
    let leading = true;
    for (const run of runs) {
        let text = run.text;
        if (leading) {
            const drop = Math.min(toDrop, /^[ \t]*/.exec(text)![0].length);
            text = text.slice(drop);
            toDrop -= drop;
            const indent = /^[ \t]*/.exec(text)![0];
            if (indent.length < text.length) {
                leading = false;
            }
            text = (keepIndent ? indent.replace(/\t/g, NBSP.repeat(4)).replace(/ /g, NBSP) : '') + text.slice(indent.length);
        }
        if (text) {
            out.push({ text, resolved: run.resolved });
        }
    }
    return out;
}

function merge(pieces: Piece[]): Piece[] {
    const out: Piece[] = [];
    for (const piece of pieces) {
        const last = out[out.length - 1];
        if (
            last &&
            !piece.lead &&
            last.kind === piece.kind &&
            last.line === piece.line &&
            last.character === piece.character
        ) {
            last.text += piece.text;
        } else {
            out.push({ ...piece });
        }
    }
    return out;
}

function isEmpty(range: LspRange): boolean {
    return range.start.line === range.end.line && range.start.character === range.end.character;
}

/** The last document line a range really covers (a range ending at column 0 stops on the line before). */
export function lastLineOf(range: LspRange): number {
    return range.end.character === 0 && range.end.line > range.start.line ? range.end.line - 1 : range.end.line;
}

/** Ghost-like: the whole text at `anchor`, line breaks drawn as a dim mark. */
export function inlineLayout(range: LspRange, segments: readonly Segment[]): Layout {
    const anchor: LspPosition = range.start;
    const pieces: Piece[] = [];
    splitLines(segments).forEach((runs, i) => {
        const shown = i === 0 ? runs : dedent(runs, Number.POSITIVE_INFINITY, false);
        if (i > 0) {
            pieces.push({ ...anchor, text: ` ${NEWLINE_MARK} `, kind: 'newline', lead: false });
        }
        for (const run of shown) {
            pieces.push({ ...anchor, text: run.text, kind: run.resolved ? 'resolved' : 'masked', lead: false });
        }
    });
    return { covered: isEmpty(range) ? [] : [range], pieces: merge(pieces) };
}

/**
 * New text beside the text it replaces: line i at the end of the range's
 * line i (`lineLength` gives a document line's length), common indentation
 * removed, overflow joined onto the range's last line.
 */
export function blockLayout(
    range: LspRange,
    segments: readonly Segment[],
    lineLength: (line: number) => number,
): Layout {
    const lines = splitLines(segments);
    const indent = Math.min(...lines.map(indentOf));
    const common = Number.isFinite(indent) ? indent : 0;
    // A pure insertion at the start of a line goes after the line before it, as new lines.
    const insertion = isEmpty(range) && range.start.character === 0 && range.start.line > 0;
    const first = insertion ? range.start.line - 1 : range.start.line;
    const last = insertion ? first : lastLineOf(range);
    const pieces: Piece[] = [];
    lines.forEach((runs, i) => {
        const line = Math.min(first + i, last);
        const character = lineLength(line);
        const overflow = insertion || first + i > last;
        const shown = dedent(runs, common, !overflow);
        if (overflow) {
            pieces.push({ line, character, text: ` ${NEWLINE_MARK} `, kind: 'newline', lead: false });
        }
        shown.forEach((run, j) => {
            pieces.push({
                line,
                character,
                text: run.text,
                kind: run.resolved ? 'resolved' : 'masked',
                lead: j === 0 && !overflow,
            });
        });
        if (shown.length === 0 && !overflow && lines.length > 1) {
            // An empty new line opposite an old one: say so, or the old line looks kept.
            pieces.push({ line, character, text: NEWLINE_MARK, kind: 'newline', lead: true });
        }
    });
    return { covered: isEmpty(range) ? [] : [range], pieces: merge(pieces) };
}

/** The new text of a block edit as one resolved segment, for `blockLayout`. */
export function resolvedText(text: string): Segment[] {
    return [{ text, resolved: true }];
}
