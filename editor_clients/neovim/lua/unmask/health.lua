-- :checkhealth unmask
local M = {}

local health = vim.health

function M.check()
  health.start('unmask')
  local v = vim.version()
  local version = ('%d.%d.%d'):format(v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. version)
  else
    health.error('Neovim ' .. version .. ': unmask needs 0.10 or newer')
    return
  end

  local config = require('unmask.config')
  local ok, err = pcall(config.resolve, config.options)
  if ok then
    health.ok('options are valid')
  else
    health.error(tostring(err))
    return
  end
  local opts = config.options

  if type(opts.cmd) == 'function' and not opts.host then
    health.info('`cmd` is a function (a custom transport): not checked')
  elseif opts.host then
    health.info(('daemon mode: connecting to %s:%d (start it with `unmask serve --tcp %d`)')
      :format(opts.host, opts.port, opts.port))
  else
    local exe = vim.fn.exepath(opts.cmd[1])
    if exe == '' then
      health.error(('server command %q not found on PATH'):format(opts.cmd[1]), {
        'install the server: python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e .',
        'or set `cmd` in setup() to the full path of `unmask`',
      })
    else
      health.ok('server executable: ' .. exe)
      -- `serve --check` parses the very arguments the client will run, finds the model folder
      -- and the device, and exits: what would stop the server, without loading the model.
      local args = vim.list_extend(vim.deepcopy(opts.cmd), { '--check' })
      local shown = table.concat(args, ' ')
      local started, result = pcall(function()
        return vim.system(args, { text = true }):wait(30000)
      end)
      if started and result.code == 0 then
        health.ok(('`%s`: %s'):format(shown, vim.trim(result.stdout or '')))
      else
        local why = started and ((result.stderr or '') ~= '' and result.stderr or ('exit code ' .. tostring(result.code)))
          or tostring(result)
        health.error(('`%s` failed: %s'):format(shown, vim.trim(why)))
      end
    end
  end

  local unmask_client = require('unmask.client')
  local client = unmask_client.get()
  if not client then
    if unmask_client.failed then
      health.error('the server is not running: ' .. unmask_client.failed, { ':Unmask start tries again' })
    else
      health.info('the server is not running in this session (:Unmask start)')
    end
    return
  end
  if not client.initialized then
    health.warn(('client %d is still connecting (no answer to initialize yet)'):format(client.id))
    return
  end
  health.ok(('client %d running, position encoding %s'):format(client.id, tostring(client.offset_encoding)))
  local response
  if vim.fn.has('nvim-0.11') == 1 then
    response = client:request_sync('unmask/status', vim.empty_dict(), 3000, 0)
  else
    response = client.request_sync('unmask/status', vim.empty_dict(), 3000, 0)
  end
  if not response or response.err then
    health.warn('unmask/status did not answer: ' .. vim.inspect(response and response.err))
    return
  end
  local status = response.result or {}
  local line = require('unmask').model_line(status)
  if status.model == 'ready' then
    health.ok(line)
  elseif status.model == 'failed' then
    health.error(line .. ': ' .. tostring(status.error))
  else
    health.info(line)
  end
end

return M
