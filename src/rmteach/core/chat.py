"""Conversations in data sets: `{role, content}` messages, the prompt they stand for, and its text.

A prompt is a string or a conversation: the messages before the response. A conversation of one user turn
*is* the prompt string (`as_prompt`), so a set stored as strings and the same set stored as one-turn
conversations give identical samples, rewards, caches and scale-transform choices. Longer conversations (a
system message, several turns) stay messages: samplers render them with the policy's chat template, reward
backends with the RM's. Their text, used for display, hashing, the scale transform's choice of prompts, and as
the policy's input when it has no chat template (`format_prompt`), is a plain transcript:
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


def format_prompt(tokenizer: Any, prompt: str | list[dict[str, str]]) -> str:
    """The text the policy continues.

    Arguments:
        tokenizer: the policy's tokenizer.
        prompt: one user turn, or a conversation (`{role, content}` messages before the response); a
            conversation of one user turn is its text (`as_prompt`).

    Returns:
        With a chat template: the turns through it, with the generation prompt (add_generation_prompt=True).
        Without: a string prompt as it is (a prefix to continue); a conversation as the plain transcript of
        `transcript` (`Role: content` blocks separated by a blank line) followed by a blank
        line and `Assistant:`, the cue for the response.

    >>> format_prompt(None, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    'System: Be brief.\\n\\nUser: Hi\\n\\nAssistant:'
    >>> format_prompt(None, [{"role": "user", "content": "Q: 2+2? A:"}])
    'Q: 2+2? A:'
    """
    prompt = prompt if isinstance(prompt, str) else as_prompt(prompt)
    turns = as_turns(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return prompt if isinstance(prompt, str) else transcript(turns) + "\n\nAssistant:"


NO_TEMPLATE = "none"  # a reward model's `chat_template: none`: plain text, even when the tokenizer has a template


def format_conversation(tokenizer: Any, prompt: str | list[dict[str, str]], response: str, *,
                        chat_template: str | None = None, system_prompt: str | None = None) -> str:
    """The text an RM scores: the conversation through a chat template, or as plain text.

    Arguments:
        tokenizer: the RM's tokenizer; its chat template is used unless `chat_template` says otherwise.
        prompt: one user turn, or a conversation (the `{role, content}` messages before the response).
        response: the assistant's response, the conversation's last turn.
        chat_template: a Jinja template to use instead of the tokenizer's, or `"none"` for plain text.
        system_prompt: a system message put first (it replaces a system message the conversation opens with).

    Returns:
        The text. Plain (no template): a string prompt (or a conversation of one user turn, the same prompt) is
        the prefix the policy continued, so `prompt + response`, after the system prompt and a blank line if
        there is one; a longer conversation is the policy's plain text of it (`format_prompt`) + response.

    >>> format_conversation(None, "Q: 2+2? A:", " 4", system_prompt="Be brief.")
    'Be brief.\\n\\nQ: 2+2? A: 4'
    >>> format_conversation(None, [{"role": "system", "content": "Hush."}, {"role": "user", "content": "Hi"}], " Yo")
    'System: Hush.\\n\\nUser: Hi\\n\\nAssistant: Yo'
    """
    prompt = prompt if isinstance(prompt, str) else as_prompt(prompt)
    turns = as_turns(prompt)
    if system_prompt is not None:
        rest = turns[1:] if turns and turns[0].get("role") == "system" else turns
        turns = [{"role": "system", "content": system_prompt}, *rest]
    template = getattr(tokenizer, "chat_template", None) if chat_template is None else chat_template
    if template and template != NO_TEMPLATE:
        override = {"chat_template": chat_template} if chat_template is not None else {}  # else: the tokenizer's own
        return tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": response}], tokenize=False,
                                             **override)
    if isinstance(prompt, str):
        return "".join(f"{m['content']}\n\n" for m in turns[:-1]) + prompt + response
    return format_prompt(None, turns) + response
