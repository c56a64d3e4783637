"""Polite "I don't know" answers, used as preferred targets by IdkDPO."""

from __future__ import annotations

REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I don't know the answer to that.",
    "I don't have any information about that, unfortunately.",
    "That's not something I know, I'm afraid.",
    "I'm not able to answer that question.",
    "Sorry, I can't help with that one.",
    "I don't have reliable knowledge on this topic.",
    "I'm afraid that's outside of what I know.",
    "I can't say, because I don't have that information.",
    "Unfortunately, I have no details about that.",
    "I'm not sure, and I'd rather not guess.",
    "I don't know, sorry.",
    "That's beyond my knowledge, I'm afraid.",
    "I have no record of that, so I can't answer.",
    "I'm unable to provide an answer to that question.",
    "Sorry, I'm not familiar with that.",
    "I don't have an answer for you on that one.",
    "I'm afraid I can't help you with this question.",
    "I really couldn't tell you, I'm sorry.",
    "That isn't something I have any knowledge of.",
    "I'd like to help, but I don't know the answer.",
    "I'm not in a position to answer that.",
    "Sorry, that information isn't available to me.",
    "I can't answer that; it's not something I know about.",
    "I have no idea, I'm afraid.",
    "Apologies, but I don't have an answer to that question.",
    "I'm not aware of any details about that.",
    "I'd be guessing if I answered, so I'll say I don't know.",
    "That's a question I can't answer, sorry.",
    "I'm sorry, I have nothing useful to say about that.",
    "I don't know much about that, so I can't give you an answer.",
)


def refusal_for(index: int) -> str:
    """Return a refusal chosen deterministically by cycling through ``REFUSALS``."""
    return REFUSALS[index % len(REFUSALS)]
