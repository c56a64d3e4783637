"""Keep a request's retain set from teaching back what an applied request removed.

A retain set is written when the request is written: "keep every other customer", "keep the rest of the
book". Requests arrive over months and may be retried out of order, so a retain set can name data that an
applied request has since asked to forget; training on it would re-teach that data (the ledger's relapse
check would then undo the request, and the request could never pass). Before a request is trained, every
retain and anchor item that equals a forget item of an applied request — or of the request itself — is
left out.

Items are compared by fingerprint: a salted SHA-256 of the item with its spelling normalised (case, spacing, Unicode form; `normalise_spelling`) (a text,
or a question with its answer). The ledger keeps the fingerprints of every request's forget items, never the
items: like the sealed probes, a fingerprint tells whether a guessed item was removed only to someone who
holds the state directory's salt.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from ..data.request import QA, DataSpec, ForgetRequest
from ..metrics.text import normalise_spelling


def text_fingerprint(text: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}\x00text\x00{normalise_spelling(text)}".encode()).hexdigest()


def qa_fingerprint(qa: QA, salt: str) -> str:
    """The question and the answer together (the focus marks do not change what is taught)."""
    return hashlib.sha256(f"{salt}\x00qa\x00{normalise_spelling(qa.question)}\x00{normalise_spelling(qa.answer)}".encode()).hexdigest()


def data_fingerprints(data: DataSpec, salt: str) -> set[str]:
    """The fingerprints of every item of `data`."""
    return {text_fingerprint(t, salt) for t in data.texts} | {qa_fingerprint(q, salt) for q in data.qa}


def without_items(data: DataSpec, fingerprints: set[str], salt: str) -> tuple[DataSpec, int]:
    """`data` without the items whose fingerprint is in `fingerprints`, and how many were left out."""
    texts = [t for t in data.texts if text_fingerprint(t, salt) not in fingerprints]
    qa = [q for q in data.qa if qa_fingerprint(q, salt) not in fingerprints]
    return DataSpec(texts=texts, qa=qa), len(data) - len(texts) - len(qa)


def without_forgotten(request: ForgetRequest, forgotten: set[str], salt: str) -> tuple[ForgetRequest, dict[str, int]]:
    """The request to train: its retain and anchor data without the items in `forgotten` (fingerprints of
    applied requests' forget items) or in its own forget data. Returns it and the count left out per part
    (only the parts that lost items)."""
    drop = forgotten | data_fingerprints(request.forget, salt)
    retain, retain_dropped = without_items(request.retain, drop, salt)
    anchor, anchor_dropped = without_items(request.anchor, drop, salt)
    dropped = {k: v for k, v in (("retain", retain_dropped), ("anchor", anchor_dropped)) if v}
    return (replace(request, retain=retain, anchor=anchor) if dropped else request), dropped
