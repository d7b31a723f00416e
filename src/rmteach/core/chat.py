"""Conversations in data sets: `{role, content}` messages, the prompt they stand for, and its text.

A prompt is a string or a conversation: the messages before the response. A conversation of one user turn
*is* the prompt string (`as_prompt`), so a set stored as strings and the same set stored as one-turn
conversations give identical samples, rewards, caches and scale-transform choices. Longer conversations (a
system message, several turns) stay messages: samplers render them with the policy's chat template, reward
backends with the RM's. Their text, used for display, hashing, the scale transform's choice of prompts, and as
the policy's input when it has no chat template (`rmteach.core.hf.format_prompt`), is a plain transcript:
one `Role: content` block per message (the role capitalised), blocks separated by a blank line.

A message keeps only its role and content (both strings; text only): other keys are dropped.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

Message = dict[str, str]
PromptInput = Union[str, list[Message]]  # what samplers and reward backends receive for one prompt


def messages(value: Any) -> list[Message]:
    """A column value as a list of `{role, content}` messages; raises `ValueError` saying what is wrong.

    >>> messages([{"role": "user", "content": "Hi", "name": None}])
    [{'role': 'user', 'content': 'Hi'}]
    """
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a string or a non-empty list of {role, content} messages")
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not m["role"]:
            raise ValueError(f"message {j} must be a {{role, content}} mapping with a role string")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message {j} ({m['role']}): 'content' must be a string (text-only conversations)")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def as_prompt(msgs: Sequence[Message]) -> PromptInput:
    """The prompt a conversation stands for: one user turn is its text, anything else stays messages.

    >>> as_prompt([{"role": "user", "content": "Hi"}])
    'Hi'
    """
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return msgs[0]["content"]
    return [dict(m) for m in msgs]


def as_turns(prompt: PromptInput) -> list[Message]:
    """A prompt as messages: a string is one user turn; a conversation's messages are copied.

    >>> as_turns("Hi")
    [{'role': 'user', 'content': 'Hi'}]
    """
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def transcript(msgs: Sequence[Message]) -> str:
    """A conversation as plain text: `Role: content` blocks separated by a blank line.

    >>> transcript([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    'System: Be brief.\\n\\nUser: Hi'
    """
    return "\n\n".join(f"{m['role'][:1].upper()}{m['role'][1:]}: {m['content']}" for m in msgs)


def prompt_text(prompt: PromptInput) -> str:
    """The text of a prompt: a string itself, a one-user-turn conversation its content, else the transcript.

    >>> prompt_text([{"role": "user", "content": "Hi"}]) == prompt_text("Hi") == "Hi"
    True
    """
    if isinstance(prompt, str):
        return prompt
    p = as_prompt(prompt)
    return p if isinstance(p, str) else transcript(p)


def split_response(msgs: Sequence[Message]) -> tuple[list[Message], str]:
    """(the turns before the response, the response) of a conversation ending with the assistant's turn.

    Raises `ValueError` when the last message is not an assistant turn.

    >>> split_response([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    ([{'role': 'user', 'content': 'Hi'}], 'Hello')
    """
    if msgs[-1]["role"] != "assistant":
        raise ValueError(f"its last message is a '{msgs[-1]['role']}' turn; the response must be the last turn, "
                         "the assistant's")
    return [dict(m) for m in msgs[:-1]], msgs[-1]["content"]


def same_turns(a: Sequence[Message], b: Sequence[Message]) -> int | None:
    """The index of the first message where two conversations differ (role, or content up to surrounding
    whitespace), len(shorter) when one is longer, or None when they agree.

    >>> same_turns([{"role": "user", "content": "Hi "}], [{"role": "user", "content": "Hi"}]) is None
    True
    """
    for j, (x, y) in enumerate(zip(a, b)):
        if x["role"] != y["role"] or x["content"].strip() != y["content"].strip():
            return j
    return None if len(a) == len(b) else min(len(a), len(b))
