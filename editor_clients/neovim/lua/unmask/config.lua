-- Options: defaults, validation (a bad value is a clear error naming the key), the merged result.
local M = {}

--- Suggested key bindings, used when `keymaps = true`. None of them is <Tab>.
M.default_keymaps = {
  complete = '<M-\\>', -- insert mode: ask for an infill at the cursor
  accept = '<M-l>', -- insert mode: accept the whole suggestion; insert and normal: the block edit
  accept_line = '<M-j>', -- insert mode: accept up to the end of the next line
  accept_word = '<M-w>', -- insert mode: accept one word
  dismiss = '<M-e>', -- insert and normal mode: clear the suggestion or the block edit
}

M.defaults = {
  -- The server command (stdio). Ignored when `host` and `port` are set. A function is passed to
  -- vim.lsp as is (an in-process server or a custom transport; see :h vim.lsp.ClientConfig).
  cmd = { 'unmask', 'serve' },
  -- Connect to a running daemon (`unmask serve --tcp PORT`) instead of spawning one.
  host = nil,
  port = nil,
  -- How long the server (or the daemon) gets to answer `initialize` before the start is given
  -- up (ms). It answers before the model loads: only a server that is not there takes this long.
  start_timeout = 10000,
  -- Sent as `initializationOptions` (singleLineTokens, multiLineTokens, alternatives,
  -- previews, maskGlyph, loadWaitSeconds, maxDocumentBytes); the server validates them.
  init_options = {},
  -- Start the server when a buffer of a served filetype is opened (else on the first request
  -- or :Unmask start).
  autostart = true,
  -- Filetypes whose buffers the client attaches to; { '*' } for every file buffer.
  filetypes = { '*' },
  -- Files that mark the project root (the LSP workspace folder); the cwd when none is found.
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  -- Request an infill on InsertEnter and, debounced, on TextChangedI (not for the change an accept
  -- of a word or line makes: the rest of the suggestion stays on show).
  auto_trigger = false,
  debounce = 150, -- ms
  -- false: no mappings (use the <Plug> ones); true: `default_keymaps`; a table: per-action keys,
  -- where false disables one action. A key with nothing to act on does what it does unmapped.
  keymaps = false,
  -- How many rewrite alternatives to ask for (nil: the server's `alternatives`).
  alternatives = nil,
}

M.options = vim.deepcopy(M.defaults)

local has_011 = vim.fn.has('nvim-0.11') == 1

-- vim.validate judges (its signature changed in 0.11: call the form the running Neovim
-- prefers); the message is ours, with the value as Lua would write it ("150" is a string) and,
-- for a table, which entry is wrong.
local function check(name, value, validator, optional, expected)
  local detail
  local judge = validator
  if type(validator) == 'function' then
    judge = function(v)
      local ok, why = validator(v)
      detail = why
      return ok
    end
  end
  local ok
  if has_011 then
    ok = pcall(vim.validate, name, value, judge, optional, expected)
  else
    ok = pcall(vim.validate, { [name] = { value, judge, expected or optional } })
  end
  if not ok then
    local wanted = expected or (type(validator) == 'string' and ('a ' .. validator)) or 'a valid value'
    if type(validator) == 'string' and optional then
      wanted = wanted .. ' or nil'
    end
    error(('%s: expected %s, got %s'):format(detail or name, wanted, vim.inspect(value)), 0)
  end
end

local islist = vim.islist or vim.tbl_islist

-- A validator: true, or false and the entry that is wrong ("cmd[2]").
local function string_list(name)
  return function(value)
    if type(value) ~= 'table' or not islist(value) then
      return false
    end
    for i, item in ipairs(value) do
      if type(item) ~= 'string' or item == '' then
        return false, ('%s[%d] (%s)'):format(name, i, vim.inspect(item))
      end
    end
    return true
  end
end

local function whole(lo, hi)
  return function(v)
    return v == nil or (type(v) == 'number' and v == math.floor(v) and v >= lo and v <= hi)
  end
end

local function validate(opts)
  local is_cmd = string_list('cmd')
  check('cmd', opts.cmd, function(v)
    if type(v) == 'function' then
      return true
    end
    local ok, why = is_cmd(v)
    return ok and #v > 0, why
  end, false, 'a non-empty list of strings, e.g. { "unmask", "serve" }')
  if type(opts.cmd) == 'table' then
    for i = 2, #opts.cmd do
      local flag = opts.cmd[i]:match('^(%-%-%l+)=') or opts.cmd[i]
      if flag == '--tcp' or flag == '--ws' then
        error(('cmd runs a daemon (%s), which does not talk on stdio: remove %s to have Neovim start '
          .. 'the server, or start the daemon yourself and set host and port'):format(flag, flag), 0)
      end
    end
  end
  check('host', opts.host, function(v)
    return v == nil or (type(v) == 'string' and vim.trim(v) ~= '')
  end, false, 'an address such as "127.0.0.1"')
  check('port', opts.port, whole(1, 65535), false, 'a port number from 1 to 65535')
  if (opts.host == nil) ~= (opts.port == nil) then
    error('host and port go together: set both to connect to a daemon, or neither', 0)
  end
  check('start_timeout', opts.start_timeout, whole(1, 600000), false, 'milliseconds from 1 to 600000')
  check('init_options', opts.init_options, function(v)
    return v == nil or (type(v) == 'table' and (next(v) == nil or not islist(v)))
  end, false, 'a table of initializationOptions by name, e.g. { singleLineTokens = 16 }')
  check('filetypes', opts.filetypes, string_list('filetypes'), false, 'a list of filetype names, or { "*" }')
  check('root_markers', opts.root_markers, string_list('root_markers'), false, 'a list of file names')
  check('autostart', opts.autostart, 'boolean')
  check('auto_trigger', opts.auto_trigger, 'boolean')
  check('debounce', opts.debounce, whole(0, 60000), false, 'whole milliseconds from 0 to 60000')
  check('keymaps', opts.keymaps, function(v)
    if type(v) == 'boolean' then
      return true
    end
    if type(v) ~= 'table' then
      return false
    end
    for key, lhs in pairs(v) do
      if M.default_keymaps[key] == nil then
        return false, ('keymaps.%s (no such action)'):format(tostring(key))
      end
      -- '' would reach vim.keymap.set and fail there with Neovim's message, not ours
      if not (lhs == false or (type(lhs) == 'string' and lhs ~= '')) then
        return false, ('keymaps.%s (%s)'):format(key, vim.inspect(lhs))
      end
    end
    return true
  end, false, 'true, false or a table of ' .. table.concat(vim.tbl_keys(M.default_keymaps), '/') .. ' = "<key>" | false')
  check('alternatives', opts.alternatives, whole(1, 8), false, 'an integer from 1 to 8')
end

--- Merge `user` over the defaults and validate. Raises "unmask: bad option: ..." on a bad value.
--- @param user table|nil
--- @return table options
function M.resolve(user)
  if user ~= nil and type(user) ~= 'table' then
    error('unmask: setup() expects a table of options, got ' .. type(user), 0)
  end
  for key in pairs(user or {}) do
    if M.defaults[key] == nil and key ~= 'host' and key ~= 'port' and key ~= 'alternatives' then
      error(('unmask: unknown option %q'):format(tostring(key)), 0)
    end
  end
  local opts = vim.tbl_extend('force', vim.deepcopy(M.defaults), user or {})
  local ok, err = pcall(validate, opts)
  if not ok then
    error('unmask: bad option: ' .. tostring(err), 0)
  end
  return opts
end

--- Validate and store the options.
function M.setup(user)
  M.options = M.resolve(user)
  return M.options
end

--- The key bindings to install: { action = lhs } (empty when keymaps = false).
function M.keymaps()
  local km = M.options.keymaps
  if km == false then
    return {}
  end
  local out = vim.deepcopy(M.default_keymaps)
  if type(km) == 'table' then
    for k, v in pairs(km) do
      out[k] = v
    end
  end
  for k, v in pairs(out) do
    if v == false then
      out[k] = nil
    end
  end
  return out
end

return M
