"""What can go wrong while asking the model, sorted by what the writer does about it.

* ``ReplyError``: the answer arrived but is unusable; the part is asked again with the reason.
* ``TransientError``: HTTP 429 or 5xx, or a connection dropped mid-answer; asked again after a pause.
* ``RequestRejected``: the server refused the request as it stands; that part goes to the template.
* ``Unavailable``: nobody answers (refused connection, unknown host, connect or first-token
  timeout) or the time budget is spent; waiting longer would not help, so every part still to
  write goes to the template at once, and the storyboard is provisional: the next run asks again.
"""

from __future__ import annotations


class TransientError(Exception):
    """Worth retrying after a pause: HTTP 429 or 5xx, or a connection dropped mid-answer."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """The model cannot answer in this run: ``reason`` says why and where, for the storyboard's
    ``writer`` field, e.g. ``LLM unreachable at http://localhost:8000/v1 (connection refused)``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RequestRejected(Exception):
    """The server refused this request as it stands (HTTP 400 in every response mode); asking
    the same again would not help."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ReplyError(Exception):
    """The reply arrived but cannot be used; ``reason`` is short (for warnings), ``feedback``
    tells the model what to fix."""

    def __init__(self, reason: str, feedback: str):
        super().__init__(reason)
        self.reason = reason
        self.feedback = feedback


class PartFailed(Exception):
    """A part (the concept, or one section's shots) failed every attempt; the template writes it.

    ``passing`` is true when the last failure may pass by itself (a server error or overload):
    then the storyboard is provisional, and the next run asks again."""

    def __init__(self, attempts: int, reason: str, passing: bool = False):
        super().__init__(f"LLM failed {attempts} {'time' if attempts == 1 else 'times'} ({reason})")
        self.attempts = attempts
        self.reason = reason
        self.passing = passing


def budget_spent(budget_s: float) -> Unavailable:
    """The storyboard's time budget (``llm.budget_s``) ran out before the model finished."""
    return Unavailable(f"LLM time budget of {budget_s:g} s (llm.budget_s) spent")
