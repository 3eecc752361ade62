-- Per-buffer state: the request in flight, the infill suggestion, the block edit on show.
--
-- request    = { id, kind = 'infill' | 'rewrite' | 'suggest', version, tick, client_id, rows }
--              (rows: the block's { first, last } once known; nil until then)
-- suggestion = { text, row, col, end_row, end_col, version, tick, uri, client_id, response }
--              (row/col: 0-based byte position where `text` goes; end_*: the replaced range end)
-- block      = { result, choice, uri, version, tick, client_id, encoding, rows = { first, last }, origin }
--
-- version is the LSP version, tick the buffer's b:changedtick (see util.is_current): all three are
-- dropped or refused once either moves. write_tick: b:changedtick at BufWritePre (init.lua).
local M = {}

local buffers = {}

--- The state table of `bufnr` (created on first use).
function M.get(bufnr)
  local s = buffers[bufnr]
  if not s then
    s = {}
    buffers[bufnr] = s
  end
  return s
end

--- The state of `bufnr` or nil (never creates).
function M.peek(bufnr)
  return buffers[bufnr]
end

function M.forget(bufnr)
  buffers[bufnr] = nil
end

function M.all()
  return buffers
end

return M
