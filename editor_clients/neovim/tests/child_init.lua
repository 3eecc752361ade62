-- Init file of the child Neovim the tests drive over RPC: the plugin on the runtimepath, a clean
-- environment, and recorders for what the plugin reports (messages, previews, suggestions).
local root = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
vim.opt.runtimepath:prepend(root)
vim.opt.swapfile = false
vim.opt.shada = ''
vim.opt.more = false
vim.opt.shortmess:append('I')
vim.cmd('runtime plugin/unmask.lua')

_G.rec = { messages = {}, previews = {}, suggestions = {}, blocks = {}, accepts = {} }

vim.notify = function(msg, level)
  table.insert(_G.rec.messages, { msg = msg, level = level })
end

local render = require('unmask.render')
vim.api.nvim_create_autocmd('User', {
  pattern = 'UnmaskPreview',
  callback = function(args)
    local d = args.data
    table.insert(_G.rec.previews, {
      id = d.id,
      step = d.step,
      steps = d.steps,
      final = d.final,
      mode = d.mode,
      marks = #render.marks(d.bufnr),
      unresolved = render.uses_highlight(d.bufnr, 'UnmaskUnresolved'),
    })
  end,
})
vim.api.nvim_create_autocmd('User', {
  pattern = 'UnmaskSuggestion',
  callback = function(args)
    table.insert(_G.rec.suggestions, args.data)
  end,
})
vim.api.nvim_create_autocmd('User', {
  pattern = 'UnmaskBlockEdit',
  callback = function(args)
    local d = vim.deepcopy(args.data)
    d.marks = #render.marks(d.bufnr)
    d.added = render.uses_highlight(d.bufnr, 'UnmaskDiffAdd')
    d.deleted = render.uses_highlight(d.bufnr, 'UnmaskDiffDelete')
    table.insert(_G.rec.blocks, d)
  end,
})

vim.api.nvim_create_autocmd('User', {
  pattern = 'UnmaskAccept',
  callback = function(args)
    table.insert(_G.rec.accepts, args.data)
  end,
})

function _G.rec.reset()
  _G.rec.messages, _G.rec.previews, _G.rec.suggestions, _G.rec.blocks, _G.rec.accepts = {}, {}, {}, {}, {}
  _G.rec.status = nil
end
