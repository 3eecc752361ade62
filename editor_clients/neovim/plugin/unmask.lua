-- :Unmask {start|stop|complete|accept|accept_line|accept_word|dismiss|rewrite|suggest|next|status}
-- Only the user command is defined here; require('unmask').setup() does the rest.
if vim.g.loaded_unmask then
  return
end
vim.g.loaded_unmask = true

local subcommands = {
  'start', 'stop', 'complete', 'accept', 'accept_line', 'accept_word', 'dismiss',
  'rewrite', 'suggest', 'next', 'status',
}

vim.api.nvim_create_user_command('Unmask', function(opts)
  require('unmask').command(opts)
end, {
  nargs = '?',
  range = true,
  desc = 'unmask: diffusion infill, block rewrites and edit suggestions',
  complete = function(lead)
    return vim.tbl_filter(function(name)
      return name:find(lead, 1, true) == 1
    end, subcommands)
  end,
})
