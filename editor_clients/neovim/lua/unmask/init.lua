-- unmask for Neovim: streamed diffusion infill, block rewrites and edit suggestions.
--
--   require('unmask').setup({ keymaps = true })
--
-- Public functions: setup, start, stop, complete, accept, accept_line, accept_word, dismiss,
-- rewrite, suggest, next, status, command.
local accept = require('unmask.accept')
local block = require('unmask.block')
local client = require('unmask.client')
local config = require('unmask.config')
local render = require('unmask.render')
local state = require('unmask.state')
local util = require('unmask.util')

local M = {}

local initialized = false
local group = vim.api.nvim_create_augroup('unmask', { clear = true })
local timer = nil
local stopped = false -- :Unmask stop holds until :Unmask start (no autostart meanwhile)

-- A file buffer of a filetype in `filetypes`.
local function serves(bufnr)
  if vim.bo[bufnr].buftype ~= '' or vim.api.nvim_buf_get_name(bufnr) == '' then
    return false
  end
  local fts = config.options.filetypes
  return vim.tbl_contains(fts, '*') or vim.tbl_contains(fts, vim.bo[bufnr].filetype)
end


-- Everything shown is cleared when the buffer moves on (an edit, or a reload from disk: both move
-- b:changedtick and fire TextChanged), the cursor leaves, or insert mode ends.
local function on_changed(args)
  local bufnr = args.buf
  local st = state.peek(bufnr)
  if not st then
    return
  end
  if st.suggestion and not util.is_current(bufnr, st.suggestion) then
    st.suggestion = nil
    render.clear(bufnr)
  end
  if st.block and not util.is_current(bufnr, st.block) then
    block.reject(bufnr, false)
  end
  if st.request and not util.is_current(bufnr, st.request) then
    client.cancel(bufnr)
    render.clear(bufnr)
  end
end

-- Writing a modified buffer resets 'modified', which moves b:changedtick without touching the
-- text: what was current just before the write stays current after it. (A BufWritePre formatter
-- that changes the text moves the LSP version too, and is not forgiven.)
local function on_write_pre(args)
  local st = state.peek(args.buf)
  if st then
    st.write_tick = util.buf_tick(args.buf)
  end
end

local function on_write_post(args)
  local bufnr = args.buf
  local st = state.peek(bufnr)
  if not st or st.write_tick == nil then
    return
  end
  local before = st.write_tick
  st.write_tick = nil
  for _, item in pairs({ st.request, st.suggestion, st.block }) do
    if item.tick == before and item.version == util.buf_version(bufnr) then
      item.tick = util.buf_tick(bufnr)
    end
  end
end

local function on_cursor(args)
  local bufnr = args.buf
  local st = state.peek(bufnr)
  if not st then
    return
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  local s = st.suggestion
  if s and (s.row ~= row or s.col ~= col) then
    st.suggestion = nil
    render.clear(bufnr)
  end
  local request = st.request
  if request then
    -- A block request has no rows until its range is known (a range asked for, or the first
    -- preview): until then the cursor may move freely; the version check guards staleness.
    local moved
    if request.kind == 'infill' then
      moved = request.cursor and (request.cursor[1] ~= row or request.cursor[2] ~= col)
    else
      moved = request.rows and row ~= request.origin and (row < request.rows[1] or row > request.rows[2])
    end
    if moved then
      client.cancel(bufnr)
      render.clear(bufnr)
    end
  end
  local b = st.block
  if b and b.rows and row ~= b.origin and (row < b.rows[1] or row > b.rows[2]) then
    block.reject(bufnr, false)
  end
end

local function on_insert_leave(args)
  client.cancel(args.buf) -- also a request still waiting for the server
  local st = state.peek(args.buf)
  if not st then
    return
  end
  st.suggestion = nil
  block.reject(args.buf, false)
  render.clear(args.buf)
end

-- A current suggestion is on show. Typing makes the suggestion stale (on_changed drops it), so
-- when one is still current after TextChangedI the change was an accept of a word or line, and
-- asking again would throw the rest of it away.
local function showing(bufnr)
  local st = state.peek(bufnr)
  return st ~= nil and st.suggestion ~= nil and util.is_current(bufnr, st.suggestion)
end

local function schedule_auto()
  if timer then
    timer:stop()
  else
    timer = (vim.uv or vim.loop).new_timer()
  end
  -- Asked for where the typing was: a pause that ends in another window or buffer (a prompt,
  -- a picker, a jump) asks nothing.
  local bufnr, win = vim.api.nvim_get_current_buf(), vim.api.nvim_get_current_win()
  timer:start(config.options.debounce, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_win() ~= win or vim.api.nvim_get_current_buf() ~= bufnr then
      return
    end
    if util.in_insert() and client.get() and not showing(bufnr) then
      client.complete(true)
    end
  end))
end

local function create_autocmds()
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI', 'TextChangedP' }, {
    group = group,
    callback = on_changed,
  })
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, { group = group, callback = on_cursor })
  vim.api.nvim_create_autocmd('InsertLeave', { group = group, callback = on_insert_leave })
  vim.api.nvim_create_autocmd('BufWritePre', { group = group, callback = on_write_pre })
  vim.api.nvim_create_autocmd('BufWritePost', { group = group, callback = on_write_post })
  vim.api.nvim_create_autocmd({ 'BufLeave', 'BufUnload' }, {
    group = group,
    callback = function(args)
      on_insert_leave(args)
      if args.event == 'BufUnload' then
        state.forget(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = render.define_highlights })
  vim.api.nvim_create_autocmd('OptionSet', {
    group = group,
    pattern = 'background',
    callback = function()
      render.define_highlights()
    end,
  })
  if config.options.auto_trigger then
    vim.api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI' }, {
      group = group,
      callback = function(args)
        if client.get() and client.attach(args.buf) then
          schedule_auto()
        end
      end,
    })
  end
  vim.api.nvim_create_autocmd({ 'FileType', 'BufEnter' }, {
    group = group,
    callback = function(args)
      -- Not again after a failed start or a lost server: every buffer switch would relaunch a
      -- server that fails the same way (a request, or :Unmask start, tries again).
      if config.options.autostart and not stopped and not client.failed and not client.get() and serves(args.buf) then
        client.start()
      end
    end,
  })
end

-- What each action can act on in `bufnr` in `mode` ('i' | 'n'). A user's key for an action with
-- nothing to act on does what the key does unmapped, so `accept = '<Tab>'` or `'<C-y>'` keeps
-- indenting and scrolling. (The <Plug> mappings always run the action, which says why not.)
local function has_suggestion(bufnr)
  local st = state.peek(bufnr)
  return st ~= nil and st.suggestion ~= nil
end

local function has_anything(bufnr)
  local st = state.peek(bufnr)
  return st ~= nil and (st.suggestion ~= nil or st.block ~= nil or st.request ~= nil)
end

local plug = {
  complete = { modes = { 'i' }, run = function() M.complete() end }, -- always has work: no fallback
  accept = {
    modes = { 'i', 'n' },
    run = function() M.accept() end,
    acts = function(bufnr, mode)
      -- normal mode: block edits only (no suggestion outlives insert mode)
      return block.pending(bufnr) or (mode == 'i' and has_suggestion(bufnr))
    end,
  },
  accept_line = { modes = { 'i' }, run = function() M.accept_line() end, acts = has_suggestion },
  accept_word = { modes = { 'i' }, run = function() M.accept_word() end, acts = has_suggestion },
  dismiss = { modes = { 'i', 'n' }, run = function() M.dismiss() end, acts = has_anything },
}

-- What `lhs` does unmapped, as an expr mapping's result (whose first key is not mapped again).
-- An ALT chord handed back that way no longer counts as typed, and Neovim would insert the bare
-- key: spell out its unmapped meaning instead, <Esc> then the key (:h i_META).
local function unmapped(lhs)
  local key = lhs:match('^<[MmAa]%-([^<>]+)>$')
  if key then
    return '<Esc>' .. (#key == 1 and key or ('<' .. key .. '>'))
  end
  return lhs
end

local mapped = {} -- { mode, lhs } of the user keys set by the last setup()

local function create_mappings()
  for _, key in ipairs(mapped) do
    pcall(vim.keymap.del, key[1], key[2])
  end
  mapped = {}
  for action, spec in pairs(plug) do
    local name = '<Plug>(unmask-' .. action:gsub('_', '-') .. ')'
    vim.keymap.set(spec.modes, name, spec.run, { silent = true, desc = 'unmask: ' .. action:gsub('_', ' ') })
  end
  for action, lhs in pairs(config.keymaps()) do
    local spec = plug[action]
    local name = '<Plug>(unmask-' .. action:gsub('_', '-') .. ')'
    local opts = { remap = true, silent = true, desc = 'unmask: ' .. action }
    for _, mode in ipairs(spec.modes) do
      table.insert(mapped, { mode, lhs })
    end
    if not spec.acts then
      vim.keymap.set(spec.modes, lhs, name, opts)
    else
      -- An expr mapping: it only reads state (no text may change while it is evaluated) and
      -- answers which keys to run, the <Plug> mapping or the key itself.
      opts.expr = true
      for _, mode in ipairs(spec.modes) do
        vim.keymap.set(mode, lhs, function()
          return spec.acts(vim.api.nvim_get_current_buf(), mode) and name or unmapped(lhs)
        end, opts)
      end
    end
  end
end

local function ensure()
  if not initialized then
    M.setup(config.options)
  end
end

--- Configure the plugin (see lua/unmask/config.lua for the options). A bad value raises an error.
function M.setup(opts)
  config.setup(opts)
  initialized = true
  client.drop_waiting() -- asked under the old options
  render.define_highlights()
  create_autocmds()
  create_mappings()
  if config.options.autostart and serves(vim.api.nvim_get_current_buf()) then
    client.start()
  end
end

function M.start()
  stopped = false
  ensure()
  return client.start()
end

function M.stop()
  stopped = true
  client.stop()
end

function M.complete()
  ensure()
  return client.complete(false)
end

local function accept_kind(kind)
  ensure()
  local bufnr = vim.api.nvim_get_current_buf()
  if kind == 'all' and block.pending(bufnr) then
    return block.accept(bufnr)
  end
  return accept.accept(kind, bufnr)
end

function M.accept()
  return accept_kind('all')
end

function M.accept_line()
  return accept_kind('line')
end

function M.accept_word()
  return accept_kind('word')
end

function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  local rejected = block.reject(bufnr, true)
  accept.dismiss(bufnr)
  return rejected
end

function M.rewrite(range)
  ensure()
  return block.request('rewrite', range)
end

function M.suggest(range)
  ensure()
  return block.request('suggest', range)
end

function M.next()
  return block.next(vim.api.nvim_get_current_buf())
end

--- "model ready on cpu", or "model loading" while no device is known yet.
function M.model_line(status)
  local device = status.device ~= vim.NIL and status.device or nil
  return ('model %s%s'):format(tostring(status.model), device and (' on ' .. tostring(device)) or '')
end

--- `unmask/status` of the running server, passed to `callback(err, result)`; printed when no
--- callback is given.
function M.status(callback)
  local c = client.get()
  if not c then
    local text = 'unmask: not running (:Unmask start)'
    if callback then
      callback({ message = text }, nil)
    else
      util.message(text)
    end
    return
  end
  util.request(c, client.STATUS, vim.empty_dict(), function(err, result)
    if callback then
      return callback(err, result)
    end
    if err then
      util.message('unmask: ' .. (err.message or 'status failed'), vim.log.levels.WARN)
      return
    end
    util.message(('unmask: %s, %s positions, %d accepted, %d rejected%s'):format(
      M.model_line(result), tostring(result.encoding), result.accepted or 0, result.rejected or 0,
      result.error ~= vim.NIL and result.error and (' (' .. result.error .. ')') or ''))
  end, vim.api.nvim_get_current_buf())
end

M.subcommands = {
  start = function() M.start() end,
  stop = function() M.stop() end,
  complete = function() M.complete() end,
  accept = function() M.accept() end,
  accept_line = function() M.accept_line() end,
  accept_word = function() M.accept_word() end,
  dismiss = function() M.dismiss() end,
  rewrite = function(range) M.rewrite(range) end,
  suggest = function(range) M.suggest(range) end,
  next = function() M.next() end,
  status = function() M.status() end,
}

--- `:Unmask {sub}`; `opts` is the user command's argument table.
function M.command(opts)
  local sub = opts.fargs[1] or 'status'
  local fn = M.subcommands[sub]
  if not fn then
    util.message(('unmask: unknown subcommand %q (one of %s)'):format(sub,
      table.concat(vim.tbl_keys(M.subcommands), ', ')), vim.log.levels.ERROR)
    return
  end
  local range = (opts.range and opts.range > 0) and { opts.line1, opts.line2 } or nil
  fn(range)
end

return M
