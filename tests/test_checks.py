"""The one check builder behind the demo's, the audit's and the ledger's pass/fail lines."""

from unlearn.auditing import AuditConfig, verdict_of
from unlearn.benchmarks.demo import demo_checks
from unlearn.config import SequenceConfig
from unlearn.metrics.checks import bound, check, failed_line, passes
from unlearn.metrics.probes import GroupEvaluation, RequestEvaluation
from unlearn.requests.verification import SequenceEvaluation, verify

KEYS = {"name", "value", "threshold", "at_most", "passed", "description"}


def test_direction_tolerance_and_missing_values():
    assert passes(0.1, 0.1, True) and passes(0.1 + 1e-12, 0.1, True) and not passes(0.11, 0.1, True)
    assert passes(0.9, 0.9, False) and not passes(0.89, 0.9, False)
    assert not passes(None, 0.1, True) and passes(None, 0.1, True, missing_passes=True)
    line = check("forgotten", 0.3, 0.1, True, "share answered", fails_to="rolled_back")
    assert set(line) == KEYS | {"fails_to"} and line["passed"] is False
    assert bound(line) == "<= 0.100" and bound(check("kept", 1, 0.9, False)) == ">= 0.900"
    assert bound({"threshold": 0.25}) == "threshold 0.250"  # a report written before checks had a direction
    assert failed_line([line, check("kept", 1.0, 0.9, False)]) == "forgotten = 0.300 (> 0.100)"


def test_every_application_builds_its_checks_alike():
    groups = {"forget": 0.0, "forget_paraphrase": 0.0, "neighbour": 0.9, "general": 0.8, "all_facts": 0.9}
    fluency = {"passed": True}
    evals = {role: RequestEvaluation({g: GroupEvaluation(1, a, 0.0, fluency) for g, a in groups.items()}, {}, fluency)
             for role in ("original", "deployed", "unlearned", "retain")}
    ledger = verify(SequenceEvaluation({"forget": 0.5, "general": 0.8}, {"forget": 4, "general": 4}, {"r0": 0.0}),
                    {"general": 0.8}, {"r0": 0.0}, SequenceConfig()).to_json()
    _, audit_checks = verdict_of(0.0, {}, {}, AuditConfig())
    for lines in (demo_checks(evals), ledger["checks"], audit_checks):
        assert lines and all(KEYS <= set(line) for line in lines)
    assert ledger["status"] == "rolled_back" and ledger["reason"] == "forgotten: forget = 0.500 (> 0.100)"
    assert [c["passed"] for c in audit_checks] == [True, True]  # no attack measured a recovery: nothing failed
