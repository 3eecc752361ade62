-- A scripted, in-process language server for client-logic tests that must not depend on what a
-- model happens to say or how long it takes (position encodings, partial accepts, reloads,
-- timing). It speaks the same `unmask/` messages as the real server; the end-to-end tests use the
-- real one.
--
--   local fake = require('fake_server').new({ encoding = 'utf-16', infill = 'text', steps = 3 })
--   require('unmask').setup({ cmd = fake.cmd })
--
-- `block = { range = <LSP range>, newText = '...' }` answers `unmask/blockEdit` with that one
-- edit, after `block_delay` ms when set (no previews: the request's range stays unknown until
-- then). `initialize_delay` (ms; math.huge: never) holds the answer to `initialize`;
-- `infill_error = { code, message }` answers every inline completion with that error.
local M = {}

function M.new(script)
  local fake = { script = script, documents = {}, requests = {}, notifications = {} }
  local next_id = 0

  function fake.cmd(dispatchers)
    local closing = false
    local server = {}

    local function reply(callback, notify_reply, id, err, result)
      vim.schedule(function()
        callback(err, result)
        if notify_reply then
          notify_reply(id)
        end
      end)
    end

    function server.request(method, params, callback, notify_reply)
      next_id = next_id + 1
      local id = next_id
      table.insert(fake.requests, { id = id, method = method, params = params })
      if method == 'initialize' then
        local offered = params.capabilities.general.positionEncodings
        fake.offered = offered
        local function answer()
          reply(callback, notify_reply, id, nil, {
            capabilities = {
              positionEncoding = script.encoding or offered[1],
              textDocumentSync = { openClose = true, change = 1 },
              inlineCompletionProvider = true,
            },
            serverInfo = { name = 'fake-unmask' },
          })
        end
        if script.initialize_delay == math.huge then
          return true, id -- never answered
        elseif script.initialize_delay then
          vim.defer_fn(answer, script.initialize_delay)
        else
          answer()
        end
      elseif method == 'textDocument/inlineCompletion' and script.infill_error then
        reply(callback, notify_reply, id, script.infill_error, nil)
      elseif method == 'textDocument/inlineCompletion' then
        local uri = params.textDocument.uri
        local doc = fake.documents[uri]
        local position = params.position
        local range = { start = position, ['end'] = position }
        local steps = script.steps or 2
        -- previews: the text masked, then resolving from the left, then final
        for step = 0, steps do
          local cut = math.floor(#script.infill * step / steps)
          local segments = {
            { text = script.infill:sub(1, cut), resolved = true },
            { text = string.rep('░', math.max(0, math.ceil((#script.infill - cut) / 4))), resolved = false },
          }
          vim.schedule(function()
            dispatchers.notification('unmask/preview', {
              id = id, uri = uri, version = doc.version, range = range, mode = 'infill',
              step = step, steps = steps, segments = segments,
              text = segments[1].text .. segments[2].text, final = step == steps, cancelled = false,
            })
          end)
        end
        reply(callback, notify_reply, id, nil, { items = { { insertText = script.infill, range = range } } })
      elseif method == 'unmask/blockEdit' and script.block then
        local doc = fake.documents[params.textDocument.uri]
        local version, b = doc.version, script.block
        local function answer()
          reply(callback, notify_reply, id, nil, {
            mode = params.mode, range = b.range, version = version,
            edits = { { range = b.range, newText = b.newText, version = version, score = -1 } },
          })
        end
        if script.block_delay then
          vim.defer_fn(answer, script.block_delay)
        else
          answer()
        end
      elseif method == 'shutdown' then
        reply(callback, notify_reply, id, nil, vim.NIL)
      else
        reply(callback, notify_reply, id, { code = -32601, message = 'fake: no ' .. method }, nil)
      end
      return true, id
    end

    function server.notify(method, params)
      table.insert(fake.notifications, { method = method, params = params })
      if method == 'textDocument/didOpen' then
        local d = params.textDocument
        fake.documents[d.uri] = { version = d.version, text = d.text }
      elseif method == 'textDocument/didChange' then
        local doc = fake.documents[params.textDocument.uri]
        doc.version = params.textDocument.version
        doc.text = params.contentChanges[#params.contentChanges].text
      elseif method == 'exit' then
        closing = true
        vim.schedule(function()
          dispatchers.on_exit(0, 0)
        end)
      end
      return true
    end

    function server.is_closing()
      return closing
    end

    function server.terminate()
      closing = true
    end

    return server
  end

  return fake
end

return M
