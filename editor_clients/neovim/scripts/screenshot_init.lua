-- Neovim init for scripts/screenshot.sh: the plugin against the real server, <F5> asks for an
-- infill in insert mode, and marker files tell the script what happened.
local root = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
vim.opt.runtimepath:prepend(root)
vim.o.termguicolors = true
vim.o.number = true
vim.o.swapfile = false
vim.o.shada = ''
vim.o.laststatus = 2
vim.o.showmode = true
vim.cmd('filetype plugin indent on')
vim.cmd('syntax on')
vim.cmd('runtime plugin/unmask.lua')

local cmd = { 'unmask', 'serve' }
if vim.env.UNMASK_TEST_MODEL and vim.env.UNMASK_TEST_MODEL ~= '' then
  vim.list_extend(cmd, { '--model', vim.env.UNMASK_TEST_MODEL })
end
require('unmask').setup({ cmd = cmd, keymaps = true, init_options = { loadWaitSeconds = 180 } })
vim.keymap.set('i', '<F5>', '<Plug>(unmask-complete)')
vim.keymap.set({ 'i', 'n' }, '<F6>', '<Plug>(unmask-dismiss)')

local dir = vim.env.UNMASK_SHOT_DIR
local function mark(name, text)
  if dir then
    vim.fn.writefile({ text or '' }, dir .. '/' .. name)
  end
end
-- The colour resolved text is drawn in, so the script can find frames showing both kinds of run.
local resolved = vim.api.nvim_get_hl(0, { name = 'UnmaskResolved', link = false }).fg
if resolved then
  mark('resolved', ('38;2;%d;%d;%d'):format(bit.rshift(resolved, 16), bit.band(bit.rshift(resolved, 8), 255),
    bit.band(resolved, 255)))
end
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    if args.data and args.data.client_id == require('unmask.client').client_id then
      mark('attached')
    end
  end,
})
vim.api.nvim_create_autocmd('User', {
  pattern = 'UnmaskPreview',
  callback = function(args)
    mark('preview', ('%d %d'):format(args.data.step, args.data.steps))
  end,
})
vim.api.nvim_create_autocmd('User', {
  pattern = { 'UnmaskSuggestion', 'UnmaskBlockEdit' },
  callback = function(args)
    mark('done', vim.json.encode(args.data))
  end,
})
