-- Accepting the infill suggestion: all of it, one line or one word at a time.
-- A suggestion is applied only while the buffer holds the text it was made for (same LSP version,
-- same changedtick: a reload from disk keeps the one and moves the other).
local client = require('unmask.client')
local render = require('unmask.render')
local state = require('unmask.state')
local util = require('unmask.util')

local M = {}

--- The part of `text` that one accept of `kind` ('all' | 'line' | 'word') takes.
--- 'line': up to the end of the first line (a leading line break and the next line go together,
--- so the cursor never stops on an empty new line). 'word': leading blanks plus one word, or one
--- run of punctuation.
function M.split(text, kind)
  if kind == 'all' or text == '' then
    return text
  end
  local piece
  if kind == 'line' then
    piece = text:match('^\r?\n[^\r\n]*') or text:match('^[^\r\n]*')
    if piece == '' then
      piece = text:match('^\r?\n')
    end
  elseif kind == 'word' then
    -- bytes >= 0x80 (UTF-8 sequences) count as word characters, so no character is cut
    piece = text:match('^%s*[%w_\128-\255]+') or text:match('^%s*[^%s%w_\128-\255]+') or text:match('^%s+')
  else
    error('unmask: unknown accept kind ' .. tostring(kind))
  end
  return piece or text
end

local function focus_window(bufnr)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) == bufnr then
    return win
  end
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(w) == bufnr then
      return w
    end
  end
end

--- Accept (part of) the suggestion in `bufnr` (default: current). Returns true when text was
--- inserted.
function M.accept(kind, bufnr)
  kind = kind or 'all'
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local st = state.peek(bufnr)
  local s = st and st.suggestion
  if not s then
    if st and st.request then
      util.message('unmask: the suggestion is still denoising')
    else
      util.message('unmask: no suggestion to accept')
    end
    return false
  end
  if not util.is_current(bufnr, s) then
    st.suggestion = nil
    render.clear(bufnr)
    util.message('unmask: the buffer changed since the suggestion was made; not applied',
      vim.log.levels.WARN)
    return false
  end
  local piece = M.split(s.text, kind)
  local lines = util.split_lines(piece)
  local ok, err = pcall(vim.api.nvim_buf_set_text, bufnr, s.row, s.col, s.end_row, s.end_col, lines)
  if not ok then
    st.suggestion = nil
    render.clear(bufnr)
    util.message('unmask: could not insert the suggestion: ' .. tostring(err), vim.log.levels.ERROR)
    return false
  end
  local row = s.row + #lines - 1
  local col = #lines == 1 and s.col + #lines[1] or #lines[#lines]
  local win = focus_window(bufnr)
  if win then
    pcall(vim.api.nvim_win_set_cursor, win, { row + 1, col })
  end
  local rest = s.text:sub(#piece + 1)
  if rest ~= '' then
    s.text, s.row, s.col, s.end_row, s.end_col = rest, row, col, row, col
    -- our own change: the remainder stays current (and on_changed and auto_trigger leave it be)
    s.version, s.tick = util.buf_version(bufnr), util.buf_tick(bufnr)
    render.draw_inline(bufnr, row, col, render.text_lines(rest, 'UnmaskResolved', bufnr, util.display_col(bufnr, row, col)))
  else
    st.suggestion = nil
    render.clear(bufnr)
    local c = vim.lsp.get_client_by_id(s.client_id)
    if c then
      util.notify(c, client.DID_ACCEPT, { uri = s.uri, version = s.version, mode = 'infill', edits = 1 })
    end
  end
  util.emit('UnmaskAccept', { bufnr = bufnr, kind = kind, text = piece, rest = rest })
  return true
end

--- Drop the suggestion (and the request in flight) in `bufnr`.
function M.dismiss(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  client.cancel(bufnr)
  local st = state.peek(bufnr)
  if st then
    st.suggestion = nil
  end
  render.clear(bufnr)
end

return M
