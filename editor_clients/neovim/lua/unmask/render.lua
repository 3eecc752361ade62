-- Drawing: extmarks in a private namespace. Nothing here talks to the server.
--
-- Infill: the block's first line as inline virtual text at the insertion point, the rest as
-- virtual lines below it. Resolved runs use `UnmaskResolved`, masked runs `UnmaskUnresolved`.
-- Block edits: the candidate as virtual lines under the block while it denoises, then the diff
-- (deleted lines highlighted in place, added lines as virtual lines).
local util = require('unmask.util')

local M = {}

M.ns = vim.api.nvim_create_namespace('unmask')

-- The UnmaskUnresolved colours this plugin set last; a group that still has them is ours to
-- change with the background, one with other colours is the user's.
local unresolved = nil

function M.define_highlights()
  local set = vim.api.nvim_set_hl
  set(0, 'UnmaskResolved', { default = true, link = 'Comment' })
  -- Dimmer than Comment on dark and light backgrounds alike: chosen again when 'background'
  -- changes (a colorscheme's own ColorScheme event, or :set background without one).
  local dark = vim.o.background ~= 'light'
  local spec = { fg = dark and 0x4a4f58 or 0xc4c7cc, ctermfg = dark and 239 or 251 }
  local current = vim.api.nvim_get_hl(0, { name = 'UnmaskUnresolved' })
  local ours = unresolved ~= nil and current.fg == unresolved.fg and current.ctermfg == unresolved.ctermfg
  if ours or (current.fg == nil and current.ctermfg == nil and current.link == nil) then
    set(0, 'UnmaskUnresolved', spec)
    unresolved = spec
  end
  set(0, 'UnmaskStatus', { default = true, link = 'NonText' })
  set(0, 'UnmaskHeader', { default = true, link = 'Title' })
  set(0, 'UnmaskDiffAdd', { default = true, link = 'DiffAdd' })
  set(0, 'UnmaskDiffDelete', { default = true, link = 'DiffDelete' })
end

--- Segments ({text, resolved}) -> lines of chunks ({text, hl}); newlines split lines. Tabs
--- expand to the tab stops of where each line is drawn: the first from display column
--- `first_col` (the insertion point), the others from the window's left edge.
function M.segment_lines(segments, bufnr, first_col)
  local lines = { {} }
  local column = first_col or 0
  for _, segment in ipairs(segments or {}) do
    local hl = segment.resolved and 'UnmaskResolved' or 'UnmaskUnresolved'
    local parts = util.split_lines(segment.text or '')
    for i, part in ipairs(parts) do
      if i > 1 then
        table.insert(lines, {})
        column = 0
      end
      if part ~= '' then
        local drawn
        drawn, column = util.expand_tabs(part, bufnr, column)
        table.insert(lines[#lines], { drawn, hl })
      end
    end
  end
  return lines
end

--- Plain text -> lines of chunks in one highlight (`first_col` as in segment_lines).
function M.text_lines(text, hl, bufnr, first_col)
  return M.segment_lines({ { text = text, resolved = hl ~= 'UnmaskUnresolved' } }, bufnr, first_col)
end

local function virt_line(chunks)
  if #chunks == 0 then
    return { { '', 'UnmaskResolved' } }
  end
  return chunks
end

function M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

local function clamp(bufnr, row, col)
  local count = vim.api.nvim_buf_line_count(bufnr)
  row = math.max(0, math.min(row, count - 1))
  col = math.max(0, math.min(col, #util.line(bufnr, row)))
  return row, col
end

--- Ghost text for an infill at (row, col): `lines` from segment_lines; `status` an optional
--- short label shown at the end of the line (the denoising step).
function M.draw_inline(bufnr, row, col, lines, status)
  M.clear(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  row, col = clamp(bufnr, row, col)
  local first = lines[1] or {}
  local rest = {}
  for i = 2, #lines do
    table.insert(rest, virt_line(lines[i]))
  end
  local opts = {
    virt_text = #first > 0 and first or nil,
    virt_text_pos = #first > 0 and 'inline' or nil,
    virt_lines = #rest > 0 and rest or nil,
    hl_mode = 'combine',
    priority = 200,
  }
  if opts.virt_text or opts.virt_lines then
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, col, opts)
  end
  if status then
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, 0, {
      virt_text = { { ' ' .. status, 'UnmaskStatus' } },
      virt_text_pos = 'eol',
      priority = 100,
    })
  end
end

--- A block denoising: `lines` under `last_row`, after a header line.
function M.draw_block(bufnr, first_row, last_row, lines, header)
  M.clear(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  first_row = clamp(bufnr, first_row, 0)
  last_row = clamp(bufnr, last_row, 0)
  local virt = { { { header, 'UnmaskHeader' } } }
  for _, chunks in ipairs(lines) do
    table.insert(virt, virt_line(chunks))
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, last_row, 0, { virt_lines = virt, priority = 200 })
end

--- The diff of a block edit. `hunks`: list of { first, last, added = { lines } } where the
--- buffer rows first..last (0-based, inclusive; last < first for a pure insertion before
--- `first`) are deleted and `added` go in their place. `header` goes above the first hunk.
function M.draw_diff(bufnr, hunks, header)
  M.clear(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  local count = vim.api.nvim_buf_line_count(bufnr)
  local width = math.max(20, vim.api.nvim_win_get_width(0) - 8)
  local function padded(text, hl)
    text = util.expand_tabs(text, bufnr, 0)
    local pad = math.max(0, width - vim.fn.strdisplaywidth(text))
    return { { text .. string.rep(' ', pad), hl } }
  end
  for i, hunk in ipairs(hunks) do
    for row = hunk.first, math.min(hunk.last, count - 1) do
      vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, 0, {
        line_hl_group = 'UnmaskDiffDelete',
        priority = 200,
      })
    end
    local virt = {}
    if i == 1 and header then
      table.insert(virt, { { header, 'UnmaskHeader' } })
    end
    for _, line in ipairs(hunk.added) do
      table.insert(virt, padded(line, 'UnmaskDiffAdd'))
    end
    if #virt > 0 then
      if hunk.last >= hunk.first then
        -- below the deleted lines
        local row = math.min(hunk.last, count - 1)
        local above = i == 1 and header and { table.remove(virt, 1) } or nil
        if above then
          vim.api.nvim_buf_set_extmark(bufnr, M.ns, math.min(hunk.first, count - 1), 0, {
            virt_lines = above,
            virt_lines_above = true,
          })
        end
        if #virt > 0 then
          vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, 0, { virt_lines = virt })
        end
      else
        -- a pure insertion before row `first`
        if hunk.first >= count then
          vim.api.nvim_buf_set_extmark(bufnr, M.ns, count - 1, 0, { virt_lines = virt })
        else
          vim.api.nvim_buf_set_extmark(bufnr, M.ns, hunk.first, 0, {
            virt_lines = virt,
            virt_lines_above = true,
          })
        end
      end
    end
  end
end

--- The extmarks currently drawn (for tests and :Unmask status).
function M.marks(bufnr)
  return vim.api.nvim_buf_get_extmarks(bufnr, M.ns, 0, -1, { details = true })
end

--- Whether any drawn chunk uses highlight `hl`.
function M.uses_highlight(bufnr, hl)
  for _, mark in ipairs(M.marks(bufnr)) do
    local details = mark[4] or {}
    for _, chunk in ipairs(details.virt_text or {}) do
      if chunk[2] == hl then
        return true
      end
    end
    for _, line in ipairs(details.virt_lines or {}) do
      for _, chunk in ipairs(line) do
        if chunk[2] == hl then
          return true
        end
      end
    end
    if details.line_hl_group == hl then
      return true
    end
  end
  return false
end

return M
