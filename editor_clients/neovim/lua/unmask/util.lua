-- Small helpers that hide the differences between Neovim 0.10 and 0.11+.
local M = {}

M.has_011 = vim.fn.has('nvim-0.11') == 1

--- The LSP version Neovim last sent for `bufnr` (textDocument/didOpen, didChange).
function M.buf_version(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

--- b:changedtick of `bufnr` (nil for a deleted buffer). Unlike the LSP version it also moves when
--- the buffer is reloaded from disk (`:checktime`, `:edit!`): Neovim re-sends the new text with
--- didOpen at the old version, so the version alone cannot tell the old text from the new.
function M.buf_tick(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return nil
  end
  return vim.api.nvim_buf_get_changedtick(bufnr)
end

--- Whether `item` (a request, suggestion or block edit carrying the `version` and `tick` it was
--- made at) still belongs to the text of `bufnr`.
function M.is_current(bufnr, item)
  return item.version == M.buf_version(bufnr) and item.tick == M.buf_tick(bufnr)
end

--- client:request / client.request, whichever this Neovim has. Returns ok, request_id.
function M.request(client, method, params, handler, bufnr)
  if M.has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Sends a request whose handler learns its own id: `handler(id, err, result, ctx)`.
--- Returns the id, or nil after a warning when the client is not running.
function M.send(client, method, params, bufnr, handler)
  local id
  local ok, request_id = M.request(client, method, params, function(err, result, ctx)
    handler(id, err, result, ctx)
  end, bufnr)
  if not ok then
    M.message('unmask: the server is not running (:Unmask start)', vim.log.levels.WARN)
    return nil
  end
  id = request_id
  return id
end

function M.notify(client, method, params)
  if M.has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel_request(client, id)
  if M.has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

function M.is_stopped(client)
  if M.has_011 then
    return client:is_stopped()
  end
  return client.is_stopped()
end

function M.stop(client, force)
  if M.has_011 then
    return client:stop(force)
  end
  return client.stop(force)
end

--- Byte column of LSP `character` (in `encoding` code units) on `line`.
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col
  if M.has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  if not ok or col == nil then
    return #line
  end
  return math.min(col, #line)
end

--- Length of `text` (one line, no newline) in `encoding` code units.
function M.units(text, encoding)
  if encoding == 'utf-8' then
    return #text
  end
  if M.has_011 then
    return vim.str_utfindex(text, encoding, nil, false)
  end
  local utf32, utf16 = vim.str_utfindex(text)
  return encoding == 'utf-16' and utf16 or utf32
end

--- The text of buffer line `row` (0-based); '' past the end.
function M.line(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- LSP position -> (row, byte col), both 0-based.
function M.from_lsp(bufnr, position, encoding)
  local row = position.line
  local count = vim.api.nvim_buf_line_count(bufnr)
  if row >= count then
    local last = count - 1
    return last, #M.line(bufnr, last)
  end
  return row, M.byte_col(M.line(bufnr, row), position.character, encoding)
end

--- Split `text` on newlines ("\r\n" counts as one); always at least one element.
function M.split_lines(text)
  return vim.split((text:gsub('\r\n', '\n')), '\n', { plain = true })
end

--- Tabs drawn as spaces (virtual text does not expand them), each to the next tab stop of
--- `bufnr` counted from display column `start` (where the text will be drawn; 0 by default).
--- Returns the text and the display column after it.
function M.expand_tabs(text, bufnr, start)
  start = start or 0
  if not text:find('\t', 1, true) then
    return text, start + vim.fn.strdisplaywidth(text)
  end
  local width = math.max(1, vim.bo[bufnr].tabstop)
  local out, column = {}, start
  for piece, tab in text:gmatch('([^\t]*)(\t?)') do
    table.insert(out, piece)
    column = column + vim.fn.strdisplaywidth(piece)
    if tab ~= '' then
      local pad = width - column % width
      table.insert(out, string.rep(' ', pad))
      column = column + pad
    end
  end
  return table.concat(out), column
end

--- The display column of byte column `col` on buffer line `row` (tabs and wide characters counted).
function M.display_col(bufnr, row, col)
  return vim.fn.strdisplaywidth(M.line(bufnr, row):sub(1, col))
end

--- Whether the current mode is insert (or replace-in-insert) mode.
function M.in_insert()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- Report to the user (scheduled when called from a fast event).
function M.message(text, level)
  level = level or vim.log.levels.INFO
  if vim.in_fast_event() then
    vim.schedule(function()
      vim.notify(text, level, { title = 'unmask' })
    end)
  else
    vim.notify(text, level, { title = 'unmask' })
  end
end

--- Whether the current window shows `bufnr` with its cursor outside rows first..last (0-based)
--- and off `origin`, the row it was asked from: the user has left a block whose rows only
--- became known now.
function M.cursor_outside(bufnr, first, last, origin)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) ~= bufnr then
    return false
  end
  local row = vim.api.nvim_win_get_cursor(win)[1] - 1
  return row ~= origin and (row < first or row > last)
end

--- Fire `User <pattern>` with data (for statuslines, tests and user hooks).
function M.emit(pattern, data)
  pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = pattern, modeline = false, data = data })
end

return M
