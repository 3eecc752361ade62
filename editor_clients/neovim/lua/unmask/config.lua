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

-- vim.validate's signature changed in 0.11; call the form the running Neovim prefers.
local function check(name, value, validator, optional, message)
  if has_011 then
    vim.validate(name, value, validator, optional, message)
  else
    vim.validate({ [name] = { value, validator, message or optional } })
  end
end

local islist = vim.islist or vim.tbl_islist

local function is_string_list(value)
  if type(value) ~= 'table' or not islist(value) then
    return false
  end
  for _, item in ipairs(value) do
    if type(item) ~= 'string' or item == '' then
      return false
    end
  end
  return true
end

local function validate(opts)
  check('cmd', opts.cmd, function(v)
    return type(v) == 'function' or (is_string_list(v) and #v > 0)
  end, false, 'a non-empty list of strings, e.g. { "unmask", "serve" }')
  check('host', opts.host, 'string', true)
  check('port', opts.port, function(v)
    return v == nil or (type(v) == 'number' and v == math.floor(v) and v > 0 and v < 65536)
  end, false, 'a port number from 1 to 65535')
  if (opts.host == nil) ~= (opts.port == nil) then
    error('host and port go together: set both to connect to a daemon, or neither', 0)
  end
  check('init_options', opts.init_options, 'table', true)
  check('filetypes', opts.filetypes, is_string_list, false, 'a list of filetype names, or { "*" }')
  check('root_markers', opts.root_markers, is_string_list, false, 'a list of file names')
  check('autostart', opts.autostart, 'boolean')
  check('auto_trigger', opts.auto_trigger, 'boolean')
  check('debounce', opts.debounce, function(v)
    return type(v) == 'number' and v >= 0
  end, false, 'a number of milliseconds >= 0')
  check('keymaps', opts.keymaps, function(v)
    if type(v) == 'boolean' then
      return true
    end
    if type(v) ~= 'table' then
      return false
    end
    for key, lhs in pairs(v) do
      -- '' would reach vim.keymap.set and fail there with Neovim's message, not ours
      if M.default_keymaps[key] == nil or not (lhs == false or (type(lhs) == 'string' and lhs ~= '')) then
        return false
      end
    end
    return true
  end, false, 'true, false or a table of ' .. table.concat(vim.tbl_keys(M.default_keymaps), '/') .. ' = "<key>" | false')
  check('alternatives', opts.alternatives, function(v)
    return v == nil or (type(v) == 'number' and v == math.floor(v) and v >= 1 and v <= 8)
  end, false, 'an integer from 1 to 8')
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
    error('unmask: bad option: ' .. (tostring(err):gsub('^.-:%d+: ', '')), 0)
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
