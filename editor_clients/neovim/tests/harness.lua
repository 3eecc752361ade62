-- A minimal test runner and a child-Neovim driver (the child runs its own event loop, so insert
-- mode, mappings and autocommands behave as they do for a user).
local H = {}

H.root = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')

local cases = {}

--- Register a test. `fn` raises to fail; H.skip(reason) to skip.
--- $UNMASK_TEST_FILTER (a Lua pattern) keeps only the tests whose name matches.
function H.test(name, fn)
  local filter = vim.env.UNMASK_TEST_FILTER
  if filter and filter ~= '' and not name:find(filter) then
    return
  end
  table.insert(cases, { name = name, fn = fn })
end

local SKIP = {}
function H.skip(reason)
  error({ [SKIP] = true, reason = reason }, 0)
end

local function show(v)
  return type(v) == 'string' and ('%q'):format(v) or vim.inspect(v)
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%sexpected %s, got %s'):format(what and (what .. ': ') or '', show(expected), show(actual)), 2)
  end
end

function H.ok(value, what)
  if not value then
    error('assertion failed: ' .. (what or '?'), 2)
  end
  return value
end

function H.log(fmt, ...)
  io.stdout:write('    ' .. fmt:format(...) .. '\n')
end

--- Run every registered test; print one line per test and the summary; exit non-zero on failure.
function H.run()
  local passed, failed, skipped = 0, 0, 0
  local started = vim.uv.hrtime()
  for _, case in ipairs(cases) do
    local t0 = vim.uv.hrtime()
    local ok, err = xpcall(case.fn, function(e)
      if type(e) == 'table' and e[SKIP] then
        return e
      end
      return debug.traceback(tostring(e), 2)
    end)
    local seconds = (vim.uv.hrtime() - t0) / 1e9
    if ok then
      passed = passed + 1
      io.stdout:write(('ok   %s (%.1fs)\n'):format(case.name, seconds))
    elseif type(err) == 'table' and err[SKIP] then
      skipped = skipped + 1
      io.stdout:write(('skip %s: %s\n'):format(case.name, err.reason))
    else
      failed = failed + 1
      io.stdout:write(('FAIL %s (%.1fs)\n%s\n'):format(case.name, seconds, err))
    end
  end
  H.stop_children()
  io.stdout:write(('total %.1fs\n'):format((vim.uv.hrtime() - started) / 1e9))
  local summary = ('%d passed, %d failed'):format(passed, failed)
  if skipped > 0 then
    summary = summary .. (', %d skipped'):format(skipped)
  end
  io.stdout:write(summary .. '\n')
  io.stdout:flush()
  os.exit(failed > 0 and 1 or 0)
end

-- ---------------------------------------------------------------------------------------------
-- Child Neovim

local children = {}
local Child = {}
Child.__index = Child

--- Start a child Neovim (--embed --headless) with tests/child_init.lua.
function H.child()
  local init = H.root .. '/tests/child_init.lua'
  local chan = vim.fn.jobstart({
    vim.v.progpath, '--embed', '--headless', '-n', '-i', 'NONE', '--noplugin', '-u', init,
  }, { rpc = true })
  assert(chan > 0, 'could not start the child Neovim')
  local child = setmetatable({ chan = chan }, Child)
  table.insert(children, child)
  -- The first request waits for startup to finish.
  child:lua('return 1')
  return child
end

--- Execute Lua in the child: `code` is a chunk (use `...` for args); returns its value.
function Child:lua(code, args)
  return vim.rpcrequest(self.chan, 'nvim_exec_lua', code, args or {})
end

--- Type keys into the child (as a user would; processed by its event loop).
function Child:input(keys)
  return vim.rpcrequest(self.chan, 'nvim_input', keys)
end

function Child:cmd(command)
  return vim.rpcrequest(self.chan, 'nvim_command', command)
end

function Child:mode()
  return vim.rpcrequest(self.chan, 'nvim_get_mode').mode
end

function Child:lines()
  return self:lua('return vim.api.nvim_buf_get_lines(0, 0, -1, false)')
end

--- Wait until `predicate` (Lua code returning a boolean, run in the child) holds.
function Child:wait(predicate, timeout, what)
  local ok = vim.wait(timeout or 60000, function()
    return self:lua(predicate) == true
  end, 25)
  if not ok then
    error(('timed out after %d ms waiting for: %s'):format(timeout or 60000, what or predicate), 2)
  end
end

function Child:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  pcall(vim.rpcrequest, self.chan, 'nvim_exec_lua', [[
    pcall(function() require('unmask').stop() end)
  ]], {})
  pcall(vim.rpcnotify, self.chan, 'nvim_command', 'qa!')
  if vim.fn.jobwait({ self.chan }, 5000)[1] == -1 then
    vim.fn.jobstop(self.chan)
  end
end

function H.stop_children()
  for _, child in ipairs(children) do
    child:stop()
  end
end

return H
