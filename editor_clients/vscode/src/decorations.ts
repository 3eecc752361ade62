// Layouts (src/layout.ts) turned into editor decorations.
//
// All pieces of a layout go through ONE decoration type with per-instance
// `after` options: VS Code orders attachments at the same position by type
// first, so mixing types would scramble resolved and masked runs.

import type { Layout, Piece } from './layout';
import {
    createTextEditorDecorationType,
    DecorationOptions,
    DecorationRenderOptions,
    Range,
    setDecorations,
    TextEditor,
    TextEditorDecorationType,
    ThemeColor,
} from './vscodeapi';

export type Style = 'preview' | 'diff';

/** Attachments have no `opacity` option; this CSS suffix is the usual way to dim one. */
export const DIM = 'none; opacity: 0.4';
export const LEAD_MARGIN = '0 0 0 1.5em';

export interface Attachment {
    contentText: string;
    color: ThemeColor;
    backgroundColor?: ThemeColor;
    textDecoration?: string;
    fontStyle?: string;
    margin?: string;
}

/** The `after` options of one piece. */
export function attachment(piece: Piece, style: Style): Attachment {
    const out: Attachment =
        style === 'preview'
            ? { contentText: piece.text, color: new ThemeColor('editorGhostText.foreground') }
            : {
                  contentText: piece.text,
                  color: new ThemeColor('gitDecoration.addedResourceForeground'),
                  backgroundColor: new ThemeColor('diffEditor.insertedTextBackground'),
              };
    if (piece.kind !== 'resolved') {
        out.textDecoration = DIM;
    }
    if (piece.kind === 'masked') {
        out.fontStyle = 'italic';
    }
    if (piece.lead) {
        out.margin = LEAD_MARGIN;
    }
    return out;
}

export function pieceDecoration(piece: Piece, style: Style): DecorationOptions {
    return {
        range: new Range(piece.line, piece.character, piece.line, piece.character),
        renderOptions: { after: attachment(piece, style) },
    };
}

export function coveredOptions(style: Style): DecorationRenderOptions {
    return style === 'preview'
        ? { opacity: '0.45' }
        : {
              textDecoration: 'line-through',
              color: new ThemeColor('gitDecoration.deletedResourceForeground'),
              backgroundColor: new ThemeColor('diffEditor.removedTextBackground'),
          };
}

/** Two decoration types (covered text, new text) for one style, made on first use. */
export class DecorationSet {
    private types: { covered: TextEditorDecorationType; text: TextEditorDecorationType } | undefined;

    constructor(readonly style: Style) {}

    private ensure(): { covered: TextEditorDecorationType; text: TextEditorDecorationType } {
        this.types ??= {
            covered: createTextEditorDecorationType(coveredOptions(this.style)),
            text: createTextEditorDecorationType({}),
        };
        return this.types;
    }

    show(editor: TextEditor, layout: Layout): void {
        const types = this.ensure();
        setDecorations(
            editor,
            types.covered,
            layout.covered.map((r) => ({
                range: new Range(r.start.line, r.start.character, r.end.line, r.end.character),
            })),
        );
        setDecorations(
            editor,
            types.text,
            layout.pieces.map((p) => pieceDecoration(p, this.style)),
        );
    }

    clear(editor: TextEditor): void {
        if (this.types) {
            setDecorations(editor, this.types.covered, []);
            setDecorations(editor, this.types.text, []);
        }
    }

    dispose(): void {
        this.types?.covered.dispose();
        this.types?.text.dispose();
        this.types = undefined;
    }
}
