"""The OpenAI-compatible backend: any chat completions endpoint (vLLM, llama.cpp, Ollama, hosted APIs).

The pass's schema goes as ``response_format`` ``json_schema`` (strict); a server that refuses it
is asked again with a schema without length keywords, then ``json_object``, then plain text.

Answers are streamed, so that a server which is working can be told from one that hangs:
``llm.connect_timeout_s`` bounds the connection, ``llm.first_token_timeout_s`` the silence before
the first token and between tokens, and the storyboard's deadline (``llm.budget_s``) everything.
A refused connection, an unknown host or a silent server ends the storyboard's requests at once
(``Unavailable``); the request runs in a worker thread while the caller's thread reports, once a
second, which server it waits on and for how long.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from music2video.errors import Music2VideoError
from music2video.optional import require
from music2video.settings import LlmSettings
from music2video.write.llm.faults import RequestRejected, TransientError, Unavailable, budget_spent
from music2video.write.llm.requestlog import RequestLog
from music2video.write.llm.schema import portable_schema

log = logging.getLogger(__name__)

WAIT_REPORT_INTERVAL_S = 1.0
"""How often, in seconds, the progress line is updated while a request waits. Display only, so not a setting."""


class OpenAIBackend:
    """Chat completions over HTTP; one client for all passes, closed by ``close``."""

    # Ways to ask for JSON, strongest first. A server that answers 400 to one is asked the next
    # way; the weaker way is kept for later requests only once it has worked.
    MODES = ("json_schema", "json_schema_portable", "json_object", "text")

    def __init__(self, settings: LlmSettings, request_log: RequestLog):
        require("openai", extra="llm", purpose="the llm writer with base_url")
        import openai

        self.openai = openai
        self.settings = settings
        self.log = request_log
        self.mode = 0
        self.notes: list[str] = []
        self.url = without_credentials(settings.base_url or "")
        api_key = settings.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        # The client's own retries are off: the director counts attempts and waits between them.
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=api_key, max_retries=0)

    def describe(self) -> str:
        return f"llm:{self.settings.model}@{self.url}"

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], part: str, seed: int,
                 deadline: float, waiting: Callable[[str], None]) -> str:
        """The model's raw answer. ``deadline`` is a ``time.monotonic()`` value; ``waiting``
        receives a line of text about the wait, about once a second."""
        openai = self.openai
        first_error: str | None = None
        for mode in range(self.mode, len(self.MODES)):
            kwargs: dict[str, Any] = {
                "model": self.settings.model,
                "messages": messages,
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
                "seed": seed,
                "stream": True,
            }
            response_format = self._response_format(self.MODES[mode], part, schema)
            if response_format is not None:
                kwargs["response_format"] = response_format
            stem = self.log.request(part, {"backend": "openai", "base_url": self.url, "mode": self.MODES[mode], **kwargs})
            try:
                content = self._stream(kwargs, deadline, waiting)
            except (Unavailable, TransientError) as error:
                self.log.error(stem, error.reason)
                raise
            except openai.BadRequestError as error:
                self.log.error(stem, f"HTTP 400: {_error_message(error)}")
                first_error = first_error or _error_message(error)
                continue  # perhaps the response format: try the next, weaker one
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as error:
                self.log.error(stem, f"HTTP {error.status_code}: {_error_message(error)}")
                raise Music2VideoError(
                    f"the LLM server at {self.url} refused model {self.settings.model!r} (HTTP {error.status_code}: "
                    f"{_error_message(error)}); check llm.model, llm.api_key (or OPENAI_API_KEY) and llm.base_url"
                ) from None
            except openai.APIStatusError as error:
                self.log.error(stem, f"HTTP {error.status_code}: {_error_message(error)}")
                if error.status_code == 429 or error.status_code >= 500:
                    raise TransientError(f"HTTP {error.status_code}", _retry_after_s(error)) from None
                raise RequestRejected(f"HTTP {error.status_code}: {_error_message(error)}") from None
            self.log.response(stem, content)
            if mode != self.mode:
                note = (f"the LLM server refused response_format {self.MODES[self.mode]} ({first_error}); "
                        f"used {self.MODES[mode]} instead")
                log.warning(note)
                self.notes.append(note)
                self.mode = mode
            return content
        raise RequestRejected(f"HTTP 400: {first_error}")

    def _stream(self, kwargs: dict[str, Any], deadline: float, waiting: Callable[[str], None]) -> str:
        """One streamed request, run in a worker thread while this thread reports the wait."""
        settings = self.settings
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise budget_spent(settings.budget_s)
        silence_s = min(settings.first_token_timeout_s, remaining)
        timeout = self.openai.Timeout(silence_s, connect=min(settings.connect_timeout_s, remaining))
        request = _StreamedRequest(lambda: self.client.chat.completions.create(**kwargs, timeout=timeout))
        request.start()
        started = time.monotonic()
        while not request.done.wait(WAIT_REPORT_INTERVAL_S):
            now = time.monotonic()
            if now >= deadline:
                request.abandon()
                raise budget_spent(settings.budget_s)
            if request.characters == 0:
                waiting(f"waiting for the LLM server at {self.url}: {now - started:.0f} s "
                        f"(gives up after {silence_s:.3g} s of silence)")
            else:
                waiting(f"the LLM server at {self.url} is writing: {request.characters} characters, "
                        f"{now - started:.0f} s")
        if request.error is not None:
            raise self._classify(request.error, silence_s, request.characters) from None
        return request.text

    def _classify(self, error: BaseException, silence_s: float, characters: int) -> BaseException:
        """What a transport error means for the storyboard. The SDK wraps errors raised while it
        connects (``APIConnectionError``, ``APITimeoutError``) but not those raised while a stream
        is read, so the transport error is recognised by its class name (httpx or its successor)."""
        cause = error.__cause__ if isinstance(error, self.openai.APIConnectionError) else error
        kinds = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
        timed_out = "TimeoutException" in kinds or isinstance(error, self.openai.APITimeoutError)
        if timed_out and silence_s < self.settings.first_token_timeout_s:
            return budget_spent(self.settings.budget_s)  # the wait was cut short to end within the budget
        if "ConnectTimeout" in kinds:
            return Unavailable(f"LLM unreachable at {self.url} (no connection within "
                               f"{self.settings.connect_timeout_s:g} s)")
        if "ConnectError" in kinds:  # refused, unknown host, no route
            return Unavailable(f"LLM unreachable at {self.url} ({_connect_reason(cause)})")
        if timed_out:
            what = "nothing" if characters == 0 else f"nothing more after {characters} characters"
            return Unavailable(f"LLM at {self.url} sent {what} for {silence_s:g} s")
        if isinstance(error, self.openai.APIError) and not isinstance(error, self.openai.APIConnectionError):
            return error  # an HTTP status: complete() sorts those out
        if kinds & {"TransportError", "StreamError"} or isinstance(error, self.openai.APIConnectionError):
            return TransientError(f"connection error: {_one_line(cause or error)}")
        return error

    @staticmethod
    def _response_format(mode: str, part: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", part)[:64]
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if mode == "json_schema_portable":
            portable = portable_schema(schema)
            return {"type": "json_schema", "json_schema": {"name": name, "schema": portable, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def close(self) -> None:
        self.client.close()


class _StreamedRequest:
    """A streamed chat completion read in a daemon thread. The caller's thread polls ``done``,
    reads ``characters`` to report progress, and may ``abandon`` the request at its deadline
    (the connection is closed; the thread ends at its next read)."""

    def __init__(self, open_stream: Callable[[], Any]):
        self.open_stream = open_stream
        self.done = threading.Event()
        self.parts: list[str] = []
        self.characters = 0
        self.error: BaseException | None = None
        self.stream: Any = None
        self.abandoned = False

    def start(self) -> None:
        threading.Thread(target=self._run, name="llm-request", daemon=True).start()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def _run(self) -> None:
        try:
            self.stream = self.open_stream()
            for chunk in self.stream:
                if self.abandoned:
                    break
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    self.parts.append(delta)
                    self.characters += len(delta)
        except BaseException as error:  # handed to the caller's thread, which raises it
            self.error = error
        finally:
            self.done.set()

    def abandon(self) -> None:
        self.abandoned = True
        stream = self.stream
        if stream is not None:
            try:
                stream.close()
            except Exception as error:  # the request is being given up anyway
                log.debug("closing an abandoned LLM stream: %s", error)


def _connect_reason(error: BaseException | None) -> str:
    """'connection refused', 'name or service not known' ... from a connect error's text."""
    text = _one_line(error) if error is not None else "connection failed"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[:1].lower() + text[1:] if text else "connection failed"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _error_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(error).split())[:300]


def _retry_after_s(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def without_credentials(url: str) -> str:
    """``url`` without a user:password part, for logs and the storyboard."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))

