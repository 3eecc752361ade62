-- The Neovim client's tests: `nvim --headless -u NONE -l tests/run.lua`.
--
-- Unit tests run in this Neovim. End-to-end tests drive a child Neovim (its own event loop:
-- insert mode, mappings and autocommands are real) whose plugin talks to the real server,
-- `unmask serve` over stdio, with the real model (the built-in one, or $UNMASK_TEST_MODEL).
local root = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
package.path = root .. '/tests/?.lua;' .. package.path
vim.opt.runtimepath:prepend(root)

local H = require('harness')
local test, eq, ok, log = H.test, H.eq, H.ok, H.log

-- ---------------------------------------------------------------------------------------------
-- Unit

test('config: defaults are valid and a bad value is a clear error', function()
  local config = require('unmask.config')
  local opts = config.resolve(nil)
  eq({ 'unmask', 'serve' }, opts.cmd)
  eq(false, opts.auto_trigger)
  local function rejects(user, pattern)
    local good, err = pcall(config.resolve, user)
    ok(not good, 'accepted ' .. vim.inspect(user))
    ok(tostring(err):find(pattern, 1, true), ('message %q lacks %q'):format(tostring(err), pattern))
    ok(tostring(err):find('^unmask: '), 'message should start with "unmask: ": ' .. tostring(err))
  end
  rejects({ auto_trigger = 'yes' }, 'auto_trigger')
  rejects({ debounce = -1 }, 'debounce')
  rejects({ cmd = {} }, 'cmd')
  rejects({ cmd = 'unmask serve' }, 'cmd')
  rejects({ host = '127.0.0.1', port = 70000 }, 'port')
  rejects({ host = '127.0.0.1' }, 'host and port')
  rejects({ keymaps = { accept = 1 } }, 'keymaps')
  rejects({ keymaps = { tab = '<Tab>' } }, 'keymaps')
  rejects({ keymaps = { accept = '' } }, 'keymaps') -- not Neovim's "Invalid (empty) LHS" from setup
  rejects({ alternatives = 9 }, 'alternatives')
  rejects({ no_such_option = true }, 'no_such_option')
  -- the value as Lua writes it, and which entry of a table is wrong
  rejects({ debounce = '150' }, 'got "150"')
  rejects({ debounce = math.huge }, 'debounce')
  rejects({ cmd = { 'unmask', 5 } }, 'cmd[2] (5)')
  rejects({ keymaps = { accept = 1 } }, 'keymaps.accept (1)')
  rejects({ host = '', port = 7000 }, 'host')
  rejects({ init_options = { 1, 2 } }, 'init_options')
  rejects({ start_timeout = 0 }, 'start_timeout')
  -- a daemon where a stdio server belongs: said, with the way out
  rejects({ cmd = { 'unmask', 'serve', '--tcp', '7000' } }, 'set host and port')
  rejects({ cmd = { 'unmask', 'serve', '--ws=7000' } }, '(--ws)')
  eq({ 'unmask', 'serve', '--model', '/m/--tcp' }, config.resolve({ cmd = { 'unmask', 'serve', '--model', '/m/--tcp' } }).cmd)
  -- daemon mode and keymaps
  local daemon = config.resolve({ host = '127.0.0.1', port = 7000, keymaps = { accept_word = false } })
  eq(7000, daemon.port)
  config.setup({ keymaps = true })
  local keys = config.keymaps()
  eq('<M-l>', keys.accept)
  for _, lhs in pairs(keys) do
    ok(lhs:lower() ~= '<tab>', 'a default mapping steals <Tab>')
  end
  config.setup({ keymaps = { accept_word = false } })
  eq(nil, config.keymaps().accept_word)
  config.setup({})
  eq({}, config.keymaps())
end)

test('accept: line and word splitting of a multi-line suggestion', function()
  local split = require('unmask.accept').split
  local text = 'total = sum(values)\n    return total / len(values)\n'
  eq('total = sum(values)', split(text, 'line'))
  eq('total', split(text, 'word'))
  eq(text, split(text, 'all'))
  local rest = text:sub(#'total = sum(values)' + 1)
  eq('\n    return total / len(values)', split(rest, 'line'))
  eq('\n    return', split(rest, 'word'))
  eq(' =', split(' = sum(values)', 'word'))
  eq('(', split('(values)', 'word'))
  eq('\n', split('\n\nx', 'line'))
  eq('  ', split('  ', 'word'))
  eq('héllo', split('héllo wörld', 'word'))
  eq(' wörld', split(' wörld', 'word'))
  -- word by word, then line by line, rebuilds the text exactly
  for _, kind in ipairs({ 'word', 'line' }) do
    local left, out = text, ''
    for _ = 1, 100 do
      if left == '' then
        break
      end
      local piece = split(left, kind)
      ok(#piece > 0, 'empty piece for ' .. kind)
      out, left = out .. piece, left:sub(#piece + 1)
    end
    eq(text, out, kind .. ' pieces')
  end
end)

test('render: segments become lines of highlighted chunks', function()
  local render = require('unmask.render')
  local lines = render.segment_lines({
    { text = 'x = ', resolved = true },
    { text = '░░', resolved = false },
    { text = '\n    return x', resolved = true },
  }, 0)
  eq({
    { { 'x = ', 'UnmaskResolved' }, { '░░', 'UnmaskUnresolved' } },
    { { '    return x', 'UnmaskResolved' } },
  }, lines)
end)

test('render: tabs expand to the tab stops of where the text is drawn', function()
  local render = require('unmask.render')
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].tabstop = 8
  -- inserted after one character: the first tab reaches column 8, a mid-line one the next stop
  local lines = render.text_lines('\tb = 1\n\tc\t= 2', 'UnmaskResolved', buf, 1)
  eq({ { { '       b = 1', 'UnmaskResolved' } }, { { '        c       = 2', 'UnmaskResolved' } } }, lines)
  -- one tab stop carried across segments
  lines = render.segment_lines({ { text = 'ab', resolved = true }, { text = '\tx', resolved = false } }, buf, 0)
  eq({ { { 'ab', 'UnmaskResolved' }, { '      x', 'UnmaskUnresolved' } } }, lines)
  vim.api.nvim_buf_delete(buf, { force = true })
end)

test('render: the unresolved colour follows the background unless the user set one', function()
  local render = require('unmask.render')
  vim.o.background = 'dark'
  vim.api.nvim_set_hl(0, 'UnmaskUnresolved', {})
  render.define_highlights()
  local dark = vim.api.nvim_get_hl(0, { name = 'UnmaskUnresolved' }).fg
  vim.o.background = 'light'
  render.define_highlights()
  local light = vim.api.nvim_get_hl(0, { name = 'UnmaskUnresolved' }).fg
  ok(dark ~= light, 'the same colour on dark and light')
  eq(0xc4c7cc, light)
  vim.api.nvim_set_hl(0, 'UnmaskUnresolved', { fg = 0x123456 })
  vim.o.background = 'dark'
  render.define_highlights()
  eq(0x123456, vim.api.nvim_get_hl(0, { name = 'UnmaskUnresolved' }).fg, "the user's colour kept")
  vim.api.nvim_set_hl(0, 'UnmaskUnresolved', {})
end)

test('status line: no "on nil" while no device is known', function()
  local unmask = require('unmask')
  eq('model loading', unmask.model_line({ model = 'loading', device = vim.NIL }))
  eq('model ready on cpu', unmask.model_line({ model = 'ready', device = 'cpu' }))
end)

test('setup again: the keys of the last setup are gone', function()
  local unmask = require('unmask')
  unmask.setup({ keymaps = true, autostart = false })
  ok(vim.fn.maparg('<M-l>', 'i') ~= '', 'accept mapped')
  unmask.setup({ keymaps = { accept = '<C-y>' }, autostart = false })
  eq('', vim.fn.maparg('<M-l>', 'i'), 'the old accept key is still mapped')
  ok(vim.fn.maparg('<C-y>', 'i') ~= '', 'the new key is mapped')
  unmask.setup({ keymaps = false, autostart = false })
  eq('', vim.fn.maparg('<C-y>', 'i'))
  eq('', vim.fn.maparg('<M-w>', 'i'))
end)

-- A free TCP port on 127.0.0.1 (bound, read, released).
local function free_port()
  local tcp = vim.uv.new_tcp()
  tcp:bind('127.0.0.1', 0)
  local port = tcp:getsockname().port
  tcp:close()
  return port
end

test('daemon mode with no daemon: said at once, no dead client kept, a request says not running', function()
  local unmask = require('unmask')
  local client = require('unmask.client')
  local messages = {}
  local notify = vim.notify
  vim.notify = function(msg, level)
    table.insert(messages, { msg = msg, level = level })
  end
  local port = free_port()
  unmask.setup({ host = '127.0.0.1', port = port, autostart = false })
  unmask.start()
  local given_up = vim.wait(3000, function()
    return client.failed ~= nil
  end, 10)
  vim.notify = notify
  ok(given_up, 'still waiting on a daemon that is not there: ' .. vim.inspect(messages))
  ok(client.failed:find('no daemon answers at 127.0.0.1:' .. port, 1, true), client.failed)
  eq(nil, client.get())
  ok(vim.iter(messages):any(function(m)
    return m.msg:find('unmask serve --tcp ' .. port, 1, true) ~= nil
  end), 'the message says how to start one: ' .. vim.inspect(messages))
  unmask.stop()
end)

test('a server that never answers initialize: given up after start_timeout; what waited is dropped', function()
  local fake = require('fake_server').new({ infill = 'x', initialize_delay = math.huge })
  local unmask = require('unmask')
  local client = require('unmask.client')
  local notify = vim.notify
  vim.notify = function() end
  unmask.setup({ cmd = fake.cmd, autostart = false, start_timeout = 200 })
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(buf, vim.fn.tempname() .. '.py')
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, true, { 'x = ' })
  unmask.complete() -- waits for the client
  local given_up = vim.wait(3000, function()
    return client.failed ~= nil
  end, 10)
  vim.notify = notify
  ok(given_up, 'never given up')
  ok(client.failed:find('did not answer initialize within 200 ms', 1, true), client.failed)
  eq(nil, client.get())
  eq(0, #vim.tbl_filter(function(r)
    return r.method == 'textDocument/inlineCompletion'
  end, fake.requests))
  unmask.stop()
  vim.api.nvim_buf_delete(buf, { force = true })
end)

test('a request that waits for the server: dropped by dismiss or a cursor move, sent if still wanted', function()
  local fake = require('fake_server').new({ infill = 'y', initialize_delay = 300 })
  local unmask = require('unmask')
  local client = require('unmask.client')
  local function asked()
    return #vim.tbl_filter(function(r)
      return r.method == 'textDocument/inlineCompletion'
    end, fake.requests)
  end
  local function started()
    return vim.wait(3000, function()
      local c = client.get()
      return c ~= nil and c.initialized == true
    end, 10)
  end
  unmask.setup({ cmd = fake.cmd, autostart = false })
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(buf, vim.fn.tempname() .. '.py')
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, true, { 'x = ', 'z = 1' })
  vim.api.nvim_win_set_cursor(0, { 1, 3 })
  unmask.complete()
  unmask.dismiss()
  ok(started(), 'the client starts')
  vim.wait(200)
  eq(0, asked(), 'a dismissed request was sent')
  unmask.stop()
  unmask.complete() -- starts again; the cursor moves before the server answers
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  ok(started(), 'the client starts again')
  vim.wait(200)
  eq(0, asked(), 'a request asked from another place was sent')
  unmask.stop()
  vim.api.nvim_win_set_cursor(0, { 1, 3 })
  unmask.complete() -- nothing moves: it goes out once the server is up
  ok(started(), 'the client starts a third time')
  ok(vim.wait(2000, function()
    return asked() == 1
  end, 10), 'the request still wanted was not sent')
  unmask.stop()
  vim.api.nvim_buf_delete(buf, { force = true })
end)

test('client with a scripted server (utf-16): previews, partial accepts, stale refusal', function()
  -- Client logic that must not hinge on what the model says: non-ASCII text before the cursor
  -- in a utf-16 session, word/line/all accepts of a known suggestion, and the version check.
  local fake = require('fake_server').new({ encoding = 'utf-16', infill = ' + "wörld"\n    return s', steps = 3 })
  local unmask = require('unmask')
  local state = require('unmask.state')
  local render = require('unmask.render')
  unmask.setup({ cmd = fake.cmd, autostart = false })
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(buf, vim.fn.tempname() .. '.py')
  vim.api.nvim_set_current_buf(buf)
  local line = '    s = "😀é"'
  vim.api.nvim_buf_set_lines(buf, 0, -1, true, { 'def f():', line, '' })
  vim.wo.virtualedit = 'onemore' -- this Neovim stays in normal mode: let the cursor sit past the end
  vim.api.nvim_win_set_cursor(0, { 2, #line })
  local seen = { marks = 0, unresolved = false, previews = 0 }
  local au = vim.api.nvim_create_autocmd('User', {
    pattern = 'UnmaskPreview',
    callback = function(args)
      seen.previews = seen.previews + 1
      seen.marks = math.max(seen.marks, #render.marks(args.data.bufnr))
      seen.unresolved = seen.unresolved or render.uses_highlight(args.data.bufnr, 'UnmaskUnresolved')
    end,
  })
  local function suggestion()
    return (state.peek(buf) or {}).suggestion
  end
  unmask.complete()
  ok(vim.wait(5000, function()
    return suggestion() ~= nil
  end, 10), 'a suggestion arrives')
  eq({ 'utf-8', 'utf-16' }, fake.offered, 'encodings offered')
  eq('utf-16', require('unmask.client').get().offset_encoding)
  local request = vim.iter(fake.requests):find(function(r)
    return r.method == 'textDocument/inlineCompletion'
  end)
  eq({ line = 1, character = 13 }, request.params.position, 'cursor in utf-16 code units')
  eq(4, seen.previews)
  ok(seen.marks > 0 and seen.unresolved, 'previews drawn with UnmaskUnresolved')
  eq({ 1, #line }, { suggestion().row, suggestion().col }, 'suggestion anchored at the byte column')
  ok(unmask.accept_word())
  eq(line .. ' +', vim.api.nvim_buf_get_lines(buf, 1, 2, true)[1])
  eq({ 2, #line + 2 }, vim.api.nvim_win_get_cursor(0), 'cursor after the word')
  ok(unmask.accept_line())
  eq(line .. ' + "wörld"', vim.api.nvim_buf_get_lines(buf, 1, 2, true)[1])
  ok(unmask.accept())
  eq({ 'def f():', line .. ' + "wörld"', '    return s', '' }, vim.api.nvim_buf_get_lines(buf, 0, -1, true))
  eq(nil, suggestion())
  eq(0, #render.marks(buf))
  ok(vim.wait(2000, function()
    return vim.iter(fake.notifications):any(function(n)
      return n.method == 'unmask/didAccept'
    end)
  end, 10), 'didAccept sent')
  -- stale: the buffer changes after the suggestion arrived
  vim.api.nvim_win_set_cursor(0, { 3, 12 })
  unmask.complete()
  ok(vim.wait(5000, function()
    return suggestion() ~= nil
  end, 10), 'a second suggestion arrives')
  vim.api.nvim_buf_set_lines(buf, 0, 0, true, { '# edited' })
  local before = vim.api.nvim_buf_get_lines(buf, 0, -1, true)
  local messages = {}
  local notify = vim.notify
  vim.notify = function(msg)
    table.insert(messages, msg)
  end
  local applied = unmask.accept()
  vim.notify = notify
  eq(false, applied, 'a stale suggestion is refused')
  eq(before, vim.api.nvim_buf_get_lines(buf, 0, -1, true), 'buffer untouched')
  ok(messages[1] and messages[1]:find('changed'), 'message: ' .. vim.inspect(messages))
  vim.api.nvim_del_autocmd(au)
  unmask.stop()
  vim.api.nvim_buf_delete(buf, { force = true })
end)

test('auto_trigger (scripted server, child Neovim): typing asks again, leaving insert clears', function()
  local child = H.child()
  child:lua([[
    package.path = ... .. '/tests/?.lua;' .. package.path
    _G.fake = require('fake_server').new({ infill = 'value + 1', steps = 2 })
    require('unmask').setup({ cmd = _G.fake.cmd, auto_trigger = true, debounce = 30 })
  ]], { root })
  local file = vim.fn.tempname() .. '.py'
  child:cmd('edit ' .. vim.fn.fnameescape(file))
  child:wait([[
    local c = require('unmask.client').get()
    return c ~= nil and c.initialized == true and c.attached_buffers[vim.api.nvim_get_current_buf()] == true
  ]], 10000, 'attach')
  local count = [[return #vim.tbl_filter(function(r) return r.method == 'textDocument/inlineCompletion' end,
    _G.fake.requests)]]
  local shown = [[local st = require('unmask.state').peek(vim.api.nvim_get_current_buf())
    return st ~= nil and st.suggestion ~= nil]]
  child:input('ix = ')
  child:wait(shown, 5000, 'a suggestion after typing')
  local first = child:lua(count)
  child:input('y')
  child:wait(count .. (' > %d'):format(first), 5000, 'a new request after typing')
  child:wait(shown, 5000, 'the new suggestion')
  eq('x = y', child:lines()[1])
  child:input('<Esc>')
  child:wait('return vim.api.nvim_get_mode().mode == "n"', 2000, 'normal mode')
  eq(false, child:lua(shown), 'InsertLeave clears the suggestion')
  eq(0, child:lua('return #require("unmask.render").marks(0)'), 'nothing drawn')
  child:stop()
end)

test('autostart after a failed start: no relaunch at every buffer switch; :Unmask start tries again', function()
  local child = H.child()
  local starts = vim.fn.tempname()
  child:lua([[require('unmask').setup({ cmd = { 'sh', '-c', 'echo started >> "$0"; exit 3', ... } })]], { starts })
  local files = {}
  for i = 1, 3 do
    files[i] = vim.fn.tempname() .. '.py'
    vim.fn.writefile({ 'x = ' .. i }, files[i])
  end
  child:cmd('edit ' .. vim.fn.fnameescape(files[1]))
  child:wait('return require("unmask.client").failed ~= nil', 10000, 'the failed start to be noticed')
  for _, file in ipairs({ files[2], files[3], files[1], files[2] }) do
    child:cmd('edit ' .. vim.fn.fnameescape(file))
  end
  vim.wait(1000)
  eq(1, #vim.fn.readfile(starts), 'server launches')
  ok(child:lua('return require("unmask.client").failed'):find('exited (code 3', 1, true), 'failed says why')
  child:cmd('Unmask start')
  child:wait(('return #vim.fn.readfile(%q) == 2'):format(starts), 10000, ':Unmask start to launch again')
  child:stop()
end)

test('auto_trigger (scripted server): a failing server is reported once, not at every pause', function()
  local child = H.child()
  child:lua([[
    package.path = ... .. '/tests/?.lua;' .. package.path
    _G.fake = require('fake_server').new({ infill = 'x', infill_error = { code = -32803, message = 'unmask: the model failed to load' } })
    require('unmask').setup({ cmd = _G.fake.cmd, auto_trigger = true, debounce = 20 })
  ]], { root })
  child:cmd('edit ' .. vim.fn.fnameescape(vim.fn.tempname() .. '.py'))
  child:wait([[
    local c = require('unmask.client').get()
    return c ~= nil and c.initialized == true and c.attached_buffers[vim.api.nvim_get_current_buf()] == true
  ]], 10000, 'attach')
  local asked = [[return #vim.tbl_filter(function(r) return r.method == 'textDocument/inlineCompletion' end,
    _G.fake.requests)]]
  child:input('i')
  child:wait(asked .. ' >= 1', 5000, 'a request on entering insert mode')
  for i, key in ipairs({ 'a', 'b', 'c', 'd' }) do
    child:input(key)
    child:wait(asked .. (' >= %d'):format(i + 1), 5000, 'a request after typing ' .. key)
    vim.wait(50)
  end
  local told = child:lua([[return #vim.tbl_filter(function(m) return m.msg:find('failed to load', 1, true) ~= nil end,
    _G.rec.messages)]])
  eq(1, told, 'the same failure told again and again')
  -- a pause that ends in another buffer asks nothing there
  child:lua([[_G.rec.reset(); _G.scratch = vim.api.nvim_create_buf(false, true)]])
  local before = child:lua(asked)
  child:input('e')
  child:lua('vim.api.nvim_set_current_buf(_G.scratch)')
  vim.wait(300)
  eq(before, child:lua(asked), 'asked in a buffer the typing did not happen in')
  eq({}, child:lua('return _G.rec.messages'))
  child:stop()
end)

-- A child Neovim whose plugin talks to a scripted server (tests/fake_server.lua, as `_G.fake`)
-- with options `opts`, editing a new file of `lines`. Returns the child and the file's path.
local function fake_child(script, opts, lines)
  local child = H.child()
  child:lua([[
    local root, script, opts = ...
    package.path = root .. '/tests/?.lua;' .. package.path
    _G.fake = require('fake_server').new(script)
    opts.cmd = _G.fake.cmd
    require('unmask').setup(opts)
  ]], { root, script, opts })
  local file = vim.fn.tempname() .. '.py'
  vim.fn.writefile(lines or { '' }, file)
  child:cmd('edit ' .. vim.fn.fnameescape(file))
  child:wait([[
    local c = require('unmask.client').get()
    return c ~= nil and c.initialized == true and c.attached_buffers[vim.api.nvim_get_current_buf()] == true
  ]], 10000, 'attach')
  return child, file
end

local ST = '(require("unmask.state").peek(vim.api.nvim_get_current_buf()) or {})'
local FUNC = { 'def f(x):', '    y = x + 1', '    return y' }
-- A rewrite of FUNC's body (rows 1-2).
local BODY = {
  range = { start = { line = 1, character = 0 }, ['end'] = { line = 2, character = 12 } },
  newText = '    y = x * 2\n    return y',
}
local function requests(method)
  return ([[return #vim.tbl_filter(function(r) return r.method == %q end, _G.fake.requests)]]):format(method)
end

test('reload from disk (scripted server): an edit or suggestion made for the old text is refused', function()
  -- :checktime / :edit! re-send the new text at the old LSP version; b:changedtick tells them apart.
  local child, file = fake_child({ infill = ' * 2', steps = 1, block = BODY }, { keymaps = true }, FUNC)
  child:cmd('set autoread')
  -- A write moves b:changedtick too, but not the text: the edit stays good.
  child:lua('vim.api.nvim_buf_set_lines(0, 0, 1, true, { "def f(x):  # edited" })')
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 1', 5000, 'the block edit')
  child:cmd('write')
  eq(true, child:lua('return require("unmask").accept()'), 'applied after :write')
  eq({ 'def f(x):  # edited', '    y = x * 2', '    return y' }, child:lines())
  child:cmd('write')
  -- block edit, then the file changes on disk and the buffer is reloaded
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 2', 5000, 'the second block edit')
  local disk = { '# header', 'def g(a, b):', '    return a + b', '', 'def f(x):', '    y = x + 1', '    return y' }
  vim.fn.writefile(disk, file)
  child:cmd('checktime') -- the reload fires TextChanged, which drops the edit
  eq(disk, child:lines(), 'reloaded')
  child:wait('return ' .. ST .. '.block == nil', 2000, 'the block edit dropped on reload')
  eq(false, child:lua('return require("unmask").accept()'), 'nothing to accept')
  eq(disk, child:lua('return vim.fn.readfile(...)', { file }), 'nothing written')
  eq(disk, child:lines(), 'buffer untouched')
  -- accept itself refuses: reload and accept in one go, before TextChanged can run
  local function reload_then_accept(what)
    disk[1] = '# header, ' .. what
    vim.fn.writefile(disk, file)
    child:lua('_G.rec.messages = {}')
    eq(false, child:lua('vim.cmd("checktime") return require("unmask").accept()'), what .. ' refused')
    eq(disk, child:lines(), 'buffer untouched by the ' .. what)
    local messages = child:lua('return _G.rec.messages')
    ok(#messages == 1 and messages[1].msg:find('changed'), 'a message says why: ' .. vim.inspect(messages))
  end
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 3', 5000, 'the third block edit')
  reload_then_accept('block edit')
  -- an infill suggestion
  child:lua('vim.api.nvim_win_set_cursor(0, { 6, 0 })')
  child:input('A<M-\\>')
  child:wait('return ' .. ST .. '.suggestion ~= nil', 5000, 'the suggestion')
  reload_then_accept('suggestion')
  child:stop()
end)

test('complete drops a block edit on show (scripted server): accept takes the infill shown', function()
  local child = fake_child({ infill = ' + 2', steps = 1, block = BODY }, { keymaps = true }, FUNC)
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 1', 5000, 'the block edit')
  child:input('A<M-\\>')
  child:wait('return ' .. ST .. '.suggestion ~= nil', 5000, 'the suggestion')
  eq(false, child:lua('return ' .. ST .. '.block ~= nil'), 'no hidden block edit')
  child:input('<M-l>')
  child:wait('return #_G.rec.accepts == 1', 5000, 'accept')
  eq({ 'def f(x):', '    y = x + 1 + 2', '    return y' }, child:lines())
  eq('all', child:lua('return _G.rec.accepts[1].kind'))
  child:stop()
end)

test('auto_trigger (scripted server): accepting a word keeps the rest, typing asks again', function()
  local child = fake_child({ infill = 'value + 1', steps = 2 }, { auto_trigger = true, debounce = 30, keymaps = true })
  local count = requests('textDocument/inlineCompletion')
  local rest = 'local s = ' .. ST .. '.suggestion return s and s.text or vim.NIL'
  child:input('ix = ')
  child:wait('return ' .. ST .. '.suggestion ~= nil', 5000, 'a suggestion after typing')
  local asked = child:lua(count)
  child:input('<M-w>')
  child:wait('return #_G.rec.accepts == 1', 5000, 'accept word')
  vim.wait(300) -- ten debounces
  eq(asked, child:lua(count), 'no new request after the accept')
  eq(' + 1', child:lua(rest), 'the rest is still on show')
  ok(child:lua('return #require("unmask.render").marks(0) > 0'), 'and drawn')
  child:input('<M-l>')
  child:wait('return #_G.rec.accepts == 2', 5000, 'accept the rest')
  eq({ 'x = value + 1' }, child:lines())
  child:input(' ')
  child:wait(count .. (' > %d'):format(asked), 5000, 'typing asks again')
  child:stop()
end)

test('block request (scripted server): moving inside the block before its range is known keeps it', function()
  local child = fake_child({ block = BODY, block_delay = 400 }, {}, FUNC)
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:cmd('Unmask rewrite')
  child:input('j')
  child:wait('return #_G.rec.blocks == 1', 5000, 'the block edit')
  local cancels = [[return #vim.tbl_filter(function(n) return n.method == '$/cancelRequest' end,
    _G.fake.notifications)]]
  eq(0, child:lua(cancels), 'not cancelled')
  ok(child:lua('return ' .. ST .. '.block ~= nil'), 'the block edit is on show')
  -- once its rows are known, leaving them still clears it
  child:input('gg')
  child:wait('return ' .. ST .. '.block == nil', 2000, 'leaving the block rejects it')
  child:stop()
end)

test('block request (scripted server): leaving before its range is known drops it when it comes', function()
  local child = fake_child({ block = BODY, block_delay = 400 }, {}, FUNC)
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:cmd('Unmask rewrite')
  child:input('k') -- to the `def` line, outside the body the answer will name
  child:wait('return ' .. ST .. '.request == nil', 5000, 'the answer')
  ok(child:lua('return ' .. ST .. '.block == nil'), 'no block edit shown where the cursor is not')
  eq(0, child:lua('return #require("unmask.render").marks(0)'), 'nothing drawn')
  child:stop()
end)

test('block request (scripted server): a block above the row asked from stays while the cursor does', function()
  -- the server may pick the block above the cursor (a body's trailing blank line)
  local child = fake_child({ block = BODY, block_delay = 400 }, {}, { 'def f(x):', '    y = x + 1', '    return y', '' })
  child:lua('vim.api.nvim_win_set_cursor(0, { 4, 0 })')
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 1', 5000, 'the block edit')
  ok(child:lua('return ' .. ST .. '.block ~= nil'), 'shown, though the cursor row is below it')
  child:input('gg')
  child:wait('return ' .. ST .. '.block == nil', 2000, 'leaving for a row neither in it nor asked from')
  child:stop()
end)

test('custom keys (scripted server): with nothing to act on a key does what it does unmapped', function()
  local lines = { 'abc', '' }
  for i = 1, 60 do
    lines[#lines + 1] = ('x%d = %d'):format(i, i)
  end
  local child = fake_child({ infill = ' + 2', steps = 1, block = BODY },
    { keymaps = { accept = '<C-y>', accept_word = '<Tab>' } }, lines)
  child:cmd('setlocal noexpandtab')
  -- insert mode: <C-y> copies the character above, <Tab> inserts a tab
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:input('i<C-y><C-y><Tab>')
  child:wait('return vim.api.nvim_get_current_line() == "ab\\t"', 2000, 'the keys typed as unmapped')
  -- an ALT chord acts like <Esc> then the key (:h i_META): <M-e> (dismiss) leaves insert mode
  child:input('<M-e>')
  child:wait('return vim.api.nvim_get_mode().mode == "n"', 2000, '<M-e> as <Esc>e')
  -- normal mode: <C-y> scrolls
  child:cmd('normal! 30Gzt')
  eq(30, child:lua('return vim.fn.line("w0")'))
  child:input('<C-y>')
  child:wait('return vim.fn.line("w0") == 29', 2000, '<C-y> scrolls')
  eq({}, child:lua('return _G.rec.messages'), 'no "nothing to accept" messages')
  -- with something on show the keys act: a suggestion in insert mode...
  child:cmd('normal! gg')
  child:lua('vim.api.nvim_buf_set_lines(0, 0, -1, true, ...)', { FUNC })
  child:lua('vim.api.nvim_win_set_cursor(0, { 2, 0 })')
  child:input('A<M-\\>')
  child:wait('return ' .. ST .. '.suggestion ~= nil', 5000, 'the suggestion')
  child:input('<Tab>')
  child:wait('return #_G.rec.accepts == 1', 2000, 'accept word by <Tab>')
  child:input('<C-y>')
  child:wait('return #_G.rec.accepts == 2', 2000, 'accept by <C-y>')
  eq({ 'def f(x):', '    y = x + 1 + 2', '    return y' }, child:lines())
  -- ...and a block edit in normal mode
  child:input('<Esc>')
  child:wait('return vim.api.nvim_get_mode().mode == "n"', 2000, 'normal mode')
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks == 1', 5000, 'the block edit')
  child:input('<C-y>')
  child:wait('return #_G.rec.accepts == 3', 2000, 'the block edit applied by <C-y>')
  eq({ 'def f(x):', '    y = x * 2', '    return y' }, child:lines())
  child:stop()
end)

-- ---------------------------------------------------------------------------------------------
-- End to end: a child Neovim, the real server, the real model

local function server_cmd()
  local exe = vim.fn.exepath('unmask')
  if exe == '' then
    error('`unmask` is not on PATH (activate the project venv)')
  end
  local cmd = { exe, 'serve' }
  local model = vim.env.UNMASK_TEST_MODEL
  if model and model ~= '' then
    vim.list_extend(cmd, { '--model', model })
  end
  return cmd
end

local shared = nil -- one child and one server for the end-to-end tests (one model load)

local function session()
  if shared then
    return shared
  end
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  local file = dir .. '/sample.py'
  vim.fn.writefile(vim.fn.readfile(root .. '/tests/fixtures/sample.py', 'b'), file, 'b')
  local child = H.child()
  child:lua([[
    require('unmask').setup({
      cmd = ..., keymaps = true, alternatives = 1, init_options = { loadWaitSeconds = 120 },
    })
  ]], { server_cmd() })
  child:cmd('edit ' .. vim.fn.fnameescape(file))
  child:wait([[
    local c = require('unmask.client').get()
    return c ~= nil and c.initialized == true and c.attached_buffers[vim.api.nvim_get_current_buf()] == true
  ]], 60000, 'the client to start and attach')
  shared = { child = child, file = file, original = child:lines() }
  shared.encoding = child:lua('return require("unmask.client").get().offset_encoding')
  return shared
end

local function reset(s)
  local child = s.child
  child:input('<Esc>')
  child:cmd('edit! ' .. vim.fn.fnameescape(s.file))
  child:lua('_G.rec.reset()')
  eq(s.original, child:lines(), 'buffer reset')
end

-- Row (1-based) of the blank line inside count_words's body, and its text.
local function body_line(lines)
  for i, line in ipairs(lines) do
    if line:match('^%s+$') then
      return i, line
    end
  end
  error('fixture has no blank indented line')
end

-- The buffer text we expect after inserting `item` (an InlineCompletionItem) into `lines`.
local function with_insertion(lines, item, encoding)
  eq('utf-8', encoding, 'negotiated encoding (the plugin prefers utf-8)')
  local range = item.range
  eq(range.start, range['end'], 'an infill inserts')
  local row = range.start.line + 1
  local line = lines[row]
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  local merged = line:sub(1, range.start.character) .. text .. line:sub(range.start.character + 1)
  local out = {}
  for i = 1, row - 1 do
    out[#out + 1] = lines[i]
  end
  vim.list_extend(out, vim.split(merged, '\n', { plain = true }))
  for i = row + 1, #lines do
    out[#out + 1] = lines[i]
  end
  return out
end

-- What a user types on the blank body line before asking, one attempt after the other until the
-- model answers a non-empty infill: nothing (a whole block), then the start of a statement.
local ATTEMPTS = { '', 'with open(' }

-- Enter insert mode at the end of the blank body line, type `typed`, ask for an infill with the
-- mapping. Returns the response's item (nil for an empty answer) and the lines it was made for.
local function request_infill(s, typed)
  local child = s.child
  local row = body_line(s.original)
  child:lua('vim.api.nvim_win_set_cursor(0, ...)', { { row, 0 } })
  child:input('A')
  child:wait('return vim.api.nvim_get_mode().mode == "i"', 5000, 'insert mode')
  if typed ~= '' then
    child:input(typed)
    child:wait(('return vim.api.nvim_get_current_line():sub(-%d) == %q'):format(#typed, typed), 5000, 'typing')
  end
  local before = child:lines()
  child:input('<M-\\>')
  child:wait('return #_G.rec.suggestions > 0', 90000, 'the inline completion answer')
  local answer = child:lua('return _G.rec.suggestions[1]')
  ok(answer.error == nil, 'the request failed: ' .. tostring(answer.error))
  local response = child:lua([[
    local st = require('unmask.state').peek(vim.api.nvim_get_current_buf())
    return st and st.suggestion and st.suggestion.response or vim.NIL
  ]])
  if answer.empty then
    return nil, before
  end
  ok(response ~= vim.NIL, 'a suggestion is stored')
  return response.items[1], before
end

-- The previews of the last request: drawn as extmarks, masked runs in UnmaskUnresolved.
local function check_previews(child)
  local previews = child:lua('return _G.rec.previews')
  ok(#previews > 0, 'previews arrived')
  local drawn, unresolved = 0, false
  for _, p in ipairs(previews) do
    eq('infill', p.mode)
    if p.marks > 0 then
      drawn = drawn + 1
    end
    unresolved = unresolved or p.unresolved
  end
  ok(drawn > 0, 'extmarks drawn while previews arrived')
  ok(unresolved, 'UnmaskUnresolved used for masked runs')
  eq(true, previews[#previews].final, 'the last preview is final')
  return #previews, previews[1].steps
end

-- The first attempt the model answers: item, lines before, typed text (nil when none did).
local function first_infill(s, each)
  for _, typed in ipairs(ATTEMPTS) do
    reset(s)
    local item, before = request_infill(s, typed)
    if each then
      each(item, before, typed)
    end
    if item then
      return item, before, typed
    end
    eq(before, s.child:lines(), 'nothing inserted for an empty answer')
  end
end

test('e2e: infill streams previews, then accept (word, line, all) inserts the final text', function()
  local s = session()
  local child = s.child
  local item, before, typed = first_infill(s, function(_, _, attempt)
    local count, steps = check_previews(child)
    log('typed %q: %d previews of %s steps', attempt, count, steps)
    eq('i', child:mode(), 'still in insert mode')
  end)
  if not item then
    H.skip('the model answered an empty infill at every attempt; nothing to accept')
  end
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  log('after typing %q the suggestion is %q', typed, text)
  ok(child:lua('return #require("unmask.render").marks(0) > 0'), 'the final suggestion is drawn')
  local expected = with_insertion(before, item, s.encoding)
  -- one word, then one line, then the rest: the pieces must add up to the whole suggestion
  local pending = 'return require("unmask.state").peek(vim.api.nvim_get_current_buf()).suggestion ~= nil'
  for i, key in ipairs({ '<M-w>', '<M-j>', '<M-l>' }) do
    if not child:lua(pending) then
      break
    end
    child:input(key)
    child:wait(('return #_G.rec.accepts >= %d'):format(i), 5000, 'accept via ' .. key)
  end
  ok(not child:lua(pending), 'the suggestion is used up')
  eq(expected, child:lines(), 'buffer after accepting')
  eq('i', child:mode(), 'still in insert mode after accepting')
  eq(0, child:lua('return #require("unmask.render").marks(0)'), 'nothing drawn after accepting')
  eq({}, child:lua('return _G.rec.messages'), 'no messages')
end)

test('e2e: rewrite, then reject, leaves the buffer byte-identical', function()
  local s = session()
  reset(s)
  local child = s.child
  local before = child:lua('return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, true), "\\n")')
  child:lua('vim.api.nvim_win_set_cursor(0, ...)', { { body_line(s.original) - 2, 0 } }) -- def count_words
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks > 0', 90000, 'the block edit answer')
  local answer = child:lua('return _G.rec.blocks[1]')
  ok(answer.error == nil, 'the request failed: ' .. tostring(answer.error))
  log('rewrite: %d alternative(s)', answer.edits)
  local previews = child:lua('return _G.rec.previews')
  ok(#previews > 0, 'rewrite previews arrived')
  eq('rewrite', previews[1].mode)
  if answer.edits > 0 then
    ok(answer.marks > 0, 'the diff is drawn')
    ok(answer.deleted or answer.added, 'the diff uses the diff highlights')
  end
  child:cmd('Unmask dismiss')
  eq(0, child:lua('return #require("unmask.render").marks(0)'), 'cleared')
  local after = child:lua('return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, true), "\\n")')
  eq(before, after, 'byte-identical')
  eq(false, child:lua('return vim.bo.modified'), 'not modified')
  if answer.edits > 0 then
    child:lua([[require('unmask').status(function(err, result) _G.rec.status = result end)]])
    child:wait('return _G.rec.status ~= nil', 10000, 'unmask/status')
    eq(1, child:lua('return _G.rec.status.rejected'), 'the server counted the rejection')
  end
end)

test('e2e: a stale suggestion or block edit is never applied', function()
  local s = session()
  local child = s.child
  local checked = 0
  -- infill suggestion
  local item, before = first_infill(s)
  if item then
    child:lua('_G.rec.messages = {}')
    local result = child:lua([[
      vim.api.nvim_buf_set_lines(0, 0, 0, true, { '# edited' })
      return require('unmask').accept()
    ]])
    eq(false, result, 'accept refused')
    local expected = vim.list_extend({ '# edited' }, vim.deepcopy(before))
    eq(expected, child:lines(), 'buffer has only our change')
    local messages = child:lua('return _G.rec.messages')
    ok(#messages == 1 and messages[1].msg:find('changed'), 'a message says why: ' .. vim.inspect(messages))
    checked = checked + 1
  end
  -- block edit
  reset(s)
  child:lua('vim.api.nvim_win_set_cursor(0, ...)', { { body_line(s.original) - 2, 0 } })
  child:cmd('Unmask rewrite')
  child:wait('return #_G.rec.blocks > 0', 90000, 'the block edit answer')
  local answer = child:lua('return _G.rec.blocks[1]')
  ok(answer.error == nil, 'the request failed: ' .. tostring(answer.error))
  if answer.edits > 0 then
    local result = child:lua([[
      vim.api.nvim_buf_set_lines(0, -1, -1, true, { '# edited' })
      return require('unmask').accept()
    ]])
    eq(false, result, 'accept refused')
    local expected = vim.list_extend(vim.deepcopy(s.original), { '# edited' })
    eq(expected, child:lines(), 'buffer has only our change')
    local messages = child:lua('return _G.rec.messages')
    ok(#messages == 1 and messages[1].msg:find('changed'), 'a message says why: ' .. vim.inspect(messages))
    checked = checked + 1
  end
  if checked == 0 then
    H.skip('the model answered neither an infill nor a rewrite here')
  end
  log('%d stale case(s) checked', checked)
end)

test('e2e: :checkhealth runs the configured command with --check: good arguments pass, bad ones fail', function()
  local function health(cmd)
    local child = H.child()
    child:lua([[require('unmask').setup({ cmd = ..., autostart = false })]], { cmd })
    child:cmd('checkhealth unmask')
    local text = table.concat(child:lines(), '\n')
    child:stop()
    return text
  end
  local good = health(server_cmd())
  ok(good:find('would serve', 1, true), good)
  local bad = vim.list_extend(server_cmd(), { '--bogus' })
  local text = health(bad)
  ok(text:find('unrecognized arguments: --bogus', 1, true), text)
end)

test('e2e: daemon mode connects over TCP (host/port) and answers unmask/status', function()
  local cmd = server_cmd()
  table.insert(cmd, 3, '--tcp')
  table.insert(cmd, 4, '0')
  local port, stderr = nil, ''
  local daemon = vim.system(cmd, {
    stderr = function(_, data)
      if data then
        stderr = stderr .. data
        port = port or tonumber(stderr:match('serving tcp on [%d.]+:(%d+)'))
      end
    end,
  })
  local function cleanup()
    if not daemon:is_closing() then
      daemon:kill(15)
      daemon:wait(5000)
    end
  end
  local good, err = pcall(function()
    ok(vim.wait(60000, function()
      return port ~= nil or daemon:is_closing()
    end, 25), 'the daemon to listen')
    ok(port, 'the daemon announced its port: ' .. stderr)
    local child = H.child()
    child:lua([[require('unmask').setup({ host = '127.0.0.1', port = ... })]], { port })
    child:cmd('edit ' .. vim.fn.fnameescape(root .. '/tests/fixtures/sample.py'))
    child:wait([[
      local c = require('unmask.client').get()
      return c ~= nil and c.initialized == true and c.attached_buffers[vim.api.nvim_get_current_buf()] == true
    ]], 30000, 'the client to connect and attach')
    child:lua([[require('unmask').status(function(err, result) _G.rec.status = result or err end)]])
    child:wait('return _G.rec.status ~= nil', 10000, 'unmask/status')
    local status = child:lua('return _G.rec.status')
    eq('utf-8', status.encoding, 'negotiated encoding')
    ok(vim.tbl_contains({ 'loading', 'ready' }, status.model), 'model state: ' .. vim.inspect(status))
    -- the daemon goes away: said, and the client is not kept
    daemon:kill(15)
    daemon:wait(5000)
    child:wait('return require("unmask.client").failed ~= nil', 10000, 'the lost daemon to be noticed')
    eq(true, child:lua('return require("unmask.client").get() == nil'))
    local told = child:lua([[return vim.iter(_G.rec.messages):any(function(m)
      return m.msg:find('connection to the daemon at 127.0.0.1', 1, true) ~= nil end)]])
    ok(told, 'no message: ' .. vim.inspect(child:lua('return _G.rec.messages')))
    child:stop()
  end)
  cleanup()
  if not good then
    error(err, 0)
  end
end)

H.run()
