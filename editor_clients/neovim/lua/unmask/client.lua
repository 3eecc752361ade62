-- The LSP client: start (stdio command or TCP daemon), attach buffers, send the infill request,
-- route `unmask/preview` snapshots to the renderer.
local config = require('unmask.config')
local render = require('unmask.render')
local state = require('unmask.state')
local util = require('unmask.util')

local M = {}

M.PREVIEW = 'unmask/preview'
M.BLOCK_EDIT = 'unmask/blockEdit'
M.DID_ACCEPT = 'unmask/didAccept'
M.DID_REJECT = 'unmask/didReject'
M.STATUS = 'unmask/status'
M.INLINE_COMPLETION = 'textDocument/inlineCompletion'

M.REQUEST_CANCELLED = -32800
M.CONTENT_MODIFIED = -32801

M.client_id = nil
--- Why the last start failed or the server went away (nil when it did not): autostart holds
--- off until a start the user asks for (:Unmask start, or a request).
M.failed = nil
-- bufnr -> list of { run = fun(client), tick, cursor, insert }: requests asked before the
-- buffer was attached to an initialized client, run then if the buffer, the cursor and the mode
-- are still those they were asked in.
local waiting = {}
local ending = {} -- client ids stopped on purpose: their exit is no news
local group = vim.api.nvim_create_augroup('unmask.client', { clear = true })
local uv = vim.uv or vim.loop

--- Where the server is, in words (for messages).
local function where()
  local opts = config.options
  if opts.host then
    return ('the daemon at %s:%d'):format(opts.host, opts.port)
  end
  return 'the server'
end

--- The running client, or nil.
function M.get()
  if not M.client_id then
    return nil
  end
  local client = vim.lsp.get_client_by_id(M.client_id)
  if client == nil or util.is_stopped(client) then
    M.client_id = nil
    return nil
  end
  return client
end

--- The position encoding negotiated with the server.
function M.encoding(client)
  client = client or M.get()
  return client and client.offset_encoding or 'utf-16'
end

local function wants(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or not vim.api.nvim_buf_is_loaded(bufnr) then
    return false
  end
  if vim.bo[bufnr].buftype ~= '' or vim.api.nvim_buf_get_name(bufnr) == '' then
    return false
  end
  local filetypes = config.options.filetypes
  if vim.tbl_contains(filetypes, '*') then
    return true
  end
  return vim.tbl_contains(filetypes, vim.bo[bufnr].filetype)
end

--- Attach `bufnr` to the running client (didOpen); false when the buffer is not one we serve.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local client = M.get()
  if not client or not wants(bufnr) then
    return false
  end
  if not vim.lsp.buf_is_attached(bufnr, client.id) then
    vim.lsp.buf_attach_client(bufnr, client.id)
  end
  return true
end

-- `unmask/preview`: one full snapshot per denoising step. Drawn only when it belongs to the
-- newest request of its buffer and to the buffer's current version.
local function on_preview(_, params, ctx)
  if type(params) ~= 'table' or type(params.uri) ~= 'string' then
    return
  end
  -- Found by request id (unique per client), not by URI: no buffer is created for a stray URI.
  local bufnr, request
  for b, st in pairs(state.all()) do
    if st.request and st.request.id == params.id and st.request.client_id == ctx.client_id then
      bufnr, request = b, st.request
      break
    end
  end
  if not request or not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  if params.version ~= util.buf_version(bufnr) or request.tick ~= util.buf_tick(bufnr) then
    return
  end
  if params.cancelled then
    render.clear(bufnr)
    return
  end
  local encoding = M.encoding(vim.lsp.get_client_by_id(ctx.client_id))
  local row, col = util.from_lsp(bufnr, params.range.start, encoding)
  local end_row = util.from_lsp(bufnr, params.range['end'], encoding)
  local known = request.rows ~= nil
  request.rows = { row, end_row }
  if not known and request.kind ~= 'infill' and util.cursor_outside(bufnr, row, end_row, request.origin) then
    -- The cursor left before the block's rows were known (on_cursor waits for them).
    M.cancel(bufnr)
    render.clear(bufnr)
    return
  end
  local lines = render.segment_lines(params.segments, bufnr, params.mode == 'infill' and util.display_col(bufnr, row, col) or 0)
  if params.mode == 'infill' then
    local status = not params.final and ('unmask %d/%d'):format(params.step, params.steps) or nil
    render.draw_inline(bufnr, row, col, lines, status)
  else
    local header = ('unmask %s · step %d/%d'):format(params.mode, params.step, params.steps)
    render.draw_block(bufnr, row, end_row, lines, header)
  end
  util.emit('UnmaskPreview', {
    bufnr = bufnr,
    id = params.id,
    mode = params.mode,
    step = params.step,
    steps = params.steps,
    final = params.final,
  })
end

local function on_exit(code, signal, client_id)
  vim.schedule(function()
    local current = M.client_id == client_id
    if current then
      M.client_id = nil
      waiting = {}
    end
    -- Only what this client made: an old client's exit may come after a new one's suggestion.
    for bufnr, st in pairs(state.all()) do
      local drawn = false
      for _, key in ipairs({ 'request', 'suggestion', 'block' }) do
        if st[key] and st[key].client_id == client_id then
          st[key] = nil
          drawn = true
        end
      end
      if drawn then
        render.clear(bufnr)
      end
    end
    local on_purpose = ending[client_id]
    ending[client_id] = nil
    if on_purpose or not current then
      return
    end
    -- A daemon's connection closing reads as a clean exit (0, 0): for a daemon every exit we
    -- did not ask for is news; for a server we started, a clean one is not.
    if config.options.host then
      M.failed = ('the connection to %s closed'):format(where())
    elseif code ~= 0 and signal ~= 15 then
      M.failed = ('the server exited (code %s, signal %s)'):format(code, signal)
    else
      return
    end
    util.message(('unmask: %s; see :LspLog. :Unmask start tries again'):format(M.failed), vim.log.levels.WARN)
  end)
end

--- Give up on client `id` if it is still not initialized (a daemon that is not there, or a
--- server that never answers): stop it, drop what waited for it, and say why.
local function give_up(id, why)
  if M.client_id ~= id then
    return
  end
  local c = vim.lsp.get_client_by_id(id)
  if c and c.initialized then
    return
  end
  M.client_id = nil
  M.failed = why
  waiting = {}
  if c then
    ending[id] = true
    pcall(util.stop, c, true) -- a transport that never connected may refuse a clean shutdown
  end
  util.message(('unmask: %s. :Unmask start tries again'):format(why), vim.log.levels.WARN)
end

-- Neovim's TCP transport only logs a refused connection and leaves the client waiting for
-- ever: a probe of its own says at once that nothing listens there.
local UNREACHABLE = { ECONNREFUSED = true, ETIMEDOUT = true, EHOSTUNREACH = true, ENETUNREACH = true }

local function probe(host, port, id)
  local tcp = uv.new_tcp()
  if not tcp then
    return
  end
  local ok = pcall(tcp.connect, tcp, host, port, function(err)
    tcp:close()
    if err and UNREACHABLE[err:match('^%u+') or ''] then
      vim.schedule(function()
        give_up(id, ('no daemon answers at %s:%d (%s); start one with `unmask serve --tcp %d`')
          :format(host, port, err, port))
      end)
    end
  end)
  if not ok then
    tcp:close() -- a host name uv cannot connect to directly: the start timeout still applies
  end
end

-- Whether a request that waited for the server still applies: same text, same cursor in the
-- buffer's window, same mode (an infill asked in insert mode is not wanted in normal mode).
local function still_asked(bufnr, job)
  if not vim.api.nvim_buf_is_valid(bufnr) or util.buf_tick(bufnr) ~= job.tick then
    return false
  end
  if vim.api.nvim_get_current_buf() ~= bufnr or util.in_insert() ~= job.insert then
    return false
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  return cursor[1] == job.cursor[1] and cursor[2] == job.cursor[2]
end

local function root_dir()
  local ok, root = pcall(vim.fs.root, 0, config.options.root_markers)
  return ok and root or vim.fn.getcwd()
end

--- Start the client (or return the running one's id); attaches every loaded buffer we serve.
function M.start()
  if M.get() then
    return M.client_id
  end
  M.failed = nil
  local opts = config.options
  local cmd
  if opts.host then
    cmd = vim.lsp.rpc.connect(opts.host, opts.port)
  elseif type(opts.cmd) == 'function' then
    cmd = opts.cmd
  else
    if vim.fn.executable(opts.cmd[1]) == 0 then
      M.failed = ('%q not found on PATH'):format(opts.cmd[1])
      util.message(('unmask: %s; install the server (pip install -e .) or set `cmd`'):format(M.failed),
        vim.log.levels.ERROR)
      return nil
    end
    cmd = opts.cmd
  end
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.general = capabilities.general or {}
  capabilities.general.positionEncodings = { 'utf-8', 'utf-16' }
  -- Never empty (an empty Lua table would go out as a JSON list), and `previews` said
  -- outright: the server sends none to a client that sends no options.
  local init_options = vim.tbl_extend('keep', opts.init_options or {}, { previews = true })
  local lsp_config = {
    name = 'unmask',
    cmd = cmd,
    root_dir = root_dir(),
    init_options = init_options,
    capabilities = capabilities,
    handlers = { [M.PREVIEW] = on_preview },
    on_exit = on_exit,
    flags = { debounce_text_changes = 50 },
  }
  local id
  if util.has_011 then
    id = vim.lsp.start(lsp_config, {
      attach = false,
      reuse_client = function(client)
        return client.name == 'unmask' and client.id == M.client_id
      end,
    })
  else
    id = vim.lsp.start_client(lsp_config)
  end
  if not id then
    M.failed = 'the language server could not be started'
    util.message('unmask: ' .. M.failed, vim.log.levels.ERROR)
    return nil
  end
  M.client_id = id
  if opts.host then
    probe(opts.host, opts.port, id)
  end
  vim.defer_fn(function()
    give_up(id, ('%s did not answer initialize within %d ms (start_timeout)'):format(where(), opts.start_timeout))
  end, opts.start_timeout)

  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd({ 'FileType', 'BufEnter' }, {
    group = group,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      if not args.data or args.data.client_id ~= M.client_id then
        return
      end
      local queued = waiting[args.buf]
      waiting[args.buf] = nil
      local client = M.get()
      for _, job in ipairs(queued or {}) do
        if client and still_asked(args.buf, job) then
          job.run(client)
        end
      end
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    M.attach(bufnr)
  end
  return id
end

function M.stop()
  local client = M.client_id and vim.lsp.get_client_by_id(M.client_id)
  if client and not util.is_stopped(client) then
    ending[client.id] = true
    util.stop(client)
  end
  M.failed = nil
  vim.api.nvim_clear_autocmds({ group = group })
  waiting = {}
  for bufnr, st in pairs(state.all()) do
    st.request, st.suggestion, st.block = nil, nil, nil
    render.clear(bufnr)
  end
  M.client_id = nil
end

--- Run fn(client) once `bufnr` is attached to a started, initialized client (starting it if
--- needed). Returns false when the buffer cannot be served.
function M.with_client(bufnr, fn)
  if not M.get() and not M.start() then
    return false
  end
  if not M.attach(bufnr) then
    util.message('unmask: this buffer is not served (no file name, a special buffer, or a filetype '
      .. 'not in `filetypes`)', vim.log.levels.WARN)
    return false
  end
  local client = M.get()
  if client and client.initialized and client.attached_buffers[bufnr] then
    fn(client)
  else
    waiting[bufnr] = waiting[bufnr] or {}
    table.insert(waiting[bufnr], {
      run = fn,
      tick = util.buf_tick(bufnr),
      cursor = vim.api.nvim_win_get_cursor(0),
      insert = util.in_insert(),
    })
  end
  return true
end

--- Drop every request still waiting for the server (all buffers).
function M.drop_waiting()
  waiting = {}
end

--- Cancel the request in flight for `bufnr`, if any.
function M.cancel(bufnr)
  waiting[bufnr] = nil -- not asked yet: never asked
  local st = state.peek(bufnr)
  local request = st and st.request
  if not request then
    return
  end
  st.request = nil
  local client = vim.lsp.get_client_by_id(request.client_id)
  if client and request.id then
    pcall(util.cancel_request, client, request.id)
  end
end

--- Report a failed request unless it was cancelled or overtaken by an edit.
function M.report(err)
  if err.code == M.REQUEST_CANCELLED or err.code == M.CONTENT_MODIFIED then
    return
  end
  util.message(err.message or vim.inspect(err), vim.log.levels.WARN)
end

--- Takes request `id` of `bufnr` off the buffer as its answer arrives and clears
--- its preview. Returns the request and the buffer state, or nil when the
--- request was cancelled or superseded meanwhile.
function M.finish(bufnr, id)
  local st = state.peek(bufnr)
  if not st or not st.request or st.request.id ~= id then
    return nil
  end
  local request = st.request
  st.request = nil
  render.clear(bufnr)
  return request, st
end

local function on_infill(bufnr, id, err, result, ctx)
  local request, st = M.finish(bufnr, id)
  if not request then
    return -- cancelled or superseded
  end
  if err then
    -- Typing asks again and again: the same failure is told once, not at every pause.
    if not request.automatic or err.message ~= M.last_automatic_error then
      M.report(err)
    end
    if request.automatic then
      M.last_automatic_error = err.message
    end
    util.emit('UnmaskSuggestion', { bufnr = bufnr, error = err.message })
    return
  end
  M.last_automatic_error = nil
  local version = ctx.version or request.version
  if version ~= util.buf_version(bufnr) or request.tick ~= util.buf_tick(bufnr) then
    return -- the buffer moved on (an edit or a reload): never show stale text
  end
  local items = result and (result.items or result) or {}
  local item = items[1]
  local text = item and item.insertText
  if type(text) == 'table' then
    text = text.value -- a StringValue (snippet): taken literally
  end
  if type(text) ~= 'string' or text == '' then
    if not request.automatic then
      util.message('unmask: nothing to suggest here')
    end
    util.emit('UnmaskSuggestion', { bufnr = bufnr, empty = true })
    return
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local encoding = M.encoding(client)
  local range = item.range or { start = request.position, ['end'] = request.position }
  local row, col = util.from_lsp(bufnr, range.start, encoding)
  local end_row, end_col = util.from_lsp(bufnr, range['end'], encoding)
  st.suggestion = {
    text = text,
    row = row,
    col = col,
    end_row = end_row,
    end_col = end_col,
    version = version,
    tick = request.tick,
    uri = vim.uri_from_bufnr(bufnr),
    client_id = ctx.client_id,
    response = result,
  }
  render.draw_inline(bufnr, row, col, render.text_lines(text, 'UnmaskResolved', bufnr, util.display_col(bufnr, row, col)))
  util.emit('UnmaskSuggestion', { bufnr = bufnr, text = text })
end

--- Ask for an infill at the cursor of the current window. `automatic`: triggered by typing.
function M.complete(automatic)
  local bufnr = vim.api.nvim_get_current_buf()
  local win = vim.api.nvim_get_current_win()
  return M.with_client(bufnr, function(client)
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_win_get_buf(win) ~= bufnr then
      return
    end
    M.cancel(bufnr)
    local st = state.get(bufnr)
    -- A block edit on show goes too: its diff is wiped from the screen here, and a hidden edit
    -- must not be what accept applies instead of the infill on show.
    st.suggestion, st.block = nil, nil
    render.clear(bufnr)
    local params = vim.lsp.util.make_position_params(win, M.encoding(client))
    params.context = { triggerKind = automatic and 2 or 1 }
    local cursor = vim.api.nvim_win_get_cursor(win)
    local id = util.send(client, M.INLINE_COMPLETION, params, bufnr, function(request_id, err, result, ctx)
      on_infill(bufnr, request_id, err, result, ctx)
    end)
    if not id then
      return
    end
    st.request = {
      id = id,
      kind = 'infill',
      automatic = automatic or false,
      version = util.buf_version(bufnr),
      tick = util.buf_tick(bufnr),
      client_id = client.id,
      position = params.position,
      rows = { cursor[1] - 1, cursor[1] - 1 },
      cursor = { cursor[1] - 1, cursor[2] },
    }
  end)
end

return M
