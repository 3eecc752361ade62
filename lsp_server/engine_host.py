"""Loads the engine in the background so that `initialize` is answered at once.

Importing torch alone takes seconds; the server answers the handshake first
and loads the model on a thread. A request that arrives meanwhile waits for
the model up to a limit, then gets a clear "still loading" answer. `stage`
says what the load is doing, for the editor's progress display.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusion.engine import Engine

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model is still loading or failed to load; the message says which."""


class EngineHost:
    def __init__(
        self, model: str | None, device: str | None, dtype: str | None = None, decoding: dict | None = None
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.decoding = decoding or {}  # `fast_path_changes` arguments: the command's decoding flags
        self.engine: Engine | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.seconds: float | None = None  # how long the load took, once it is over
        self.stage = "starting"
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._load, name="unmask-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.stage = "importing torch"
            from diffusion.engine import Engine, fast_path_changes

            self.stage = f"reading {self.model or 'the built-in model'}"
            log.info("loading model %s", self.model or "(built-in)")
            engine = Engine.load(self.model, self.device, self.dtype)
            if changes := fast_path_changes(**self.decoding):
                engine = engine.with_settings(**changes)
            choose = getattr(engine, "scorer_choice", None)  # DiffusionGemma scores inside transformers
            if choose is not None:  # on CUDA this compiles and races the fused kernel: now, not in a request
                self.stage = f"preparing the scorer on {engine.device}"
                log.info("steps scored by the %s", choose().reason)
            self.engine = engine
            log.info("model ready in %.1f s on %s", time.monotonic() - self.started, engine.device)
        except Exception as error:  # reported to every request, the server keeps serving
            log.exception("model failed to load")
            self.error = f"the model failed to load: {error}"
        finally:
            self.seconds = time.monotonic() - self.started
            self.stage = "failed" if self.error else "ready"
            self.ready.set()

    def status(self) -> str:
        if not self.ready.is_set():
            return "loading"
        return "failed" if self.error else "ready"

    def outcome(self) -> str:
        """One line on how the load ended (or that it has not)."""
        if not self.ready.is_set():
            return f"loading: {self.stage}"
        if self.error or self.engine is None:
            return str(self.error)
        return f"model ready in {self.seconds or 0:.1f} s on {self.engine.device}"

    async def settled(self) -> None:
        """Return once the load has ended, ready or failed."""
        await _wait_event(self.ready, math.inf)

    async def wait(self, timeout: float) -> Engine:
        await _wait_event(self.ready, timeout)
        if not self.ready.is_set():
            raise ModelUnavailable(
                f"unmask: the model is still loading ({time.monotonic() - self.started:.0f} s so far); "
                "try again in a moment"
            )
        if self.error or self.engine is None:
            raise ModelUnavailable(f"unmask: {self.error}")
        return self.engine


async def _wait_event(event: threading.Event, timeout: float) -> None:
    """Poll a thread event without blocking the loop or holding an executor thread."""
    deadline = time.monotonic() + timeout
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
