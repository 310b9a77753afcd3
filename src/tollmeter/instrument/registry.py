"""The patch registry: which providers exist, and applying / removing their patches.

Patching is at class level through `wrapt`, so clients created before and after patching are
covered. The original attribute of each class is kept and put back by `unpatch`, so an
unpatched SDK is byte for byte what it was. A provider whose SDK is not installed is skipped.

Patching never imports an SDK the application has not imported: one not imported yet is
patched when the application imports it (a wrapt post-import hook). Importing every installed
SDK cost `patch_all()` 2.6 s on a machine with the seven of them, and left 283,000 objects more
for the application's garbage collector to walk in each full collection (4 times its own).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import wrapt

from .call import async_wrapper, sync_wrapper
from .endpoint import Endpoint

if TYPE_CHECKING:
    from .hooks import CallHooks

logger = logging.getLogger("tollmeter")


@dataclass(frozen=True)
class Patch:
    """One SDK method to wrap: `module`, then `path` ("Class.method") inside it.

    A method that makes a call names its `endpoint`; a lifecycle method (a stream's `close`, a
    raw response's `parse`) gives a `wrapper` factory instead: `wrapper(hooks)` returns the
    wrapt wrapper to install.
    """

    module: str
    path: str
    endpoint: Endpoint | None = None
    is_async: bool = False
    wrapper: Callable[[Any], Callable[..., Any]] | None = None


#: Provider name -> (the SDK's import name, the tollmeter module that knows it).
PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("openai", "tollmeter.instrument.openai"),
    "anthropic": ("anthropic", "tollmeter.instrument.anthropic"),
    "google": ("google.genai", "tollmeter.instrument.google"),
    "bedrock": ("botocore", "tollmeter.instrument.bedrock"),
    "aiobotocore": ("aiobotocore", "tollmeter.instrument.aiobotocore"),
    "groq": ("groq", "tollmeter.instrument.groq"),
    "mistral": ("mistralai", "tollmeter.instrument.mistral"),
    "cohere": ("cohere", "tollmeter.instrument.cohere"),
    "litellm": ("litellm", "tollmeter.instrument.litellm"),
}

class UnknownProviderError(ValueError):
    pass


def _installed_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing ("google" for "google.genai")
        return False


@dataclass
class _Applied:
    owner: Any  # the class the method lives on
    attribute: str
    original: Any


# (class, attribute) -> the hooks whose wrapper is installed there. Two meters never stack.
_installed: dict[tuple[Any, str], "CallHooks"] = {}
_lock = threading.RLock()


class Patcher:
    """The patches one set of hooks (one Meter) has applied, by provider."""

    def __init__(self, hooks: CallHooks) -> None:
        self._hooks = hooks
        self._applied: dict[str, list[_Applied]] = {}
        #: Providers waiting for the application to import their SDK.
        self._waiting: set[str] = set()

    @property
    def patched(self) -> list[str]:
        return sorted(self._applied.keys() | self._waiting)

    def patch(self, name: str) -> bool:
        """Patch one provider, now if the application has imported its SDK, else when it does;
        False if its SDK is not installed. Idempotent.

        Modules are imported outside the registry's lock: an SDK imported by another thread
        meanwhile holds its module lock while its post-import hook waits for the registry's."""
        if name not in PROVIDERS:
            raise UnknownProviderError(
                f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}"
            )
        sdk, module_name = PROVIDERS[name]
        with _lock:
            if name in self._applied or name in self._waiting:
                return True
        if not _installed_module(sdk) or not _installed_module(module_name):
            logger.debug("tollmeter: %s is not installed; not patching it", sdk)
            return False
        with _lock:
            if name in self._applied or name in self._waiting:
                return True
            if sdk not in sys.modules:
                self._waiting.add(name)
                wrapt.register_post_import_hook(lambda _module, name=name: self._imported(name), sdk)
                return True
        try:
            patches: list[Patch] = importlib.import_module(module_name).patches()
            targets = [_target(p) for p in patches]
        except Exception as fault:
            self._hooks.fault(fault, f"loading the {name} instrumentation")
            return False
        with _lock:
            if name in self._applied:  # another thread was first
                return True
            applied = [a for p, owner in zip(patches, targets) if owner is not None
                       and (a := self._apply(p, owner)) is not None]
            self._applied[name] = applied
        logger.debug("tollmeter: patched %d methods of %s", len(applied), name)
        return True

    def _imported(self, name: str) -> None:
        """The application imported a waiting provider's SDK: patch it now (unless unpatched)."""
        with _lock:
            if name not in self._waiting:
                return
            self._waiting.discard(name)
        try:
            self.patch(name)
        except Exception as fault:  # never into the application's import
            self._hooks.fault(fault, f"patching {name} on import")

    def unpatch(self, name: str) -> None:
        with _lock:
            self._waiting.discard(name)
            for applied in reversed(self._applied.pop(name, [])):
                setattr(applied.owner, applied.attribute, applied.original)
                _installed.pop((applied.owner, applied.attribute), None)

    def unpatch_all(self) -> None:
        for name in list(self._applied.keys() | self._waiting):
            self.unpatch(name)

    def _apply(self, patch: Patch, owner: Any) -> _Applied | None:
        """Install `patch` on `owner` (its class or module, `_target`), under the lock."""
        attribute = patch.path.rpartition(".")[2]
        if attribute not in vars(owner):
            logger.debug("tollmeter: %s.%s is inherited; skipped", patch.module, patch.path)
            return None
        key = (owner, attribute)
        holder = _installed.get(key)
        if holder is not None and holder is not self._hooks:
            logger.warning(
                "tollmeter: %s.%s is already instrumented by another Meter; not patching it twice",
                patch.module, patch.path,
            )
            return None
        original = vars(owner)[attribute]
        if patch.wrapper is not None:
            wrapper = patch.wrapper(self._hooks)
        else:
            assert patch.endpoint is not None, f"{patch.path}: a Patch needs an endpoint or a wrapper"
            wrapper = (async_wrapper if patch.is_async else sync_wrapper)(self._hooks, patch.endpoint)
        wrapt.wrap_function_wrapper(owner, attribute, wrapper)
        _installed[key] = self._hooks
        return _Applied(owner, attribute, original)


def _target(patch: Patch) -> Any:
    """The class or module `patch` is installed on (importing its module), or None when this
    release of the SDK does not have it."""
    try:
        owner: Any = importlib.import_module(patch.module)
        for part in patch.path.split(".")[:-1]:
            owner = getattr(owner, part)
    except (ImportError, AttributeError):
        logger.debug("tollmeter: %s.%s not found; skipped", patch.module, patch.path)
        return None
    return owner
