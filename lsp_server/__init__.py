"""unmask's language server, terminal preview and command line (everything that knows LSP or a terminal)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unmask")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
