-- Block edits: `unmask/blockEdit` (rewrite | suggest), the diff drawn over the buffer, then
-- accept (apply if the buffer still holds the text the edit was made for: same version, same
-- changedtick; `unmask/didAccept`) or reject (clear; `unmask/didReject`).
--
-- rewrite answers alternatives for one range, best first: accept applies the one shown
-- (`:Unmask next` shows the next). suggest answers separate line hunks: accept applies all.
local client = require('unmask.client')
local config = require('unmask.config')
local render = require('unmask.render')
local state = require('unmask.state')
local util = require('unmask.util')

local M = {}

local diff = (vim.text and vim.text.diff) or vim.diff

--- The edits that accept would apply for the current choice.
function M.chosen(block)
  local edits = block.result.edits
  if block.result.mode == 'rewrite' then
    return { edits[block.choice] }
  end
  return edits
end

--- Line hunks ({ first, last, added }) for drawing one edit: the edit widened to whole lines,
--- then diffed line by line against the buffer.
function M.hunks(bufnr, edit, encoding)
  local srow, scol = util.from_lsp(bufnr, edit.range.start, encoding)
  local erow, ecol = util.from_lsp(bufnr, edit.range['end'], encoding)
  local old = vim.api.nvim_buf_get_lines(bufnr, srow, erow + 1, false)
  local head = (old[1] or ''):sub(1, scol)
  local tail = (old[#old] or ''):sub(ecol + 1)
  local new = util.split_lines(head .. edit.newText .. tail)
  -- A range ending at column 0 of the line after the block leaves an empty last line on both
  -- sides: not a change.
  if ecol == 0 and erow > srow and tail == '' and new[#new] == '' then
    table.remove(old)
    table.remove(new)
    erow = erow - 1
  end
  local a = table.concat(old, '\n') .. '\n'
  local b = table.concat(new, '\n') .. '\n'
  local hunks = {}
  for _, h in ipairs(diff(a, b, { result_type = 'indices' })) do
    local start_a, count_a, start_b, count_b = h[1], h[2], h[3], h[4]
    local added = {}
    for i = start_b, start_b + count_b - 1 do
      table.insert(added, new[i])
    end
    if count_a == 0 then
      -- inserted after old line start_a (1-based): before buffer row srow + start_a
      table.insert(hunks, { first = srow + start_a, last = srow + start_a - 1, added = added })
    else
      table.insert(hunks, { first = srow + start_a - 1, last = srow + start_a + count_a - 2, added = added })
    end
  end
  return hunks, srow, erow
end

local function key_hint(action, fallback)
  local lhs = config.keymaps()[action]
  return lhs or fallback
end

--- Draw the block edit pending in `bufnr`.
function M.show(bufnr)
  local st = state.peek(bufnr)
  local block = st and st.block
  if not block then
    return
  end
  local all = {}
  local first, last = math.huge, -1
  for _, edit in ipairs(M.chosen(block)) do
    local hunks, srow, erow = M.hunks(bufnr, edit, block.encoding)
    vim.list_extend(all, hunks)
    first, last = math.min(first, srow), math.max(last, erow)
  end
  block.rows = { first, last }
  local mode = block.result.mode
  local count = #block.result.edits
  local label = mode == 'rewrite' and ('%d/%d'):format(block.choice, count)
    or ('%d edit%s'):format(count, count == 1 and '' or 's')
  local header = ('unmask %s %s · accept %s · reject %s%s'):format(
    mode,
    label,
    key_hint('accept', ':Unmask accept'),
    key_hint('dismiss', ':Unmask dismiss'),
    (mode == 'rewrite' and count > 1) and ' · :Unmask next' or ''
  )
  if #all == 0 then
    render.draw_block(bufnr, first, last, {}, header .. ' (no visible change)')
  else
    table.sort(all, function(x, y)
      return x.first < y.first
    end)
    render.draw_diff(bufnr, all, header)
  end
  util.emit('UnmaskBlockEdit', { bufnr = bufnr, mode = mode, choice = block.choice, edits = count })
end

local function on_result(bufnr, id, err, result, ctx)
  local request, st = client.finish(bufnr, id)
  if not request then
    return
  end
  if err then
    client.report(err)
    util.emit('UnmaskBlockEdit', { bufnr = bufnr, error = err.message })
    return
  end
  local version = ctx.version or request.version
  if type(result) ~= 'table' or version ~= util.buf_version(bufnr) or request.tick ~= util.buf_tick(bufnr) then
    return -- the buffer moved on (an edit or a reload)
  end
  if type(result.edits) ~= 'table' or #result.edits == 0 then
    util.message(('unmask: %s found nothing to change'):format(request.kind))
    util.emit('UnmaskBlockEdit', { bufnr = bufnr, mode = request.kind, edits = 0 })
    return
  end
  st.block = {
    result = result,
    choice = 1,
    uri = vim.uri_from_bufnr(bufnr),
    version = result.version or version,
    tick = request.tick,
    client_id = ctx.client_id,
    encoding = client.encoding(vim.lsp.get_client_by_id(ctx.client_id)),
    origin = request.origin, -- the row it was asked from counts as inside (see util.cursor_outside)
  }
  M.show(bufnr)
  local rows = st.block and st.block.rows
  if not request.rows and rows and util.cursor_outside(bufnr, rows[1], rows[2], request.origin) then
    M.reject(bufnr, false) -- the cursor left before the block's rows were known
  end
end

--- Ask for a rewrite or suggestions. `range`: { line1, line2 } (1-based, inclusive) for a
--- selection, nil for the block at the cursor.
function M.request(mode, range)
  local bufnr = vim.api.nvim_get_current_buf()
  local win = vim.api.nvim_get_current_win()
  return client.with_client(bufnr, function(c)
    if not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    client.cancel(bufnr)
    local st = state.get(bufnr)
    st.suggestion, st.block = nil, nil
    render.clear(bufnr)
    local encoding = client.encoding(c)
    local params = {
      textDocument = { uri = vim.uri_from_bufnr(bufnr) },
      mode = mode,
      alternatives = config.options.alternatives,
    }
    -- The block's rows: known up front for a range; for a position the server picks the block,
    -- and until a preview says where it is, moving the cursor must not cancel the request
    -- (on_cursor in init.lua skips requests without rows).
    local rows
    if range then
      local last = util.line(bufnr, range[2] - 1)
      params.range = {
        start = { line = range[1] - 1, character = 0 },
        ['end'] = { line = range[2] - 1, character = util.units(last, encoding) },
      }
      rows = { range[1] - 1, range[2] - 1 }
    else
      params.position = vim.lsp.util.make_position_params(win, encoding).position
    end
    local id = util.send(c, client.BLOCK_EDIT, params, bufnr, function(request_id, err, result, ctx)
      on_result(bufnr, request_id, err, result, ctx)
    end)
    if not id then
      return
    end
    st.request = {
      id = id,
      kind = mode,
      version = util.buf_version(bufnr),
      tick = util.buf_tick(bufnr),
      client_id = c.id,
      rows = rows,
      -- the cursor's row when asked: the server's block may lie above it (a body's trailing
      -- blank line), and staying on it is not leaving the block
      origin = vim.api.nvim_win_get_cursor(win)[1] - 1,
    }
    local header = ('unmask %s · waiting for the model'):format(mode)
    local at = rows or { params.position.line, params.position.line }
    render.draw_block(bufnr, at[1], at[2], {}, header)
  end)
end

local function feedback(block, applied)
  return {
    uri = block.uri,
    version = block.version,
    mode = block.result.mode,
    alternative = block.choice,
    edits = applied,
  }
end

--- Whether a block edit is on show in `bufnr`.
function M.pending(bufnr)
  local st = state.peek(bufnr)
  return st ~= nil and st.block ~= nil
end

--- Apply the block edit on show, if the buffer is still at its version.
function M.accept(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local st = state.peek(bufnr)
  local block = st and st.block
  if not block then
    util.message('unmask: no block edit to accept')
    return false
  end
  st.block = nil
  render.clear(bufnr)
  if not util.is_current(bufnr, block) then
    util.message('unmask: the buffer changed since the edit was made; not applied', vim.log.levels.WARN)
    return false
  end
  local edits = {}
  for _, edit in ipairs(M.chosen(block)) do
    table.insert(edits, { range = edit.range, newText = edit.newText })
  end
  vim.lsp.util.apply_text_edits(edits, bufnr, block.encoding)
  local c = vim.lsp.get_client_by_id(block.client_id)
  if c then
    util.notify(c, client.DID_ACCEPT, feedback(block, #edits))
  end
  util.emit('UnmaskAccept', { bufnr = bufnr, kind = 'block', mode = block.result.mode })
  return true
end

--- Clear the block edit on show (and any block request in flight). `explicit`: the user
--- rejected it, so the server hears `unmask/didReject`.
function M.reject(bufnr, explicit)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local st = state.peek(bufnr)
  if not st then
    return false
  end
  if st.request and st.request.kind ~= 'infill' then
    client.cancel(bufnr)
    render.clear(bufnr)
  end
  local block = st.block
  if not block then
    return false
  end
  st.block = nil
  render.clear(bufnr)
  if explicit then
    local c = vim.lsp.get_client_by_id(block.client_id)
    if c then
      util.notify(c, client.DID_REJECT, feedback(block, 0))
    end
  end
  return true
end

--- Show the next rewrite alternative.
function M.next(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local st = state.peek(bufnr)
  local block = st and st.block
  if not block or block.result.mode ~= 'rewrite' then
    util.message('unmask: no rewrite alternatives on show')
    return false
  end
  block.choice = block.choice % #block.result.edits + 1
  M.show(bufnr)
  return true
end

return M
