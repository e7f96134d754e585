"""Which faults each lab stack offers: what `ptor --fault` refuses before the load and
`ptor-lab fault` names (README's lists of faults per stack)."""

from ptor_harness.lab import stacks
from ptor_harness.lab.actions import FAULT_ACTIONS

EVERY_STACK = {"kill-primary", "stop-primary", "switchover", "blip", "stop-sync-standby",
               "cancel-sync-waits"}
STREAMING_ONLY = {"hang-primary", "split-brain", "kill-standby-then-primary",
                  "restart-cluster"}


def test_each_stack_offers_its_faults_and_only_those():
    offered = {name: set(cls.offers()) for name, cls in stacks().items()}
    assert offered["streaming"] == EVERY_STACK | STREAMING_ONLY
    for managed in ("auto-failover", "patroni", "repmgr"):
        assert offered[managed] == EVERY_STACK | {"kill-manager"}, managed
    assert set().union(*offered.values()) == set(FAULT_ACTIONS)  # none offered nowhere


def test_a_fault_not_offered_is_one_sentence_naming_those_that_are():
    said = stacks()["patroni"].cannot("hang-primary")
    assert said.startswith("the patroni lab cannot hang-primary; it offers kill-primary, ")
    assert "hang-primary" not in said.split("offers")[1]


def test_an_unknown_fault_names_what_this_lab_offers():
    """`ptor-lab fault --dir REPMGR_LAB reboot` listed every stack's faults, hang-primary
    among them, which the repmgr lab then refused."""
    import pytest

    from ptor_harness.lab.pg import LabError

    repmgr = stacks()["repmgr"]
    lab = object.__new__(repmgr)  # no lab on disk is needed to refuse a name
    with pytest.raises(LabError) as err:
        lab.fault("reboot")
    said = str(err.value)
    assert said.startswith("unknown fault 'reboot'; the repmgr lab offers kill-primary, ")
    assert "hang-primary" not in said and set(said.split("offers ")[1].split(", ")) == \
        set(repmgr.offers())
